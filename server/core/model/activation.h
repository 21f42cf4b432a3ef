// Element-wise activations of an MLP layer and their scalar reference forms.
//
// The engine fuses these into oneDNN post-ops; the scalar functions here are
// the definition the engine is tested against (and what a naive loop uses).
#pragma once

#include <cmath>
#include <cstdint>
#include <string_view>
#include <utility>
#include <vector>

namespace selu::core {

// SELU constants (Klambauer et al. 2017), to the precision of the paper.
inline constexpr double kSeluAlpha = 1.6732632423543772848170429916717;
inline constexpr double kSeluLambda = 1.0507009873554804934193349852946;

// What each kind computes, with the parameters it reads (others are ignored):
//   kSelu         γ·x (x > 0), γ·α·(eˣ − 1) (x ≤ 0)        alpha, gamma
//   kElu          x (x > 0), α·(eˣ − 1) (x ≤ 0)              alpha
//   kRelu         max(x, 0)
//   kTanh, kSigmoid
//   kLeakyRelu    x (x > 0), α·x (x ≤ 0)                     alpha
//   kPRelu        x (x > 0), s_c·x (x ≤ 0)                   values: s per output feature c,
//                                                            or one s for all
//   kHardSigmoid  max(0, min(1, α·x + β))                    alpha, beta
//   kSoftplus     ln(1 + eˣ)
//   kClip         min(max(x, α), β)                          alpha = min, beta = max
//   kGelu         x·Φ(x) = x/2·(1 + erf(x/√2))
//   kSilu         x·σ(x)
//   kHardSwish    x·max(0, min(1, x/6 + 1/2))
//   kLinear       α·x + β (a constant scale/shift after an activation)   alpha, beta
//   kScale        x·v_c, one v per output feature c          values
//   kShift        x + v_c, one v per output feature c        values
enum class ActivationKind {
  kSelu,
  kElu,
  kRelu,
  kTanh,
  kSigmoid,
  kLeakyRelu,
  kPRelu,
  kHardSigmoid,
  kSoftplus,
  kClip,
  kGelu,
  kSilu,
  kHardSwish,
  kLinear,
  kScale,
  kShift,
};

// The ONNX-like name of a kind ("Selu", "LeakyRelu", "Gelu", ...), for
// messages and metrics.
std::string_view ActivationName(ActivationKind kind);

// True for the kinds whose `values` hold one number per output feature.
inline bool IsPerFeature(ActivationKind kind) {
  return kind == ActivationKind::kPRelu || kind == ActivationKind::kScale ||
         kind == ActivationKind::kShift;
}

// One activation with its parameters (see ActivationKind). `alpha` is SELU's
// and ELU's α, `gamma` SELU's λ (ONNX calls it gamma).
struct Activation {
  ActivationKind kind = ActivationKind::kRelu;
  float alpha = 0.0f;
  float gamma = 0.0f;
  float beta = 0.0f;
  // kPRelu, kScale, kShift: one value per output feature of the layer (kPRelu
  // may hold a single slope shared by all).
  std::vector<float> values;

  static Activation Make(ActivationKind kind, float alpha = 0.0f, float gamma = 0.0f,
                         float beta = 0.0f, std::vector<float> values = {}) {
    Activation a;
    a.kind = kind;
    a.alpha = alpha;
    a.gamma = gamma;
    a.beta = beta;
    a.values = std::move(values);
    return a;
  }
  static Activation Selu(float alpha = static_cast<float>(kSeluAlpha),
                         float gamma = static_cast<float>(kSeluLambda)) {
    return Make(ActivationKind::kSelu, alpha, gamma);
  }
  static Activation Elu(float alpha = 1.0f) { return Make(ActivationKind::kElu, alpha); }
  static Activation Relu() { return Make(ActivationKind::kRelu); }
  static Activation Tanh() { return Make(ActivationKind::kTanh); }
  static Activation Sigmoid() { return Make(ActivationKind::kSigmoid); }
  static Activation LeakyRelu(float alpha = 0.01f) {
    return Make(ActivationKind::kLeakyRelu, alpha);
  }
  static Activation PRelu(std::vector<float> slopes) {
    return Make(ActivationKind::kPRelu, 0.0f, 0.0f, 0.0f, std::move(slopes));
  }
  // ONNX's defaults; PyTorch exports alpha = 1/6.
  static Activation HardSigmoid(float alpha = 0.2f, float beta = 0.5f) {
    return Make(ActivationKind::kHardSigmoid, alpha, 0.0f, beta);
  }
  static Activation Softplus() { return Make(ActivationKind::kSoftplus); }
  static Activation Clip(float min, float max) {
    return Make(ActivationKind::kClip, min, 0.0f, max);
  }
  static Activation Gelu() { return Make(ActivationKind::kGelu); }
  static Activation Silu() { return Make(ActivationKind::kSilu); }
  static Activation HardSwish() { return Make(ActivationKind::kHardSwish); }
  static Activation Linear(float alpha, float beta) {
    return Make(ActivationKind::kLinear, alpha, 0.0f, beta);
  }
  static Activation Scale(std::vector<float> v) {
    return Make(ActivationKind::kScale, 0.0f, 0.0f, 0.0f, std::move(v));
  }
  static Activation Shift(std::vector<float> v) {
    return Make(ActivationKind::kShift, 0.0f, 0.0f, 0.0f, std::move(v));
  }

  // values[feature] (values[0] when a single value is shared).
  float ValueFor(int64_t feature) const {
    return values.size() == 1 ? values[0] : values[static_cast<size_t>(feature)];
  }

  friend bool operator==(const Activation&, const Activation&) = default;
};

namespace activation_internal {
inline double StableSigmoid(double x) {
  return x >= 0 ? 1.0 / (1.0 + std::exp(-x)) : std::exp(x) / (1.0 + std::exp(x));
}
}  // namespace activation_internal

// Scalar reference, computed in double, of `a` at `x` for output feature
// `feature` (read only by the per-feature kinds):
//   SELU(x) = γ·x for x > 0, γ·α·expm1(x) for x ≤ 0
//   ELU(x)  =   x for x > 0,   α·expm1(x) for x ≤ 0
//   Softplus(x) = x + log1p(e⁻ˣ) for x > 0, log1p(eˣ) otherwise
//   GELU(x) = x/2·erfc(−x/√2) (no cancellation for x ≪ 0)
// NaN propagates; SELU(-inf) = -γα, SELU(+inf) = +inf.
inline double ReferenceActivation(const Activation& a, double x, int64_t feature = 0) {
  using activation_internal::StableSigmoid;
  if (std::isnan(x)) return x;
  switch (a.kind) {
    case ActivationKind::kSelu:
      return x > 0 ? double(a.gamma) * x : double(a.gamma) * double(a.alpha) * std::expm1(x);
    case ActivationKind::kElu:
      return x > 0 ? x : double(a.alpha) * std::expm1(x);
    case ActivationKind::kRelu:
      return x > 0 ? x : 0.0;
    case ActivationKind::kTanh:
      return std::tanh(x);
    case ActivationKind::kSigmoid:
      return StableSigmoid(x);
    case ActivationKind::kLeakyRelu:
      return x > 0 ? x : double(a.alpha) * x;
    case ActivationKind::kPRelu:
      return x > 0 ? x : double(a.ValueFor(feature)) * x;
    case ActivationKind::kHardSigmoid:
      return std::fmin(1.0, std::fmax(0.0, double(a.alpha) * x + double(a.beta)));
    case ActivationKind::kSoftplus:
      return x > 0 ? x + std::log1p(std::exp(-x)) : std::log1p(std::exp(x));
    case ActivationKind::kClip:
      return std::fmin(double(a.beta), std::fmax(double(a.alpha), x));
    case ActivationKind::kGelu:
      if (std::isinf(x)) return x > 0 ? x : 0.0;
      return 0.5 * x * std::erfc(-x / std::sqrt(2.0));
    case ActivationKind::kSilu:
      if (std::isinf(x)) return x > 0 ? x : 0.0;
      return x * StableSigmoid(x);
    case ActivationKind::kHardSwish:
      return x * std::fmin(1.0, std::fmax(0.0, x / 6.0 + 0.5));
    case ActivationKind::kLinear:
      return double(a.alpha) * x + double(a.beta);
    case ActivationKind::kScale:
      return x * double(a.ValueFor(feature));
    case ActivationKind::kShift:
      return x + double(a.ValueFor(feature));
  }
  return x;
}

}  // namespace selu::core
