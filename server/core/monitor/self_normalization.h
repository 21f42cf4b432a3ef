// The load-time self-normalization check: a fixed batch of N(0,1) inputs
// pushed through a model, and each dense layer's mean and variance. A
// self-normalizing network keeps its SELU layers near mean 0, variance 1 on
// standardized inputs; a model that does not (wrong initialisation, ReLU
// where SELU was meant, inputs it expects unstandardized) shows it here.
//
// Thread safety: a stateless function; the engine is used through its own
// workspace pool.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "server/core/base/status.h"
#include "server/core/engine/mlp_engine.h"

namespace selu::core {

// A SELU layer is near the fixed point when |mean| ≤ this and its variance
// is within [1/kProbeVarianceFactor, kProbeVarianceFactor].
inline constexpr double kProbeMeanTolerance = 0.25;
inline constexpr double kProbeVarianceFactor = 2.0;
inline constexpr int64_t kProbeRows = 512;

struct SelfNormalizationReport {
  bool ran = false;
  int64_t rows = 0;
  std::vector<double> layer_mean, layer_variance;  // per dense layer
  // Every SELU layer near the fixed point (false when the model has none).
  bool self_normalizing = false;
  std::string summary;  // one line for the log: the figures and the verdict
};

// Runs kProbeRows rows of N(0,1) (fixed seed: the same report every load).
StatusOr<SelfNormalizationReport> ProbeSelfNormalization(const MlpEngine& engine);

}  // namespace selu::core
