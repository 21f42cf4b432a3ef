// The self-normalization monitor: moments and divergence against closed
// forms, reference parsing and its refusals, and the whole path (engine,
// batch computer, slots, windows, score) on a real engine whose reference
// comes from an independent double-precision forward pass.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "server/core/monitor/model_monitor.h"
#include "server/core/monitor/reference_stats.h"
#include "server/core/monitor/self_normalization.h"
#include "server/core/monitor/unit_moments.h"
#include "server/core/serving/mlp_batch_computer.h"
#include "tests/unit/monitor/snn_reference.h"

namespace selu::core {
namespace {

TEST(UnitMomentsTest, MatchesDoubleReference) {
  const int64_t rows = 1000, f = 3;
  std::vector<float> data = Normal(rows * f, 1);
  for (int64_t r = 0; r < rows; ++r) data[static_cast<size_t>(r * f + 1)] *= 3;  // unit 1: sd 3
  UnitMoments m(f);
  m.Add(data.data(), 400);
  m.Add(data.data() + 400 * f, rows - 400);
  ASSERT_EQ(m.rows(), rows);
  double all_sum = 0, all_sq = 0;
  for (int64_t j = 0; j < f; ++j) {
    double s = 0;
    for (int64_t r = 0; r < rows; ++r) s += data[static_cast<size_t>(r * f + j)];
    const double mean = s / rows;
    double c2 = 0, c4 = 0;
    for (int64_t r = 0; r < rows; ++r) {
      const double d = data[static_cast<size_t>(r * f + j)] - mean;
      c2 += d * d;
      c4 += d * d * d * d;
    }
    EXPECT_NEAR(m.Mean(j), mean, 1e-12);
    EXPECT_NEAR(m.Variance(j), c2 / rows, 1e-9);
    EXPECT_NEAR(m.Kurtosis(j), (c4 / rows) / std::pow(c2 / rows, 2), 1e-6);
    all_sum += s;
  }
  for (float x : data) all_sq += double(x) * x;
  const double tmean = all_sum / (rows * f);
  EXPECT_NEAR(m.TensorMean(), tmean, 1e-12);
  EXPECT_NEAR(m.TensorVariance(), all_sq / (rows * f) - tmean * tmean, 1e-9);
  m.Reset();
  EXPECT_EQ(m.rows(), 0);
}

TensorStats StandardReference(int64_t f) {
  TensorStats t;
  t.features = f;
  t.mean = 0;
  t.variance = 1;
  t.unit_mean.assign(static_cast<size_t>(f), 0.0);
  t.unit_variance.assign(static_cast<size_t>(f), 1.0);
  return t;
}

double DivergenceOf(const std::vector<float>& data, int64_t f, const TensorStats& ref,
                    int64_t ref_rows) {
  UnitMoments m(f);
  m.Add(data.data(), static_cast<int64_t>(data.size()) / f);
  return ExcessDivergence(m, ref, ref_rows);
}

TEST(ExcessDivergenceTest, NearZeroWithoutDriftAndClosedFormWithIt) {
  const int64_t f = 32, rows = 20000;
  const TensorStats ref = StandardReference(f);
  // Same distribution: only sampling noise, which the excess removes.
  EXPECT_NEAR(DivergenceOf(Normal(rows * f, 2), f, ref, 1'000'000), 0.0, 0.01);
  // Small windows too: the noise term follows the window size.
  double small = 0;
  for (uint32_t s = 0; s < 200; ++s) small += DivergenceOf(Normal(32 * f, 100 + s), f, ref, 359);
  EXPECT_NEAR(small / 200, 0.0, 0.03);
  // Jeffreys divergence of N(d, 1) from N(0, 1) is d²; of N(0, 4) from N(0, 1) it is
  // ½(4 + 1/4 − 2) = 1.125.
  EXPECT_NEAR(DivergenceOf(Normal(rows * f, 3, 1.0f), f, ref, 1'000'000), 1.0, 0.05);
  EXPECT_NEAR(DivergenceOf(Normal(rows * f, 4, 0.0f, 2.0f), f, ref, 1'000'000), 1.125, 0.05);
  // Non-finite live values are drift, not NaN.
  std::vector<float> inf_data = Normal(64 * f, 5);
  inf_data[7] = INFINITY;
  EXPECT_TRUE(std::isinf(DivergenceOf(inf_data, f, ref, 359)));
}

TEST(ReferenceStatsTest, RoundTripsAndIsCheckedAgainstTheModel) {
  const ModelSpec spec = SmallSnn(1);
  const ReferenceStats ref = ReferenceFor(spec, Normal(200 * 5, 2), 200);
  const std::string json = ReferenceStatsToJson(ref);
  auto parsed = ParseReferenceStats(json, spec);
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  EXPECT_EQ(parsed->rows, 200);
  ASSERT_TRUE(parsed->input.has_value());
  ASSERT_EQ(parsed->layers.size(), 3u);
  EXPECT_DOUBLE_EQ(parsed->layers[1].stats.unit_variance[7], ref.layers[1].stats.unit_variance[7]);

  auto refusal = [&](const std::string& text) {
    auto r = ParseReferenceStats(text, spec);
    EXPECT_FALSE(r.ok()) << text;
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
    return r.status().message();
  };
  EXPECT_EQ(refusal("{not json"), "not valid JSON");
  ReferenceStats bad = ref;
  bad.layers[1].stats.unit_variance[7] = -0.5;
  EXPECT_EQ(refusal(ReferenceStatsToJson(bad)), "layers[1].unit_variance[7] is negative");
  bad = ref;
  bad.layers.pop_back();
  EXPECT_EQ(refusal(ReferenceStatsToJson(bad)),
            "'layers' has 2 entries, the model has 3 dense layers");
  bad = ref;
  bad.layers[0].stats.unit_mean.pop_back();
  bad.layers[0].stats.unit_variance.pop_back();
  bad.layers[0].stats.features = 15;
  EXPECT_EQ(refusal(ReferenceStatsToJson(bad)), "layers[0].features is not 16, the model's width");
  std::string nan_json = json;
  nan_json.replace(nan_json.find("\"variance\":"), 11, "\"variance\":\"NaN\",\"x\":");
  EXPECT_NE(refusal(nan_json).find("is not a number"), std::string::npos);
  EXPECT_EQ(refusal(R"({"format":2,"rows":3,"layers":[]})"), "'format' must be 1");
}

TEST(ReferenceStatsTest, FileBesideTheModelWinsOverMetadataAndProblemsAreReported) {
  ModelSpec spec = SmallSnn(1);
  const ReferenceStats ref = ReferenceFor(spec, Normal(100 * 5, 3), 100);
  spec.metadata[kReferenceStatsMetadataKey] = ReferenceStatsToJson(ref);
  const std::filesystem::path dir =
      std::filesystem::temp_directory_path() / ("selu_ref_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  LoadedReference from_metadata = LoadReferenceStats(dir.string(), spec);
  ASSERT_TRUE(from_metadata.stats.has_value()) << from_metadata.problem;
  EXPECT_EQ(from_metadata.source, "metadata_props selu.reference_stats");

  ReferenceStats other = ref;
  other.rows = 77;
  std::ofstream(dir / kReferenceStatsFile) << ReferenceStatsToJson(other);
  LoadedReference from_file = LoadReferenceStats(dir.string(), spec);
  ASSERT_TRUE(from_file.stats.has_value()) << from_file.problem;
  EXPECT_EQ(from_file.stats->rows, 77);
  EXPECT_EQ(from_file.source, (dir / kReferenceStatsFile).string());

  std::ofstream(dir / kReferenceStatsFile) << R"({"format":1,"rows":5,"layers":[]})";
  LoadedReference broken = LoadReferenceStats(dir.string(), spec);
  EXPECT_FALSE(broken.stats.has_value());
  EXPECT_EQ(broken.problem, (dir / kReferenceStatsFile).string() +
                                ": 'layers' has 0 entries, the model has 3 dense layers");
  std::filesystem::remove_all(dir);
}

// Runs `rows` rows, one batch of `batch` rows at a time, through the
// production batch computer with the monitor attached.
void Serve(const MlpBatchComputer& computer, BatchComputer::Context& context,
           const std::vector<float>& x, int64_t rows, int64_t batch) {
  std::vector<float> out(static_cast<size_t>(batch * 3));
  for (int64_t r = 0; r + batch <= rows; r += batch) {
    ASSERT_TRUE(computer.Compute(context, x.data() + r * 5, batch, out.data()).ok());
  }
}

struct MonitoredEngine {
  std::shared_ptr<const MlpEngine> engine;
  std::shared_ptr<ModelMonitor> monitor;
  std::unique_ptr<MlpBatchComputer> computer;
  std::unique_ptr<BatchComputer::Context> context;
};

MonitoredEngine Build(const ModelSpec& spec, MonitorOptions options, LoadedReference reference) {
  MonitoredEngine m;
  auto engine = MlpEngine::Create(spec);
  EXPECT_TRUE(engine.ok()) << engine.status().ToString();
  m.engine = std::move(engine).value();
  auto probe = ProbeSelfNormalization(*m.engine);
  EXPECT_TRUE(probe.ok());
  m.monitor = std::make_shared<ModelMonitor>(m.engine->spec(), options, std::move(reference),
                                             std::move(probe).value());
  m.computer = std::make_unique<MlpBatchComputer>(m.engine, m.monitor);
  m.context = m.computer->CreateContext();
  return m;
}

TEST(ModelMonitorTest, QuietOnReferenceTrafficAlarmsOnShiftedAndScaledInputs) {
  const ModelSpec spec = SmallSnn(7);
  const int64_t ref_rows = 2000;
  LoadedReference reference;
  reference.stats = ReferenceFor(spec, Normal(ref_rows * 5, 8), ref_rows);
  reference.source = "test";
  MonitoredEngine m = Build(spec, {.sample_rate = 1.0, .window_rows = 64}, reference);
  ASSERT_EQ(m.monitor->state(), MonitorState::kActive);

  // 100 windows of fresh traffic from the reference's distribution.
  const int64_t rows = 64 * 100;
  Serve(*m.computer, *m.context, Normal(rows * 5, 9), rows, 4);
  MonitorSnapshot quiet = m.monitor->Snapshot();
  EXPECT_EQ(quiet.windows, 100u);
  EXPECT_EQ(quiet.alarms, 0u);
  EXPECT_EQ(quiet.sampled_rows, uint64_t(rows));
  EXPECT_EQ(quiet.sampled_batches, uint64_t(rows / 4));
  ASSERT_TRUE(quiet.has_score);
  EXPECT_LT(quiet.drift_score, kDriftThreshold);
  ASSERT_EQ(quiet.tensors.size(), 4u);
  EXPECT_EQ(quiet.tensors[0].layer, -1);
  EXPECT_TRUE(quiet.tensors[1].has_live);
  EXPECT_NEAR(quiet.tensors[1].live_mean, quiet.tensors[1].reference_mean, 0.2);
  EXPECT_NEAR(quiet.tensors[1].live_variance, quiet.tensors[1].reference_variance, 0.3);
  EXPECT_EQ(quiet.tensors[1].activation, "Selu");
  EXPECT_EQ(quiet.tensors[3].activation, "Identity");
  EXPECT_DOUBLE_EQ(quiet.tensors[2].weight, 0.5);

  // Inputs shifted by one standard deviation: every full window alarms.
  Serve(*m.computer, *m.context, Normal(640 * 5, 10, 1.0f), 640, 4);
  MonitorSnapshot shifted = m.monitor->Snapshot();
  EXPECT_GE(shifted.alarms, 9u);
  EXPECT_GE(shifted.drift_score, kDriftThreshold);

  // Inputs ×16 on a fresh monitor: gross drift closes the first window
  // early, at 8 rows, instead of waiting for 64.
  MonitoredEngine fresh = Build(spec, {.sample_rate = 1.0, .window_rows = 64}, reference);
  Serve(*fresh.computer, *fresh.context, Normal(8 * 5, 11, 0.0f, 16.0f), 8, 4);
  MonitorSnapshot scaled = fresh.monitor->Snapshot();
  EXPECT_EQ(scaled.windows, 1u);
  EXPECT_EQ(scaled.last_window_rows, kFirstEarlyCheckRows);
  EXPECT_GE(scaled.drift_score, kDriftThreshold);
  EXPECT_EQ(scaled.alarms, 1u);
}

TEST(ModelMonitorTest, WithoutReferenceLiveFiguresOnlyAndOffMeansNoSlot) {
  const ModelSpec spec = SmallSnn(3);
  MonitoredEngine m = Build(spec, {.sample_rate = 1.0, .window_rows = 16}, LoadedReference{});
  EXPECT_EQ(m.monitor->state(), MonitorState::kNoReference);
  Serve(*m.computer, *m.context, Normal(32 * 5, 4), 32, 8);
  MonitorSnapshot s = m.monitor->Snapshot();
  EXPECT_EQ(s.windows, 2u);
  EXPECT_FALSE(s.has_score);
  EXPECT_TRUE(s.tensors[1].has_live);
  EXPECT_FALSE(s.tensors[1].has_reference);

  LoadedReference bad;
  bad.source = "x/reference_stats.json";
  bad.problem = "x/reference_stats.json: not valid JSON";
  EXPECT_EQ(ModelMonitor(spec, {}, bad, {}).state(), MonitorState::kBadReference);

  ModelMonitor off(spec, {.sample_rate = 0.0, .window_rows = 16}, LoadedReference{}, {});
  EXPECT_EQ(off.state(), MonitorState::kOff);
  EXPECT_EQ(off.NewSlot(), nullptr);
  EXPECT_FALSE(ValidateMonitorOptions({.sample_rate = 1.5, .window_rows = 16}).ok());
  EXPECT_FALSE(ValidateMonitorOptions({.sample_rate = 0.5, .window_rows = 8}).ok());
}

TEST(ModelMonitorTest, SamplesTheConfiguredFractionOfBatches) {
  ModelMonitor monitor(SmallSnn(5), {.sample_rate = 0.25, .window_rows = 128}, LoadedReference{},
                       {});
  auto slot = monitor.NewSlot();
  ASSERT_NE(slot, nullptr);
  int sampled = 0;
  for (int i = 0; i < 40000; ++i) sampled += slot->Sample() ? 1 : 0;
  EXPECT_NEAR(sampled / 40000.0, 0.25, 0.01);
}

TEST(SelfNormalizationTest, StandardSnnStaysNearTheFixedPointAndReluDoesNot) {
  // Wide LeCun-initialised SELU layers keep N(0,1) inputs near (0, 1).
  ModelSpec snn;
  std::mt19937 rng(12);
  snn.input_features = 64;
  snn.output_features = 64;
  for (int k = 0; k < 4; ++k) {
    DenseLayer l;
    l.name = "d" + std::to_string(k);
    l.in_features = l.out_features = 64;
    std::normal_distribution<float> w(0.0f, 1.0f / 8.0f);
    for (int i = 0; i < 64 * 64; ++i) l.weights.push_back(w(rng));
    l.bias.assign(64, 0.0f);
    l.activations.push_back(Activation::Selu());
    snn.layers.push_back(std::move(l));
  }
  auto engine = MlpEngine::Create(snn);
  ASSERT_TRUE(engine.ok());
  auto report = ProbeSelfNormalization(**engine);
  ASSERT_TRUE(report.ok());
  EXPECT_TRUE(report->self_normalizing) << report->summary;
  EXPECT_EQ(report->layer_mean.size(), 4u);

  ModelSpec relu = snn;
  for (DenseLayer& l : relu.layers) l.activations = {Activation::Relu()};
  auto relu_engine = MlpEngine::Create(relu);
  ASSERT_TRUE(relu_engine.ok());
  auto relu_report = ProbeSelfNormalization(**relu_engine);
  ASSERT_TRUE(relu_report.ok());
  EXPECT_FALSE(relu_report->self_normalizing);
  EXPECT_NE(relu_report->summary.find("no SELU layer"), std::string::npos);

  ModelSpec scaled = snn;  // weights ×3: variance explodes layer after layer
  for (DenseLayer& l : scaled.layers)
    for (float& w : l.weights) w *= 3;
  auto scaled_engine = MlpEngine::Create(scaled);
  ASSERT_TRUE(scaled_engine.ok());
  auto scaled_report = ProbeSelfNormalization(**scaled_engine);
  ASSERT_TRUE(scaled_report.ok());
  EXPECT_FALSE(scaled_report->self_normalizing) << scaled_report->summary;
}

}  // namespace
}  // namespace selu::core
