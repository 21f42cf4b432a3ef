// Decoding of ONNX constant tensors: raw or typed fp32/fp16/bf16/fp64 data, checked
// against the tensor's dims before anything is allocated.
#include "server/core/model/onnx_tensor_decode.h"

#include <cmath>
#include <cstdint>
#include <cstring>

#include "server/core/base/client_text.h"

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

float HalfToFloat(uint16_t bits) {
  const uint32_t sign = static_cast<uint32_t>(bits & 0x8000u) << 16;
  const uint32_t exponent = (bits >> 10) & 0x1Fu;
  uint32_t mantissa = bits & 0x3FFu;
  uint32_t out;
  if (exponent == 0x1F) {
    out = sign | 0x7F800000u | (mantissa << 13);  // inf, NaN
  } else if (exponent != 0) {
    out = sign | ((exponent + 127 - 15) << 23) | (mantissa << 13);
  } else if (mantissa == 0) {
    out = sign;  // ±0
  } else {
    // Subnormal half: normalise; every one is a normal float.
    int e = -1;
    do {
      ++e;
      mantissa <<= 1;
    } while ((mantissa & 0x400u) == 0);
    out = sign | static_cast<uint32_t>(127 - 15 - e) << 23 | ((mantissa & 0x3FFu) << 13);
  }
  float f;
  std::memcpy(&f, &out, sizeof(f));
  return f;
}

float BFloat16ToFloat(uint16_t bits) {
  const uint32_t out = static_cast<uint32_t>(bits) << 16;
  float f;
  std::memcpy(&f, &out, sizeof(f));
  return f;
}

Status ReadFloats(const ConstTensor& ct, const std::string& label, std::vector<float>* out) {
  const onnx::TensorProto& t = *ct.tensor;
  const std::string what = "tensor '" + QuoteClientText(t.name()) + "' (" + ct.origin + ")";
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
    case onnx::TensorProto::FLOAT16:
    case onnx::TensorProto::BFLOAT16: {
      const bool half = t.data_type() == onnx::TensorProto::FLOAT16;
      const char* type = half ? "FLOAT16" : "BFLOAT16";
      // Two bytes per value in raw_data (little-endian), or one value per
      // int32_data entry holding the 16 bits.
      if (!t.raw_data().empty()) {
        if (t.raw_data().size() != static_cast<size_t>(n) * 2) {
          return Refuse(label, what + " holds " + std::to_string(t.raw_data().size()) +
                                   " bytes of raw data, its dims need " + std::to_string(n * 2));
        }
        out->resize(static_cast<size_t>(n));
        const auto* bytes = reinterpret_cast<const unsigned char*>(t.raw_data().data());
        for (int64_t i = 0; i < n; ++i) {
          const uint16_t bits = static_cast<uint16_t>(bytes[2 * i] | (bytes[2 * i + 1] << 8));
          (*out)[i] = half ? HalfToFloat(bits) : BFloat16ToFloat(bits);
        }
      } else {
        if (t.int32_data_size() != n) {
          return Refuse(label, what + " holds " + std::to_string(t.int32_data_size()) + " " + type +
                                   " values, its dims need " + std::to_string(n));
        }
        out->resize(static_cast<size_t>(n));
        for (int64_t i = 0; i < n; ++i) {
          const int32_t v = t.int32_data(static_cast<int>(i));
          if (v < 0 || v > 0xFFFF) {
            return Refuse(label, what + " has int32_data entry " + std::to_string(i) + " = " +
                                     std::to_string(v) + ", not a 16-bit " + type + " value");
          }
          const uint16_t bits = static_cast<uint16_t>(v);
          (*out)[i] = half ? HalfToFloat(bits) : BFloat16ToFloat(bits);
        }
      }
      break;
    }
    default:
      return Refuse(label, what + " has element type " +
                               onnx::TensorProto::DataType_Name(
                                   static_cast<onnx::TensorProto::DataType>(t.data_type())) +
                               "; weights must be FLOAT (or FLOAT16, BFLOAT16 or DOUBLE, "
                               "converted to FLOAT)");
  }
  for (int64_t i = 0; i < n; ++i) {
    if (!std::isfinite((*out)[i])) {
      return Refuse(label, what + " has a non-finite value at index " + std::to_string(i));
    }
  }
  return OkStatus();
}

}  // namespace selu::core::onnx_internal
