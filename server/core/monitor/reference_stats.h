// Reference statistics of a model's activations: what its tensors look like
// on data the model is known to work on (its validation split, or a user's
// own data through `selu-serve calibrate`). The monitor compares live
// traffic with them.
//
// JSON format (format 1), as `reference_stats.json` in a version folder or
// as the ONNX metadata_props value `selu.reference_stats`:
//   {"format": 1, "split": "validation", "rows": 359,
//    "input":  {"features": 64, "mean": m, "variance": v,
//               "unit_mean": [...], "unit_variance": [...]},      (optional)
//    "layers": [{"index": 0, "name": "...", "features": 256, "activation": "Selu",
//                "mean": m, "variance": v, "unit_mean": [...], "unit_variance": [...]},
//               ...]}                                              (one per dense layer)
// `mean`/`variance` are over units and rows; `unit_*` per unit, over rows
// (population variance). Layer statistics are taken after the layer's
// activations (before a final softmax).
//
// Thread safety: plain values and stateless functions.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "server/core/base/status.h"
#include "server/core/model/model_spec.h"

namespace selu::core {

struct TensorStats {
  int64_t features = 0;
  double mean = 0;
  double variance = 0;
  std::vector<double> unit_mean;
  std::vector<double> unit_variance;
};

struct LayerReference {
  int64_t index = 0;
  std::string name;
  std::string activation;
  TensorStats stats;
};

struct ReferenceStats {
  std::string split;  // where the statistics came from ("validation", "calibration", ...)
  int64_t rows = 0;   // how many samples they summarise
  std::optional<TensorStats> input;
  std::vector<LayerReference> layers;
};

// Parses and checks `json` against `spec`: one entry per dense layer with
// the layer's width, per-unit arrays of that width, finite values, no
// negative variance, rows ≥ 2. INVALID_ARGUMENT naming the first problem
// (e.g. "layers[1].unit_variance[7] is negative").
StatusOr<ReferenceStats> ParseReferenceStats(std::string_view json, const ModelSpec& spec);

// Format 1 JSON of `stats` (what `selu-serve calibrate` writes).
std::string ReferenceStatsToJson(const ReferenceStats& stats);

// A dense layer's activations as a reference and the monitor name them:
// "Selu", "Relu+Tanh" (in order), "Identity" when it has none.
std::string LayerActivationName(const DenseLayer& layer);
// The same for what an observed layer went through ("Selu", "Gemm+Add"...).
std::string LayerActivationName(const ObservedLayer& layer);

// The file name looked for in a version folder, and the metadata key.
inline constexpr char kReferenceStatsFile[] = "reference_stats.json";
inline constexpr char kReferenceStatsMetadataKey[] = "selu.reference_stats";

// Where a model version's reference came from, or why it has none.
struct LoadedReference {
  std::optional<ReferenceStats> stats;
  std::string source;   // "<dir>/reference_stats.json" or "metadata_props selu.reference_stats"
  std::string problem;  // set when a reference exists but is unusable
};

// Reads `<version_dir>/reference_stats.json` if it exists, else the model's
// metadata. A bad reference is reported in `problem`, never an error: the
// model serves, with live figures but no drift score.
LoadedReference LoadReferenceStats(const std::string& version_dir, const ModelSpec& spec);

}  // namespace selu::core
