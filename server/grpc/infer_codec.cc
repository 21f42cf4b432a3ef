#include "server/grpc/infer_codec.h"

#include <cmath>
#include <cstring>
#include <string>

#include "server/core/base/client_text.h"

namespace selu::grpc_transport {
namespace {

using core::InvalidArgumentError;
using core::Status;

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

std::string ExpectedShape(const core::ModelSpec& spec) {
  std::string s = "[N," + std::to_string(spec.input_features) + "]";
  if (spec.input_shape.size() > 2) {
    s += " or [N";
    for (size_t i = 1; i < spec.input_shape.size(); ++i) {
      s += "," + std::to_string(spec.input_shape[i]);
    }
    s += "]";
  }
  return s;
}

// Rows of a shape that matches the model's input, or an error.
core::StatusOr<int64_t> RowsOf(const inference::ModelInferRequest::InferInputTensor& input,
                               const core::ModelSpec& spec, int64_t max_batch_size) {
  const auto& shape = input.shape();
  const std::string where = "input '" + core::QuoteClientText(input.name()) + "'";
  bool matches = false;
  if (shape.size() == 2 && shape[1] == spec.input_features) matches = true;
  if (!matches && spec.input_shape.size() > 2 &&
      shape.size() == static_cast<int>(spec.input_shape.size())) {
    matches = true;
    for (size_t i = 1; i < spec.input_shape.size(); ++i) {
      if (shape[static_cast<int>(i)] != spec.input_shape[i]) matches = false;
    }
  }
  if (!matches) {
    return InvalidArgumentError(where + " has shape " + ShapeString(shape) +
                                "; the model expects " + ExpectedShape(spec));
  }
  const int64_t rows = shape[0];
  if (rows < 1) {
    return InvalidArgumentError(where + " has shape " + ShapeString(shape) +
                                "; the batch dimension must be at least 1");
  }
  if (rows > max_batch_size) {
    return InvalidArgumentError(where + " has a batch of " + std::to_string(rows) +
                                " rows, over the model's max_batch_size of " +
                                std::to_string(max_batch_size));
  }
  return rows;
}

Status CheckFinite(const float* data, int64_t count, int64_t features, const std::string& name) {
  for (int64_t i = 0; i < count; ++i) {
    if (!std::isfinite(data[i])) {
      return InvalidArgumentError(
          "input '" + core::QuoteClientText(name) + "' has a non-finite value (" +
          (std::isnan(data[i]) ? "NaN"
           : data[i] > 0       ? "+inf"
                               : "-inf") +
          ") at index " + std::to_string(i) + " (row " + std::to_string(i / features) +
          ", column " + std::to_string(i % features) + ")");
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

}  // namespace

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
  const std::string where = "input '" + core::QuoteClientText(input.name()) + "'";
  const int element_size = ElementSize(input.datatype());
  if (element_size == 0) {
    return InvalidArgumentError(where + " has datatype '" +
                                core::QuoteClientText(input.datatype()) +
                                "'; expected FP32 (FP64, FP16 and BF16 are converted)");
  }
  auto rows = RowsOf(input, spec, max_batch_size);
  if (!rows.ok()) return rows.status();
  const int64_t count = *rows * spec.input_features;
  out->rows = *rows;

  const bool has_typed = input.has_contents() && input.contents().ByteSizeLong() > 0;
  if (request.raw_input_contents_size() > 0) {
    if (request.raw_input_contents_size() != 1) {
      return InvalidArgumentError("the request has " +
                                  std::to_string(request.raw_input_contents_size()) +
                                  " raw_input_contents entries for 1 input");
    }
    if (has_typed) {
      return InvalidArgumentError(where +
                                  " has both contents and raw_input_contents; send one of them");
    }
    const std::string& raw = request.raw_input_contents(0);
    const size_t need = static_cast<size_t>(count) * element_size;
    if (raw.size() != need) {
      return InvalidArgumentError(
          "raw_input_contents for " + where + " holds " + std::to_string(raw.size()) +
          " bytes; shape " + ShapeString(input.shape()) + " of " +
          core::QuoteClientText(input.datatype()) + " needs " + std::to_string(need));
    }
    out->raw = true;
    if (input.datatype() == "FP32") {
      out->data = reinterpret_cast<const float*>(raw.data());
    } else {
      out->converted.resize(static_cast<size_t>(count));
      for (int64_t i = 0; i < count; ++i) {
        if (element_size == 8) {
          double v;
          std::memcpy(&v, raw.data() + i * 8, 8);
          out->converted[i] = static_cast<float>(v);
        } else {
          uint16_t v;
          std::memcpy(&v, raw.data() + i * 2, 2);
          out->converted[i] = input.datatype() == "FP16" ? HalfToFloat(v) : Bfloat16ToFloat(v);
        }
      }
      out->data = out->converted.data();
    }
  } else {
    out->raw = false;
    const auto& c = input.contents();
    if (input.datatype() == "FP32") {
      if (c.fp32_contents_size() != count) {
        return InvalidArgumentError(where + " has " + std::to_string(c.fp32_contents_size()) +
                                    " values in contents.fp32_contents; shape " +
                                    ShapeString(input.shape()) + " needs " + std::to_string(count));
      }
      out->data = c.fp32_contents().data();
    } else if (input.datatype() == "FP64") {
      if (c.fp64_contents_size() != count) {
        return InvalidArgumentError(where + " has " + std::to_string(c.fp64_contents_size()) +
                                    " values in contents.fp64_contents; shape " +
                                    ShapeString(input.shape()) + " needs " + std::to_string(count));
      }
      out->converted.assign(c.fp64_contents().begin(), c.fp64_contents().end());
      out->data = out->converted.data();
    } else {
      return InvalidArgumentError(where + " is " + core::QuoteClientText(input.datatype()) +
                                  ", which has no typed contents field; send it in "
                                  "raw_input_contents");
    }
    // Values in a field other than the datatype's are a client bug, not
    // something to ignore.
    const int stray =
        c.bool_contents_size() + c.int_contents_size() + c.int64_contents_size() +
        c.uint_contents_size() + c.uint64_contents_size() + c.bytes_contents_size() +
        (input.datatype() == "FP32" ? c.fp64_contents_size() : c.fp32_contents_size());
    if (stray > 0) {
      return InvalidArgumentError(where + " is " + core::QuoteClientText(input.datatype()) +
                                  " but its contents also hold values of another type");
    }
  }
  return CheckFinite(out->data, count, spec.input_features, input.name());
}

core::StatusOr<float*> PrepareInferResponse(const inference::ModelInferRequest& request,
                                            const core::ModelSpec& spec, const std::string& version,
                                            int64_t rows, bool raw,
                                            inference::ModelInferResponse* response) {
  for (const auto& wanted : request.outputs()) {
    if (wanted.name() != spec.output_name) {
      return InvalidArgumentError("unknown output '" + core::QuoteClientText(wanted.name()) +
                                  "'; model '" + core::QuoteClientText(request.model_name()) +
                                  "' has output '" + core::QuoteClientText(spec.output_name) + "'");
    }
  }
  response->set_model_name(request.model_name());
  response->set_model_version(version);
  response->set_id(request.id());
  auto* output = response->add_outputs();
  output->set_name(spec.output_name);
  output->set_datatype("FP32");
  output->add_shape(rows);
  output->add_shape(spec.output_features);
  const size_t count = static_cast<size_t>(rows * spec.output_features);
  if (raw) {
    std::string* bytes = response->add_raw_output_contents();
    bytes->resize(count * sizeof(float));
    return reinterpret_cast<float*>(bytes->data());
  }
  auto* values = output->mutable_contents()->mutable_fp32_contents();
  values->Resize(static_cast<int>(count), 0.0f);
  return values->mutable_data();
}

}  // namespace selu::grpc_transport
