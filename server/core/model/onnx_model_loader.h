// Reads an ONNX file holding an SNN (a SELU MLP, or a small graph of them)
// into a graph ModelSpec (see model_spec.h; CompleteModelSpec has run on it).
//
// Accepted graphs: one or more fp32 inputs [batch, dims...] and outputs; nodes
// reading any earlier tensor. Gemm and MatMul with constant weights are dense
// layers (one layer for every node reading the same weights the same way:
// an unrolled RNN's are held once); bias Adds, constant Add/Sub/Mul/Div and
// BatchNormalization fold into them, and activations (Selu with its
// alpha/gamma, Elu, Relu, LeakyRelu, PRelu, Tanh, Sigmoid, HardSigmoid,
// Softplus, Clip, GELU (erf), SiLU, HardSwish) fuse into them when the layer's
// output feeds nothing else; elsewhere they are activation steps. Add of two
// tensors of one shape, Concat of features, Softmax over the last axis;
// Gather, Slice and Split of one contiguous range of each row's features;
// Squeeze, Unsqueeze, Reshape and Flatten that keep the batch, and Identity,
// Dropout and Cast to FLOAT, which change no value. Weights must be fp32
// (fp16, bf16 and fp64 are converted) initializers, inline (raw_data or
// typed fields), finite. Anything else is refused with INVALID_ARGUMENT and
// a message naming the node, its op type and the reason (recurrent ops with
// a hint to unroll them; RESOURCE_EXHAUSTED for a file over the size limit,
// NOT_FOUND for a missing file); names from the file are quoted bounded. The
// loader never crashes on hostile input: every size and index is checked
// before use.
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
