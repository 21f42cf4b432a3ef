// Each activation, as the engine runs it (fused oneDNN post-ops; a
// per-feature PRelu as a prelu primitive), against the scalar reference in
// double precision (SELU with expm1), and that reference against closed forms.
//
// Tolerance: |engine − reference| ≤ 2e-6·max(1, |reference|). oneDNN's JIT
// exp is accurate to a few ulp of fp32; 2e-6 is ~16 ulp at 1.0.
#include "server/core/model/activation.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <string>
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

// Grid() and a coarser sweep of [−60, 60] (saturation regions of the newer
// kinds).
std::vector<float> WideGrid() {
  std::vector<float> xs = Grid();
  for (int i = -2400; i <= 2400; ++i) xs.push_back(i * 0.025f);
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
  // Of |engine − reference| / max(1, |reference|).
  double tolerance = 2e-6;
};

class ActivationTest : public ::testing::TestWithParam<std::tuple<Case, EnginePrimitive>> {};

TEST_P(ActivationTest, MatchesScalarReference) {
  const auto& [c, primitive] = GetParam();
  auto engine = UnitModel({c.act}, primitive);
  const auto xs = WideGrid();
  const auto ys = RunRows(*engine, xs);
  double worst = 0;
  for (size_t i = 0; i < xs.size(); ++i) {
    const double ref = ReferenceActivation(c.act, xs[i]);
    const double err = std::abs(ys[i] - ref) / std::max(1.0, std::abs(ref));
    worst = std::max(worst, err);
    EXPECT_LE(err, c.tolerance) << c.name << "(" << xs[i] << ") = " << ys[i] << ", reference "
                                << ref;
  }
  std::printf("%s: worst relative error %.3g over %zu points\n", c.name, worst, xs.size());
}

INSTANTIATE_TEST_SUITE_P(
    All, ActivationTest,
    ::testing::Combine(
        ::testing::Values(
            Case{"selu", Activation::Selu()}, Case{"selu_custom", Activation::Selu(1.5f, 1.2f)},
            Case{"elu", Activation::Elu(1.0f)}, Case{"elu_0.7", Activation::Elu(0.7f)},
            Case{"relu", Activation::Relu()}, Case{"tanh", Activation::Tanh()},
            Case{"sigmoid", Activation::Sigmoid()}, Case{"leaky_relu", Activation::LeakyRelu()},
            Case{"leaky_relu_03", Activation::LeakyRelu(0.3f)},
            Case{"prelu_shared", Activation::PRelu({0.25f})},
            Case{"prelu_negative", Activation::PRelu({-0.5f})},
            Case{"hardsigmoid", Activation::HardSigmoid()},
            Case{"hardsigmoid_torch", Activation::HardSigmoid(1.0f / 6.0f, 0.5f)},
            // oneDNN 2.6's soft_relu: ~4e-6 absolute
            // for x < 0 (32 ulp of 1.0).
            Case{"softplus", Activation::Softplus(), 4e-6},
            Case{"relu6", Activation::Clip(0.0f, 6.0f)},
            Case{"clip", Activation::Clip(-1.5f, 2.0f)}, Case{"gelu", Activation::Gelu()},
            Case{"silu", Activation::Silu()}, Case{"hardswish", Activation::HardSwish()},
            Case{"linear", Activation::Linear(2.5f, -1.0f)},
            Case{"scale_shared", Activation::Scale({-3.0f})},
            Case{"shift_shared", Activation::Shift({0.75f})}),
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

// The scalar reference of each newer kind against closed forms and values
// computed independently (Φ(1) etc. from tables; the rest by hand).
TEST(ReferenceActivationTest, ClosedForms) {
  const double kPhi1 = 0.84134474606854293;  // Φ(1)
  EXPECT_DOUBLE_EQ(ReferenceActivation(Activation::LeakyRelu(0.1f), -2.0), -2.0 * double(0.1f));
  EXPECT_DOUBLE_EQ(ReferenceActivation(Activation::LeakyRelu(0.1f), 3.0), 3.0);
  EXPECT_DOUBLE_EQ(ReferenceActivation(Activation::LeakyRelu(), -1.0), -double(0.01f));
  const Activation prelu = Activation::PRelu({0.5f, 0.25f, -1.0f});
  EXPECT_DOUBLE_EQ(ReferenceActivation(prelu, -2.0, 0), -1.0);
  EXPECT_DOUBLE_EQ(ReferenceActivation(prelu, -2.0, 1), -0.5);
  EXPECT_DOUBLE_EQ(ReferenceActivation(prelu, -2.0, 2), 2.0);
  EXPECT_DOUBLE_EQ(ReferenceActivation(prelu, 4.0, 2), 4.0);
  EXPECT_DOUBLE_EQ(ReferenceActivation(Activation::PRelu({0.5f}), -2.0, 7), -1.0);
  // HardSigmoid: ONNX's defaults 0.2/0.5; PyTorch's x/6 + 1/2.
  EXPECT_NEAR(ReferenceActivation(Activation::HardSigmoid(), 1.0), 0.7, 1e-7);
  EXPECT_EQ(ReferenceActivation(Activation::HardSigmoid(), -3.0), 0.0);
  EXPECT_EQ(ReferenceActivation(Activation::HardSigmoid(), 3.0), 1.0);
  EXPECT_NEAR(ReferenceActivation(Activation::HardSigmoid(1.0f / 6, 0.5f), 1.5), 0.75, 1e-7);
  // Softplus = ln(1 + eˣ): ln 2 at 0, ln(1 + e) at 1, ≈ eˣ far left, ≈ x far right.
  EXPECT_DOUBLE_EQ(ReferenceActivation(Activation::Softplus(), 0.0), std::log(2.0));
  EXPECT_NEAR(ReferenceActivation(Activation::Softplus(), 1.0), 1.3132616875182228, 1e-15);
  EXPECT_NEAR(ReferenceActivation(Activation::Softplus(), -50.0), 1.9287498479639178e-22, 1e-36);
  EXPECT_DOUBLE_EQ(ReferenceActivation(Activation::Softplus(), 800.0), 800.0);
  EXPECT_EQ(ReferenceActivation(Activation::Clip(0, 6), 7.0), 6.0);
  EXPECT_EQ(ReferenceActivation(Activation::Clip(0, 6), -1.0), 0.0);
  EXPECT_EQ(ReferenceActivation(Activation::Clip(0, 6), 3.25), 3.25);
  // GELU(x) = x·Φ(x): Φ(1), 1 − Φ(1), and −10·Φ(−10) = −7.62e-23.
  EXPECT_NEAR(ReferenceActivation(Activation::Gelu(), 1.0), kPhi1, 1e-15);
  EXPECT_NEAR(ReferenceActivation(Activation::Gelu(), -1.0), -(1.0 - kPhi1), 1e-15);
  EXPECT_NEAR(ReferenceActivation(Activation::Gelu(), -10.0), -7.6198530241605261e-23, 1e-35);
  EXPECT_EQ(ReferenceActivation(Activation::Gelu(), 0.0), 0.0);
  // SiLU(x) = x/(1 + e⁻ˣ).
  EXPECT_NEAR(ReferenceActivation(Activation::Silu(), 1.0), 1.0 / (1.0 + std::exp(-1.0)), 1e-15);
  EXPECT_NEAR(ReferenceActivation(Activation::Silu(), -1.0), -1.0 / (1.0 + std::exp(1.0)), 1e-15);
  EXPECT_EQ(ReferenceActivation(Activation::Silu(), -1e30), 0.0);
  // HardSwish(x) = x·relu6(x + 3)/6.
  EXPECT_NEAR(ReferenceActivation(Activation::HardSwish(), 1.0), 4.0 / 6.0, 1e-15);
  EXPECT_NEAR(ReferenceActivation(Activation::HardSwish(), -1.0), -2.0 / 6.0, 1e-15);
  EXPECT_EQ(ReferenceActivation(Activation::HardSwish(), -4.0), 0.0);
  EXPECT_EQ(ReferenceActivation(Activation::HardSwish(), 4.0), 4.0);
  EXPECT_EQ(ReferenceActivation(Activation::Linear(2.0f, 1.0f), 3.0), 7.0);
  EXPECT_EQ(ReferenceActivation(Activation::Scale({2.0f, 3.0f}), 2.0, 1), 6.0);
  EXPECT_EQ(ReferenceActivation(Activation::Shift({2.0f, 3.0f}), 2.0, 0), 4.0);
  EXPECT_TRUE(std::isnan(ReferenceActivation(Activation::Gelu(), std::nan(""))));
  EXPECT_TRUE(std::isnan(ReferenceActivation(Activation::Clip(0, 6), std::nan(""))));
}

TEST(ReferenceActivationTest, NamesForMessagesAndMetrics) {
  EXPECT_EQ(ActivationName(ActivationKind::kLeakyRelu), "LeakyRelu");
  EXPECT_EQ(ActivationName(ActivationKind::kPRelu), "PRelu");
  EXPECT_EQ(ActivationName(ActivationKind::kHardSigmoid), "HardSigmoid");
  EXPECT_EQ(ActivationName(ActivationKind::kSoftplus), "Softplus");
  EXPECT_EQ(ActivationName(ActivationKind::kClip), "Clip");
  EXPECT_EQ(ActivationName(ActivationKind::kGelu), "Gelu");
  EXPECT_EQ(ActivationName(ActivationKind::kSilu), "Silu");
  EXPECT_EQ(ActivationName(ActivationKind::kHardSwish), "HardSwish");
  EXPECT_EQ(ActivationName(ActivationKind::kLinear), "Linear");
  EXPECT_EQ(ActivationName(ActivationKind::kScale), "Scale");
  EXPECT_EQ(ActivationName(ActivationKind::kShift), "Shift");
  // Parameters take part in equality, per-feature values included.
  EXPECT_EQ(Activation::PRelu({1, 2}), Activation::PRelu({1, 2}));
  EXPECT_NE(Activation::PRelu({1, 2}), Activation::PRelu({1, 3}));
  EXPECT_NE(Activation::Scale({1}), Activation::Shift({1}));
  EXPECT_NE(Activation::Clip(0, 6), Activation::Clip(0, 5));
}

constexpr int64_t kWidth = 3;

// `layers` identity layers kWidth→kWidth, each with `acts`: a row's features
// reach the activations unchanged, so per-feature values can be checked.
std::unique_ptr<MlpEngine> IdentityModel(const std::vector<Activation>& acts, int layers,
                                         EnginePrimitive primitive) {
  ModelSpec spec;
  spec.input_features = spec.output_features = kWidth;
  for (int l = 0; l < layers; ++l) {
    DenseLayer layer;
    layer.name = "identity" + std::to_string(l);
    layer.in_features = layer.out_features = kWidth;
    layer.weights.assign(kWidth * kWidth, 0.0f);
    for (int64_t k = 0; k < kWidth; ++k) layer.weights[k * kWidth + k] = 1.0f;
    layer.bias.assign(kWidth, 0.0f);
    layer.activations = acts;
    spec.layers.push_back(layer);
  }
  auto engine = MlpEngine::Create(std::move(spec), {.primitive = primitive});
  EXPECT_TRUE(engine.ok()) << engine.status().ToString();
  return std::move(engine).value();
}

struct PerFeatureCase {
  const char* name;
  std::vector<Activation> acts;
};

// Per-feature PRelu (a prelu primitive after the layer), per-feature scale
// and shift (binary post-ops) and mixes with eltwise post-ops, through one
// and three layers, each primitive, against the reference per feature.
TEST(PerFeatureActivationTest, MatchReferencePerFeature) {
  const std::vector<PerFeatureCase> cases = {
      {"prelu", {Activation::PRelu({0.1f, -0.5f, 2.0f})}},
      {"gelu+scale+shift",
       {Activation::Gelu(), Activation::Scale({2.0f, -1.0f, 0.5f}),
        Activation::Shift({0.25f, -3.0f, 1.0f})}},
      {"shift+selu+prelu",
       {Activation::Shift({1.0f, -1.0f, 0.0f}), Activation::Selu(),
        Activation::PRelu({0.2f, 0.3f, 0.4f})}},
      {"scale+hardsigmoid+linear",
       {Activation::Scale({0.5f, 1.0f, -2.0f}), Activation::HardSigmoid(),
        Activation::Linear(4.0f, -2.0f)}},
      {"prelu+linear+scale+gelu",
       {Activation::PRelu({0.1f, -0.5f, 2.0f}), Activation::Linear(0.5f, 0.25f),
        Activation::Scale({2.0f, -1.0f, 0.5f}), Activation::Gelu()}},
      // oneDNN 2.6 runs a repeated eltwise algorithm with the first one's
      // parameters: these chains must not be fused as written (layer_ops.h).
      {"linear+tanh+linear",
       {Activation::Linear(2.0f, 0.0f), Activation::Tanh(), Activation::Linear(3.0f, 0.5f)}},
      {"elu07+selu", {Activation::Elu(0.7f), Activation::Selu()}},
      {"relu+leaky+leaky",
       {Activation::Relu(), Activation::Shift({-1.0f, 0.0f, 1.0f}), Activation::LeakyRelu(0.1f),
        Activation::LeakyRelu(0.3f)}},
      {"clip+clip", {Activation::Clip(-2.0f, 3.0f), Activation::Clip(-1.0f, 1.5f)}},
      {"selu+linear", {Activation::Selu(), Activation::Linear(-2.0f, 1.0f)}},
  };
  const auto grid = Grid();
  std::vector<float> xs;  // rows of kWidth: every grid point at every feature
  for (size_t i = 0; i < grid.size(); ++i) {
    for (int64_t f = 0; f < kWidth; ++f) xs.push_back(grid[(i + f * 7) % grid.size()]);
  }
  const int64_t rows = static_cast<int64_t>(xs.size()) / kWidth;
  for (const auto& c : cases) {
    for (int layers : {1, 3}) {
      for (auto primitive : {EnginePrimitive::kInnerProduct, EnginePrimitive::kMatmul}) {
        SCOPED_TRACE(std::string(c.name) + " layers=" + std::to_string(layers) +
                     (primitive == EnginePrimitive::kMatmul ? " matmul" : " inner product"));
        auto engine = IdentityModel(c.acts, layers, primitive);
        for (int64_t batch : {rows, int64_t{1}, int64_t{7}}) {
          std::vector<float> out(static_cast<size_t>(batch * kWidth), -12345.0f);
          ASSERT_TRUE(engine->Run(xs.data(), batch, out.data()).ok());
          for (int64_t r = 0; r < batch; ++r) {
            for (int64_t f = 0; f < kWidth; ++f) {
              double ref = xs[r * kWidth + f];
              for (int l = 0; l < layers; ++l) {
                ref = static_cast<float>(ref);  // each layer's output is stored as float
                for (const auto& a : c.acts) ref = ReferenceActivation(a, ref, f);
              }
              const double got = out[r * kWidth + f];
              ASSERT_LE(std::abs(got - ref), 4e-6 * std::max(1.0, std::abs(ref)))
                  << "row " << r << " feature " << f << " x=" << xs[r * kWidth + f];
            }
          }
        }
      }
    }
  }
}

TEST(PerFeatureActivationTest, EngineRefusesInconsistentValues) {
  auto create = [](std::vector<Activation> acts) {
    ModelSpec spec;
    spec.input_features = spec.output_features = kWidth;
    DenseLayer layer;
    layer.name = "l";
    layer.in_features = layer.out_features = kWidth;
    layer.weights.assign(kWidth * kWidth, 1.0f);
    layer.bias.assign(kWidth, 0.0f);
    layer.activations = std::move(acts);
    spec.layers.push_back(layer);
    auto engine = MlpEngine::Create(std::move(spec));
    return engine.ok() ? OkStatus() : engine.status();
  };
  Status s = create({Activation::Scale({1.0f, 2.0f})});
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("Scale with 2 values for 3 features"), std::string::npos)
      << s.ToString();
  s = create({Activation::PRelu({})});
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << s.ToString();
  s = create({Activation::Shift({1.0f, 2.0f, 3.0f, 4.0f})});
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << s.ToString();
  EXPECT_TRUE(create({Activation::Relu(), Activation::PRelu({0.1f, 0.2f, 0.3f})}).ok());
}

}  // namespace
}  // namespace selu::core
