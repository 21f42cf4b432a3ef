// The response half of rest_codec.h: ModelInferResponse -> REST body.
#include <charconv>
#include <cmath>
#include <cstring>
#include <nlohmann/json.hpp>
#include <vector>

#include "server/http/rest_codec.h"

namespace selu::http {

namespace {

using core::Status;
using nlohmann::json;

void AppendFloat(std::string* out, double v, bool single) {
  if (!std::isfinite(v)) {
    // JSON has no NaN or Inf; the engine never answers them (inputs are
    // finite), but a future output type might.
    out->append("null");
    return;
  }
  char buffer[32];
  const auto r = single ? std::to_chars(buffer, buffer + sizeof buffer, static_cast<float>(v))
                        : std::to_chars(buffer, buffer + sizeof buffer, v);
  out->append(buffer, r.ptr);
}

void AppendString(std::string* out, std::string_view s) {
  out->append(json(std::string(s)).dump(-1, ' ', false, json::error_handler_t::replace));
}

// Length-prefixed strings (the raw form of BYTES) → views of them.
Status SplitBytes(std::string_view raw, std::vector<std::string_view>* out) {
  while (!raw.empty()) {
    if (raw.size() < 4) return core::InternalError("truncated BYTES output");
    uint32_t n;
    std::memcpy(&n, raw.data(), 4);
    raw.remove_prefix(4);
    if (n > raw.size()) return core::InternalError("truncated BYTES output");
    out->push_back(raw.substr(0, n));
    raw.remove_prefix(n);
  }
  return core::OkStatus();
}

// One output's values as the binary section holds them.
std::string BinaryOf(const inference::ModelInferResponse::InferOutputTensor& o) {
  std::string bytes;
  const auto& c = o.contents();
  if (o.datatype() == "BYTES") {
    for (const std::string& s : c.bytes_contents()) {
      const uint32_t n = static_cast<uint32_t>(s.size());
      bytes.append(reinterpret_cast<const char*>(&n), 4);
      bytes.append(s);
    }
  } else if (o.datatype() == "FP64") {
    bytes.append(reinterpret_cast<const char*>(c.fp64_contents().data()),
                 c.fp64_contents_size() * sizeof(double));
  } else {
    bytes.append(reinterpret_cast<const char*>(c.fp32_contents().data()),
                 c.fp32_contents_size() * sizeof(float));
  }
  return bytes;
}

Status AppendData(const inference::ModelInferResponse::InferOutputTensor& o, const std::string* raw,
                  std::string* out) {
  out->push_back('[');
  bool first = true;
  auto sep = [&] {
    if (!first) out->push_back(',');
    first = false;
  };
  const std::string& t = o.datatype();
  if (t == "BYTES") {
    std::vector<std::string_view> strings;
    if (raw != nullptr) {
      SELU_RETURN_IF_ERROR(SplitBytes(*raw, &strings));
    } else {
      for (const std::string& s : o.contents().bytes_contents()) strings.push_back(s);
    }
    for (std::string_view s : strings) {
      sep();
      AppendString(out, s);
    }
  } else if (t == "FP32") {
    if (raw != nullptr) {
      for (size_t i = 0; i + 4 <= raw->size(); i += 4) {
        float v;
        std::memcpy(&v, raw->data() + i, 4);
        sep();
        AppendFloat(out, v, true);
      }
    } else {
      for (float v : o.contents().fp32_contents()) {
        sep();
        AppendFloat(out, v, true);
      }
    }
  } else if (t == "FP64") {
    if (raw != nullptr) {
      for (size_t i = 0; i + 8 <= raw->size(); i += 8) {
        double v;
        std::memcpy(&v, raw->data() + i, 8);
        sep();
        AppendFloat(out, v, false);
      }
    } else {
      for (double v : o.contents().fp64_contents()) {
        sep();
        AppendFloat(out, v, false);
      }
    }
  } else {
    return core::InternalError("output '" + o.name() + "' has datatype " + t +
                               ", which the REST binding cannot render");
  }
  out->push_back(']');
  return core::OkStatus();
}

void AppendParameterValue(std::string* out, const inference::InferParameter& p) {
  switch (p.parameter_choice_case()) {
    case inference::InferParameter::kBoolParam:
      out->append(p.bool_param() ? "true" : "false");
      break;
    case inference::InferParameter::kInt64Param:
      out->append(std::to_string(p.int64_param()));
      break;
    case inference::InferParameter::kUint64Param:
      out->append(std::to_string(p.uint64_param()));
      break;
    case inference::InferParameter::kDoubleParam:
      AppendFloat(out, p.double_param(), false);
      break;
    case inference::InferParameter::kStringParam:
      AppendString(out, p.string_param());
      break;
    default:
      out->append("null");
  }
}

}  // namespace

Status RenderInferResponse(const RestInferRequest& request,
                           const inference::ModelInferResponse& response, std::string* body,
                           size_t* json_length) {
  std::string& out = *body;
  out.clear();
  out.append("{\"model_name\":");
  AppendString(&out, response.model_name());
  out.append(",\"model_version\":");
  AppendString(&out, response.model_version());
  if (!response.id().empty()) {
    out.append(",\"id\":");
    AppendString(&out, response.id());
  }
  if (!response.parameters().empty()) {
    out.append(",\"parameters\":{");
    bool first = true;
    for (const auto& [key, value] : response.parameters()) {
      if (!first) out.push_back(',');
      first = false;
      AppendString(&out, key);
      out.push_back(':');
      AppendParameterValue(&out, value);
    }
    out.push_back('}');
  }
  out.append(",\"outputs\":[");
  const bool raw = response.raw_output_contents_size() > 0;
  if (raw && response.raw_output_contents_size() != response.outputs_size()) {
    return core::InternalError("response has " +
                               std::to_string(response.raw_output_contents_size()) +
                               " raw outputs for " + std::to_string(response.outputs_size()));
  }
  // Reserved up front: binary_refs point into it.
  std::vector<std::string> binaries;
  binaries.reserve(response.outputs_size());
  std::vector<const std::string*> binary_refs;
  for (int i = 0; i < response.outputs_size(); ++i) {
    const auto& o = response.outputs(i);
    bool binary = request.binary_output_default;
    for (int r = 0; r < request.request.outputs_size(); ++r) {
      if (request.request.outputs(r).name() == o.name() && request.output_binary[r].has_value()) {
        binary = *request.output_binary[r];
      }
    }
    if (i > 0) out.push_back(',');
    out.append("{\"name\":");
    AppendString(&out, o.name());
    out.append(",\"datatype\":");
    AppendString(&out, o.datatype());
    out.append(",\"shape\":[");
    for (int d = 0; d < o.shape_size(); ++d) {
      if (d > 0) out.push_back(',');
      out.append(std::to_string(o.shape(d)));
    }
    out.push_back(']');
    const std::string* raw_bytes = raw ? &response.raw_output_contents(i) : nullptr;
    if (binary) {
      if (raw_bytes == nullptr) {
        binaries.push_back(BinaryOf(o));
        raw_bytes = &binaries.back();
      }
      binary_refs.push_back(raw_bytes);
      out.append(",\"parameters\":{\"binary_data_size\":" + std::to_string(raw_bytes->size()) +
                 "}}");
    } else {
      out.append(",\"data\":");
      SELU_RETURN_IF_ERROR(AppendData(o, raw_bytes, &out));
      out.push_back('}');
    }
  }
  out.append("]}");
  *json_length = out.size();
  for (const std::string* bytes : binary_refs) out.append(*bytes);
  return core::OkStatus();
}

std::string ErrorBody(std::string_view message) {
  std::string out = "{\"error\":";
  AppendString(&out, message);
  out.push_back('}');
  return out;
}

}  // namespace selu::http
