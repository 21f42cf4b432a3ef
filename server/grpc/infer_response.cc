// PrepareInferResponse and FinishInferResponse: the response's output
// tensors, and the packed answer rows cut into them (see infer_codec.h).
#include <algorithm>
#include <cstring>
#include <string>

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

}  // namespace

core::StatusOr<float*> PrepareInferResponse(const inference::ModelInferRequest& request,
                                            const core::ModelSpec& spec, const std::string& version,
                                            int64_t rows, bool raw,
                                            inference::ModelInferResponse* response,
                                            PreparedOutputs* prepared) {
  if (spec.outputs.size() <= 1) {
    // One output: the engine writes straight into the response.
    for (const auto& wanted : request.outputs()) {
      if (wanted.name() != spec.output_name) {
        return InvalidArgumentError("unknown output '" + core::QuoteClientText(wanted.name()) +
                                    "'; model '" + core::QuoteClientText(request.model_name()) +
                                    "' has output '" + core::QuoteClientText(spec.output_name) +
                                    "'");
      }
    }
    SetMetadata(request, version, response);
    return AddOutput(spec.output_name, spec.outputs.empty() ? nullptr : &spec.outputs[0],
                     spec.output_features, rows, raw, response);
  }
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
  for (int k : prepared->ports) {
    const core::TensorPort& port = ports[static_cast<size_t>(k)];
    AddOutput(port.name, &port, port.features, rows, raw, response);
  }
  prepared->rows = rows;
  prepared->packed.resize(static_cast<size_t>(rows * spec.output_features));
  return prepared->packed.data();
}

void FinishInferResponse(const core::ModelSpec& spec, const PreparedOutputs& prepared,
                         inference::ModelInferResponse* response) {
  if (prepared.packed.empty()) return;
  const bool raw = response->raw_output_contents_size() > 0;
  const int64_t stride = spec.output_features;
  for (size_t i = 0; i < prepared.ports.size(); ++i) {
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
