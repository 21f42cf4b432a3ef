// Calibration: reference statistics computed from a user's own data, for a
// model whose file carries none (`selu-serve calibrate`).
//
// The data are a CSV file of feature rows; Calibrate() pushes them through
// the same engine that serves the model, so the reference describes exactly
// the tensors the monitor will see live.
//
// Thread safety: stateless functions. Calibrate() uses its own workspace of
// `engine`, so it may run while the engine serves.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "server/core/base/status.h"
#include "server/core/engine/mlp_engine.h"
#include "server/core/monitor/reference_stats.h"

namespace selu::core {

// Largest data file ReadFeatureCsv() reads.
inline constexpr int64_t kMaxFeatureCsvBytes = int64_t{1} << 30;

struct FeatureRows {
  int64_t rows = 0;
  int64_t features = 0;
  bool has_header = false;    // the file's first line was a header (skipped)
  std::vector<float> values;  // rows × features, row-major
};

// Reads a CSV file of samples, one per line, each of exactly `features`
// comma-separated numbers (whitespace around a field is ignored; no quoting).
// The first line is a header, and skipped, when none of its fields is a
// number (a header of numbers, such as pandas' default 0,1,2,..., is read as
// data: drop it); it must still have `features` fields. CRLF line ends, a UTF-8 byte
// order mark and blank lines at the end are accepted; a blank line between
// rows is not. Every value must be finite and within the float32 range.
//
// Errors: NOT_FOUND when the file cannot be opened, RESOURCE_EXHAUSTED above
// kMaxFeatureCsvBytes, INVALID_ARGUMENT naming the file, the 1-based line and
// (for a value) field number, and the problem:
//   "data.csv:7:3: 'abc' is not a number"
//   "data.csv:5: has 63 fields, the model takes 64"
//   "data.csv:9:12: 'nan' is not finite"
//   "data.csv: no data rows"
StatusOr<FeatureRows> ReadFeatureCsv(const std::string& path, int64_t features);

// Runs `rows` rows of `data` (rows × engine.input_features() floats) through
// `engine` in batches of at most `batch_rows` rows, and returns the
// statistics of its input and of every dense layer's output (after its
// activations) over all rows: split "calibration", population variances.
// INVALID_ARGUMENT when rows < 2, when batch_rows is outside
// [1, engine.options().max_rows], or when the data drive a tensor to
// non-finite values; the engine's status if a Run() fails.
StatusOr<ReferenceStats> Calibrate(const MlpEngine& engine, const float* data, int64_t rows,
                                   int64_t batch_rows);

}  // namespace selu::core
