// GRPCInferenceService (Open Inference Protocol v2) on the gRPC callback API.
//
// Each rpc is a shim: validate, call the core, convert back, map the status
// (status_mapping.h). ModelInfer hands the request to the model's dynamic
// batcher and returns at once; the batch worker finishes the call. No thread
// is parked per waiting request and no engine work runs in a reaction.
//
// ModelStreamInfer (stream_infer.h) sends each message of a stream down the
// same path (infer_job.h) into the same batchers.
//
// Thread safety: all rpcs run concurrently on gRPC's threads.
#pragma once

#include <atomic>
#include <chrono>
#include <string>

#include "proto/grpc_service.grpc.pb.h"
#include "server/core/repository/model_registry.h"
#include "server/grpc/infer_job.h"
#include "server/grpc/infer_messages.h"
#include "server/grpc/restricted_protocols.h"
#include "server/grpc/rpc_stats.h"
#include "server/grpc/shutdown_gate.h"

namespace selu::grpc_transport {

struct InferenceServiceOptions {
  std::string server_name = "selu-serve";
  std::string server_version;
  // Protocol groups whose rpcs need a metadata header (none by default).
  RestrictedProtocols restricted_protocols;
  // Tests only: a pause between looking a model up and queuing the request,
  // which widens the window in which a swap can retire the version found.
  std::chrono::microseconds test_submit_delay{0};
};

class InferenceService final : public inference::GRPCInferenceService::CallbackService {
 public:
  explicit InferenceService(InferenceServiceOptions options);

  // Until this is called the models are loading: ModelInfer and
  // ModelMetadata answer UNAVAILABLE, readiness is false. `registry` must
  // outlive the service.
  void SetRegistry(core::ModelRegistry* registry) {
    path_.registry.store(registry, std::memory_order_release);
  }

  // From now on ModelInfer answers UNAVAILABLE and ServerReady false; calls
  // already accepted complete. The gate then holds refusals while gRPC shuts
  // down (shutdown_gate.h).
  void BeginShutdown() { path_.gate.BeginRefusing(); }
  ShutdownGate& shutdown_gate() { return path_.gate; }
  // ModelInfer calls accepted and not yet completed on the wire (gRPC's
  // OnDone), and stream messages read whose answers are not yet written,
  // i.e. answers a client could still lose if the process exited.
  int64_t in_flight() const { return path_.in_flight.load(std::memory_order_acquire); }
  // The inference path (registry, shutdown gate, in-flight count), for the
  // REST binding (server/http), which submits through it as ModelInfer does.
  InferPath& infer_path() { return path_; }
  const InferenceServiceOptions& options() const { return options_; }
  // Per-rpc counters (started, handled by code, handling time).
  const RpcStats& rpc_stats() const { return rpc_stats_; }
  bool shutting_down() const { return !path_.gate.open(); }
  // Requests that found a version being swapped out and were re-sent to the
  // version now serving.
  uint64_t swap_resends() const { return path_.swap_resends.load(std::memory_order_relaxed); }
  // Streams: the most messages one stream had read and unanswered at once
  // (bounded by stream_infer.h's kMaxUnansweredPerStream), and how often a
  // stream paused reading at that bound.
  int64_t stream_unanswered_max() const {
    return path_.stream_unanswered_max.load(std::memory_order_relaxed);
  }
  uint64_t stream_read_pauses() const {
    return path_.stream_read_pauses.load(std::memory_order_relaxed);
  }

  grpc::ServerUnaryReactor* ServerLive(grpc::CallbackServerContext* context,
                                       const inference::ServerLiveRequest* request,
                                       inference::ServerLiveResponse* response) override;
  grpc::ServerUnaryReactor* ServerReady(grpc::CallbackServerContext* context,
                                        const inference::ServerReadyRequest* request,
                                        inference::ServerReadyResponse* response) override;
  grpc::ServerUnaryReactor* ModelReady(grpc::CallbackServerContext* context,
                                       const inference::ModelReadyRequest* request,
                                       inference::ModelReadyResponse* response) override;
  grpc::ServerUnaryReactor* ServerMetadata(grpc::CallbackServerContext* context,
                                           const inference::ServerMetadataRequest* request,
                                           inference::ServerMetadataResponse* response) override;
  grpc::ServerUnaryReactor* ModelMetadata(grpc::CallbackServerContext* context,
                                          const inference::ModelMetadataRequest* request,
                                          inference::ModelMetadataResponse* response) override;
  grpc::ServerUnaryReactor* ModelInfer(grpc::CallbackServerContext* context,
                                       const inference::ModelInferRequest* request,
                                       inference::ModelInferResponse* response) override;
  grpc::ServerBidiReactor<inference::ModelInferRequest, inference::ModelStreamInferResponse>*
  ModelStreamInfer(grpc::CallbackServerContext* context) override;
  grpc::ServerUnaryReactor* ModelStatistics(grpc::CallbackServerContext* context,
                                            const inference::ModelStatisticsRequest* request,
                                            inference::ModelStatisticsResponse* response) override;
  grpc::ServerUnaryReactor* ModelConfig(grpc::CallbackServerContext* context,
                                        const inference::ModelConfigRequest* request,
                                        inference::ModelConfigResponse* response) override;
  grpc::ServerUnaryReactor* RepositoryIndex(grpc::CallbackServerContext* context,
                                            const inference::RepositoryIndexRequest* request,
                                            inference::RepositoryIndexResponse* response) override;
  // Load and unload finish when the registry's control thread has done the
  // change; no gRPC thread waits meanwhile.
  grpc::ServerUnaryReactor* RepositoryModelLoad(
      grpc::CallbackServerContext* context, const inference::RepositoryModelLoadRequest* request,
      inference::RepositoryModelLoadResponse* response) override;
  grpc::ServerUnaryReactor* RepositoryModelUnload(
      grpc::CallbackServerContext* context, const inference::RepositoryModelUnloadRequest* request,
      inference::RepositoryModelUnloadResponse* response) override;

 private:
  // Null while loading. The registry to use, or an UNAVAILABLE status.
  core::StatusOr<core::ModelRegistry*> Registry() const;
  // Null when `rpc`'s protocol group lets the call in; otherwise the call,
  // answered PERMISSION_DENIED and counted.
  grpc::ServerUnaryReactor* RefuseRestricted(Rpc rpc, RpcCounters& counters,
                                             core::Clock::time_point start,
                                             grpc::CallbackServerContext* context) const;

  InferenceServiceOptions options_;
  InferMessageAllocator infer_messages_;  // ModelInfer's messages on pooled arenas
  InferPath path_;
  RpcStats rpc_stats_;
};

}  // namespace selu::grpc_transport
