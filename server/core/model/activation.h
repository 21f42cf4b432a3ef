// Element-wise activations of an MLP layer and their scalar reference forms.
//
// The engine fuses these into oneDNN post-ops; the scalar functions here are
// the definition the engine is tested against (and what a naive loop uses).
#pragma once

#include <cmath>
#include <string_view>

namespace selu::core {

// SELU constants (Klambauer et al. 2017), to the precision of the paper.
inline constexpr double kSeluAlpha = 1.6732632423543772848170429916717;
inline constexpr double kSeluLambda = 1.0507009873554804934193349852946;

enum class ActivationKind { kSelu, kElu, kRelu, kTanh, kSigmoid };

std::string_view ActivationName(ActivationKind kind);

// One activation with its parameters. `alpha` is SELU's/ELU's α, `gamma` is
// SELU's λ (ONNX calls it gamma); both are ignored by the other kinds.
struct Activation {
  ActivationKind kind = ActivationKind::kRelu;
  float alpha = 0.0f;
  float gamma = 0.0f;

  static Activation Selu(float alpha = static_cast<float>(kSeluAlpha),
                         float gamma = static_cast<float>(kSeluLambda)) {
    return {ActivationKind::kSelu, alpha, gamma};
  }
  static Activation Elu(float alpha = 1.0f) { return {ActivationKind::kElu, alpha, 0.0f}; }
  static Activation Relu() { return {ActivationKind::kRelu, 0.0f, 0.0f}; }
  static Activation Tanh() { return {ActivationKind::kTanh, 0.0f, 0.0f}; }
  static Activation Sigmoid() { return {ActivationKind::kSigmoid, 0.0f, 0.0f}; }

  friend bool operator==(const Activation&, const Activation&) = default;
};

// Scalar reference, computed in double:
//   SELU(x) = γ·x for x > 0, γ·α·expm1(x) for x ≤ 0
//   ELU(x)  =   x for x > 0,   α·expm1(x) for x ≤ 0
// NaN propagates; SELU(-inf) = -γα, SELU(+inf) = +inf.
inline double ReferenceActivation(const Activation& a, double x) {
  switch (a.kind) {
    case ActivationKind::kSelu:
      if (std::isnan(x)) return x;
      return x > 0 ? double(a.gamma) * x : double(a.gamma) * double(a.alpha) * std::expm1(x);
    case ActivationKind::kElu:
      if (std::isnan(x)) return x;
      return x > 0 ? x : double(a.alpha) * std::expm1(x);
    case ActivationKind::kRelu:
      if (std::isnan(x)) return x;
      return x > 0 ? x : 0.0;
    case ActivationKind::kTanh:
      return std::tanh(x);
    case ActivationKind::kSigmoid:
      if (std::isnan(x)) return x;
      return x >= 0 ? 1.0 / (1.0 + std::exp(-x)) : std::exp(x) / (1.0 + std::exp(x));
  }
  return x;
}

}  // namespace selu::core
