// Private to server/core/model (not included outside it): decoding the
// constant tensors of an ONNX graph (initializers and Constant nodes' values)
// into floats, with every size checked before anything is allocated.
#pragma once

#include <onnx/onnx_pb.h>

#include <string>
#include <vector>

#include "server/core/base/status.h"

namespace selu::core::onnx_internal {

// A constant tensor known by name: an initializer or a Constant node's value.
struct ConstTensor {
  const onnx::TensorProto* tensor;
  std::string origin;  // "initializer" or "Constant node 'x'"
};

// Every refusal of the loader names where it happened: "<where>: <why>".
inline Status Refuse(const std::string& where, const std::string& why) {
  return InvalidArgumentError(where + ": " + why);
}

// Reads a constant tensor as floats (fp32 or fp64 source), checking its size
// against its dims and that every value is finite. Refusals start with
// `label`, the node that reads the tensor.
Status ReadFloats(const ConstTensor& ct, const std::string& label, std::vector<float>* out);

}  // namespace selu::core::onnx_internal
