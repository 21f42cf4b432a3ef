// Each activation, as the engine runs it (fused oneDNN post-ops), against the
// scalar reference in double precision (SELU with expm1).
//
// Tolerance: |engine − reference| ≤ 2e-6·max(1, |reference|). oneDNN's JIT
// exp is accurate to a few ulp of fp32; 2e-6 is ~16 ulp at 1.0.
#include "server/core/model/activation.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "server/core/engine/mlp_engine.h"

namespace selu::core {
namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();
constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

// A model with one 1→1 layer of weight 1 and bias 0: each row's output is
// act(x), so ±inf and NaN reach the activation unchanged.
std::unique_ptr<MlpEngine> UnitModel(std::vector<Activation> acts, EnginePrimitive primitive) {
  ModelSpec spec;
  spec.input_features = spec.output_features = 1;
  DenseLayer layer;
  layer.name = "unit";
  layer.in_features = layer.out_features = 1;
  layer.weights = {1.0f};
  layer.bias = {0.0f};
  layer.activations = std::move(acts);
  spec.layers.push_back(layer);
  auto engine = MlpEngine::Create(std::move(spec), {.primitive = primitive});
  EXPECT_TRUE(engine.ok()) << engine.status().ToString();
  return std::move(engine).value();
}

std::vector<float> Grid() {
  std::vector<float> xs = {0.0f,  -0.0f,  1e-7f,  -1e-7f, 1e-3f,   -1e-3f, 0.5f,   -0.5f,
                           1.0f,  -1.0f,  3.0f,   -3.0f,  10.0f,   -10.0f, 20.0f,  -20.0f,
                           80.0f, -80.0f, -87.0f, -88.5f, -100.0f, -1e4f,  -1e30f, 1e30f};
  for (int i = -400; i <= 400; ++i) xs.push_back(i * 0.0125f);
  return xs;
}

std::vector<float> RunRows(const MlpEngine& engine, const std::vector<float>& xs) {
  std::vector<float> out(xs.size(), -12345.0f);
  Status s = engine.Run(xs.data(), static_cast<int64_t>(xs.size()), out.data());
  EXPECT_TRUE(s.ok()) << s.ToString();
  return out;
}

struct Case {
  const char* name;
  Activation act;
};

class ActivationTest : public ::testing::TestWithParam<std::tuple<Case, EnginePrimitive>> {};

TEST_P(ActivationTest, MatchesScalarReference) {
  const auto& [c, primitive] = GetParam();
  auto engine = UnitModel({c.act}, primitive);
  const auto xs = Grid();
  const auto ys = RunRows(*engine, xs);
  double worst = 0;
  for (size_t i = 0; i < xs.size(); ++i) {
    const double ref = ReferenceActivation(c.act, xs[i]);
    const double err = std::abs(ys[i] - ref) / std::max(1.0, std::abs(ref));
    worst = std::max(worst, err);
    EXPECT_LE(err, 2e-6) << c.name << "(" << xs[i] << ") = " << ys[i] << ", reference " << ref;
  }
  std::printf("%s: worst relative error %.3g over %zu points\n", c.name, worst, xs.size());
}

INSTANTIATE_TEST_SUITE_P(
    All, ActivationTest,
    ::testing::Combine(::testing::Values(Case{"selu", Activation::Selu()},
                                         Case{"selu_custom", Activation::Selu(1.5f, 1.2f)},
                                         Case{"elu", Activation::Elu(1.0f)},
                                         Case{"elu_0.7", Activation::Elu(0.7f)},
                                         Case{"relu", Activation::Relu()},
                                         Case{"tanh", Activation::Tanh()},
                                         Case{"sigmoid", Activation::Sigmoid()}),
                       ::testing::Values(EnginePrimitive::kInnerProduct, EnginePrimitive::kMatmul)),
    [](const auto& info) {
      return std::string(std::get<0>(info.param).name == std::string("elu_0.7")
                             ? "elu_07"
                             : std::get<0>(info.param).name) +
             (std::get<1>(info.param) == EnginePrimitive::kMatmul ? "_matmul" : "_ip");
    });

TEST(SeluTest, ConstantsAreThePapers) {
  EXPECT_DOUBLE_EQ(kSeluAlpha, 1.6732632423543772848170429916717);
  EXPECT_DOUBLE_EQ(kSeluLambda, 1.0507009873554804934193349852946);
  // λ on both sides, α on the negative side: SELU(1) = λ, SELU(-inf) = -λα.
  const Activation selu = Activation::Selu();
  EXPECT_NEAR(ReferenceActivation(selu, 1.0), kSeluLambda, 1e-7);
  EXPECT_NEAR(ReferenceActivation(selu, -1.0), kSeluLambda * kSeluAlpha * std::expm1(-1.0), 1e-7);
  EXPECT_NEAR(ReferenceActivation(selu, -1e9), -kSeluLambda * kSeluAlpha, 1e-6);
}

TEST(SeluTest, KnownValues) {
  auto engine = UnitModel({Activation::Selu()}, EnginePrimitive::kInnerProduct);
  const auto ys = RunRows(*engine, {0.0f, 1.0f, -1.0f, 2.0f, -50.0f});
  EXPECT_EQ(ys[0], 0.0f);
  EXPECT_NEAR(ys[1], 1.0507009873554805, 1e-6);
  EXPECT_NEAR(ys[2], -1.1113307378125625, 2e-6);  // λα(e⁻¹ − 1)
  EXPECT_NEAR(ys[3], 2.101401974710961, 2e-6);
  EXPECT_NEAR(ys[4], -1.7580993408473766, 2e-6);  // saturates at −λα
}

// Non-finite inputs (the transport refuses them; this is what the engine
// does if one reaches it): +inf → +inf, −inf → −λα, NaN → NaN.
TEST(SeluTest, NonFiniteInputs) {
  for (auto primitive : {EnginePrimitive::kInnerProduct, EnginePrimitive::kMatmul}) {
    auto engine = UnitModel({Activation::Selu()}, primitive);
    const auto ys = RunRows(*engine, {kInf, -kInf, kNaN});
    EXPECT_EQ(ys[0], kInf);
    EXPECT_NEAR(ys[1], -kSeluLambda * kSeluAlpha, 2e-6);
    EXPECT_TRUE(std::isnan(ys[2]));
  }
}

TEST(ActivationChainTest, SeveralActivationsApplyInOrder) {
  const std::vector<Activation> chain = {Activation::Tanh(), Activation::Selu(),
                                         Activation::Sigmoid()};
  auto engine = UnitModel(chain, EnginePrimitive::kInnerProduct);
  const auto xs = Grid();
  const auto ys = RunRows(*engine, xs);
  for (size_t i = 0; i < xs.size(); ++i) {
    double ref = xs[i];
    for (const auto& a : chain) ref = ReferenceActivation(a, ref);
    EXPECT_NEAR(ys[i], ref, 2e-6) << "x=" << xs[i];
  }
}

}  // namespace
}  // namespace selu::core
