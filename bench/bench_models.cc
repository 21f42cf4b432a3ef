#include "bench/bench_models.h"

#include <algorithm>
#include <cmath>
#include <random>

namespace selu::bench {

const std::vector<BenchModel>& BenchModels() {
  static const std::vector<BenchModel> models = {
      {"small", {64, 256, 256, 256, 10}},
      {"big", {1024, 1024, 1024, 1024, 1024, 1024}},
  };
  return models;
}

const BenchModel& OverheadModel() {
  static const BenchModel tiny = {"tiny", {16, 16, 16}};
  return tiny;
}

core::ModelSpec MakeRandomSpec(const BenchModel& model, uint32_t seed) {
  std::mt19937 rng(seed);
  core::ModelSpec spec;
  spec.input_name = "input";
  spec.output_name = "output";
  spec.input_features = model.widths.front();
  spec.output_features = model.widths.back();
  spec.input_shape = {-1, model.widths.front()};
  const size_t num_layers = model.widths.size() - 1;
  for (size_t i = 0; i < num_layers; ++i) {
    core::DenseLayer layer;
    layer.name = "dense" + std::to_string(i);
    layer.in_features = model.widths[i];
    layer.out_features = model.widths[i + 1];
    std::normal_distribution<float> lecun(0.0f, 1.0f / std::sqrt(float(layer.in_features)));
    std::normal_distribution<float> bias(0.0f, 0.1f);
    layer.weights.resize(size_t(layer.in_features * layer.out_features));
    for (float& w : layer.weights) w = lecun(rng);
    layer.bias.resize(size_t(layer.out_features));
    for (float& b : layer.bias) b = bias(rng);
    if (i + 1 < num_layers) layer.activations.push_back(core::Activation::Selu());
    spec.layers.push_back(std::move(layer));
  }
  return spec;
}

std::vector<float> MakeRandomInput(int64_t rows, int64_t features, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> v(size_t(rows * features));
  for (float& x : v) x = normal(rng);
  return v;
}

double FlopsPerRow(const core::ModelSpec& spec) {
  double flops = 0;
  for (const auto& layer : spec.layers)
    flops += 2.0 * double(layer.in_features * layer.out_features);
  return flops;
}

namespace {

float Activate(const core::Activation& a, float x) {
  if (a.kind == core::ActivationKind::kSelu) {
    return x > 0 ? a.gamma * x : a.gamma * a.alpha * std::expm1(x);
  }
  return float(core::ReferenceActivation(a, x));
}

}  // namespace

void NaiveMlp::Run(const float* input, int64_t rows, float* output) {
  const float* src = input;
  for (size_t l = 0; l < spec_.layers.size(); ++l) {
    const core::DenseLayer& layer = spec_.layers[l];
    const int64_t in = layer.in_features;
    const int64_t out = layer.out_features;
    float* dst;
    if (l + 1 == spec_.layers.size()) {
      dst = output;
    } else {
      std::vector<float>& buffer = (l % 2 == 0) ? ping_ : pong_;
      if (buffer.size() < size_t(rows * out)) buffer.resize(size_t(rows * out));
      dst = buffer.data();
    }
    for (int64_t r = 0; r < rows; ++r) {
      float* y = dst + r * out;
      for (int64_t n = 0; n < out; ++n) y[n] = layer.bias[size_t(n)];
      for (int64_t k = 0; k < in; ++k) {
        const float x = src[r * in + k];
        const float* w = layer.weights.data() + k * out;
        for (int64_t n = 0; n < out; ++n) y[n] += x * w[n];
      }
      for (const core::Activation& a : layer.activations) {
        for (int64_t n = 0; n < out; ++n) y[n] = Activate(a, y[n]);
      }
    }
    src = dst;
  }
}

}  // namespace selu::bench
