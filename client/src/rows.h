// Input rows for `selu-client infer`: a matrix of FP32 features read from JSON
// or CSV.
#pragma once

#include <string>
#include <vector>

namespace selu::client {

// Rows of equal length. Throws UsageError naming the problem.
using Rows = std::vector<std::vector<float>>;

// '[[1,2,3],[4,5,6]]'; a flat '[1,2,3]' is one row.
Rows RowsFromJson(const std::string& text);

// Comma-separated values, one row per line. A first line that is not all
// numbers is a header; a header column named "label" is skipped.
Rows RowsFromCsv(const std::string& text);

}  // namespace selu::client
