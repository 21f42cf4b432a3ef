// Decoding of ONNX constant tensors: raw or typed fp32/fp64 data, checked
// against the tensor's dims before anything is allocated.
#include "server/core/model/onnx_tensor_decode.h"

#include <cmath>
#include <cstdint>
#include <cstring>

namespace selu::core::onnx_internal {
namespace {

// Element count of `dims`, refusing negative dims and overflow.
StatusOr<int64_t> ElementCount(const google::protobuf::RepeatedField<int64_t>& dims,
                               const std::string& what, int64_t max_elements) {
  int64_t count = 1;
  for (int64_t d : dims) {
    if (d < 0) return InvalidArgumentError(what + " has a negative dimension");
    if (d != 0 && count > max_elements / d) {
      return InvalidArgumentError(what + " is too large");
    }
    count *= d;
  }
  return count;
}

}  // namespace

Status ReadFloats(const ConstTensor& ct, const std::string& label, std::vector<float>* out) {
  const onnx::TensorProto& t = *ct.tensor;
  const std::string what = "tensor '" + t.name() + "' (" + ct.origin + ")";
  if (t.data_location() == onnx::TensorProto::EXTERNAL || t.external_data_size() > 0) {
    return Refuse(label, what +
                             " uses external data; only weights stored inside the model file "
                             "are supported");
  }
  constexpr int64_t kMaxElements = int64_t{1} << 31;
  auto count_or = ElementCount(t.dims(), what, kMaxElements);
  if (!count_or.ok()) return count_or.status().WithPrefix(label);
  const int64_t n = *count_or;
  // Sizes are checked against the dims before anything is allocated, so a
  // hostile dims field cannot ask for gigabytes.
  switch (t.data_type()) {
    case onnx::TensorProto::FLOAT:
      if (!t.raw_data().empty()) {
        if (t.raw_data().size() != static_cast<size_t>(n) * sizeof(float)) {
          return Refuse(label, what + " holds " + std::to_string(t.raw_data().size()) +
                                   " bytes of raw data, its dims need " +
                                   std::to_string(n * sizeof(float)));
        }
        out->resize(static_cast<size_t>(n));
        std::memcpy(out->data(), t.raw_data().data(), t.raw_data().size());
      } else {
        if (t.float_data_size() != n) {
          return Refuse(label, what + " holds " + std::to_string(t.float_data_size()) +
                                   " float values, its dims need " + std::to_string(n));
        }
        out->assign(t.float_data().begin(), t.float_data().end());
      }
      break;
    case onnx::TensorProto::DOUBLE:
      if (!t.raw_data().empty()) {
        if (t.raw_data().size() != static_cast<size_t>(n) * sizeof(double)) {
          return Refuse(label, what + " holds " + std::to_string(t.raw_data().size()) +
                                   " bytes of raw data, its dims need " +
                                   std::to_string(n * sizeof(double)));
        }
        out->resize(static_cast<size_t>(n));
        for (int64_t i = 0; i < n; ++i) {
          double v;
          std::memcpy(&v, t.raw_data().data() + i * sizeof(double), sizeof(double));
          (*out)[i] = static_cast<float>(v);
        }
      } else {
        if (t.double_data_size() != n) {
          return Refuse(label, what + " holds " + std::to_string(t.double_data_size()) +
                                   " double values, its dims need " + std::to_string(n));
        }
        out->resize(static_cast<size_t>(n));
        for (int64_t i = 0; i < n; ++i) (*out)[i] = static_cast<float>(t.double_data(i));
      }
      break;
    default:
      return Refuse(label, what + " has element type " +
                               onnx::TensorProto::DataType_Name(
                                   static_cast<onnx::TensorProto::DataType>(t.data_type())) +
                               "; weights must be FLOAT (or DOUBLE, converted)");
  }
  for (int64_t i = 0; i < n; ++i) {
    if (!std::isfinite((*out)[i])) {
      return Refuse(label, what + " has a non-finite value at index " + std::to_string(i));
    }
  }
  return OkStatus();
}

}  // namespace selu::core::onnx_internal
