// Reads an ONNX file holding an MLP into a ModelSpec.
//
// Accepted graphs are a single chain from one fp32 input to one output:
//   [Flatten(axis=1)] (Gemm | MatMul [Add]) [activation...] ... [Softmax(last axis)]
// with activations Selu (its alpha/gamma honoured), Elu, Relu, Tanh, Sigmoid,
// and the no-ops Identity and Dropout. Weights must be fp32 (fp64 is
// converted) initializers, inline (raw_data or typed fields), finite.
// Anything else is refused with INVALID_ARGUMENT and a message naming the
// node, its op type and the reason (RESOURCE_EXHAUSTED for a file over the
// size limit, NOT_FOUND for a missing file). The loader never crashes on hostile input: every size
// and index is checked before use.
//
// Thread safety: stateless functions, safe from any thread.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "server/core/base/status.h"
#include "server/core/model/model_spec.h"

namespace selu::core {

struct OnnxLoaderOptions {
  // Files larger than this are refused before being read (RESOURCE_EXHAUSTED).
  int64_t max_file_bytes = int64_t{1} << 30;
  // Upper bound on any layer width, a guard against absurd shapes.
  int64_t max_features = int64_t{1} << 20;
  // Run onnx::checker::check_model on the parsed model.
  bool run_onnx_checker = true;
};

// Parses serialized ModelProto bytes.
StatusOr<ModelSpec> LoadOnnxModelFromBytes(std::string_view bytes,
                                           const OnnxLoaderOptions& options = {});

// Reads and parses a file. NOT_FOUND if it does not exist.
StatusOr<ModelSpec> LoadOnnxModelFromFile(const std::string& path,
                                          const OnnxLoaderOptions& options = {});

}  // namespace selu::core
