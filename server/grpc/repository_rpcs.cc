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
#include "server/grpc/protocol_answers.h"
#include "server/grpc/status_mapping.h"

namespace selu::grpc_transport {

using core::Clock;

namespace {

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
  return FinishNow(counters, start, context,
                   ToGrpcStatus(AnswerRepositoryIndex(**registry, *request, response)));
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
  auto config_json = CheckModelLoad(**registry, *request);
  if (!config_json.ok()) {
    return FinishNow(counters, start, context, ToGrpcStatus(config_json.status()));
  }
  auto* call = new RepositoryCall(&counters, start);
  (*registry)->LoadModel(request->model_name(), std::move(config_json).value(), call->Callback());
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
