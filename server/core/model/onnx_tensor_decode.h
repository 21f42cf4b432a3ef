// Private to server/core/model (not included outside it): decoding the
// constant tensors of an ONNX graph (initializers and Constant nodes' values)
// into floats, with every size checked before anything is allocated.
#pragma once

#include <onnx/onnx_pb.h>

#include <cstdint>
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

// Reads a constant tensor as floats (FLOAT, or FLOAT16, BFLOAT16 and DOUBLE
// converted: the 16-bit types exactly, DOUBLE rounded to nearest), checking
// its size against its dims and that every value is finite (a DOUBLE beyond
// the FLOAT range is refused as non-finite). Refusals start with `label`,
// the node that reads the tensor.
Status ReadFloats(const ConstTensor& ct, const std::string& label, std::vector<float>* out);

// IEEE binary16 and bfloat16 bit patterns to float (exact).
float HalfToFloat(uint16_t bits);
float BFloat16ToFloat(uint16_t bits);

}  // namespace selu::core::onnx_internal
