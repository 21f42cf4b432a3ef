// DynamicBatcher: merges concurrent inference requests for one model version
// into engine calls.
//
// Requests are queued (bounded) and picked up by `instances` worker threads.
// A worker takes the oldest request, then keeps adding queued requests in
// arrival order while the batch stays within max_batch_size rows. It
// dispatches at once when the batch is full or reaches a preferred batch size
// (the longest queued prefix of a preferred size), or when the next queued
// request does not fit (it is never overtaken: it heads the next batch);
// otherwise it waits for more requests until the oldest request has been
// queued for max_queue_delay. Each request's rows are copied into the batch
// and its own rows copied back, so every caller gets exactly its answer. A
// request alone in its batch runs in place, without copies.
//
// A request whose deadline has passed when a worker reaches it is answered
// DEADLINE_EXCEEDED and never computed; one whose IsCancelled() is true is
// answered CANCELLED and never computed.
//
// Thread safety: Submit() may be called from any thread and never blocks on
// computation (it takes a short queue lock). Done() is called from a worker
// thread, never under the batcher's lock.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <vector>

#include "server/core/base/status.h"

namespace selu::core {

using Clock = std::chrono::steady_clock;

// One call's rows. The batcher does not own the request or its buffers: the
// caller keeps them valid until Done() has been called. The transport embeds
// this in its per-call object, so queuing allocates nothing.
class InferenceRequest {
 public:
  const float* input = nullptr;  // rows × input_features, read-only
  float* output = nullptr;       // rows × output_features, written before Done(OK)
  int64_t rows = 0;
  Clock::time_point deadline = Clock::time_point::max();

  // Filled in by the batcher before Done(), for statistics.
  Clock::time_point enqueue_time;
  Clock::time_point compute_start;
  Clock::time_point compute_end;
  int64_t batch_rows = 0;  // rows of the engine call this request was part of

  // Polled when a worker reaches the request; true drops it with CANCELLED.
  virtual bool IsCancelled() const { return false; }
  // Called exactly once for every request Submit() accepted.
  virtual void Done(Status status) = 0;

 protected:
  ~InferenceRequest() = default;
};

// What the batcher calls to compute a batch: MlpEngine in production
// (MlpBatchComputer), fakes in tests.
class BatchComputer {
 public:
  // Per-worker state (an engine workspace); used by one thread at a time.
  class Context {
   public:
    virtual ~Context() = default;
  };

  virtual ~BatchComputer() = default;
  virtual int64_t input_features() const = 0;
  virtual int64_t output_features() const = 0;
  virtual std::unique_ptr<Context> CreateContext() const = 0;
  // Builds whatever makes these batch sizes fast (primitives); called at start.
  virtual Status Warmup(const std::vector<int64_t>& batch_sizes) const = 0;
  virtual Status Compute(Context& context, const float* input, int64_t rows,
                         float* output) const = 0;
};

// Told about every engine call (from the worker thread that made it); used
// for statistics and metrics. Must be cheap and thread-safe.
class BatchObserver {
 public:
  virtual ~BatchObserver() = default;
  virtual void OnBatch(int64_t rows, Clock::duration compute) = 0;
};

// Which threads run the engine.
enum class BatchExecution {
  // `instances` dedicated worker threads; Submit() only queues. For models
  // whose batches take long enough that a caller must not wait for them.
  kWorkers,
  // As kWorkers, except that a request arriving at an idle batcher (nothing
  // queued, no batch forming, a free slot) is computed by the submitting
  // thread itself, before Submit() returns: no thread hop and no wake-up at
  // low load. Requests arriving meanwhile queue for the workers, so under
  // load the submitting (gRPC) threads go back to reading and the workers
  // batch. For small models, where a batch costs microseconds. Requires
  // max_queue_delay 0 (a caller never waits for more requests).
  kCaller,
};

struct BatcherOptions {
  // Most rows in one engine call; a single request may not exceed it.
  int64_t max_batch_size = 64;
  // Batch sizes (rows) dispatched as soon as they are reached.
  std::vector<int64_t> preferred_batch_sizes;
  // How long the oldest queued request may wait for others; 0: never wait.
  std::chrono::microseconds max_queue_delay{0};
  // Most requests waiting; beyond it Submit() refuses with RESOURCE_EXHAUSTED.
  int64_t max_queue_size = 1024;
  // Worker threads (kWorkers) or concurrent callers running batches
  // (kCaller), each with its own engine context.
  int instances = 1;
  BatchExecution execution = BatchExecution::kWorkers;
  // Build primitives for every batch size 1..max_batch_size at start-up, so
  // no request pays for primitive creation.
  bool warmup_all_batch_sizes = true;
  // Optional; must outlive the batcher.
  BatchObserver* observer = nullptr;
};

// Counters since start; read with relaxed loads (they are statistics).
struct BatcherStats {
  uint64_t accepted = 0;       // requests Submit() accepted
  uint64_t rejected_full = 0;  // RESOURCE_EXHAUSTED at Submit
  uint64_t succeeded = 0;      // requests answered OK
  uint64_t failed = 0;         // answered with an error (engine error, deadline, cancel, drain)
  uint64_t expired = 0;        // of which DEADLINE_EXCEEDED before compute
  uint64_t cancelled = 0;      // of which CANCELLED before compute
  uint64_t batches = 0;        // engine calls
  uint64_t batched_rows = 0;   // rows computed
  uint64_t queue_ns = 0;       // Σ enqueue → compute start, over computed requests
  uint64_t compute_ns = 0;     // Σ engine time, over batches
  int64_t queue_depth = 0;     // requests waiting now
};

// Why a draining batcher refuses a request.
inline constexpr char kDrainingMessage[] =
    "draining: the model version is being unloaded or replaced, or the server is shutting down";

class DynamicBatcher {
 public:
  // Starts the workers (and warms the computer up). INVALID_ARGUMENT for
  // inconsistent options.
  static StatusOr<std::unique_ptr<DynamicBatcher>> Create(
      std::shared_ptr<const BatchComputer> computer, BatcherOptions options);
  // Drains with no grace: see Drain().
  ~DynamicBatcher();
  DynamicBatcher(const DynamicBatcher&) = delete;
  DynamicBatcher& operator=(const DynamicBatcher&) = delete;

  // Queues `request`. On OK, request->Done() will be called exactly once
  // (with kCaller possibly before Submit() returns, on this thread). On
  // an error, Done() is NOT called and the status says why:
  //   INVALID_ARGUMENT    rows < 1 or rows > max_batch_size
  //   RESOURCE_EXHAUSTED  the queue holds max_queue_size requests
  //   UNAVAILABLE         the batcher is draining or stopped
  Status Submit(InferenceRequest* request);

  // Stops accepting (Submit → UNAVAILABLE), lets the workers finish what is
  // queued until `deadline`, answers whatever is still queued after it with
  // UNAVAILABLE, and joins the workers. Idempotent; called by the destructor.
  // May run concurrently with Submit(); must not be called from Done() (it
  // joins the thread that calls Done()).
  void Drain(Clock::time_point deadline);

  BatcherStats stats() const;
  const BatcherOptions& options() const { return options_; }
  const BatchComputer& computer() const { return *computer_; }

 private:
  struct Shared;
  DynamicBatcher(std::shared_ptr<const BatchComputer> computer, BatcherOptions options);

  std::shared_ptr<const BatchComputer> computer_;
  BatcherOptions options_;
  std::unique_ptr<Shared> shared_;
};

}  // namespace selu::core
