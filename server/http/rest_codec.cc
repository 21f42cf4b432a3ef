#include "server/http/rest_codec.h"

#include <cmath>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>

#include "server/core/base/client_text.h"

namespace selu::http {

namespace {

using core::InvalidArgumentError;
using core::Status;
using nlohmann::json;
using InputTensor = inference::ModelInferRequest::InferInputTensor;

// nlohmann's parser nests without bound and so would its destructor and our
// flattening: refuse deep bodies before parsing (strings skipped).
Status CheckDepth(std::string_view text) {
  int depth = 0;
  bool in_string = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (c == '\\') {
        ++i;
      } else if (c == '"') {
        in_string = false;
      }
      continue;
    }
    if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > kMaxJsonDepth) {
        return InvalidArgumentError("request JSON nests deeper than " +
                                    std::to_string(kMaxJsonDepth) + " levels");
      }
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  return core::OkStatus();
}

std::string Quoted(const std::string& s) { return "'" + core::QuoteClientText(s) + "'"; }

Status ToParameter(const std::string& key, const json& value, inference::InferParameter* out,
                   const std::string& where) {
  if (value.is_boolean()) {
    out->set_bool_param(value.get<bool>());
  } else if (value.is_number_integer() && !value.is_number_unsigned()) {
    out->set_int64_param(value.get<int64_t>());
  } else if (value.is_number_unsigned()) {
    const uint64_t u = value.get<uint64_t>();
    if (u <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      out->set_int64_param(static_cast<int64_t>(u));
    } else {
      out->set_uint64_param(u);
    }
  } else if (value.is_number_float()) {
    out->set_double_param(value.get<double>());
  } else if (value.is_string()) {
    out->set_string_param(value.get<std::string>());
  } else {
    return InvalidArgumentError(where + "parameter " + Quoted(key) +
                                " must be a bool, a number or a string");
  }
  return core::OkStatus();
}

Status RequireObject(const json& value, const std::string& what) {
  if (!value.is_object()) return InvalidArgumentError(what + " must be a JSON object");
  return core::OkStatus();
}

// Appends the leaves of a flat or nested "data" array, row-major.
class DataFlattener {
 public:
  DataFlattener(const std::string& where, const std::string& datatype)
      : where_(where), datatype_(datatype) {}

  Status Add(const json& value, InputTensor* input, std::string* raw) {
    if (value.is_array()) {
      for (const json& element : value) SELU_RETURN_IF_ERROR(Add(element, input, raw));
      return core::OkStatus();
    }
    auto* c = input->mutable_contents();
    const std::string& t = datatype_;
    if (t == "BYTES") {
      if (!value.is_string()) return Bad(value, "a string");
      c->add_bytes_contents(value.get_ref<const std::string&>());
    } else if (t == "BOOL") {
      if (!value.is_boolean()) return Bad(value, "true or false");
      c->add_bool_contents(value.get<bool>());
    } else if (t == "FP32" || t == "FP64" || t == "FP16" || t == "BF16") {
      if (!value.is_number()) return Bad(value, "a number");
      const double d = value.get<double>();
      if (t == "FP64") {
        c->add_fp64_contents(d);
      } else if (t == "FP32") {
        c->add_fp32_contents(static_cast<float>(d));
      } else {
        const uint16_t bits = t == "FP16" ? FloatToHalf(static_cast<float>(d))
                                          : FloatToBfloat16(static_cast<float>(d));
        raw->push_back(static_cast<char>(bits & 0xff));
        raw->push_back(static_cast<char>(bits >> 8));
      }
    } else if (t == "INT8" || t == "INT16" || t == "INT32") {
      if (!value.is_number_integer()) return Bad(value, "an integer");
      c->add_int_contents(static_cast<int32_t>(value.get<int64_t>()));
    } else if (t == "INT64") {
      if (!value.is_number_integer()) return Bad(value, "an integer");
      c->add_int64_contents(value.get<int64_t>());
    } else if (t == "UINT8" || t == "UINT16" || t == "UINT32") {
      if (!value.is_number_unsigned()) return Bad(value, "an unsigned integer");
      c->add_uint_contents(static_cast<uint32_t>(value.get<uint64_t>()));
    } else if (t == "UINT64") {
      if (!value.is_number_unsigned()) return Bad(value, "an unsigned integer");
      c->add_uint64_contents(value.get<uint64_t>());
    } else {
      // Left to the shared validation, which names the datatypes it takes.
      return core::OkStatus();
    }
    ++count_;
    return core::OkStatus();
  }

 private:
  Status Bad(const json& value, const char* expected) const {
    return InvalidArgumentError(where_ + " is " + Quoted(datatype_) + ": data element " +
                                std::to_string(count_) + " is " + value.type_name() +
                                ", expected " + expected);
  }
  const std::string& where_;
  const std::string& datatype_;
  int64_t count_ = 0;
};

Status ParseInput(const json& in, size_t index, InputTensor* input, std::string* raw,
                  std::optional<size_t>* binary_size) {
  std::string where = "inputs[" + std::to_string(index) + "]";
  SELU_RETURN_IF_ERROR(RequireObject(in, where));
  const auto name = in.find("name");
  if (name == in.end() || !name->is_string()) {
    return InvalidArgumentError(where + " needs a string 'name'");
  }
  input->set_name(name->get<std::string>());
  where = "input " + Quoted(input->name());
  const auto datatype = in.find("datatype");
  if (datatype == in.end() || !datatype->is_string()) {
    return InvalidArgumentError(where + " needs a string 'datatype'");
  }
  input->set_datatype(datatype->get<std::string>());
  const auto shape = in.find("shape");
  if (shape == in.end() || !shape->is_array()) {
    return InvalidArgumentError(where + " needs a 'shape' array");
  }
  for (const json& d : *shape) {
    if (!d.is_number_integer()) return InvalidArgumentError(where + ": 'shape' must hold integers");
    input->add_shape(d.get<int64_t>());
  }
  if (const auto params = in.find("parameters"); params != in.end()) {
    SELU_RETURN_IF_ERROR(RequireObject(*params, where + ": 'parameters'"));
    for (const auto& [key, value] : params->items()) {
      if (key == "binary_data_size") {
        if (!value.is_number_unsigned()) {
          return InvalidArgumentError(where + ": binary_data_size must be a non-negative integer");
        }
        *binary_size = value.get<uint64_t>();
        continue;
      }
      SELU_RETURN_IF_ERROR(
          ToParameter(key, value, &(*input->mutable_parameters())[key], where + ": "));
    }
  }
  const auto data = in.find("data");
  if (binary_size->has_value()) {
    if (data != in.end()) {
      return InvalidArgumentError(where + " has both 'data' and binary_data_size");
    }
    return core::OkStatus();
  }
  if (data == in.end()) {
    return InvalidArgumentError(where + " needs 'data' (or binary_data_size with binary data)");
  }
  DataFlattener flatten(where, input->datatype());
  return flatten.Add(*data, input, raw);
}

Status ParseOutput(const json& out, size_t index,
                   inference::ModelInferRequest::InferRequestedOutputTensor* output,
                   std::optional<bool>* binary) {
  std::string where = "outputs[" + std::to_string(index) + "]";
  SELU_RETURN_IF_ERROR(RequireObject(out, where));
  const auto name = out.find("name");
  if (name == out.end() || !name->is_string()) {
    return InvalidArgumentError(where + " needs a string 'name'");
  }
  output->set_name(name->get<std::string>());
  where = "output " + Quoted(output->name());
  if (const auto params = out.find("parameters"); params != out.end()) {
    SELU_RETURN_IF_ERROR(RequireObject(*params, where + ": 'parameters'"));
    for (const auto& [key, value] : params->items()) {
      if (key == "binary_data") {
        if (!value.is_boolean())
          return InvalidArgumentError(where + ": binary_data must be a bool");
        *binary = value.get<bool>();
        continue;
      }
      SELU_RETURN_IF_ERROR(
          ToParameter(key, value, &(*output->mutable_parameters())[key], where + ": "));
    }
  }
  return core::OkStatus();
}

}  // namespace

Status ParseInferRequest(std::string_view body, std::optional<size_t> header_length,
                         std::string_view model_name, std::string_view model_version,
                         RestInferRequest* out) {
  std::string_view text = body;
  std::string_view binary;
  if (header_length.has_value()) {
    if (*header_length > body.size()) {
      return InvalidArgumentError("Inference-Header-Content-Length " +
                                  std::to_string(*header_length) + " exceeds the body's " +
                                  std::to_string(body.size()) + " bytes");
    }
    text = body.substr(0, *header_length);
    binary = body.substr(*header_length);
  }
  SELU_RETURN_IF_ERROR(CheckDepth(text));
  json doc;
  try {
    doc = json::parse(text.begin(), text.end());
  } catch (const json::exception& e) {
    return InvalidArgumentError(std::string("malformed JSON request: ") + e.what());
  }
  SELU_RETURN_IF_ERROR(RequireObject(doc, "the request"));
  inference::ModelInferRequest& request = out->request;
  request.set_model_name(std::string(model_name));
  request.set_model_version(std::string(model_version));
  if (const auto id = doc.find("id"); id != doc.end()) {
    if (!id->is_string()) return InvalidArgumentError("'id' must be a string");
    request.set_id(id->get<std::string>());
  }
  if (const auto params = doc.find("parameters"); params != doc.end()) {
    SELU_RETURN_IF_ERROR(RequireObject(*params, "'parameters'"));
    for (const auto& [key, value] : params->items()) {
      if (key == "binary_data_output") {
        if (!value.is_boolean()) return InvalidArgumentError("binary_data_output must be a bool");
        out->binary_output_default = value.get<bool>();
        continue;
      }
      SELU_RETURN_IF_ERROR(ToParameter(key, value, &(*request.mutable_parameters())[key], ""));
    }
  }
  const auto inputs = doc.find("inputs");
  if (inputs == doc.end() || !inputs->is_array()) {
    return InvalidArgumentError("the request needs an 'inputs' array");
  }
  // Inputs without typed contents take raw entries in order (the protocol's
  // rule), so the raw list is built in input order.
  size_t offset = 0;
  for (size_t i = 0; i < inputs->size(); ++i) {
    InputTensor* input = request.add_inputs();
    std::string raw;
    std::optional<size_t> binary_size;
    SELU_RETURN_IF_ERROR(ParseInput((*inputs)[i], i, input, &raw, &binary_size));
    if (binary_size.has_value()) {
      if (*binary_size > binary.size() - offset) {
        return InvalidArgumentError("input " + Quoted(input->name()) + ": binary_data_size " +
                                    std::to_string(*binary_size) + " exceeds the " +
                                    std::to_string(binary.size() - offset) +
                                    " bytes of binary data left");
      }
      request.add_raw_input_contents(std::string(binary.substr(offset, *binary_size)));
      offset += *binary_size;
    } else if (input->datatype() == "FP16" || input->datatype() == "BF16") {
      request.add_raw_input_contents(std::move(raw));
    }
  }
  if (offset != binary.size()) {
    return InvalidArgumentError("the body has " + std::to_string(binary.size() - offset) +
                                " bytes of binary data that no input's binary_data_size claims");
  }
  if (const auto outputs = doc.find("outputs"); outputs != doc.end()) {
    if (!outputs->is_array()) return InvalidArgumentError("'outputs' must be an array");
    for (size_t i = 0; i < outputs->size(); ++i) {
      out->output_binary.emplace_back();
      SELU_RETURN_IF_ERROR(
          ParseOutput((*outputs)[i], i, request.add_outputs(), &out->output_binary.back()));
    }
  }
  return core::OkStatus();
}

uint16_t FloatToHalf(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  const uint32_t sign = (x >> 16) & 0x8000;
  const uint32_t abs = x & 0x7fffffff;
  if (abs > 0x7f800000) return static_cast<uint16_t>(sign | 0x7e00);   // NaN
  if (abs >= 0x477ff000) return static_cast<uint16_t>(sign | 0x7c00);  // overflow → Inf
  if (abs < 0x38800000) {
    // Subnormal half (or zero): scale into the integer mantissa and round.
    if (abs < 0x33000000) return static_cast<uint16_t>(sign);
    const uint32_t exp = abs >> 23;
    const uint32_t mant = (abs & 0x7fffff) | 0x800000;
    const uint32_t shift = 126 - exp;  // 14 + (112 - exp) - ... : half subnormal scale
    uint32_t h = mant >> shift;
    const uint32_t rem = mant & ((1u << shift) - 1);
    const uint32_t half = 1u << (shift - 1);
    if (rem > half || (rem == half && (h & 1))) ++h;
    return static_cast<uint16_t>(sign | h);
  }
  uint32_t h = ((abs >> 13) - (112u << 10));
  const uint32_t rem = abs & 0x1fff;
  if (rem > 0x1000 || (rem == 0x1000 && (h & 1))) ++h;
  return static_cast<uint16_t>(sign | h);
}

uint16_t FloatToBfloat16(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  if ((x & 0x7fffffff) > 0x7f800000) return static_cast<uint16_t>((x >> 16) | 0x40);
  x += 0x7fff + ((x >> 16) & 1);
  return static_cast<uint16_t>(x >> 16);
}

}  // namespace selu::http
