// `selu-client infer`: rows in, outputs out.
#pragma once

#include <string>

#include "client/src/client_common.h"
#include "client/src/rows.h"

namespace selu::client {

struct InferOptions {
  std::string model;
  std::string version;     // "" = newest ready version
  std::string input_name;  // "" = the model's only input, from ModelMetadata
  bool typed = false;      // contents.fp32_contents instead of raw_input_contents
  int batch = 0;           // rows per request; 0 = all rows in one request
  bool table = false;      // -o table instead of JSON
  bool argmax = false;     // also print the index of each row's largest value
};

// Sends `rows` and prints the outputs; returns the process exit code.
int RunInfer(const ConnectionOptions& connection, const InferOptions& options, const Rows& rows);

}  // namespace selu::client
