// DynamicBatcher's internal state, shared by its two halves: the public API
// (dynamic_batcher.cc: Create, Submit, Drain, stats) and the workers
// (dynamic_batcher_worker.cc: forming and running batches). Private to
// selu::serving: include it from nowhere else.
//
// Design.
//
// One mutex guards a ring of InferenceRequest* (capacity max_queue_size,
// allocated once in Create) and the state of the batch being formed. Submit()
// holds it for a push and a few comparisons: no allocation, at most one
// notify, and only when a thread is known to be waiting for it.
//
// Forming token: at most one worker at a time (the "former") forms a batch.
// It scans the queue from the head without removing anything and removes the
// requests only when it dispatches them; then it hands the token on and
// computes outside the lock while another worker forms the next batch.
// Requests therefore leave the queue only from its head and in order, so FIFO
// holds across workers and no request can be taken twice, while the engine
// calls of several workers still overlap.
//
// The scan is incremental: while a batch is forming the queue only grows at
// the tail, so Submit() extends the former's scan by the request it adds and
// wakes the former only when that made the batch ready (or when the request
// closed it by not fitting). The former sleeps until then or until the oldest
// request's enqueue_time + max_queue_delay. Idle workers sleep on a second
// condition variable; Submit() wakes one only when nobody holds the token and
// no wake-up is already on its way.
//
// Batch policy. Requests are added in arrival order while the rows stay within
// max_batch_size. The batch is ready at once when it holds max_batch_size rows,
// when some prefix of it has exactly a preferred batch size (the longest such
// prefix is dispatched; what follows stays at the head of the queue), or when
// the next queued request does not fit (the batch cannot grow without
// overtaking it, so waiting would only add latency). Otherwise the former
// waits, except when max_queue_delay is 0 or the batcher is draining, and
// never past the earliest deadline of the requests it holds.
//
// Deadline and cancellation are checked when the requests are taken out of
// the queue; such requests keep their place (and rows) in the batch being
// formed and are dropped from it at dispatch.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "server/core/base/status.h"
#include "server/core/serving/dynamic_batcher.h"

namespace selu::core {

struct DynamicBatcher::Shared {
  Shared(const BatchComputer& c, const BatcherOptions& o);

  // kCaller: the state one computing caller uses (a worker's, without the thread).
  struct Slot {
    std::unique_ptr<BatchComputer::Context> context;
    std::vector<float> input, output;
    std::vector<InferenceRequest*> batch;
  };

  void WorkerMain(int index);
  // kCaller: runs the caller's own lone request on the calling thread with
  // `slot`, frees the slot and hands whatever queued meanwhile to a worker.
  void Lead(std::unique_lock<std::mutex>& lock, Slot* slot);
  // Forms one batch (the caller holds `lock` and the token) into `batch` and
  // gives the token up; false when draining has passed its deadline instead.
  bool FormBatch(std::unique_lock<std::mutex>& lock, std::vector<InferenceRequest*>& batch);
  void RunBatch(BatchComputer::Context& context, std::vector<InferenceRequest*>& batch,
                std::vector<float>& input, std::vector<float>& output);
  // Extends the forming scan over newly queued requests; true when the batch
  // should be dispatched without waiting for more.
  bool ExtendFormingLocked();
  InferenceRequest* At(int64_t offset) const {
    int64_t i = head + offset;
    if (i >= capacity) i -= capacity;
    return ring[static_cast<size_t>(i)];
  }
  bool StopLocked() const { return draining && (count == 0 || Clock::now() >= drain_deadline); }

  const BatchComputer& computer;
  const BatcherOptions& options;
  const int64_t capacity;

  std::mutex mu;
  std::condition_variable idle_cv;    // workers without the token
  std::condition_variable former_cv;  // the token holder, waiting for the delay
  std::vector<InferenceRequest*> ring;
  int64_t head = 0;
  int64_t count = 0;
  bool draining = false;
  Clock::time_point drain_deadline = Clock::time_point::max();
  int idle_waiters = 0;
  bool idle_wakeup_pending = false;
  bool forming = false;
  bool former_notified = false;
  // The forming scan: the first `formed_count` queued requests fit together
  // (`formed_rows` rows); `preferred_count` is the longest prefix whose rows
  // are a preferred size (or max_batch_size); `formed_closed`: the next one
  // does not fit, or the batch is full.
  int64_t formed_count = 0;
  int64_t formed_rows = 0;
  int64_t preferred_count = 0;
  bool formed_closed = false;
  // Earliest client deadline in the formed prefix: the former stops waiting
  // for more requests then, so an expired request is answered promptly (and
  // the rest computed) instead of after the full queue delay.
  Clock::time_point formed_deadline = Clock::time_point::max();
  const std::vector<uint8_t> ready_at;  // [rows]: dispatch at once at this size

  // Start-up handshake between Create() and the workers.
  int started = 0;
  Status startup_status;
  std::condition_variable startup_cv;

  std::mutex join_mu;  // serialises Drain()'s joins
  std::vector<std::thread> threads;

  // kCaller only.
  std::vector<std::unique_ptr<Slot>> slots;
  std::vector<Slot*> free_slots;     // guarded by mu
  std::condition_variable slots_cv;  // a slot was freed

  alignas(64) std::atomic<uint64_t> accepted{0};
  std::atomic<uint64_t> rejected_full{0};
  std::atomic<int64_t> queue_depth{0};
  alignas(64) std::atomic<uint64_t> succeeded{0};
  std::atomic<uint64_t> failed{0};
  std::atomic<uint64_t> expired{0};
  std::atomic<uint64_t> cancelled{0};
  std::atomic<uint64_t> batches{0};
  std::atomic<uint64_t> batched_rows{0};
  std::atomic<uint64_t> queue_ns{0};
  std::atomic<uint64_t> compute_ns{0};
};

}  // namespace selu::core
