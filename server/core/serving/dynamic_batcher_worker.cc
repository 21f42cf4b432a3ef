// DynamicBatcher's worker side: the forming token's holder extends its scan
// (ExtendFormingLocked), forms a batch (FormBatch) and runs it (RunBatch), on
// a worker thread (WorkerMain) or, with kCaller, on the submitting thread
// (Lead). The design is described in dynamic_batcher_shared.h.
#include <pthread.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <exception>
#include <mutex>
#include <string>
#include <vector>

#include "server/core/serving/dynamic_batcher.h"
#include "server/core/serving/dynamic_batcher_shared.h"

namespace selu::core {
namespace {

uint64_t Nanos(Clock::duration d) {
  return static_cast<uint64_t>(
      std::max<int64_t>(0, std::chrono::duration_cast<std::chrono::nanoseconds>(d).count()));
}

}  // namespace

bool DynamicBatcher::Shared::ExtendFormingLocked() {
  while (!formed_closed && formed_count < count) {
    const int64_t rows = At(formed_count)->rows;
    if (formed_rows + rows > options.max_batch_size) {
      formed_closed = true;
      break;
    }
    formed_rows += rows;
    formed_deadline = std::min(formed_deadline, At(formed_count)->deadline);
    ++formed_count;
    if (ready_at[static_cast<size_t>(formed_rows)]) preferred_count = formed_count;
    if (formed_rows == options.max_batch_size) formed_closed = true;
  }
  return formed_closed || preferred_count > 0;
}

bool DynamicBatcher::Shared::FormBatch(std::unique_lock<std::mutex>& lock,
                                       std::vector<InferenceRequest*>& batch) {
  const bool never_wait = options.max_queue_delay.count() == 0;
  for (;;) {
    if (ExtendFormingLocked() || never_wait || draining) break;
    const Clock::time_point dispatch_at =
        std::min(At(0)->enqueue_time + options.max_queue_delay, formed_deadline);
    if (Clock::now() >= dispatch_at) break;
    former_notified = false;
    former_cv.wait_until(lock, dispatch_at);
  }
  const bool abandon = draining && Clock::now() >= drain_deadline;
  const int64_t n = abandon ? 0 : preferred_count > 0 ? preferred_count : formed_count;
  batch.clear();
  for (int64_t i = 0; i < n; ++i) batch.push_back(At(i));
  head += n;
  if (head >= capacity) head -= capacity;
  count -= n;
  queue_depth.store(count, std::memory_order_relaxed);
  formed_count = formed_rows = preferred_count = 0;
  formed_closed = false;
  formed_deadline = Clock::time_point::max();
  forming = false;
  return !abandon;
}

void DynamicBatcher::Shared::Lead(std::unique_lock<std::mutex>& lock, Slot* slot) {
  // Holds the lock and the forming token on entry; the queue holds just the
  // caller's request. Runs that one batch on the calling thread, then hands
  // whatever queued meanwhile to the workers, so this (gRPC) thread goes
  // back to reading requests instead of computing batch after batch.
  const bool formed = FormBatch(lock, slot->batch);
  if (formed) {
    lock.unlock();
    RunBatch(*slot->context, slot->batch, slot->input, slot->output);
    lock.lock();
  }
  free_slots.push_back(slot);
  bool wake_idle = false;
  if (count > 0 && !forming && idle_waiters > 0 && !idle_wakeup_pending) {
    idle_wakeup_pending = true;
    wake_idle = true;
  }
  lock.unlock();
  slots_cv.notify_all();
  if (wake_idle) idle_cv.notify_one();
}

void DynamicBatcher::Shared::WorkerMain(int index) {
  const std::string name = "selu-batch-" + std::to_string(index);
  pthread_setname_np(pthread_self(), name.c_str());

  std::unique_ptr<BatchComputer::Context> context;
  std::vector<float> input, output;
  std::vector<InferenceRequest*> batch;
  Status status;
  try {
    context = computer.CreateContext();
    if (context == nullptr) status = InternalError("the engine returned no worker context");
    const auto rows = static_cast<size_t>(options.max_batch_size);
    input.resize(rows * static_cast<size_t>(computer.input_features()));
    output.resize(rows * static_cast<size_t>(computer.output_features()));
    batch.reserve(rows);
  } catch (const std::exception& e) {
    status = InternalError(std::string("batch worker start-up failed: ") + e.what());
  }

  std::unique_lock lock(mu);
  ++started;
  if (!status.ok() && startup_status.ok()) startup_status = status;
  startup_cv.notify_all();
  if (!status.ok()) return;

  for (;;) {
    while (forming || count == 0) {
      if (StopLocked()) break;
      ++idle_waiters;
      idle_cv.wait(lock);
      --idle_waiters;
    }
    if (StopLocked()) break;
    forming = true;
    idle_wakeup_pending = false;
    if (!FormBatch(lock, batch)) break;
    bool wake_idle = false;
    bool wake_all = false;
    if (draining) {
      wake_all = true;  // whoever waits must re-check whether to stop
    } else if (count > 0 && idle_waiters > 0 && !idle_wakeup_pending) {
      idle_wakeup_pending = true;
      wake_idle = true;
    }
    lock.unlock();
    if (wake_all) {
      idle_cv.notify_all();
    } else if (wake_idle) {
      idle_cv.notify_one();
    }
    RunBatch(*context, batch, input, output);
    lock.lock();
  }
  lock.unlock();
  idle_cv.notify_all();
}

void DynamicBatcher::Shared::RunBatch(BatchComputer::Context& context,
                                      std::vector<InferenceRequest*>& batch,
                                      std::vector<float>& input, std::vector<float>& output) {
  const Clock::time_point start = Clock::now();
  size_t live = 0;
  int64_t rows = 0;
  for (InferenceRequest* r : batch) {
    if (r->deadline <= start) {
      expired.fetch_add(1, std::memory_order_relaxed);
      failed.fetch_add(1, std::memory_order_relaxed);
      const auto waited =
          std::chrono::duration_cast<std::chrono::microseconds>(start - r->enqueue_time);
      r->Done(Status(StatusCode::kDeadlineExceeded,
                     "deadline exceeded after " + std::to_string(waited.count()) + " µs in queue"));
    } else if (r->IsCancelled()) {
      cancelled.fetch_add(1, std::memory_order_relaxed);
      failed.fetch_add(1, std::memory_order_relaxed);
      r->Done(Status(StatusCode::kCancelled, "request cancelled while queued"));
    } else {
      batch[live++] = r;
      rows += r->rows;
    }
  }
  if (live == 0) return;

  const int64_t in_features = computer.input_features();
  const int64_t out_features = computer.output_features();
  Status status;
  try {
    if (live == 1) {
      status = computer.Compute(context, batch[0]->input, rows, batch[0]->output);
    } else {
      float* dst = input.data();
      for (size_t i = 0; i < live; ++i) {
        const size_t n = static_cast<size_t>(batch[i]->rows * in_features);
        std::memcpy(dst, batch[i]->input, n * sizeof(float));
        dst += n;
      }
      status = computer.Compute(context, input.data(), rows, output.data());
      if (status.ok()) {
        const float* src = output.data();
        for (size_t i = 0; i < live; ++i) {
          const size_t n = static_cast<size_t>(batch[i]->rows * out_features);
          std::memcpy(batch[i]->output, src, n * sizeof(float));
          src += n;
        }
      }
    }
  } catch (const std::exception& e) {
    status = InternalError(std::string("engine threw: ") + e.what());
  }
  const Clock::time_point end = Clock::now();

  uint64_t waited_ns = 0;
  for (size_t i = 0; i < live; ++i) {
    InferenceRequest* r = batch[i];
    r->compute_start = start;
    r->compute_end = end;
    r->batch_rows = rows;
    waited_ns += Nanos(start - r->enqueue_time);
  }
  batches.fetch_add(1, std::memory_order_relaxed);
  batched_rows.fetch_add(static_cast<uint64_t>(rows), std::memory_order_relaxed);
  queue_ns.fetch_add(waited_ns, std::memory_order_relaxed);
  compute_ns.fetch_add(Nanos(end - start), std::memory_order_relaxed);
  if (options.observer != nullptr) options.observer->OnBatch(rows, end - start);
  (status.ok() ? succeeded : failed).fetch_add(live, std::memory_order_relaxed);
  for (size_t i = 0; i < live; ++i) batch[i]->Done(status);
}

}  // namespace selu::core
