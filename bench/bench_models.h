// The two MLPs the engine benchmark runs, built with random weights, and the
// naive scalar forward pass used as the slowest baseline.
//
// Weights are LeCun-normal (N(0, 1/in_features)), the initialisation that
// keeps a SELU network self-normalising; biases are N(0, 0.1²). Every layer
// but the last has SELU; the last is linear. A fixed seed makes every run of
// the benchmark use the same numbers.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "server/core/model/model_spec.h"

namespace selu::bench {

struct BenchModel {
  std::string name;
  // widths[0] is the input width, widths.back() the output width.
  std::vector<int64_t> widths;
};

// small: 64→256→256→256→10; big: 1024→1024×4 hidden→1024.
const std::vector<BenchModel>& BenchModels();

// tiny: 16→16→16, so little arithmetic that running it at batch 1 measures
// the fixed cost of one call (engine minus bare chain = the engine's overhead).
const BenchModel& OverheadModel();

core::ModelSpec MakeRandomSpec(const BenchModel& model, uint32_t seed);

// rows·features standard-normal values.
std::vector<float> MakeRandomInput(int64_t rows, int64_t features, uint32_t seed);

// Floating-point operations of one row: 2·Σ in·out (bias and activation
// are not counted).
double FlopsPerRow(const core::ModelSpec& spec);

// Plain triple loop per layer (row, input feature, output feature), float
// accumulation, scalar SELU with expm1. Not thread-safe (owns its buffers).
class NaiveMlp {
 public:
  explicit NaiveMlp(const core::ModelSpec& spec) : spec_(spec) {}
  void Run(const float* input, int64_t rows, float* output);

 private:
  const core::ModelSpec& spec_;
  std::vector<float> ping_, pong_;
};

}  // namespace selu::bench
