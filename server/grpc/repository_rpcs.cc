// GRPCInferenceService's repository rpcs (Triton's model repository
// extension): RepositoryIndex, RepositoryModelLoad, RepositoryModelUnload.
// Load and unload run on the registry's control thread; the call finishes
// from there, no gRPC thread waits.
#include <functional>
#include <optional>
#include <string>

#include "server/core/base/client_text.h"
#include "server/grpc/finish_now.h"
#include "server/grpc/inference_service.h"
#include "server/grpc/status_mapping.h"

namespace selu::grpc_transport {

using core::Clock;

namespace {

// Triton's repository_name: "" (or this repository's path) is the one
// repository selu-serve serves.
core::Status CheckRepositoryName(const std::string& name, const core::ModelRegistry& registry) {
  if (name.empty() || name == registry.root()) return core::OkStatus();
  return core::NotFoundError("unknown model repository '" + core::QuoteClientText(name) +
                             "' (this server has one: '" + registry.root() +
                             "'; leave repository_name empty)");
}

// Runs a repository change on the registry's control thread and finishes
// the call when it is done, without holding a gRPC thread meanwhile.
class RepositoryCall final : public grpc::ServerUnaryReactor {
 public:
  RepositoryCall(RpcCounters* counters, Clock::time_point start)
      : counters_(counters), start_(start) {}
  std::function<void(core::Status)> Callback() {
    return [this](core::Status status) {
      const grpc::Status answer = ToGrpcStatus(status);
      counters_->Finish(static_cast<int>(answer.error_code()), start_);
      Finish(answer);
    };
  }
  void OnDone() override { delete this; }

 private:
  RpcCounters* counters_;
  Clock::time_point start_;
};

}  // namespace

grpc::ServerUnaryReactor* InferenceService::RepositoryIndex(
    grpc::CallbackServerContext* context, const inference::RepositoryIndexRequest* request,
    inference::RepositoryIndexResponse* response) {
  const Clock::time_point start = Clock::now();
  RpcCounters& counters = rpc_stats_[Rpc::kRepositoryIndex];
  counters.Start();
  if (auto* refused = RefuseRestricted(Rpc::kRepositoryIndex, counters, start, context))
    return refused;
  auto registry = Registry();
  if (!registry.ok()) return FinishNow(counters, start, context, ToGrpcStatus(registry.status()));
  const core::Status repository = CheckRepositoryName(request->repository_name(), **registry);
  if (!repository.ok()) return FinishNow(counters, start, context, ToGrpcStatus(repository));
  for (const auto& entry : (*registry)->RepositoryIndex()) {
    if (request->ready() && entry.state != core::ModelState::kReady) continue;
    auto* out = response->add_models();
    out->set_name(entry.name);
    if (entry.version > 0) out->set_version(std::to_string(entry.version));
    out->set_state(std::string(core::ModelStateName(entry.state)));
    out->set_reason(entry.reason);
  }
  return FinishNow(counters, start, context, grpc::Status::OK);
}

grpc::ServerUnaryReactor* InferenceService::RepositoryModelLoad(
    grpc::CallbackServerContext* context, const inference::RepositoryModelLoadRequest* request,
    inference::RepositoryModelLoadResponse*) {
  const Clock::time_point start = Clock::now();
  RpcCounters& counters = rpc_stats_[Rpc::kRepositoryModelLoad];
  counters.Start();
  if (auto* refused = RefuseRestricted(Rpc::kRepositoryModelLoad, counters, start, context))
    return refused;
  auto registry = Registry();
  if (!registry.ok()) return FinishNow(counters, start, context, ToGrpcStatus(registry.status()));
  core::Status status = CheckRepositoryName(request->repository_name(), **registry);
  std::optional<std::string> config_json;
  for (const auto& [key, value] : request->parameters()) {
    if (!status.ok()) break;
    if (key == "config") {
      if (value.parameter_choice_case() != inference::ModelRepositoryParameter::kStringParam) {
        status = core::InvalidArgumentError("parameter 'config' must be a string_param (JSON)");
      } else {
        config_json = value.string_param();
      }
    } else if (key.rfind("file:", 0) == 0) {
      status = core::UnimplementedError("parameter '" + core::QuoteClientText(key) +
                                        "': model files in the request are not supported; put "
                                        "them in the model repository");
    } else {
      status = core::InvalidArgumentError("unknown parameter '" + core::QuoteClientText(key) +
                                          "' (RepositoryModelLoad takes 'config')");
    }
  }
  if (!status.ok()) return FinishNow(counters, start, context, ToGrpcStatus(status));
  auto* call = new RepositoryCall(&counters, start);
  (*registry)->LoadModel(request->model_name(), std::move(config_json), call->Callback());
  return call;
}

grpc::ServerUnaryReactor* InferenceService::RepositoryModelUnload(
    grpc::CallbackServerContext* context, const inference::RepositoryModelUnloadRequest* request,
    inference::RepositoryModelUnloadResponse*) {
  const Clock::time_point start = Clock::now();
  RpcCounters& counters = rpc_stats_[Rpc::kRepositoryModelUnload];
  counters.Start();
  if (auto* refused = RefuseRestricted(Rpc::kRepositoryModelUnload, counters, start, context))
    return refused;
  auto registry = Registry();
  if (!registry.ok()) return FinishNow(counters, start, context, ToGrpcStatus(registry.status()));
  const core::Status repository = CheckRepositoryName(request->repository_name(), **registry);
  if (!repository.ok()) return FinishNow(counters, start, context, ToGrpcStatus(repository));
  // Triton's "unload_dependents" has no meaning here (no ensembles): ignored.
  auto* call = new RepositoryCall(&counters, start);
  (*registry)->UnloadModel(request->model_name(), call->Callback());
  return call;
}

}  // namespace selu::grpc_transport
