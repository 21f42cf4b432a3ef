// engine_bench: single-thread throughput of selu::core::MlpEngine against
// baselines measured in the same process.
//
//   BM_Engine/<model>/<batch>/<ip|matmul|auto>[_bf16]
//                                             MlpEngine::Run on one warmed workspace, with
//                                             EnginePrimitive kInnerProduct|kMatmul|kAuto and
//                                             fp32 (no suffix) or bf16 weights (_bf16; only
//                                             where the CPU has native bf16)
//   BM_BareOneDnn/<model>/<batch>/<ip|matmul> hand-written oneDNN chain (bare_onednn_mlp.h)
//   BM_Naive/<model>/<batch>                  triple loop + scalar SELU (bench_models.h)
//   BM_Sgemm/<n>                              dnnl_sgemm n×n×n: the measured fp32 peak
//   BM_Engine|BM_BareOneDnn/tiny/1/<ip|matmul> a 16→16→16 model: per-call overhead
//   BM_EngineSampled/<model>/<batch>/ip       MlpEngine::Run observed by a monitor slot with
//                                              a reference (what a sampled batch costs; the
//                                              monitor's windows close and score as in serving)
//
// Every benchmark reports items_per_second (rows/s) and the rate counter
// GFLOP (shown as GFLOP=…/s: 2·rows·Σ in·out per iteration, per second). Before timing anything,
// the engine's output is checked against the bare chain (max |Δ| ≤ 1e-4) and the naive loop (≤
// 1e-3) for every model, batch size and primitive (auto: against inner product, ≤ 1e-4; bf16:
// against the fp32 engine, ≤ kBf16Tolerance); a mismatch aborts. bench/run_engine_bench.sh
// runs this and bench/report.py makes the table.
#include <benchmark/benchmark.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <oneapi/dnnl/dnnl.hpp>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "bench/bare_onednn_mlp.h"
#include "bench/bench_models.h"
#include "server/core/engine/mlp_engine.h"
#include "server/core/monitor/model_monitor.h"

namespace selu::bench {
namespace {

using core::EnginePrimitive;
using core::MlpEngine;
using core::WeightsPrecision;

constexpr uint32_t kWeightSeed = 20170608;  // SNN paper's arXiv date
constexpr uint32_t kInputSeed = 42;
constexpr int64_t kBatchSizes[] = {1, 8, 32, 128, 512};
constexpr int64_t kMaxBatch = 512;
constexpr int64_t kNaiveMaxBatchBig = 32;
constexpr EnginePrimitive kPrimitives[] = {EnginePrimitive::kInnerProduct,
                                           EnginePrimitive::kMatmul};
constexpr EnginePrimitive kEnginePrimitives[] = {EnginePrimitive::kInnerProduct,
                                                 EnginePrimitive::kMatmul, EnginePrimitive::kAuto};
constexpr double kBareTolerance = 1e-4;
constexpr double kNaiveTolerance = 1e-3;
// bf16 weights vs fp32 (max abs): LeCun-normal layers of width ≤ 1024 with
// outputs of order 1 are off by ≈ 2^-8 per layer with random-sign rounding
// errors; five layers stay well under this.
constexpr double kBf16Tolerance = 0.1;

[[noreturn]] void Die(const std::string& message) {
  std::fprintf(stderr, "engine_bench: FATAL: %s\n", message.c_str());
  std::fflush(stderr);
  std::abort();
}

const char* PrimitiveName(EnginePrimitive p) {
  switch (p) {
    case EnginePrimitive::kInnerProduct:
      return "ip";
    case EnginePrimitive::kMatmul:
      return "matmul";
    case EnginePrimitive::kAuto:
      break;
  }
  return "auto";
}

std::string VariantName(EnginePrimitive p, WeightsPrecision w) {
  return std::string(PrimitiveName(p)) + (w == WeightsPrecision::kBf16 ? "_bf16" : "");
}

std::vector<WeightsPrecision> Precisions() {
  if (core::CpuHasBf16()) return {WeightsPrecision::kFp32, WeightsPrecision::kBf16};
  return {WeightsPrecision::kFp32};
}

int VariantIndex(EnginePrimitive p, WeightsPrecision w) {
  return static_cast<int>(p) + (w == WeightsPrecision::kBf16 ? 3 : 0);
}

// One model with its spec, input, output buffer and (lazily) one engine and
// one workspace per primitive and weight precision. Lives for the whole run.
struct ModelState {
  const BenchModel* def = nullptr;
  bool overhead_only = false;  // tiny model: batch 1 only, no naive loop
  core::ModelSpec spec;
  double flops_per_row = 0;
  std::vector<float> input;   // kMaxBatch rows
  std::vector<float> output;  // kMaxBatch rows
  std::unique_ptr<MlpEngine> engines[6];
  // Whatever owning pointer CreateWorkspace() returns.
  using WorkspacePtr = decltype(std::declval<const MlpEngine&>().CreateWorkspace());
  WorkspacePtr workspaces[6];

  MlpEngine& Engine(EnginePrimitive p, WeightsPrecision w = WeightsPrecision::kFp32) {
    const int i = VariantIndex(p, w);
    if (!engines[i]) {
      core::MlpEngineOptions options;
      options.primitive = p;
      options.weights = w;
      options.threads_per_call = 1;
      auto engine = MlpEngine::Create(spec, options);
      if (!engine.ok()) Die("MlpEngine::Create(" + def->name + "): " + engine.status().ToString());
      engines[i] = std::move(engine).value();
      workspaces[i] = engines[i]->CreateWorkspace();
    }
    return *engines[i];
  }
  MlpEngine::Workspace& Workspace(EnginePrimitive p, WeightsPrecision w = WeightsPrecision::kFp32) {
    Engine(p, w);
    return *workspaces[VariantIndex(p, w)];
  }
};

std::vector<std::unique_ptr<ModelState>>& Models() {
  static std::vector<std::unique_ptr<ModelState>> models = [] {
    std::vector<std::unique_ptr<ModelState>> v;
    std::vector<const BenchModel*> defs;
    for (const BenchModel& def : BenchModels()) defs.push_back(&def);
    defs.push_back(&OverheadModel());
    for (const BenchModel* def_ptr : defs) {
      const BenchModel& def = *def_ptr;
      auto m = std::make_unique<ModelState>();
      m->def = &def;
      m->overhead_only = &def == &OverheadModel();
      m->spec = MakeRandomSpec(def, kWeightSeed);
      m->flops_per_row = FlopsPerRow(m->spec);
      m->input = MakeRandomInput(kMaxBatch, def.widths.front(), kInputSeed);
      m->output.assign(size_t(kMaxBatch * def.widths.back()), 0.0f);
      v.push_back(std::move(m));
    }
    return v;
  }();
  return models;
}

// Bare chains, built on first use and kept for the whole run like the
// engine's plans (≈ 21 MB of weights per big-model chain). Rebuilding one per
// repetition would hand it freshly written, cache-hot weights the engine does
// not get, which skews weight-streaming cases such as big at batch 1.
BareOneDnnMlp& BareChain(ModelState& m, EnginePrimitive p, int64_t rows) {
  static std::map<std::tuple<const ModelState*, EnginePrimitive, int64_t>,
                  std::unique_ptr<BareOneDnnMlp>>
      chains;
  auto& chain = chains[std::make_tuple(&m, p, rows)];
  if (!chain)
    chain = std::make_unique<BareOneDnnMlp>(m.spec, p, rows, m.input.data(), m.output.data());
  return *chain;
}

void WarmupOrDie(MlpEngine& engine, int64_t rows) {
  const int64_t sizes[] = {rows};
  core::Status s = engine.Warmup(sizes);
  if (!s.ok()) Die("Warmup: " + s.ToString());
}

void SetCounters(benchmark::State& state, const ModelState& m, int64_t rows) {
  state.SetItemsProcessed(state.iterations() * rows);
  state.counters["GFLOP"] = benchmark::Counter(m.flops_per_row * double(rows) / 1e9,
                                               benchmark::Counter::kIsIterationInvariantRate);
  state.counters["rows"] = double(rows);
}

void BM_Engine(benchmark::State& state, ModelState* m, int64_t rows, EnginePrimitive p,
               WeightsPrecision w) {
  MlpEngine& engine = m->Engine(p, w);
  MlpEngine::Workspace& ws = m->Workspace(p, w);
  WarmupOrDie(engine, rows);
  const float* in = m->input.data();
  float* out = m->output.data();
  if (!engine.Run(ws, in, rows, out).ok()) Die("Run failed");
  for (auto _ : state) {
    core::Status s = engine.Run(ws, in, rows, out);
    if (!s.ok()) {
      state.SkipWithError(s.ToString().c_str());
      break;
    }
    benchmark::ClobberMemory();
  }
  SetCounters(state, *m, rows);
}

// A reference for `m` from its own benchmark input (every tensor's moments).
core::LoadedReference SelfReference(ModelState& m, MlpEngine& engine, int64_t rows) {
  struct Collect final : core::LayerObserver {
    std::vector<core::UnitMoments> t;
    void OnInput(const float* x, int64_t r, int64_t f) override {
      t.emplace_back(f);
      t.back().Add(x, r);
    }
    void OnLayer(int, const float* y, int64_t r, int64_t f) override {
      t.emplace_back(f);
      t.back().Add(y, r);
    }
  } collect;
  auto ws = engine.CreateWorkspace();
  if (!engine.Run(*ws, m.input.data(), rows, m.output.data(), collect).ok()) Die("Run failed");
  core::LoadedReference ref;
  ref.stats.emplace();
  ref.stats->rows = rows;
  ref.stats->input = core::StatsOf(collect.t[0]);
  for (size_t k = 1; k < collect.t.size(); ++k) {
    core::LayerReference layer;
    layer.index = int64_t(k - 1);
    layer.stats = core::StatsOf(collect.t[k]);
    ref.stats->layers.push_back(std::move(layer));
  }
  return ref;
}

void BM_EngineSampled(benchmark::State& state, ModelState* m, int64_t rows, EnginePrimitive p) {
  MlpEngine& engine = m->Engine(p);
  MlpEngine::Workspace& ws = m->Workspace(p);
  WarmupOrDie(engine, rows);
  core::ModelMonitor monitor(engine.spec(), {.sample_rate = 1.0},
                             SelfReference(*m, engine, kMaxBatch), {});
  auto slot = monitor.NewSlot();
  const float* in = m->input.data();
  float* out = m->output.data();
  for (auto _ : state) {
    if (!slot->Sample()) Die("sample rate 1 did not sample");
    core::Status s = engine.Run(ws, in, rows, out, *slot);
    slot->EndBatch(s.ok());
    if (!s.ok()) {
      state.SkipWithError(s.ToString().c_str());
      break;
    }
    benchmark::ClobberMemory();
  }
  SetCounters(state, *m, rows);
  state.counters["windows"] = double(monitor.Snapshot().windows);
}

void BM_BareOneDnn(benchmark::State& state, ModelState* m, int64_t rows, EnginePrimitive p) {
  BareOneDnnMlp& chain = BareChain(*m, p, rows);
  chain.Run();
  for (auto _ : state) {
    chain.Run();
    benchmark::ClobberMemory();
  }
  SetCounters(state, *m, rows);
}

void BM_Naive(benchmark::State& state, ModelState* m, int64_t rows) {
  NaiveMlp naive(m->spec);
  for (auto _ : state) {
    naive.Run(m->input.data(), rows, m->output.data());
    benchmark::ClobberMemory();
  }
  SetCounters(state, *m, rows);
}

void BM_Sgemm(benchmark::State& state, int64_t n) {
  std::vector<float> a = MakeRandomInput(n, n, 1), b = MakeRandomInput(n, n, 2);
  std::vector<float> c(size_t(n * n));
  auto gemm = [&] {
    dnnl_status_t s =
        dnnl_sgemm('N', 'N', n, n, n, 1.0f, a.data(), n, b.data(), n, 0.0f, c.data(), n);
    if (s != dnnl_success) Die("dnnl_sgemm failed");
  };
  gemm();
  for (auto _ : state) {
    gemm();
    benchmark::ClobberMemory();
  }
  state.counters["GFLOP"] = benchmark::Counter(2.0 * double(n * n * n) / 1e9,
                                               benchmark::Counter::kIsIterationInvariantRate);
}

double MaxAbsDiff(const float* a, const float* b, size_t n, size_t* where) {
  double worst = 0;
  *where = 0;
  for (size_t i = 0; i < n; ++i) {
    const double d = std::fabs(double(a[i]) - double(b[i]));
    if (!(d <= worst)) {  // also catches NaN
      worst = std::isnan(d) ? INFINITY : d;
      *where = i;
    }
  }
  return worst;
}

// kAuto against the fp32 inner product, bf16 weights against fp32.
void VerifyVariantsOrDie(ModelState& m, int64_t rows) {
  const size_t n = size_t(rows * m.spec.output_features);
  std::vector<float> want(n, NAN);
  if (!m.Engine(EnginePrimitive::kInnerProduct)
           .Run(m.Workspace(EnginePrimitive::kInnerProduct), m.input.data(), rows, want.data())
           .ok()) {
    Die("Run failed");
  }
  for (WeightsPrecision w : Precisions()) {
    for (EnginePrimitive p : kEnginePrimitives) {
      if (w == WeightsPrecision::kFp32 && p != EnginePrimitive::kAuto) continue;
      std::vector<float> got(n, NAN);
      core::Status s = m.Engine(p, w).Run(m.Workspace(p, w), m.input.data(), rows, got.data());
      if (!s.ok()) Die("Run: " + s.ToString());
      const std::string what =
          m.def->name + " batch " + std::to_string(rows) + " " + VariantName(p, w);
      const double tolerance = w == WeightsPrecision::kBf16 ? kBf16Tolerance : kBareTolerance;
      size_t at;
      const double d = MaxAbsDiff(got.data(), want.data(), n, &at);
      if (d > tolerance) {
        Die(what + ": differs from the fp32 inner product by " + std::to_string(d) + " at " +
            std::to_string(at));
      }
      std::fprintf(stderr, "verified %-22s max|variant-fp32 ip| %.2e\n", what.c_str(), d);
    }
  }
}

// Engine vs bare chain vs naive loop for every model × batch × primitive.
void VerifyOrDie() {
  for (auto& m : Models()) {
    const int64_t out_features = m->spec.output_features;
    std::vector<float> naive_out(size_t(kMaxBatch * out_features));
    NaiveMlp naive(m->spec);
    naive.Run(m->input.data(), kNaiveMaxBatchBig, naive_out.data());
    for (int64_t rows : kBatchSizes) {
      const size_t n = size_t(rows * out_features);
      const size_t n_naive = size_t(std::min(rows, kNaiveMaxBatchBig) * out_features);
      for (EnginePrimitive p : kPrimitives) {
        std::vector<float> engine_out(n, NAN), bare_out(n, NAN);
        MlpEngine& engine = m->Engine(p);
        core::Status s = engine.Run(m->Workspace(p), m->input.data(), rows, engine_out.data());
        if (!s.ok()) Die("Run: " + s.ToString());
        BareOneDnnMlp(m->spec, p, rows, m->input.data(), bare_out.data()).Run();
        const std::string what =
            m->def->name + " batch " + std::to_string(rows) + " " + PrimitiveName(p);
        size_t at;
        const double d_bare = MaxAbsDiff(engine_out.data(), bare_out.data(), n, &at);
        if (d_bare > kBareTolerance) {
          Die(what + ": engine differs from bare oneDNN chain by " + std::to_string(d_bare) +
              " at " + std::to_string(at) + " (engine " + std::to_string(engine_out[at]) +
              ", bare " + std::to_string(bare_out[at]) + ")");
        }
        const double d_naive = MaxAbsDiff(engine_out.data(), naive_out.data(), n_naive, &at);
        if (d_naive > kNaiveTolerance) {
          Die(what + ": engine differs from naive loop by " + std::to_string(d_naive) + " at " +
              std::to_string(at));
        }
        std::fprintf(stderr, "verified %-22s max|engine-bare| %.2e  max|engine-naive| %.2e\n",
                     what.c_str(), d_bare, d_naive);
      }
      VerifyVariantsOrDie(*m, rows);
    }
  }
}

void RegisterAll() {
  for (auto& m : Models()) {
    for (int64_t rows : kBatchSizes) {
      if (m->overhead_only && rows != 1) continue;
      for (WeightsPrecision w : Precisions()) {
        for (EnginePrimitive p : kEnginePrimitives) {
          const std::string name =
              "BM_Engine/" + m->def->name + "/" + std::to_string(rows) + "/" + VariantName(p, w);
          benchmark::RegisterBenchmark(name.c_str(), BM_Engine, m.get(), rows, p, w);
        }
      }
      for (EnginePrimitive p : kPrimitives) {
        const std::string suffix =
            m->def->name + "/" + std::to_string(rows) + "/" + PrimitiveName(p);
        benchmark::RegisterBenchmark(("BM_BareOneDnn/" + suffix).c_str(), BM_BareOneDnn, m.get(),
                                     rows, p);
        if (p == EnginePrimitive::kInnerProduct) {
          benchmark::RegisterBenchmark(("BM_EngineSampled/" + suffix).c_str(), BM_EngineSampled,
                                       m.get(), rows, p);
        }
      }
    }
  }
  for (auto& m : Models()) {
    if (m->overhead_only) continue;
    for (int64_t rows : kBatchSizes) {
      if (m->def->name == "big" && rows > kNaiveMaxBatchBig) continue;
      benchmark::RegisterBenchmark(
          ("BM_Naive/" + m->def->name + "/" + std::to_string(rows)).c_str(), BM_Naive, m.get(),
          rows);
    }
  }
  for (int64_t n : {1024, 2048}) {
    benchmark::RegisterBenchmark(("BM_Sgemm/" + std::to_string(n)).c_str(), BM_Sgemm, n);
  }
}

}  // namespace
}  // namespace selu::bench

int main(int argc, char** argv) {
  // oneDNN (OpenMP build) runs single-threaded in this, the benchmarking, thread.
  omp_set_num_threads(1);
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;

  const dnnl_version_t* v = dnnl_version();
  benchmark::AddCustomContext(
      "onednn_version",
      std::to_string(v->major) + "." + std::to_string(v->minor) + "." + std::to_string(v->patch));
  benchmark::AddCustomContext("onednn_cpu_isa", selu::core::CpuIsaName());
  benchmark::AddCustomContext("omp_max_threads", std::to_string(omp_get_max_threads()));

  try {
    selu::bench::VerifyOrDie();
    selu::bench::RegisterAll();
    benchmark::RunSpecifiedBenchmarks();
  } catch (const dnnl::error& e) {
    selu::bench::Die(std::string("oneDNN error: ") + e.what());
  }
  benchmark::Shutdown();
  return 0;
}
