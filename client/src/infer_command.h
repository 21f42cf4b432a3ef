// `selu-client infer`: rows in, outputs out. A row holds the features of
// every input it feeds, one input after another; each output is printed.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "client/src/client_common.h"
#include "client/src/rows.h"

namespace selu::client {

struct InferOptions {
  std::string model;
  std::string version;  // "" = newest ready version
  // The inputs each row's columns feed, one after another; empty = every
  // input of the model, in ModelMetadata order.
  std::vector<std::string> input_names;
  bool typed = false;   // contents.fp32_contents instead of raw_input_contents
  int batch = 0;        // rows per request; 0 = all rows in one request
  bool table = false;   // -o table instead of JSON
  bool argmax = false;  // also print the index of each row's largest value
  // > 0: ask every output for its top `classification` classes (Triton's
  // classification extension); they print as "score:index[:label]" strings.
  int64_t classification = 0;
};

// Sends `rows` and prints the outputs; returns the process exit code.
int RunInfer(const ConnectionOptions& connection, const InferOptions& options, const Rows& rows);

}  // namespace selu::client
