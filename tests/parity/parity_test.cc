// Whole-model parity: every case written by make_parity_models.py is loaded
// from its ONNX file, run through MlpEngine with each oneDNN primitive, and
// compared with PyTorch's float32 output on the same input.
//
// The cases live in $SELU_PARITY_DIR (ctest sets it and generates the cases in
// a fixture). Tolerance: max |engine − PyTorch| ≤ 1e-4 per output element
// (1e-5 for the load-time folding cases, against the unfolded PyTorch model:
// case.json "tolerance"); the generator checks that PyTorch's float32
// reference is within 2e-5 of float64.

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <latch>
#include <limits>
#include <memory>
#include <mutex>
#include <ostream>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "server/core/base/status.h"
#include "server/core/engine/mlp_engine.h"
#include "server/core/model/model_spec.h"
#include "server/core/model/onnx_model_loader.h"
#include "tests/parity/parity_case.h"

namespace selu::parity {
namespace {

namespace fs = std::filesystem;
using core::EnginePrimitive;
using core::MlpEngine;
using core::MlpEngineOptions;

// What make_parity_models.py writes; a case missing from the directory is a
// failure, not a silent skip.
const std::set<std::string>& ExpectedCaseNames() {
  static const std::set<std::string> names = {"odd_widths",
                                              "one_layer",
                                              "sixteen_layers",
                                              "softmax",
                                              "gemm_transb0",
                                              "matmul_add",
                                              "mixed_activations",
                                              "selu_custom_attrs",
                                              "flatten_input",
                                              "fixed_batch",
                                              "opset17",
                                              "mixed_leaky_prelu",
                                              "smooth_activations",
                                              "batchnorm_fold",
                                              "constant_scale_shift",
                                              "fp16_weights",
                                              "fp64_weights",
                                              "vae_encoder",
                                              "residual_snn",
                                              "residual_add_before_selu",
                                              "rnn_unrolled",
                                              "feature_slicing",
                                              "graph_mixed_activations",
                                              "batchnorm_after_gemm",
                                              "wide_and_deep",
                                              "graph_fp16_weights"};
  return names;
}

const char* PrimitiveName(EnginePrimitive p) {
  return p == EnginePrimitive::kInnerProduct ? "InnerProduct" : "Matmul";
}

// Loads a case and builds its engine; fails the test on any error.
struct LoadedCase {
  ParityCase c;
  std::unique_ptr<MlpEngine> engine;
};

testing::AssertionResult LoadAndCreate(const std::string& name, const MlpEngineOptions& options,
                                       LoadedCase* loaded) {
  if (auto r = LoadParityCase(ParityDir() / name, &loaded->c); !r) return r;
  auto spec = core::LoadOnnxModelFromFile(loaded->c.model_path());
  if (!spec.ok()) {
    return testing::AssertionFailure() << "LoadOnnxModelFromFile(" << loaded->c.model_path()
                                       << "): " << spec.status().ToString();
  }
  auto engine = MlpEngine::Create(std::move(spec).value(), options);
  if (!engine.ok()) {
    return testing::AssertionFailure()
           << "MlpEngine::Create(" << name << ", " << PrimitiveName(options.primitive)
           << "): " << engine.status().ToString();
  }
  loaded->engine = std::move(engine).value();
  return testing::AssertionSuccess();
}

// The output buffer is followed by guard values that must survive Run().
constexpr int64_t kGuard = 64;
constexpr float kGuardValue = -12345.678f;

struct RunResult {
  double max_error = std::numeric_limits<double>::infinity();
  std::string where;
  bool guard_intact = false;
};

// Runs rows [first, first + rows) of the case through `ws` (or the engine's
// own pool when ws is null) and compares with the expected rows.
testing::AssertionResult RunRows(const LoadedCase& lc, MlpEngine::Workspace* ws, int64_t first,
                                 int64_t rows, RunResult* result) {
  const ParityCase& c = lc.c;
  std::vector<float> out(static_cast<size_t>(rows * c.out + kGuard),
                         std::numeric_limits<float>::quiet_NaN());
  std::fill(out.end() - kGuard, out.end(), kGuardValue);
  const float* in = c.input.data() + first * c.in;
  core::Status status = ws != nullptr ? lc.engine->Run(*ws, in, rows, out.data())
                                      : lc.engine->Run(in, rows, out.data());
  if (!status.ok()) {
    return testing::AssertionFailure()
           << "Run(rows=" << rows << ") on " << c.name << ": " << status.ToString();
  }
  result->max_error = MaxAbsError(out.data(), c.expected.data() + first * c.out, rows, c.out,
                                  &result->where, first);
  result->guard_intact =
      std::all_of(out.end() - kGuard, out.end(), [](float v) { return v == kGuardValue; });
  return testing::AssertionSuccess();
}

TEST(ParityCases, DirectoryHoldsEveryCase) {
  const fs::path dir = ParityDir();
  ASSERT_FALSE(dir.empty()) << "SELU_PARITY_DIR is not set: run through ctest, or generate the "
                               "cases with tests/parity/make_parity_models.py DIR and set it";
  ASSERT_TRUE(fs::is_directory(dir)) << "SELU_PARITY_DIR=" << dir << " is not a directory";
  const std::vector<std::string> listed = ListCaseNames();
  ASSERT_FALSE(listed.empty()) << "no case folders in " << dir;
  const std::set<std::string> found(listed.begin(), listed.end());
  for (const std::string& name : ExpectedCaseNames()) {
    EXPECT_TRUE(found.count(name)) << "case " << name << " missing from " << dir;
  }
}

struct ParityParam {
  std::string case_name;
  EnginePrimitive primitive;
};

std::vector<ParityParam> AllParams() {
  std::vector<ParityParam> params;
  for (const std::string& name : ListCaseNames()) {
    for (EnginePrimitive p : {EnginePrimitive::kInnerProduct, EnginePrimitive::kMatmul}) {
      params.push_back({name, p});
    }
  }
  return params;
}

void PrintTo(const ParityParam& p, std::ostream* os) {
  *os << p.case_name << "/" << PrimitiveName(p.primitive);
}

class ModelParityTest : public testing::TestWithParam<ParityParam> {};

TEST_P(ModelParityTest, MatchesPyTorch) {
  const ParityParam& param = GetParam();
  LoadedCase lc;
  ASSERT_TRUE(LoadAndCreate(param.case_name, {.primitive = param.primitive}, &lc));
  const ParityCase& c = lc.c;
  SCOPED_TRACE(c.name + " (" + c.description + ")");

  const core::ModelSpec& spec = lc.engine->spec();
  EXPECT_EQ(lc.engine->input_features(), c.in);
  ASSERT_EQ(lc.engine->output_features(), c.out);
  EXPECT_EQ(spec.fixed_batch_size, c.fixed_batch);

  // All rows at once, then subsets through the same workspace, revisiting
  // batch sizes so both new and cached plans are used. A fixed-batch model is
  // only ever fed its batch.
  std::vector<std::pair<int64_t, int64_t>> runs;  // (first row, rows)
  if (c.fixed_batch > 0) {
    ASSERT_EQ(c.rows, c.fixed_batch);
    runs = {{0, c.rows}, {0, c.rows}};
  } else {
    ASSERT_GE(c.rows, 64);
    runs = {{0, c.rows}, {5, 1}, {20, 7}, {31, 33}, {63, 1}, {0, 33}, {57, 7}, {0, c.rows}};
  }
  auto ws = lc.engine->CreateWorkspace();
  ASSERT_NE(ws, nullptr);
  double case_max = 0.0;
  for (const auto& [first, rows] : runs) {
    RunResult r;
    ASSERT_TRUE(RunRows(lc, ws.get(), first, rows, &r));
    EXPECT_LE(r.max_error, c.tolerance)
        << "rows [" << first << ", " << first + rows << "): worst at " << r.where;
    EXPECT_TRUE(r.guard_intact) << "Run(rows=" << rows << ") wrote past rows·out floats";
    case_max = std::max(case_max, r.max_error);
  }
  // The workspace-less convenience overload gives the same answer.
  RunResult pooled;
  ASSERT_TRUE(RunRows(lc, nullptr, 0, c.rows, &pooled));
  EXPECT_LE(pooled.max_error, c.tolerance) << "Run without workspace: worst at " << pooled.where;
  case_max = std::max(case_max, pooled.max_error);

  std::printf("[parity] %-18s %-12s layers=%2zu max_abs_err=%.3e\n", c.name.c_str(),
              PrimitiveName(param.primitive), spec.layers.size(), case_max);
  RecordProperty("max_abs_err", testing::PrintToString(case_max));
}

INSTANTIATE_TEST_SUITE_P(Cases, ModelParityTest, testing::ValuesIn(AllParams()),
                         [](const testing::TestParamInfo<ParityParam>& info) {
                           return info.param.case_name + "_" + PrimitiveName(info.param.primitive);
                         });

// Four threads share one engine, each with its own workspace, running
// overlapping sets of batch sizes so that they race to build and reuse the
// same plans; max_cached_plans = 2 adds constant eviction on top.
struct ConcurrencyParam {
  std::string case_name;
  EnginePrimitive primitive;
  int max_cached_plans;
};

void PrintTo(const ConcurrencyParam& p, std::ostream* os) {
  *os << p.case_name << "/" << PrimitiveName(p.primitive)
      << "/max_cached_plans=" << p.max_cached_plans;
}

class ConcurrentParityTest : public testing::TestWithParam<ConcurrencyParam> {};

TEST_P(ConcurrentParityTest, FourThreadsOwnWorkspaces) {
  const ConcurrencyParam& param = GetParam();
  LoadedCase lc;
  MlpEngineOptions options{.primitive = param.primitive,
                           .max_cached_plans = param.max_cached_plans};
  ASSERT_TRUE(LoadAndCreate(param.case_name, options, &lc));
  const ParityCase& c = lc.c;
  ASSERT_GE(c.rows, 64);

  constexpr int kThreads = 4;
  constexpr int kIterations = 200;
  const int64_t sizes[] = {1, 7, 33, 64, 3, 16, 48, 2};
  constexpr int kSizes = sizeof(sizes) / sizeof(sizes[0]);

  std::latch start(kThreads);
  std::atomic<int64_t> checked_runs{0};
  std::atomic<int64_t> failed_runs{0};
  std::mutex mu;
  std::string first_failure;
  std::vector<double> thread_max(kThreads, 0.0);

  auto worker = [&](int t) {
    auto ws = lc.engine->CreateWorkspace();
    start.arrive_and_wait();
    for (int i = 0; i < kIterations; ++i) {
      const int64_t rows = sizes[(i * (t + 1) + t) % kSizes];
      const int64_t first = (i * 13 + t * 7) % (c.rows - rows + 1);
      RunResult r;
      testing::AssertionResult ran = RunRows(lc, ws.get(), first, rows, &r);
      const bool good = ran && r.max_error <= c.tolerance && r.guard_intact;
      if (ran) thread_max[t] = std::max(thread_max[t], r.max_error);
      checked_runs.fetch_add(1);
      if (!good) {
        failed_runs.fetch_add(1);
        std::lock_guard<std::mutex> lock(mu);
        if (first_failure.empty()) {
          first_failure = "thread " + std::to_string(t) + " iteration " + std::to_string(i) +
                          " rows [" + std::to_string(first) + ", " + std::to_string(first + rows) +
                          "): " +
                          (ran ? "max error " + std::to_string(r.max_error) + " at " + r.where +
                                     (r.guard_intact ? "" : "; wrote past the output")
                               : std::string(ran.message()));
        }
      }
    }
  };
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) threads.emplace_back(worker, t);
  for (auto& th : threads) th.join();

  EXPECT_EQ(checked_runs.load(), int64_t{kThreads} * kIterations);
  EXPECT_EQ(failed_runs.load(), 0) << "first failure: " << first_failure;
  EXPECT_LE(lc.engine->cached_plan_count(), param.max_cached_plans);
  std::printf("[parity] threads %-14s %-12s max_cached_plans=%3d runs=%lld max_abs_err=%.3e\n",
              c.name.c_str(), PrimitiveName(param.primitive), param.max_cached_plans,
              static_cast<long long>(checked_runs.load()),
              *std::max_element(thread_max.begin(), thread_max.end()));
}

std::vector<ConcurrencyParam> ConcurrencyParams() {
  std::vector<ConcurrencyParam> params;
  // mixed_leaky_prelu: its per-feature PRelu and the scale after it run as
  // steps of their own after the layer (engine/layer_ops.h).
  for (const char* name : {"sixteen_layers", "softmax", "mixed_leaky_prelu"}) {
    for (EnginePrimitive p : {EnginePrimitive::kInnerProduct, EnginePrimitive::kMatmul}) {
      for (int plans : {256, 2}) params.push_back({name, p, plans});
    }
  }
  return params;
}

INSTANTIATE_TEST_SUITE_P(Cases, ConcurrentParityTest, testing::ValuesIn(ConcurrencyParams()),
                         [](const testing::TestParamInfo<ConcurrencyParam>& info) {
                           return info.param.case_name + "_" + PrimitiveName(info.param.primitive) +
                                  "_plans" + std::to_string(info.param.max_cached_plans);
                         });

}  // namespace
}  // namespace selu::parity
