// MlpEngine with bf16 weights against the fp32 engine and a double
// reference, EnginePrimitive::kAuto switching primitives by batch size on
// one set of weights, and the refusal without native bf16 (run a second
// time with DNNL_MAX_CPU_ISA=AVX512_CORE, see tests/unit/CMakeLists.txt).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <utility>
#include <vector>

#include "server/core/engine/mlp_engine.h"

namespace selu::core {
namespace {

ModelSpec WideModel(const std::vector<int64_t>& widths, uint32_t seed) {
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
    if (i + 2 < widths.size()) l.activations.push_back(Activation::Selu());
    spec.layers.push_back(std::move(l));
  }
  return spec;
}

std::vector<float> Input(int64_t rows, int64_t features, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.0f, 1.0f);
  std::vector<float> x(static_cast<size_t>(rows * features));
  for (float& v : x) v = d(rng);
  return x;
}

std::vector<double> Reference(const ModelSpec& spec, const std::vector<float>& in, int64_t rows) {
  std::vector<double> cur(in.begin(), in.end());
  for (const DenseLayer& l : spec.layers) {
    std::vector<double> next(static_cast<size_t>(rows * l.out_features));
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t n = 0; n < l.out_features; ++n) {
        double acc = l.bias[size_t(n)];
        for (int64_t k = 0; k < l.in_features; ++k) {
          acc += cur[size_t(r * l.in_features + k)] *
                 double(l.weights[size_t(k * l.out_features + n)]);
        }
        for (const Activation& a : l.activations) acc = ReferenceActivation(a, acc);
        next[size_t(r * l.out_features + n)] = acc;
      }
    }
    cur = std::move(next);
  }
  return cur;
}

double MaxAbsError(const std::vector<float>& got, const std::vector<double>& want) {
  double worst = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    const double d = std::abs(double(got[i]) - want[i]);
    if (!(d <= worst)) worst = std::isnan(d) ? INFINITY : d;
  }
  return worst;
}

std::vector<float> RunOrDie(const MlpEngine& engine, MlpEngine::Workspace& ws,
                            const std::vector<float>& x, int64_t rows) {
  std::vector<float> y(static_cast<size_t>(rows * engine.output_features()), NAN);
  const Status s = engine.Run(ws, x.data(), rows, y.data());
  EXPECT_TRUE(s.ok()) << s.ToString();
  return y;
}

// 512 wide: with bf16 weights kAuto's rule runs these layers as matmuls at
// batches 8-64 and as inner products otherwise.
const std::vector<int64_t> kWide = {512, 512, 512, 16};

// Error bound for kWide in bf16 (as graph_engine_test.cc derives it): a layer
// of width n is off by at most ≈ 2^-8·0.64·√n ≈ 0.06 at n = 512 when every
// rounding error has the same sign; random signs give ≈ 2^-8 (≈ 0.004) per
// layer. Three layers: 0.05 is ~4× the random-sign figure, well under the
// all-one-sign bound, and far above fp32's 1e-4.
constexpr double kWideBf16Tolerance = 0.05;

// kAuto switches primitives by batch size on one weight copy (a matmul's
// layout made from the inner product's, or the other way round): at every
// size it gives exactly what the engine forced to the chosen primitive gives.
TEST(AutoPrimitiveTest, OneWeightCopyServesBothPrimitivesExactly) {
  if (!CpuHasBf16()) GTEST_SKIP() << "kAuto switches only for bf16 weights";
  const ModelSpec spec = WideModel(kWide, 1);
  const MlpEngineOptions bf16{.weights = WeightsPrecision::kBf16};
  auto make = [&](EnginePrimitive p) {
    MlpEngineOptions o = bf16;
    o.primitive = p;
    auto e = MlpEngine::Create(spec, o);
    EXPECT_TRUE(e.ok()) << e.status().ToString();
    return std::move(e).value();
  };
  auto autos = make(EnginePrimitive::kAuto);
  auto ip = make(EnginePrimitive::kInnerProduct);
  auto mm = make(EnginePrimitive::kMatmul);
  auto ws = autos->CreateWorkspace(), ws_ip = ip->CreateWorkspace(), ws_mm = mm->CreateWorkspace();
  int switched = 0;
  // Inner product first (so the matmul's layout is made from its), then
  // matmul sizes, then both again from the cache.
  for (int64_t rows : {1, 16, 300, 8, 64, 1, 9}) {
    const auto x = Input(rows, kWide.front(), uint32_t(rows));
    const bool matmul = AutoPicksMatmul(rows, 512, 512, WeightsPrecision::kBf16);
    switched += matmul;
    const auto want = matmul ? RunOrDie(*mm, *ws_mm, x, rows) : RunOrDie(*ip, *ws_ip, x, rows);
    EXPECT_EQ(RunOrDie(*autos, *ws, x, rows), want) << "rows=" << rows << " matmul=" << matmul;
  }
  EXPECT_GT(switched, 0);
  EXPECT_LT(switched, 7);
}

TEST(AutoPrimitiveTest, RuleIsAPureFunctionOfShapes) {
  for (int64_t rows : {1, 8, 32, 64, 128, 512}) {
    // fp32: the inner product everywhere (bench/README.md).
    EXPECT_FALSE(AutoPicksMatmul(rows, 1024, 1024, WeightsPrecision::kFp32)) << rows;
    EXPECT_FALSE(AutoPicksMatmul(rows, 64, 256, WeightsPrecision::kFp32)) << rows;
    // bf16: narrow layers stay inner products.
    EXPECT_FALSE(AutoPicksMatmul(rows, 256, 256, WeightsPrecision::kBf16)) << rows;
  }
  EXPECT_FALSE(AutoPicksMatmul(1, 1024, 1024, WeightsPrecision::kBf16));
  EXPECT_TRUE(AutoPicksMatmul(8, 1024, 1024, WeightsPrecision::kBf16));
  EXPECT_TRUE(AutoPicksMatmul(32, 1024, 1024, WeightsPrecision::kBf16));
  EXPECT_FALSE(AutoPicksMatmul(128, 1024, 1024, WeightsPrecision::kBf16));
}

class Bf16EngineTest : public ::testing::TestWithParam<EnginePrimitive> {
 protected:
  void SetUp() override {
    if (!CpuHasBf16()) GTEST_SKIP() << "no native bf16 on this CPU (" << CpuIsaName() << ")";
  }
};

TEST_P(Bf16EngineTest, CloseToFp32ButNotFp32) {
  const ModelSpec spec = WideModel(kWide, 2);
  auto fp32 = MlpEngine::Create(spec, {.primitive = GetParam()});
  auto bf16 =
      MlpEngine::Create(spec, {.primitive = GetParam(), .weights = WeightsPrecision::kBf16});
  ASSERT_TRUE(fp32.ok()) << fp32.status().ToString();
  ASSERT_TRUE(bf16.ok()) << bf16.status().ToString();
  auto ws32 = (*fp32)->CreateWorkspace();
  auto ws16 = (*bf16)->CreateWorkspace();
  for (int64_t rows : {1, 3, 8, 64, 1, 200}) {
    const auto x = Input(rows, kWide.front(), uint32_t(100 + rows));
    const std::vector<double> want = Reference(spec, x, rows);
    EXPECT_LE(MaxAbsError(RunOrDie(**fp32, *ws32, x, rows), want), 1e-4) << rows;
    const double err = MaxAbsError(RunOrDie(**bf16, *ws16, x, rows), want);
    EXPECT_LE(err, kWideBf16Tolerance) << "rows=" << rows;
    // Weights really are bf16: 8 significant bits leave an error well
    // above fp32's.
    EXPECT_GT(err, 1e-3) << "rows=" << rows;
  }
}

TEST_P(Bf16EngineTest, ObserverSeesFp32TensorsAndWorkspacesShareNothing) {
  const ModelSpec spec = WideModel({64, 256, 256, 10}, 3);
  auto engine =
      MlpEngine::Create(spec, {.primitive = GetParam(), .weights = WeightsPrecision::kBf16});
  ASSERT_TRUE(engine.ok()) << engine.status().ToString();
  struct Count final : LayerObserver {
    void OnInput(const float*, int64_t, int64_t) override { ++calls; }
    void OnLayer(int, const float* y, int64_t rows, int64_t features) override {
      ++calls;
      for (int64_t i = 0; i < rows * features; ++i) finite &= std::isfinite(y[i]);
    }
    int calls = 0;
    bool finite = true;
  } observer;
  auto a = (*engine)->CreateWorkspace();
  auto b = (*engine)->CreateWorkspace();
  const auto x = Input(17, 64, 4);
  std::vector<float> ya(17 * 10), yb(17 * 10);
  ASSERT_TRUE((*engine)->Run(*a, x.data(), 17, ya.data(), observer).ok());
  ASSERT_TRUE((*engine)->Run(*b, x.data(), 17, yb.data()).ok());
  EXPECT_EQ(observer.calls, 4);
  EXPECT_TRUE(observer.finite);
  EXPECT_EQ(ya, yb);  // the same kernels on the same bits
  EXPECT_LE(MaxAbsError(ya, Reference(spec, x, 17)), 0.03);
}

INSTANTIATE_TEST_SUITE_P(Primitives, Bf16EngineTest,
                         ::testing::Values(EnginePrimitive::kInnerProduct, EnginePrimitive::kMatmul,
                                           EnginePrimitive::kAuto),
                         [](const testing::TestParamInfo<EnginePrimitive>& info) {
                           return info.param == EnginePrimitive::kMatmul         ? "matmul"
                                  : info.param == EnginePrimitive::kInnerProduct ? "ip"
                                                                                 : "auto";
                         });

// Runs only without native bf16 (the ctest bf16_engine_test_without_bf16
// caps oneDNN's ISA); elsewhere there is nothing to refuse.
TEST(Bf16RefusalTest, RefusedWithoutNativeBf16) {
  if (CpuHasBf16()) GTEST_SKIP() << "this CPU has native bf16";
  auto engine = MlpEngine::Create(WideModel({8, 4}, 5), {.weights = WeightsPrecision::kBf16});
  ASSERT_FALSE(engine.ok());
  EXPECT_EQ(engine.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(engine.status().message().find("weights_precision bf16 needs a CPU with native bf16"),
            std::string::npos)
      << engine.status().message();
  // fp32 still loads.
  EXPECT_TRUE(MlpEngine::Create(WideModel({8, 4}, 5)).ok());
}

}  // namespace
}  // namespace selu::core
