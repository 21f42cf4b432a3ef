// DecodeInferInput: a ModelInfer request's inputs checked against the model
// and turned into packed rows (see infer_codec.h). The response side is in
// infer_response.cc.
#include "server/grpc/infer_codec.h"

#include <cmath>
#include <cstring>
#include <string>

#include "server/core/base/client_text.h"
#include "server/grpc/infer_codec_internal.h"

namespace selu::grpc_transport {
namespace {

using core::InvalidArgumentError;
using core::Status;
using InputTensor = inference::ModelInferRequest::InferInputTensor;

// A model input as the checks see it: the chain view's fields for a model
// with one input, or one of spec.inputs.
struct Port {
  const std::string& name;
  const std::vector<int64_t>& shape;
  int64_t features;
};

// The client's shape as a message quotes it: the first dims only, so that a
// shape of thousands of dims cannot make a message over gRPC's 8 KB limit.
std::string ShapeString(const google::protobuf::RepeatedField<int64_t>& shape) {
  constexpr int kShownDims = 8;
  std::string s = "[";
  for (int i = 0; i < shape.size() && i < kShownDims; ++i) {
    if (i) s += ",";
    s += std::to_string(shape[i]);
  }
  if (shape.size() > kShownDims) s += ",... (" + std::to_string(shape.size()) + " dims)";
  return s + "]";
}

std::string ExpectedShape(const Port& port) {
  std::string s = "[N," + std::to_string(port.features) + "]";
  if (port.shape.size() > 2) {
    s += " or [N";
    for (size_t i = 1; i < port.shape.size(); ++i) s += "," + std::to_string(port.shape[i]);
    s += "]";
  }
  return s;
}

std::string Where(const InputTensor& input) {
  return "input '" + core::QuoteClientText(input.name()) + "'";
}

// Rows of a shape that matches the input's port, or an error.
core::StatusOr<int64_t> RowsOf(const InputTensor& input, const Port& port, int64_t max_batch_size) {
  const auto& shape = input.shape();
  bool matches = false;
  if (shape.size() == 2 && shape[1] == port.features) matches = true;
  if (!matches && port.shape.size() > 2 && shape.size() == static_cast<int>(port.shape.size())) {
    matches = true;
    for (size_t i = 1; i < port.shape.size(); ++i) {
      if (shape[static_cast<int>(i)] != port.shape[i]) matches = false;
    }
  }
  if (!matches) {
    return InvalidArgumentError(Where(input) + " has shape " + ShapeString(shape) +
                                "; the model expects " + ExpectedShape(port));
  }
  const int64_t rows = shape[0];
  if (rows < 1) {
    return InvalidArgumentError(Where(input) + " has shape " + ShapeString(shape) +
                                "; the batch dimension must be at least 1");
  }
  if (rows > max_batch_size) {
    return InvalidArgumentError(Where(input) + " has a batch of " + std::to_string(rows) +
                                " rows, over the model's max_batch_size of " +
                                std::to_string(max_batch_size));
  }
  return rows;
}

Status NonFinite(float value, int64_t row, int64_t column, int64_t features,
                 const std::string& name) {
  return InvalidArgumentError("input '" + core::QuoteClientText(name) +
                              "' has a non-finite value (" +
                              (std::isnan(value) ? "NaN"
                               : value > 0       ? "+inf"
                                                 : "-inf") +
                              ") at index " + std::to_string(row * features + column) + " (row " +
                              std::to_string(row) + ", column " + std::to_string(column) + ")");
}

// Every value of `rows` rows of `features` floats, `stride` floats apart.
Status CheckFinite(const float* data, int64_t rows, int64_t features, int64_t stride,
                   const std::string& name) {
  if (stride == features) {
    const int64_t count = rows * features;
    for (int64_t i = 0; i < count; ++i) {
      if (!std::isfinite(data[i]))
        return NonFinite(data[i], i / features, i % features, features, name);
    }
    return core::OkStatus();
  }
  for (int64_t r = 0; r < rows; ++r) {
    const float* row = data + r * stride;
    for (int64_t c = 0; c < features; ++c) {
      if (!std::isfinite(row[c])) return NonFinite(row[c], r, c, features, name);
    }
  }
  return core::OkStatus();
}

int ElementSize(const std::string& datatype) {
  if (datatype == "FP32") return 4;
  if (datatype == "FP64") return 8;
  if (datatype == "FP16" || datatype == "BF16") return 2;
  return 0;
}

bool HasTypedContents(const InputTensor& input) {
  return input.has_contents() && input.contents().ByteSizeLong() > 0;
}

// One request input checked against its port.
struct CheckedInput {
  const InputTensor* tensor = nullptr;
  const std::string* raw = nullptr;  // its raw_input_contents entry; null: typed contents
  int element_size = 0;
  int64_t rows = 0;
};

// The datatype and the shape of `input`: fills element_size and rows.
Status CheckForm(const InputTensor& input, const Port& port, int64_t max_batch_size,
                 CheckedInput* out) {
  out->tensor = &input;
  out->element_size = ElementSize(input.datatype());
  if (out->element_size == 0) {
    return InvalidArgumentError(Where(input) + " has datatype '" +
                                core::QuoteClientText(input.datatype()) +
                                "'; expected FP32 (FP64, FP16 and BF16 are converted)");
  }
  auto rows = RowsOf(input, port, max_batch_size);
  if (!rows.ok()) return rows.status();
  out->rows = *rows;
  return core::OkStatus();
}

// The amount of data (raw bytes or typed values) `in` holds for its shape.
Status CheckData(const CheckedInput& in, const Port& port) {
  const InputTensor& input = *in.tensor;
  const int64_t count = in.rows * port.features;
  if (in.raw != nullptr) {
    const size_t need = static_cast<size_t>(count) * in.element_size;
    if (in.raw->size() != need) {
      return InvalidArgumentError(
          "raw_input_contents for " + Where(input) + " holds " + std::to_string(in.raw->size()) +
          " bytes; shape " + ShapeString(input.shape()) + " of " +
          core::QuoteClientText(input.datatype()) + " needs " + std::to_string(need));
    }
    return core::OkStatus();
  }
  const auto& c = input.contents();
  if (input.datatype() == "FP32") {
    if (c.fp32_contents_size() != count) {
      return InvalidArgumentError(Where(input) + " has " + std::to_string(c.fp32_contents_size()) +
                                  " values in contents.fp32_contents; shape " +
                                  ShapeString(input.shape()) + " needs " + std::to_string(count));
    }
  } else if (input.datatype() == "FP64") {
    if (c.fp64_contents_size() != count) {
      return InvalidArgumentError(Where(input) + " has " + std::to_string(c.fp64_contents_size()) +
                                  " values in contents.fp64_contents; shape " +
                                  ShapeString(input.shape()) + " needs " + std::to_string(count));
    }
  } else {
    return InvalidArgumentError(Where(input) + " is " + core::QuoteClientText(input.datatype()) +
                                ", which has no typed contents field; send it in "
                                "raw_input_contents");
  }
  // Values in a field other than the datatype's are a client bug, not
  // something to ignore.
  const int stray = c.bool_contents_size() + c.int_contents_size() + c.int64_contents_size() +
                    c.uint_contents_size() + c.uint64_contents_size() + c.bytes_contents_size() +
                    (input.datatype() == "FP32" ? c.fp64_contents_size() : c.fp32_contents_size());
  if (stray > 0) {
    return InvalidArgumentError(Where(input) + " is " + core::QuoteClientText(input.datatype()) +
                                " but its contents also hold values of another type");
  }
  return core::OkStatus();
}

// FP32 values of a checked input as the request holds them (no copy).
const float* Fp32InPlace(const CheckedInput& in) {
  if (in.raw != nullptr) return reinterpret_cast<const float*>(in.raw->data());
  return in.tensor->contents().fp32_contents().data();
}

// Writes the input's values as floats: row r at dst + r·stride.
void CopyRows(const CheckedInput& in, int64_t features, float* dst, int64_t stride) {
  const std::string& type = in.tensor->datatype();
  if (type == "FP32") {
    const float* src = Fp32InPlace(in);
    for (int64_t r = 0; r < in.rows; ++r) {
      std::memcpy(dst + r * stride, src + r * features, static_cast<size_t>(features) * 4);
    }
    return;
  }
  const bool fp16 = type == "FP16";
  for (int64_t r = 0; r < in.rows; ++r) {
    float* row = dst + r * stride;
    for (int64_t c = 0; c < features; ++c) {
      const int64_t i = r * features + c;
      if (in.raw == nullptr) {
        row[c] = static_cast<float>(in.tensor->contents().fp64_contents(static_cast<int>(i)));
      } else if (in.element_size == 8) {
        double v;
        std::memcpy(&v, in.raw->data() + i * 8, 8);
        row[c] = static_cast<float>(v);
      } else {
        uint16_t v;
        std::memcpy(&v, in.raw->data() + i * 2, 2);
        row[c] = fp16 ? HalfToFloat(v) : Bfloat16ToFloat(v);
      }
    }
  }
}

// The model with one input: its rows are the packed rows, used in place when
// they are FP32.
Status DecodeSingle(const inference::ModelInferRequest& request, const core::ModelSpec& spec,
                    int64_t max_batch_size, DecodedInput* out) {
  if (request.inputs_size() != 1) {
    return InvalidArgumentError("model '" + core::QuoteClientText(request.model_name()) +
                                "' takes 1 input ('" + core::QuoteClientText(spec.input_name) +
                                "'), the request has " + std::to_string(request.inputs_size()));
  }
  const auto& input = request.inputs(0);
  if (input.name() != spec.input_name) {
    return InvalidArgumentError("unknown input '" + core::QuoteClientText(input.name()) +
                                "'; model '" + core::QuoteClientText(request.model_name()) +
                                "' takes input '" + core::QuoteClientText(spec.input_name) + "'");
  }
  const Port port{spec.input_name, spec.input_shape, spec.input_features};
  CheckedInput in;
  SELU_RETURN_IF_ERROR(CheckForm(input, port, max_batch_size, &in));
  if (request.raw_input_contents_size() > 0) {
    if (request.raw_input_contents_size() != 1) {
      return InvalidArgumentError("the request has " +
                                  std::to_string(request.raw_input_contents_size()) +
                                  " raw_input_contents entries for 1 input");
    }
    if (HasTypedContents(input)) {
      return InvalidArgumentError(Where(input) +
                                  " has both contents and raw_input_contents; send one of them");
    }
    in.raw = &request.raw_input_contents(0);
  }
  SELU_RETURN_IF_ERROR(CheckData(in, port));
  out->rows = in.rows;
  out->raw = in.raw != nullptr;
  if (input.datatype() == "FP32") {
    out->data = Fp32InPlace(in);
  } else {
    out->converted.resize(static_cast<size_t>(in.rows * spec.input_features));
    CopyRows(in, spec.input_features, out->converted.data(), spec.input_features);
    out->data = out->converted.data();
  }
  return CheckFinite(out->data, in.rows, spec.input_features, spec.input_features, input.name());
}

// A model with several inputs: each request input matched to its port by
// name, checked, and copied into its columns of the packed rows.
Status DecodeSeveral(const inference::ModelInferRequest& request, const core::ModelSpec& spec,
                     int64_t max_batch_size, DecodedInput* out) {
  const std::vector<core::TensorPort>& ports = spec.inputs;
  const std::string model = "model '" + core::QuoteClientText(request.model_name()) + "'";
  std::vector<CheckedInput> checked(ports.size());
  auto port_of = [&](const InputTensor& input) {
    size_t k = 0;
    while (k < ports.size() && ports[k].name != input.name()) ++k;
    return k;
  };
  for (const InputTensor& input : request.inputs()) {
    const size_t k = port_of(input);
    if (k == ports.size()) {
      return InvalidArgumentError("unknown input '" + core::QuoteClientText(input.name()) + "'; " +
                                  model + " takes inputs " + internal::PortNames(ports));
    }
    if (checked[k].tensor != nullptr) {
      return InvalidArgumentError("the request has input '" + core::QuoteClientText(input.name()) +
                                  "' twice");
    }
    checked[k].tensor = &input;
  }
  for (size_t k = 0; k < ports.size(); ++k) {
    if (checked[k].tensor == nullptr) {
      return InvalidArgumentError("the request lacks input '" +
                                  core::QuoteClientText(ports[k].name) + "'; " + model +
                                  " takes inputs " + internal::PortNames(ports));
    }
  }
  // Raw entries go, in request order, to the inputs without typed contents
  // (with every input raw: entry i to inputs[i]).
  const int raw_count = request.raw_input_contents_size();
  if (raw_count > 0) {
    int untyped = 0;
    const InputTensor* typed = nullptr;
    for (const InputTensor& input : request.inputs()) {
      if (!HasTypedContents(input)) {
        ++untyped;
      } else if (typed == nullptr) {
        typed = &input;
      }
    }
    if (raw_count == request.inputs_size() && typed != nullptr) {
      return InvalidArgumentError(Where(*typed) +
                                  " has both contents and raw_input_contents; send one of them");
    }
    if (raw_count != untyped) {
      return InvalidArgumentError("the request has " + std::to_string(raw_count) +
                                  " raw_input_contents entries for " + std::to_string(untyped) +
                                  (untyped == 1 ? " input" : " inputs") + " without contents");
    }
    int next_raw = 0;
    for (const InputTensor& input : request.inputs()) {
      if (!HasTypedContents(input))
        checked[port_of(input)].raw = &request.raw_input_contents(next_raw++);
    }
  }
  int64_t rows = 0;
  for (size_t k = 0; k < ports.size(); ++k) {
    const Port port{ports[k].name, ports[k].shape, ports[k].features};
    const InputTensor& input = *checked[k].tensor;
    SELU_RETURN_IF_ERROR(CheckForm(input, port, max_batch_size, &checked[k]));
    if (k > 0 && checked[k].rows != rows) {
      return InvalidArgumentError(Where(input) + " has a batch of " +
                                  std::to_string(checked[k].rows) + " rows, " +
                                  Where(*checked[0].tensor) + " one of " + std::to_string(rows) +
                                  ": every input must have the same batch size");
    }
    rows = checked[k].rows;
    SELU_RETURN_IF_ERROR(CheckData(checked[k], port));
  }
  const int64_t stride = spec.input_features;
  out->rows = rows;
  out->raw = raw_count > 0;
  out->converted.resize(static_cast<size_t>(rows * stride));
  for (size_t k = 0; k < ports.size(); ++k) {
    float* columns = out->converted.data() + ports[k].offset;
    CopyRows(checked[k], ports[k].features, columns, stride);
    SELU_RETURN_IF_ERROR(CheckFinite(columns, rows, ports[k].features, stride, ports[k].name));
  }
  out->data = out->converted.data();
  return core::OkStatus();
}

}  // namespace

namespace internal {

std::string PortNames(const std::vector<core::TensorPort>& ports) {
  constexpr size_t kShownNames = 8;
  std::string s;
  for (size_t i = 0; i < ports.size() && i < kShownNames; ++i) {
    if (i) s += ", ";
    s += "'" + core::QuoteClientText(ports[i].name) + "'";
  }
  if (ports.size() > kShownNames) s += ", ... (" + std::to_string(ports.size()) + " in all)";
  return s;
}

}  // namespace internal

float HalfToFloat(uint16_t h) {
  const uint32_t sign = uint32_t(h & 0x8000) << 16;
  uint32_t exponent = (h >> 10) & 0x1f;
  uint32_t mantissa = h & 0x3ff;
  uint32_t bits;
  if (exponent == 0x1f) {
    bits = sign | 0x7f800000u | (mantissa << 13);  // inf / NaN
  } else if (exponent != 0) {
    bits = sign | ((exponent + 112) << 23) | (mantissa << 13);
  } else if (mantissa == 0) {
    bits = sign;  // ±0
  } else {
    // Subnormal half: normalise.
    exponent = 113;
    while ((mantissa & 0x400) == 0) {
      mantissa <<= 1;
      --exponent;
    }
    bits = sign | (exponent << 23) | ((mantissa & 0x3ff) << 13);
  }
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

float Bfloat16ToFloat(uint16_t b) {
  const uint32_t bits = uint32_t(b) << 16;
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

Status DecodeInferInput(const inference::ModelInferRequest& request, const core::ModelSpec& spec,
                        int64_t max_batch_size, DecodedInput* out) {
  if (spec.inputs.size() <= 1) return DecodeSingle(request, spec, max_batch_size, out);
  return DecodeSeveral(request, spec, max_batch_size, out);
}

}  // namespace selu::grpc_transport
