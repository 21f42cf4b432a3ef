#include "server/grpc/protocol_answers.h"

#include "server/core/base/client_text.h"

namespace selu::grpc_transport {

namespace {

void SetDuration(const core::DurationTotals& from, inference::StatisticDuration* to) {
  to->set_count(from.count);
  to->set_ns(from.ns);
}

void FillStatistics(const core::ServableModel& model, inference::ModelStatistics* out) {
  const core::ModelStatsSnapshot s = model.stats().Snapshot();
  out->set_name(model.name());
  out->set_version(model.version_string());
  out->set_last_inference(s.last_inference_ms);
  out->set_inference_count(s.inference_count);
  out->set_execution_count(s.execution_count);
  auto* infer = out->mutable_inference_stats();
  SetDuration(s.success, infer->mutable_success());
  SetDuration(s.fail, infer->mutable_fail());
  SetDuration(s.queue, infer->mutable_queue());
  SetDuration(s.compute_infer, infer->mutable_compute_infer());
  // Inputs are used in place and outputs written in place: no separate
  // input/output phases, so those stay zero as Triton reports them.
  infer->mutable_compute_input();
  infer->mutable_compute_output();
  for (size_t rows = 1; rows < s.batches.size(); ++rows) {
    if (s.batches[rows].count == 0) continue;
    auto* batch = out->add_batch_stats();
    batch->set_batch_size(rows);
    SetDuration(s.batches[rows], batch->mutable_compute_infer());
    batch->mutable_compute_input()->set_count(s.batches[rows].count);
    batch->mutable_compute_output()->set_count(s.batches[rows].count);
  }
}

}  // namespace

core::Status AnswerModelMetadata(const core::ModelRegistry& registry,
                                 const inference::ModelMetadataRequest& request,
                                 inference::ModelMetadataResponse* response) {
  auto model = registry.Find(request.name(), request.version());
  if (!model.ok()) return model.status();
  const core::ModelSpec& spec = (*model)->spec();
  response->set_name((*model)->name());
  for (const auto& entry : registry.Index()) {
    if (entry.name == (*model)->name() && entry.state == core::ModelState::kReady) {
      response->add_versions(entry.model->version_string());
    }
  }
  response->set_platform("onnx_mlp");
  // Every input and output (ServableModel completes the spec: both lists are
  // filled), with -1 for the batch dimension.
  for (const core::TensorPort& port : spec.inputs) {
    auto* in = response->add_inputs();
    in->set_name(port.name);
    in->set_datatype("FP32");
    for (int64_t d : port.shape) in->add_shape(d);
  }
  for (const core::TensorPort& port : spec.outputs) {
    auto* out = response->add_outputs();
    out->set_name(port.name);
    out->set_datatype("FP32");
    for (int64_t d : port.shape) out->add_shape(d);
  }
  return core::OkStatus();
}

core::Status AnswerModelStatistics(const core::ModelRegistry& registry,
                                   const inference::ModelStatisticsRequest& request,
                                   inference::ModelStatisticsResponse* response) {
  if (!request.name().empty()) {
    // Validates the name and version with the same messages as inference.
    auto model = registry.Find(request.name(), request.version());
    if (!model.ok() && model.status().code() != core::StatusCode::kUnavailable) {
      return model.status();
    }
  }
  for (const auto& entry : registry.Index()) {
    if (!entry.model) continue;
    if (!request.name().empty() && entry.name != request.name()) continue;
    if (!request.version().empty() && entry.model->version_string() != request.version()) {
      continue;
    }
    FillStatistics(*entry.model, response->add_model_stats());
  }
  return core::OkStatus();
}

core::Status AnswerModelConfig(const core::ModelRegistry& registry,
                               const inference::ModelConfigRequest& request,
                               inference::ModelConfigResponse* response) {
  auto model = registry.Find(request.name(), request.version());
  if (!model.ok()) return model.status();
  *response->mutable_config() = (*model)->config();
  return core::OkStatus();
}

core::Status CheckRepositoryName(const std::string& name, const core::ModelRegistry& registry) {
  if (name.empty() || name == registry.root()) return core::OkStatus();
  return core::NotFoundError("unknown model repository '" + core::QuoteClientText(name) +
                             "' (this server has one: '" + registry.root() +
                             "'; leave repository_name empty)");
}

core::Status AnswerRepositoryIndex(const core::ModelRegistry& registry,
                                   const inference::RepositoryIndexRequest& request,
                                   inference::RepositoryIndexResponse* response) {
  SELU_RETURN_IF_ERROR(CheckRepositoryName(request.repository_name(), registry));
  for (const auto& entry : registry.RepositoryIndex()) {
    if (request.ready() && entry.state != core::ModelState::kReady) continue;
    auto* out = response->add_models();
    out->set_name(entry.name);
    if (entry.version > 0) out->set_version(std::to_string(entry.version));
    out->set_state(std::string(core::ModelStateName(entry.state)));
    out->set_reason(entry.reason);
  }
  return core::OkStatus();
}

core::StatusOr<std::optional<std::string>> CheckModelLoad(
    const core::ModelRegistry& registry, const inference::RepositoryModelLoadRequest& request) {
  SELU_RETURN_IF_ERROR(CheckRepositoryName(request.repository_name(), registry));
  std::optional<std::string> config_json;
  for (const auto& [key, value] : request.parameters()) {
    if (key == "config") {
      if (value.parameter_choice_case() != inference::ModelRepositoryParameter::kStringParam) {
        return core::InvalidArgumentError("parameter 'config' must be a string_param (JSON)");
      }
      config_json = value.string_param();
    } else if (key.rfind("file:", 0) == 0) {
      return core::UnimplementedError("parameter '" + core::QuoteClientText(key) +
                                      "': model files in the request are not supported; put "
                                      "them in the model repository");
    } else {
      return core::InvalidArgumentError("unknown parameter '" + core::QuoteClientText(key) +
                                        "' (RepositoryModelLoad takes 'config')");
    }
  }
  return config_json;
}

}  // namespace selu::grpc_transport
