// Conversions between Open Inference Protocol v2 messages and the core's
// fp32 row buffers, with the validation that gives every malformed request a
// precise INVALID_ARGUMENT.
//
// Inputs: one tensor named as the model's input, datatype FP32 (used in
// place, no copy) or FP64/FP16/BF16 (converted), shape [N, features] or
// [N, <the model's declared dims>], data either in `contents` (fp32/fp64) or
// in raw_input_contents (little-endian), never both; every value finite.
// Outputs come back in the form the input came in: raw in, raw out.
//
// Thread safety: stateless functions.
#pragma once

#include <cstdint>
#include <vector>

#include "proto/grpc_service.pb.h"
#include "server/core/base/status.h"
#include "server/core/model/model_spec.h"

namespace selu::grpc_transport {

struct DecodedInput {
  const float* data = nullptr;  // rows × features; into the request or `converted`
  int64_t rows = 0;
  bool raw = false;              // the input came as raw_input_contents
  std::vector<float> converted;  // holds the data when the datatype was not FP32
};

// Validates the request's inputs against `spec` (at most `max_batch_size`
// rows) and locates or converts the input rows.
core::Status DecodeInferInput(const inference::ModelInferRequest& request,
                              const core::ModelSpec& spec, int64_t max_batch_size,
                              DecodedInput* out);

// Fills the response's metadata and one FP32 output tensor of rows ×
// output_features, raw or typed as `raw` says, and returns where the engine
// must write it. INVALID_ARGUMENT if the request asks for an output the model
// does not have.
core::StatusOr<float*> PrepareInferResponse(const inference::ModelInferRequest& request,
                                            const core::ModelSpec& spec, const std::string& version,
                                            int64_t rows, bool raw,
                                            inference::ModelInferResponse* response);

// IEEE half / bfloat16 → float (exact).
float HalfToFloat(uint16_t h);
float Bfloat16ToFloat(uint16_t b);

}  // namespace selu::grpc_transport
