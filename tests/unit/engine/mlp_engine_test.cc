// MlpEngine against a naive double-precision reference on random models:
// every batch size path, workspace reuse and growth, the plan cache bound,
// concurrency, and refusals.
#include "server/core/engine/mlp_engine.h"

#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <random>
#include <thread>
#include <vector>

namespace selu::core {
namespace {

ModelSpec RandomModel(const std::vector<int64_t>& widths, bool softmax, uint32_t seed,
                      Activation hidden = Activation::Selu()) {
  std::mt19937 rng(seed);
  ModelSpec spec;
  spec.input_features = widths.front();
  spec.output_features = widths.back();
  for (size_t i = 0; i + 1 < widths.size(); ++i) {
    DenseLayer l;
    l.name = "layer" + std::to_string(i);
    l.in_features = widths[i];
    l.out_features = widths[i + 1];
    std::normal_distribution<float> w(0.0f, 1.0f / std::sqrt(float(l.in_features)));
    std::normal_distribution<float> b(0.0f, 0.1f);
    for (int64_t k = 0; k < l.in_features * l.out_features; ++k) l.weights.push_back(w(rng));
    for (int64_t k = 0; k < l.out_features; ++k) l.bias.push_back(b(rng));
    if (i + 2 < widths.size()) l.activations.push_back(hidden);
    spec.layers.push_back(std::move(l));
  }
  spec.softmax_output = softmax;
  return spec;
}

std::vector<double> Reference(const ModelSpec& spec, const std::vector<float>& in, int64_t rows) {
  std::vector<double> cur(in.begin(), in.end());
  for (const auto& l : spec.layers) {
    std::vector<double> next(rows * l.out_features);
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t n = 0; n < l.out_features; ++n) {
        double acc = l.bias[n];
        for (int64_t k = 0; k < l.in_features; ++k) {
          acc += cur[r * l.in_features + k] * double(l.weights[k * l.out_features + n]);
        }
        for (const auto& a : l.activations) acc = ReferenceActivation(a, acc);
        next[r * l.out_features + n] = acc;
      }
    }
    cur = std::move(next);
  }
  if (spec.softmax_output) {
    const int64_t n = spec.output_features;
    for (int64_t r = 0; r < rows; ++r) {
      double mx = -INFINITY, sum = 0;
      for (int64_t j = 0; j < n; ++j) mx = std::max(mx, cur[r * n + j]);
      for (int64_t j = 0; j < n; ++j) sum += std::exp(cur[r * n + j] - mx);
      for (int64_t j = 0; j < n; ++j) cur[r * n + j] = std::exp(cur[r * n + j] - mx) / sum;
    }
  }
  return cur;
}

std::vector<float> RandomInput(int64_t rows, int64_t features, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.0f, 2.0f);
  std::vector<float> x(rows * features);
  for (auto& v : x) v = d(rng);
  return x;
}

double MaxAbsError(const std::vector<float>& got, const std::vector<double>& want) {
  double worst = 0;
  for (size_t i = 0; i < got.size(); ++i) worst = std::max(worst, std::abs(got[i] - want[i]));
  return worst;
}

class EngineTest : public ::testing::TestWithParam<EnginePrimitive> {};

TEST_P(EngineTest, MatchesReferenceAtEveryBatchSize) {
  const ModelSpec spec = RandomModel({37, 129, 65, 3}, /*softmax=*/false, 1);
  auto engine = MlpEngine::Create(spec, {.primitive = GetParam()});
  ASSERT_TRUE(engine.ok()) << engine.status().ToString();
  auto ws = (*engine)->CreateWorkspace();
  // Growing, shrinking and repeated sizes through one workspace.
  for (int64_t rows : {1, 2, 7, 64, 300, 1, 7, 513, 3}) {
    const auto x = RandomInput(rows, 37, uint32_t(rows));
    std::vector<float> y(rows * 3, NAN);
    ASSERT_TRUE((*engine)->Run(*ws, x.data(), rows, y.data()).ok());
    EXPECT_LE(MaxAbsError(y, Reference(spec, x, rows)), 1e-4) << "rows=" << rows;
  }
}

TEST_P(EngineTest, SoftmaxRowsAreDistributions) {
  const ModelSpec spec = RandomModel({64, 256, 256, 10}, /*softmax=*/true, 2);
  auto engine = MlpEngine::Create(spec, {.primitive = GetParam()});
  ASSERT_TRUE(engine.ok()) << engine.status().ToString();
  const int64_t rows = 33;
  const auto x = RandomInput(rows, 64, 3);
  std::vector<float> y(rows * 10);
  ASSERT_TRUE((*engine)->Run(x.data(), rows, y.data()).ok());
  EXPECT_LE(MaxAbsError(y, Reference(spec, x, rows)), 1e-5);
  for (int64_t r = 0; r < rows; ++r) {
    double sum = 0;
    for (int j = 0; j < 10; ++j) sum += y[r * 10 + j];
    EXPECT_NEAR(sum, 1.0, 1e-5);
  }
}

TEST_P(EngineTest, SingleLayerAndDeepModels) {
  for (const auto& widths : std::vector<std::vector<int64_t>>{
           {20, 5}, {32, 48, 40, 36, 30, 28, 26, 24, 22, 20, 18, 16, 15, 14, 13, 12, 10}}) {
    const ModelSpec spec = RandomModel(widths, false, 4);
    auto engine = MlpEngine::Create(spec, {.primitive = GetParam()});
    ASSERT_TRUE(engine.ok()) << engine.status().ToString();
    const auto x = RandomInput(9, widths.front(), 5);
    std::vector<float> y(9 * widths.back());
    ASSERT_TRUE((*engine)->Run(x.data(), 9, y.data()).ok());
    EXPECT_LE(MaxAbsError(y, Reference(spec, x, 9)), 1e-4) << widths.size() - 1 << " layers";
  }
}

TEST_P(EngineTest, PlanCacheIsBounded) {
  const ModelSpec spec = RandomModel({8, 16, 4}, false, 6);
  auto engine = MlpEngine::Create(spec, {.primitive = GetParam(), .max_cached_plans = 3});
  ASSERT_TRUE(engine.ok());
  auto ws = (*engine)->CreateWorkspace();
  for (int round = 0; round < 2; ++round) {
    for (int64_t rows = 1; rows <= 10; ++rows) {
      const auto x = RandomInput(rows, 8, uint32_t(rows));
      std::vector<float> y(rows * 4);
      ASSERT_TRUE((*engine)->Run(*ws, x.data(), rows, y.data()).ok());
      EXPECT_LE(MaxAbsError(y, Reference(spec, x, rows)), 1e-5);
      EXPECT_LE((*engine)->cached_plan_count(), 3);
    }
  }
}

// The engine keeps weights once, in its primitives' layouts: the spec's
// plain copy is released, and layouts needed later (other batch sizes, plans
// rebuilt after eviction) are made from a layout it already has, exactly.
TEST_P(EngineTest, PlainWeightsAreReleasedAndLaterLayoutsStayExact) {
  const ModelSpec spec = RandomModel({64, 256, 256, 10}, false, 7);
  auto engine = MlpEngine::Create(spec, {.primitive = GetParam(), .max_cached_plans = 2});
  ASSERT_TRUE(engine.ok()) << engine.status().ToString();
  for (const DenseLayer& layer : (*engine)->spec().layers) {
    EXPECT_TRUE(layer.weights.empty()) << layer.name << " still holds its plain weights";
    EXPECT_GT(layer.in_features, 0);
  }
  auto ws = (*engine)->CreateWorkspace();
  for (int64_t rows : {1, 512, 16, 1, 300, 2}) {
    const auto x = RandomInput(rows, 64, uint32_t(rows));
    std::vector<float> y(rows * 10, NAN);
    ASSERT_TRUE((*engine)->Run(*ws, x.data(), rows, y.data()).ok());
    EXPECT_LE(MaxAbsError(y, Reference(spec, x, rows)), 1e-4) << "rows=" << rows;
  }
}

TEST_P(EngineTest, ConcurrentWorkspacesGetTheirOwnResults) {
  const ModelSpec spec = RandomModel({64, 128, 128, 10}, true, 7);
  auto engine = MlpEngine::Create(spec, {.primitive = GetParam()});
  ASSERT_TRUE(engine.ok());
  const std::vector<int64_t> sizes = {1, 3, 8, 17, 32};
  ASSERT_TRUE((*engine)->Warmup(sizes).ok());
  std::vector<std::vector<float>> inputs;
  std::vector<std::vector<double>> expected;
  for (int64_t rows : sizes) {
    inputs.push_back(RandomInput(rows, 64, uint32_t(100 + rows)));
    expected.push_back(Reference(spec, inputs.back(), rows));
  }
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      auto ws = (*engine)->CreateWorkspace();
      for (int it = 0; it < 300; ++it) {
        const size_t i = (t + it) % sizes.size();
        std::vector<float> y(sizes[i] * 10);
        if (!(*engine)->Run(*ws, inputs[i].data(), sizes[i], y.data()).ok() ||
            MaxAbsError(y, expected[i]) > 1e-5) {
          failures++;
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0);
}

TEST_P(EngineTest, NanStaysInItsRow) {
  const ModelSpec spec = RandomModel({4, 8, 2}, false, 8);
  auto engine = MlpEngine::Create(spec, {.primitive = GetParam()});
  ASSERT_TRUE(engine.ok());
  std::vector<float> x = RandomInput(3, 4, 9);
  x[4 + 2] = NAN;  // row 1
  std::vector<float> y(3 * 2);
  ASSERT_TRUE((*engine)->Run(x.data(), 3, y.data()).ok());
  EXPECT_TRUE(std::isnan(y[2]) && std::isnan(y[3]));
  EXPECT_FALSE(std::isnan(y[0]) || std::isnan(y[1]) || std::isnan(y[4]) || std::isnan(y[5]));
}

INSTANTIATE_TEST_SUITE_P(Primitives, EngineTest,
                         ::testing::Values(EnginePrimitive::kInnerProduct, EnginePrimitive::kMatmul,
                                           EnginePrimitive::kAuto),
                         [](const auto& info) {
                           return info.param == EnginePrimitive::kMatmul         ? "matmul"
                                  : info.param == EnginePrimitive::kInnerProduct ? "inner_product"
                                                                                 : "auto";
                         });

// Every layer's output as the reference computes it, for the observer test.
std::vector<std::vector<double>> ReferenceLayers(const ModelSpec& spec,
                                                 const std::vector<float>& in, int64_t rows) {
  std::vector<std::vector<double>> out;
  ModelSpec prefix = spec;
  prefix.softmax_output = false;
  for (size_t k = 1; k <= spec.layers.size(); ++k) {
    prefix.layers.assign(spec.layers.begin(), spec.layers.begin() + static_cast<long>(k));
    out.push_back(Reference(prefix, in, rows));
  }
  return out;
}

class RecordingObserver final : public LayerObserver {
 public:
  void OnInput(const float* input, int64_t rows, int64_t features) override {
    input_.assign(input, input + rows * features);
  }
  void OnLayer(int layer, const float* output, int64_t rows, int64_t features) override {
    if (layers_.size() <= static_cast<size_t>(layer))
      layers_.resize(static_cast<size_t>(layer) + 1);
    layers_[static_cast<size_t>(layer)].assign(output, output + rows * features);
    order_.push_back(layer);
  }
  std::vector<float> input_;
  std::vector<std::vector<float>> layers_;
  std::vector<int> order_;
};

TEST_P(EngineTest, ObserverSeesEveryLayerAndOutputsAreUnchanged) {
  // Three hidden layers: with two alternating buffers, layer 0's output is
  // overwritten by layer 2, so the observer must see each one in time.
  ModelSpec spec = RandomModel({6, 9, 7, 5, 3}, /*softmax=*/true, 31);
  auto engine = MlpEngine::Create(spec, {.primitive = GetParam()});
  ASSERT_TRUE(engine.ok()) << engine.status().ToString();
  auto ws = (*engine)->CreateWorkspace();
  for (int64_t rows : {1, 4, 33}) {
    const auto in = RandomInput(rows, 6, 40 + static_cast<uint32_t>(rows));
    std::vector<float> plain(rows * 3), observed(rows * 3);
    ASSERT_TRUE((*engine)->Run(*ws, in.data(), rows, plain.data()).ok());
    RecordingObserver observer;
    ASSERT_TRUE((*engine)->Run(*ws, in.data(), rows, observed.data(), observer).ok());
    EXPECT_EQ(plain, observed) << "rows " << rows;
    EXPECT_EQ(observer.input_, in);
    EXPECT_EQ(observer.order_, (std::vector<int>{0, 1, 2, 3}));
    const auto want = ReferenceLayers(spec, in, rows);
    ASSERT_EQ(observer.layers_.size(), want.size());
    for (size_t k = 0; k < want.size(); ++k) {
      // Layer outputs before the final softmax, after each layer's activations.
      EXPECT_LT(MaxAbsError(observer.layers_[k], want[k]), 1e-4)
          << "layer " << k << " rows " << rows;
    }
  }
}

TEST(EngineRefusalTest, BadRowsAreInvalidArgument) {
  auto engine = MlpEngine::Create(RandomModel({4, 2}, false, 10), {.max_rows = 16});
  ASSERT_TRUE(engine.ok());
  std::vector<float> x(4 * 17), y(2 * 17);
  EXPECT_EQ((*engine)->Run(x.data(), 0, y.data()).code(), StatusCode::kInvalidArgument);
  Status over = (*engine)->Run(x.data(), 17, y.data());
  EXPECT_EQ(over.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(over.message().find("17"), std::string::npos) << over.message();
  EXPECT_EQ((*engine)->Warmup(std::vector<int64_t>{17}).code(), StatusCode::kInvalidArgument);
}

TEST(EngineRefusalTest, InconsistentSpecIsInvalidArgument) {
  ModelSpec spec = RandomModel({4, 8, 2}, false, 11);
  spec.layers[1].in_features = 7;
  auto engine = MlpEngine::Create(spec);
  ASSERT_FALSE(engine.ok());
  EXPECT_EQ(engine.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(engine.status().message().find("layer1"), std::string::npos);

  ModelSpec short_bias = RandomModel({4, 2}, false, 12);
  short_bias.layers[0].bias.pop_back();
  EXPECT_EQ(MlpEngine::Create(short_bias).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(MlpEngine::Create(ModelSpec{}).status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace selu::core
