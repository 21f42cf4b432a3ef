// The KServe v2 REST binding's inference bodies, to and from the protocol's
// ModelInferRequest / ModelInferResponse, so that REST inference goes down
// exactly the path gRPC's ModelInfer takes (server/grpc/infer_job.h) and
// gets the same validation, messages, statistics and batches.
//
// Request body: the JSON object of the KServe v2 REST spec
//   {"id": "...", "parameters": {...},
//    "inputs":  [{"name", "datatype", "shape", "parameters"?, "data"}],
//    "outputs": [{"name", "parameters"?}]}
// with "data" flat or nested (row-major), or, with Triton's binary tensor
// extension, the JSON header (its length in the Inference-Header-Content-
// Length header) followed by the inputs whose parameter binary_data_size
// gives their byte count, in input order, little-endian (BYTES: 4-byte
// length-prefixed strings), the same bytes as raw_input_contents.
// JSON data becomes the typed contents field of the datatype (FP32 →
// fp32_contents, FP64 → fp64_contents, INT* → int/int64_contents, ...;
// FP16 and BF16, which have no typed field, are rounded to their raw bytes).
// Parameters other than the binary extension's (binary_data_size,
// binary_data, binary_data_output) are carried into the request as
// InferParameters (bool, int64, uint64, double or string), e.g. an output's
// "classification".
//
// Response body: {"model_name", "model_version", "id"?, "parameters"?,
// "outputs": [{"name", "datatype", "shape", "data" | "parameters":
// {"binary_data_size": n}}]}; an output goes binary (after the JSON, in
// output order) when its request entry says binary_data true, or when the
// request parameter binary_data_output is true and its entry does not say
// false. FP32 values print as the shortest text that reads back to the same
// float; BYTES outputs as JSON strings.
//
// Thread safety: stateless functions.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "proto/grpc_service.pb.h"
#include "server/core/base/status.h"

namespace selu::http {

// A REST inference request turned into the protocol's message, plus what the
// binary extension asked of the outputs.
struct RestInferRequest {
  inference::ModelInferRequest request;
  // Request parameter binary_data_output.
  bool binary_output_default = false;
  // Per requested output (request.outputs order): its binary_data
  // parameter, if given.
  std::vector<std::optional<bool>> output_binary;
};

// Deepest nesting of arrays and objects a request body may have.
inline constexpr int kMaxJsonDepth = 32;

// Parses `body` (its first `header_length` bytes the JSON, the rest the
// binary section; nullopt: all JSON) for `model_name` / `model_version`.
// INVALID_ARGUMENT with a message naming the field for anything malformed.
core::Status ParseInferRequest(std::string_view body, std::optional<size_t> header_length,
                               std::string_view model_name, std::string_view model_version,
                               RestInferRequest* out);

// The HTTP body for `response` to `request`; `json_length` is the length of
// its JSON part (== body->size() when no output is binary).
core::Status RenderInferResponse(const RestInferRequest& request,
                                 const inference::ModelInferResponse& response, std::string* body,
                                 size_t* json_length);

// {"error": message} (the message escaped; invalid UTF-8 replaced).
std::string ErrorBody(std::string_view message);

// IEEE half / bfloat16 from float, round to nearest even (NaN stays NaN).
uint16_t FloatToHalf(float f);
uint16_t FloatToBfloat16(float f);

}  // namespace selu::http
