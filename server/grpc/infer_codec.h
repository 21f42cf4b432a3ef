// Conversions between Open Inference Protocol v2 messages and the core's
// packed fp32 rows (model_spec.h), with the validation that gives every
// malformed request a precise INVALID_ARGUMENT.
//
// Inputs: every input of the model, named as the model names it, in any
// order, each once; datatype FP32 or FP64/FP16/BF16 (converted); shape
// [N, features] or [N, <the input's declared dims>], N the same for all;
// data either in `contents` (fp32/fp64) or in raw_input_contents
// (little-endian), never both for one input; every value finite. The
// raw_input_contents entries go, in order, to the inputs that have no
// contents (with every input raw: entry i is inputs[i], as the protocol
// says). A model with one input takes its rows in place when they are FP32
// (no copy); a model with several gets them packed into one buffer.
//
// Outputs: those the request lists in `outputs`, in that order, or every
// output of the model in model order; each FP32 [N, <its declared dims>].
// They come back raw when any input came raw, typed otherwise. A model with
// one output has the engine write into the response in place; with several,
// the engine writes packed answer rows that FinishInferResponse cuts into
// the outputs.
//
// Classification (Triton's extension, server/core/model/classification.h):
// a listed output with parameter "classification" (int64_param k ≥ 1, as
// Triton's clients send it; uint64_param is taken too) comes back BYTES
// [N, min(k, <its features>)], each row's k best classes as
// "<score>:<index>[:<label>]" strings: in contents.bytes_contents when
// typed, or raw as Triton serializes BYTES (per element a 4-byte
// little-endian length, then the bytes). The engine then writes packed rows
// for a one-output model too. Any other value of the parameter is
// INVALID_ARGUMENT naming the output. Requests whose outputs carry no
// parameters take the paths above unchanged.
//
// Thread safety: stateless functions.
#pragma once

#include <cstdint>
#include <vector>

#include "proto/grpc_service.pb.h"
#include "server/core/base/status.h"
#include "server/core/model/classification.h"
#include "server/core/model/model_spec.h"

namespace selu::grpc_transport {

struct DecodedInput {
  const float* data =
      nullptr;  // rows × input_features packed rows; into the request or `converted`
  int64_t rows = 0;
  bool raw = false;              // some input came as raw_input_contents
  std::vector<float> converted;  // holds the rows when they are not used in place
};

// Validates the request's inputs against `spec` (at most `max_batch_size`
// rows) and locates, converts or packs the input rows.
core::Status DecodeInferInput(const inference::ModelInferRequest& request,
                              const core::ModelSpec& spec, int64_t max_batch_size,
                              DecodedInput* out);

// How the engine's answer reaches the response for a model with several
// outputs, or with classification (unused, and allocation-free, for a model
// with one output and no classification). May be reused for another
// request, of any model.
struct PreparedOutputs {
  std::vector<float> packed;  // rows × output_features, written by the engine
  std::vector<int> ports;     // response output i is spec.outputs[ports[i]]
  int64_t rows = 0;
  // Per response output, the classes its classification asks for (0: an
  // FP32 tensor); empty when no output asks for classification.
  std::vector<int64_t> classes;
};

// Fills the response's metadata and its output tensors for `rows` rows, raw
// or typed as `raw` says, and returns where the engine must write the packed
// answer rows: in the response for a model with one output and no
// classification, in `prepared->packed` otherwise. INVALID_ARGUMENT if the
// request asks for an output the model does not have (or, with several
// outputs, one twice), or gives a bad "classification" parameter.
core::StatusOr<float*> PrepareInferResponse(const inference::ModelInferRequest& request,
                                            const core::ModelSpec& spec, const std::string& version,
                                            int64_t rows, bool raw,
                                            inference::ModelInferResponse* response,
                                            PreparedOutputs* prepared);

// Once the engine has written the answer: copies each output's columns of
// the packed rows into its tensor, or writes its classification strings with
// `labels` (the model version's). Nothing to do for a model with one output
// and no classification.
void FinishInferResponse(const core::ModelSpec& spec, const core::ClassLabels& labels,
                         const PreparedOutputs& prepared, inference::ModelInferResponse* response);

// IEEE half / bfloat16 → float (exact).
float HalfToFloat(uint16_t h);
float Bfloat16ToFloat(uint16_t b);

}  // namespace selu::grpc_transport
