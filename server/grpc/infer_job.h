// InferJob: one inference request on its way through a model's batcher, and
// SubmitInfer, the lookup-validate-queue path that unary ModelInfer and each
// message of ModelStreamInfer share, so both give the same answers and the
// same refusal texts, count the same statistics and batch together.
//
// A transport object (the unary call, a stream's pending message) derives
// from InferJob and implements Done(): it calls Complete() to finish the
// response and record the model's statistics, then sends the answer.
//
// Thread safety: an InferJob belongs to one request; SubmitInfer may run
// concurrently from any thread (it reads only atomics of InferPath).
#pragma once

#include <grpcpp/server_context.h>

#include <atomic>
#include <chrono>
#include <memory>

#include "proto/grpc_service.pb.h"
#include "server/core/repository/model_registry.h"
#include "server/grpc/infer_codec.h"
#include "server/grpc/shutdown_gate.h"

namespace selu::grpc_transport {

// The state the inference rpcs share, owned by InferenceService.
struct InferPath {
  // Null while the models load.
  std::atomic<core::ModelRegistry*> registry{nullptr};
  ShutdownGate gate;
  // Inference requests accepted whose answers are not yet on the wire.
  std::atomic<int64_t> in_flight{0};
  // Requests that found a version being swapped out and were re-sent.
  std::atomic<uint64_t> swap_resends{0};
  // Streams: the most requests one stream ever had read and unanswered, and
  // how often a stream stopped reading because it reached its bound.
  std::atomic<int64_t> stream_unanswered_max{0};
  std::atomic<uint64_t> stream_read_pauses{0};
  // Tests only (InferenceServiceOptions::test_submit_delay).
  std::chrono::microseconds test_submit_delay{0};

  void NoteStreamUnanswered(int64_t n) {
    int64_t seen = stream_unanswered_max.load(std::memory_order_relaxed);
    while (n > seen &&
           !stream_unanswered_max.compare_exchange_weak(seen, n, std::memory_order_relaxed)) {
    }
  }
};

// gRPC's wall-clock deadline of the call, on the batcher's steady clock.
core::Clock::time_point SteadyDeadline(const grpc::CallbackServerContext& context);

class InferJob : public core::InferenceRequest {
 public:
  // Validates `request` against `model` and queues this job on its batcher.
  // Non-OK: nothing was queued and Done() will not be called. `request` and
  // `response` must stay valid until Done() (inputs may be used in place).
  core::Status Start(std::shared_ptr<core::ServableModel> model,
                     const inference::ModelInferRequest& request,
                     inference::ModelInferResponse* response, core::Clock::time_point arrival,
                     core::Clock::time_point deadline);

  // From Done(): cuts several outputs out of the packed answer (or writes
  // the classification strings), records the
  // model's statistics, clears the response on failure and returns the
  // status to answer with (prefixed with the model's name on failure).
  core::Status Complete(core::Status status, inference::ModelInferResponse* response);

  core::ServableModel* model() const { return model_.get(); }
  core::Clock::time_point arrival() const { return arrival_; }
  // Drops the model reference (a pooled job must not keep a version alive).
  void Release() { model_.reset(); }

 protected:
  ~InferJob() = default;

 private:
  std::shared_ptr<core::ServableModel> model_;
  core::Clock::time_point arrival_;
  DecodedInput input_;
  PreparedOutputs outputs_;  // used by several outputs and classification only
};

// Finds the model `request` names and starts `job` on it; a request that
// finds a version being swapped out is re-sent to the one now serving.
// Non-OK: `job` was not queued, the response is cleared, and the status is
// the one unary ModelInfer answers with (refusals already counted in the
// model's statistics). Does not look at the shutdown gate.
core::Status SubmitInfer(InferPath& path, const inference::ModelInferRequest& request,
                         core::Clock::time_point arrival, core::Clock::time_point deadline,
                         InferJob* job, inference::ModelInferResponse* response);

}  // namespace selu::grpc_transport
