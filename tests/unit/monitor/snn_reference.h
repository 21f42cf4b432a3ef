// Shared by the monitor room's tests: a small SNN and the statistics of its
// tensors from an independent double-precision forward pass (SELU written
// out with std::expm1 and the paper's α, λ; two-pass moments), the scalar
// reference the monitor's and the calibration's figures are checked against.
#pragma once

#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "server/core/model/activation.h"
#include "server/core/model/model_spec.h"
#include "server/core/monitor/reference_stats.h"

namespace selu::core {

inline constexpr double kAlpha = 1.6732632423543772848170429916717;
inline constexpr double kLambda = 1.0507009873554804934193349852946;

inline double SeluRef(double x) { return x > 0 ? kLambda * x : kLambda * kAlpha * std::expm1(x); }

inline std::vector<float> Normal(int64_t n, uint32_t seed, float mean = 0, float sd = 1) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(mean, sd);
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = d(rng);
  return v;
}

// A 5 -> 16 -> 16 -> 3 SELU network with LeCun-normal weights.
inline ModelSpec SmallSnn(uint32_t seed) {
  std::mt19937 rng(seed);
  const std::vector<int64_t> widths = {5, 16, 16, 3};
  ModelSpec spec;
  spec.input_name = "x";
  spec.output_name = "y";
  spec.input_features = 5;
  spec.output_features = 3;
  spec.input_shape = {-1, 5};
  for (size_t i = 0; i + 1 < widths.size(); ++i) {
    DenseLayer l;
    l.name = "dense" + std::to_string(i);
    l.in_features = widths[i];
    l.out_features = widths[i + 1];
    std::normal_distribution<float> w(0.0f, 1.0f / std::sqrt(float(l.in_features)));
    for (int64_t k = 0; k < l.in_features * l.out_features; ++k) l.weights.push_back(w(rng));
    l.bias.assign(static_cast<size_t>(l.out_features), 0.0f);
    if (i + 2 < widths.size()) l.activations.push_back(Activation::Selu());
    spec.layers.push_back(std::move(l));
  }
  return spec;
}

// Population statistics of a [rows, f] tensor, in two passes.
inline TensorStats ReferenceStatsOf(const std::vector<double>& v, int64_t rows, int64_t f) {
  TensorStats t;
  t.features = f;
  double s = 0, sq = 0;
  for (double a : v) s += a;
  t.mean = s / double(v.size());
  for (double a : v) sq += (a - t.mean) * (a - t.mean);
  t.variance = sq / double(v.size());
  for (int64_t j = 0; j < f; ++j) {
    double us = 0, usq = 0;
    for (int64_t r = 0; r < rows; ++r) us += v[static_cast<size_t>(r * f + j)];
    const double m = us / double(rows);
    for (int64_t r = 0; r < rows; ++r) {
      const double d = v[static_cast<size_t>(r * f + j)] - m;
      usq += d * d;
    }
    t.unit_mean.push_back(m);
    t.unit_variance.push_back(usq / double(rows));
  }
  return t;
}

// Reference statistics from a double forward pass (not the engine under
// test): the input and every dense layer after its activations (SELU as
// above, the others by ReferenceActivation), before any softmax.
inline ReferenceStats ReferenceFor(const ModelSpec& spec, const std::vector<float>& x,
                                   int64_t rows) {
  ReferenceStats ref;
  ref.split = "test";
  ref.rows = rows;
  std::vector<double> cur(x.begin(), x.end());
  ref.input = ReferenceStatsOf(cur, rows, spec.input_features);
  for (size_t k = 0; k < spec.layers.size(); ++k) {
    const DenseLayer& l = spec.layers[k];
    std::vector<double> next(static_cast<size_t>(rows * l.out_features));
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t n = 0; n < l.out_features; ++n) {
        double acc = l.bias[static_cast<size_t>(n)];
        for (int64_t i = 0; i < l.in_features; ++i) {
          acc += cur[static_cast<size_t>(r * l.in_features + i)] *
                 double(l.weights[static_cast<size_t>(i * l.out_features + n)]);
        }
        for (const Activation& a : l.activations) {
          acc = a.kind == ActivationKind::kSelu ? SeluRef(acc) : ReferenceActivation(a, acc);
        }
        next[static_cast<size_t>(r * l.out_features + n)] = acc;
      }
    }
    cur = std::move(next);
    LayerReference lr;
    lr.index = static_cast<int64_t>(k);
    lr.name = l.name;
    lr.stats = ReferenceStatsOf(cur, rows, l.out_features);
    ref.layers.push_back(std::move(lr));
  }
  return ref;
}

}  // namespace selu::core
