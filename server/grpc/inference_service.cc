#include "server/grpc/inference_service.h"

#include <google/protobuf/util/json_util.h>

#include "server/grpc/finish_now.h"
#include "server/grpc/infer_codec.h"
#include "server/grpc/protocol_answers.h"
#include "server/grpc/status_mapping.h"
#include "server/grpc/stream_infer.h"

namespace selu::grpc_transport {

namespace {

using core::Clock;

// One ModelInfer call: the gRPC reactor and the core request in one object,
// so queuing it allocates nothing more. Deleted by gRPC (OnDone) after
// Finish; the batcher calls Done() exactly once and never touches it after.
class InferCall final : public grpc::ServerUnaryReactor, public InferJob {
 public:
  InferCall(inference::ModelInferResponse* response, Clock::time_point arrival,
            std::atomic<int64_t>* in_flight, RpcCounters* counters)
      : response_(response), arrival_(arrival), in_flight_(in_flight), counters_(counters) {
    in_flight_->fetch_add(1, std::memory_order_relaxed);
  }

  bool IsCancelled() const override { return cancelled_.load(std::memory_order_relaxed); }

  void Done(core::Status status) override { FinishCall(ToGrpcStatus(Complete(status, response_))); }

  // Counts the rpc and sends the status. The last touch: OnDone may delete us.
  void FinishCall(const grpc::Status& status) {
    counters_->Finish(static_cast<int>(status.error_code()), arrival_);
    Finish(status);
  }

  // Both reactions are trivial and never block (an atomic store; a delete and
  // a decrement), so gRPC may run them inline on the thread that completes
  // the call instead of scheduling them on its executor — one thread hop and
  // futex wake-up less per request (bench/SERVER_BENCH.md).
  bool InternalInlineable() override { return true; }
  void OnCancel() override { cancelled_.store(true, std::memory_order_relaxed); }
  void OnDone() override {
    std::atomic<int64_t>* in_flight = in_flight_;
    delete this;
    in_flight->fetch_sub(1, std::memory_order_release);
  }

 private:
  inference::ModelInferResponse* response_;
  Clock::time_point arrival_;
  std::atomic<int64_t>* in_flight_;
  RpcCounters* counters_;
  std::atomic<bool> cancelled_{false};
};

}  // namespace

InferenceService::InferenceService(InferenceServiceOptions options) : options_(std::move(options)) {
  path_.test_submit_delay = options_.test_submit_delay;
  SetMessageAllocatorFor_ModelInfer(&infer_messages_);
}

core::StatusOr<core::ModelRegistry*> InferenceService::Registry() const {
  core::ModelRegistry* registry = path_.registry.load(std::memory_order_acquire);
  if (registry == nullptr) return core::UnavailableError("models are still loading");
  return registry;
}

grpc::ServerUnaryReactor* InferenceService::RefuseRestricted(
    Rpc rpc, RpcCounters& counters, Clock::time_point start,
    grpc::CallbackServerContext* context) const {
  const ProtocolGroup group = ProtocolGroupOf(rpc);
  const RestrictedProtocols& restricted = options_.restricted_protocols;
  if (restricted.Allowed(group, *context)) return nullptr;
  return FinishNow(counters, start, context, restricted.Denial(group));
}

grpc::ServerUnaryReactor* InferenceService::ServerLive(grpc::CallbackServerContext* context,
                                                       const inference::ServerLiveRequest*,
                                                       inference::ServerLiveResponse* response) {
  const Clock::time_point start = Clock::now();
  RpcCounters& counters = rpc_stats_[Rpc::kServerLive];
  counters.Start();
  if (auto* refused = RefuseRestricted(Rpc::kServerLive, counters, start, context)) return refused;
  response->set_live(true);
  return FinishNow(counters, start, context, grpc::Status::OK);
}

grpc::ServerUnaryReactor* InferenceService::ServerReady(grpc::CallbackServerContext* context,
                                                        const inference::ServerReadyRequest*,
                                                        inference::ServerReadyResponse* response) {
  const Clock::time_point start = Clock::now();
  RpcCounters& counters = rpc_stats_[Rpc::kServerReady];
  counters.Start();
  if (auto* refused = RefuseRestricted(Rpc::kServerReady, counters, start, context)) return refused;
  auto registry = Registry();
  response->set_ready(!shutting_down() && registry.ok() && (*registry)->AllReady());
  return FinishNow(counters, start, context, grpc::Status::OK);
}

grpc::ServerUnaryReactor* InferenceService::ModelReady(grpc::CallbackServerContext* context,
                                                       const inference::ModelReadyRequest* request,
                                                       inference::ModelReadyResponse* response) {
  const Clock::time_point start = Clock::now();
  RpcCounters& counters = rpc_stats_[Rpc::kModelReady];
  counters.Start();
  if (auto* refused = RefuseRestricted(Rpc::kModelReady, counters, start, context)) return refused;
  auto registry = Registry();
  if (!registry.ok()) {
    response->set_ready(false);
    return FinishNow(counters, start, context, grpc::Status::OK);
  }
  auto model = (*registry)->Find(request->name(), request->version());
  if (!model.ok() && model.status().code() == core::StatusCode::kInvalidArgument) {
    return FinishNow(counters, start, context, ToGrpcStatus(model.status()));
  }
  // Like Triton: an unknown or unavailable model is simply not ready.
  response->set_ready(model.ok() && !shutting_down());
  return FinishNow(counters, start, context, grpc::Status::OK);
}

grpc::ServerUnaryReactor* InferenceService::ServerMetadata(
    grpc::CallbackServerContext* context, const inference::ServerMetadataRequest*,
    inference::ServerMetadataResponse* response) {
  const Clock::time_point start = Clock::now();
  RpcCounters& counters = rpc_stats_[Rpc::kServerMetadata];
  counters.Start();
  if (auto* refused = RefuseRestricted(Rpc::kServerMetadata, counters, start, context))
    return refused;
  response->set_name(options_.server_name);
  response->set_version(options_.server_version);
  // Triton's names of the protocol extensions served (its ServerMetadata
  // lists them the same way; clients test for "classification").
  for (const char* extension :
       {"classification", "model_repository", "model_configuration", "statistics"}) {
    response->add_extensions(extension);
  }
  return FinishNow(counters, start, context, grpc::Status::OK);
}

grpc::ServerUnaryReactor* InferenceService::ModelMetadata(
    grpc::CallbackServerContext* context, const inference::ModelMetadataRequest* request,
    inference::ModelMetadataResponse* response) {
  const Clock::time_point start = Clock::now();
  RpcCounters& counters = rpc_stats_[Rpc::kModelMetadata];
  counters.Start();
  if (auto* refused = RefuseRestricted(Rpc::kModelMetadata, counters, start, context))
    return refused;
  auto registry = Registry();
  if (!registry.ok()) return FinishNow(counters, start, context, ToGrpcStatus(registry.status()));
  return FinishNow(counters, start, context,
                   ToGrpcStatus(AnswerModelMetadata(**registry, *request, response)));
}

grpc::ServerUnaryReactor* InferenceService::ModelInfer(grpc::CallbackServerContext* context,
                                                       const inference::ModelInferRequest* request,
                                                       inference::ModelInferResponse* response) {
  const Clock::time_point start = Clock::now();
  RpcCounters& counters = rpc_stats_[Rpc::kModelInfer];
  counters.Start();
  if (auto* refused = RefuseRestricted(Rpc::kModelInfer, counters, start, context)) return refused;
  if (auto* refused = path_.gate.Refuse(counters, start, context)) return refused;
  auto* call = new InferCall(response, start, &path_.in_flight, &counters);
  const core::Status status =
      SubmitInfer(path_, *request, start, SteadyDeadline(*context), call, response);
  if (!status.ok()) call->FinishCall(ToGrpcStatus(status));
  return call;
}

StreamInferReactor* InferenceService::ModelStreamInfer(grpc::CallbackServerContext* context) {
  const Clock::time_point start = Clock::now();
  RpcCounters& counters = rpc_stats_[Rpc::kModelStreamInfer];
  counters.Start();
  const ProtocolGroup group = ProtocolGroupOf(Rpc::kModelStreamInfer);
  const RestrictedProtocols& restricted = options_.restricted_protocols;
  if (!restricted.Allowed(group, *context)) {
    return RefuseStream(&counters, start, restricted.Denial(group));
  }
  return StartStreamInfer(context, &path_, &counters, start);
}

grpc::ServerUnaryReactor* InferenceService::ModelStatistics(
    grpc::CallbackServerContext* context, const inference::ModelStatisticsRequest* request,
    inference::ModelStatisticsResponse* response) {
  const Clock::time_point start = Clock::now();
  RpcCounters& counters = rpc_stats_[Rpc::kModelStatistics];
  counters.Start();
  if (auto* refused = RefuseRestricted(Rpc::kModelStatistics, counters, start, context))
    return refused;
  auto registry = Registry();
  if (!registry.ok()) return FinishNow(counters, start, context, ToGrpcStatus(registry.status()));
  return FinishNow(counters, start, context,
                   ToGrpcStatus(AnswerModelStatistics(**registry, *request, response)));
}

grpc::ServerUnaryReactor* InferenceService::ModelConfig(
    grpc::CallbackServerContext* context, const inference::ModelConfigRequest* request,
    inference::ModelConfigResponse* response) {
  const Clock::time_point start = Clock::now();
  RpcCounters& counters = rpc_stats_[Rpc::kModelConfig];
  counters.Start();
  if (auto* refused = RefuseRestricted(Rpc::kModelConfig, counters, start, context)) return refused;
  auto registry = Registry();
  if (!registry.ok()) return FinishNow(counters, start, context, ToGrpcStatus(registry.status()));
  return FinishNow(counters, start, context,
                   ToGrpcStatus(AnswerModelConfig(**registry, *request, response)));
}

}  // namespace selu::grpc_transport
