// PrepareInferResponse and FinishInferResponse: the response's output
// tensors, and the packed answer rows cut into them or turned into
// classification strings (see infer_codec.h).
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "server/core/base/client_text.h"
#include "server/grpc/infer_codec.h"
#include "server/grpc/infer_codec_internal.h"

namespace selu::grpc_transport {
namespace {

using core::InvalidArgumentError;

// [rows, <the port's non-batch dims>], or [rows, features] when the port
// declares no usable dims (a spec built without its ports).
void SetShape(const core::TensorPort* port, int64_t features, int64_t rows,
              inference::ModelInferResponse::InferOutputTensor* output) {
  output->add_shape(rows);
  if (port != nullptr && port->shape.size() >= 2) {
    int64_t product = 1;
    for (size_t i = 1; i < port->shape.size(); ++i) product *= std::max<int64_t>(port->shape[i], 0);
    if (product == features) {
      for (size_t i = 1; i < port->shape.size(); ++i) output->add_shape(port->shape[i]);
      return;
    }
  }
  output->add_shape(features);
}

// One FP32 output tensor of rows × features; returns its values' buffer.
float* AddOutput(const std::string& name, const core::TensorPort* port, int64_t features,
                 int64_t rows, bool raw, inference::ModelInferResponse* response) {
  auto* output = response->add_outputs();
  output->set_name(name);
  output->set_datatype("FP32");
  SetShape(port, features, rows, output);
  const size_t count = static_cast<size_t>(rows * features);
  if (raw) {
    std::string* bytes = response->add_raw_output_contents();
    bytes->resize(count * sizeof(float));
    return reinterpret_cast<float*>(bytes->data());
  }
  auto* values = output->mutable_contents()->mutable_fp32_contents();
  values->Resize(static_cast<int>(count), 0.0f);
  return values->mutable_data();
}

void SetMetadata(const inference::ModelInferRequest& request, const std::string& version,
                 inference::ModelInferResponse* response) {
  response->set_model_name(request.model_name());
  response->set_model_version(version);
  response->set_id(request.id());
}

// A classification output: BYTES [rows, classes], its strings written by
// FinishInferResponse (raw: into the empty entry added here).
void AddClassOutput(const std::string& name, int64_t classes, int64_t rows, bool raw,
                    inference::ModelInferResponse* response) {
  auto* output = response->add_outputs();
  output->set_name(name);
  output->set_datatype("BYTES");
  output->add_shape(rows);
  output->add_shape(classes);
  if (raw) response->add_raw_output_contents();
}

// The classes a requested output's "classification" parameter asks for (0:
// none). Triton's gRPC takes int64_param only (tritonclient sends it); a
// uint64_param means the same number, so it is taken too.
core::StatusOr<int64_t> RequestedClasses(
    const inference::ModelInferRequest::InferRequestedOutputTensor& wanted) {
  const auto found = wanted.parameters().find("classification");
  if (found == wanted.parameters().end()) return int64_t{0};
  const inference::InferParameter& value = found->second;
  const std::string where =
      "output '" + core::QuoteClientText(wanted.name()) + "': parameter 'classification'";
  static constexpr char kNotInt64[] = " must be an int64_param (the number of classes), not ";
  int64_t classes = 0;
  switch (value.parameter_choice_case()) {
    case inference::InferParameter::kInt64Param:
      classes = value.int64_param();
      break;
    case inference::InferParameter::kUint64Param:
      classes = static_cast<int64_t>(
          std::min<uint64_t>(value.uint64_param(), std::numeric_limits<int64_t>::max()));
      break;
    case inference::InferParameter::kBoolParam:
      return InvalidArgumentError(where + kNotInt64 + "a bool_param");
    case inference::InferParameter::kStringParam:
      return InvalidArgumentError(where + kNotInt64 + "a string_param");
    case inference::InferParameter::kDoubleParam:
      return InvalidArgumentError(where + kNotInt64 + "a double_param");
    case inference::InferParameter::PARAMETER_CHOICE_NOT_SET:
      return InvalidArgumentError(where + kNotInt64 + "no value");
  }
  if (classes < 1) {
    return InvalidArgumentError(where + " is " + std::to_string(classes) +
                                "; it must be at least 1 (the number of classes)");
  }
  return classes;
}

// Fills prepared->classes when some requested output asks for
// classification; leaves it empty otherwise. Cheap when no output carries a
// parameter.
core::Status ReadClassification(const inference::ModelInferRequest& request,
                                PreparedOutputs* prepared) {
  prepared->classes.clear();
  for (int i = 0; i < request.outputs_size(); ++i) {
    if (request.outputs(i).parameters().empty()) continue;
    auto classes = RequestedClasses(request.outputs(i));
    if (!classes.ok()) return classes.status();
    if (*classes == 0) continue;
    if (prepared->classes.empty()) prepared->classes.resize(request.outputs().size(), 0);
    prepared->classes[static_cast<size_t>(i)] = *classes;
  }
  return core::OkStatus();
}

// Response output i of a classification request: its port and features.
struct PortView {
  size_t port = 0;
  int64_t features = 0;
  int64_t offset = 0;
};

PortView ViewOf(const core::ModelSpec& spec, const PreparedOutputs& prepared, size_t i) {
  if (spec.outputs.empty()) return PortView{0, spec.output_features, 0};
  const size_t port = static_cast<size_t>(prepared.ports[i]);
  return PortView{port, spec.outputs[port].features, spec.outputs[port].offset};
}

// Writes response output `index`'s classification strings: per row, the
// best `classes` of the port's scores in the packed rows.
void WriteClasses(const core::ModelSpec& spec, const core::ClassLabels& labels,
                  const PreparedOutputs& prepared, size_t index, bool raw,
                  inference::ModelInferResponse* response) {
  const PortView view = ViewOf(spec, prepared, index);
  const int64_t classes = std::min(prepared.classes[index], view.features);
  const int output_index = static_cast<int>(index);
  std::string* serialized = raw ? response->mutable_raw_output_contents(output_index) : nullptr;
  auto* strings =
      raw ? nullptr
          : response->mutable_outputs(output_index)->mutable_contents()->mutable_bytes_contents();
  if (strings != nullptr) strings->Reserve(static_cast<int>(prepared.rows * classes));
  std::vector<int64_t> top;
  std::string text;
  for (int64_t r = 0; r < prepared.rows; ++r) {
    const float* scores = prepared.packed.data() + r * spec.output_features + view.offset;
    core::TopClasses(scores, view.features, classes, &top);
    for (int64_t c : top) {
      std::string* out = strings != nullptr ? strings->Add() : &text;
      out->clear();
      core::AppendClassString(scores[c], c, labels.Label(view.port, c), out);
      if (serialized != nullptr) {
        // Triton's BYTES element: a 4-byte little-endian length, then the bytes.
        const uint32_t size = static_cast<uint32_t>(text.size());
        const char length[4] = {static_cast<char>(size & 0xff), static_cast<char>(size >> 8 & 0xff),
                                static_cast<char>(size >> 16 & 0xff),
                                static_cast<char>(size >> 24 & 0xff)};
        serialized->append(length, 4);
        serialized->append(text);
      }
    }
  }
}

}  // namespace

core::StatusOr<float*> PrepareInferResponse(const inference::ModelInferRequest& request,
                                            const core::ModelSpec& spec, const std::string& version,
                                            int64_t rows, bool raw,
                                            inference::ModelInferResponse* response,
                                            PreparedOutputs* prepared) {
  SELU_RETURN_IF_ERROR(ReadClassification(request, prepared));
  const bool classify = !prepared->classes.empty();
  if (spec.outputs.size() <= 1) {
    // One output: the engine writes straight into the response, unless it
    // is classified.
    for (const auto& wanted : request.outputs()) {
      if (wanted.name() != spec.output_name) {
        return InvalidArgumentError("unknown output '" + core::QuoteClientText(wanted.name()) +
                                    "'; model '" + core::QuoteClientText(request.model_name()) +
                                    "' has output '" + core::QuoteClientText(spec.output_name) +
                                    "'");
      }
    }
    SetMetadata(request, version, response);
    const core::TensorPort* port = spec.outputs.empty() ? nullptr : &spec.outputs[0];
    if (!classify) {
      prepared->packed.clear();  // a reused PreparedOutputs: nothing for Finish to cut
      return AddOutput(spec.output_name, port, spec.output_features, rows, raw, response);
    }
    if (request.outputs_size() > 1) {
      return InvalidArgumentError("the request asks for output '" +
                                  core::QuoteClientText(spec.output_name) + "' twice");
    }
    prepared->ports.assign(1, 0);
    AddClassOutput(spec.output_name, std::min(prepared->classes[0], spec.output_features), rows,
                   raw, response);
  } else {
    const std::vector<core::TensorPort>& ports = spec.outputs;
    prepared->ports.clear();
    if (request.outputs().empty()) {
      for (size_t k = 0; k < ports.size(); ++k) prepared->ports.push_back(static_cast<int>(k));
    }
    for (const auto& wanted : request.outputs()) {
      size_t k = 0;
      while (k < ports.size() && ports[k].name != wanted.name()) ++k;
      if (k == ports.size()) {
        return InvalidArgumentError("unknown output '" + core::QuoteClientText(wanted.name()) +
                                    "'; model '" + core::QuoteClientText(request.model_name()) +
                                    "' has outputs " + internal::PortNames(ports));
      }
      for (int taken : prepared->ports) {
        if (taken == static_cast<int>(k)) {
          return InvalidArgumentError("the request asks for output '" +
                                      core::QuoteClientText(wanted.name()) + "' twice");
        }
      }
      prepared->ports.push_back(static_cast<int>(k));
    }
    SetMetadata(request, version, response);
    for (size_t i = 0; i < prepared->ports.size(); ++i) {
      const core::TensorPort& port = ports[static_cast<size_t>(prepared->ports[i])];
      const int64_t classes = classify ? prepared->classes[i] : 0;
      if (classes > 0) {
        AddClassOutput(port.name, std::min(classes, port.features), rows, raw, response);
      } else {
        AddOutput(port.name, &port, port.features, rows, raw, response);
      }
    }
  }
  prepared->rows = rows;
  prepared->packed.resize(static_cast<size_t>(rows * spec.output_features));
  return prepared->packed.data();
}

void FinishInferResponse(const core::ModelSpec& spec, const core::ClassLabels& labels,
                         const PreparedOutputs& prepared, inference::ModelInferResponse* response) {
  if (prepared.packed.empty()) return;
  const bool raw = response->raw_output_contents_size() > 0;
  const int64_t stride = spec.output_features;
  for (size_t i = 0; i < prepared.ports.size(); ++i) {
    if (!prepared.classes.empty() && prepared.classes[i] > 0) {
      WriteClasses(spec, labels, prepared, i, raw, response);
      continue;
    }
    const core::TensorPort& port = spec.outputs[static_cast<size_t>(prepared.ports[i])];
    const int index = static_cast<int>(i);
    float* dst =
        raw ? reinterpret_cast<float*>(response->mutable_raw_output_contents(index)->data())
            : response->mutable_outputs(index)
                  ->mutable_contents()
                  ->mutable_fp32_contents()
                  ->mutable_data();
    const float* src = prepared.packed.data() + port.offset;
    for (int64_t r = 0; r < prepared.rows; ++r) {
      std::memcpy(dst + r * port.features, src + r * stride,
                  static_cast<size_t>(port.features) * sizeof(float));
    }
  }
}

}  // namespace selu::grpc_transport
