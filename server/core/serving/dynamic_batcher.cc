// DynamicBatcher's public side: option validation, Create (caller slots,
// workers and their start-up handshake), Submit, Drain and stats. The design
// is described in dynamic_batcher_shared.h; the workers that form and run the
// batches are in dynamic_batcher_worker.cc.
#include "server/core/serving/dynamic_batcher.h"

#include <algorithm>
#include <condition_variable>
#include <exception>
#include <mutex>
#include <string>
#include <system_error>
#include <thread>
#include <utility>

#include "server/core/serving/dynamic_batcher_shared.h"

namespace selu::core {
namespace {

constexpr int kMaxInstances = 64;

Status ValidateOptions(const BatcherOptions& o) {
  if (o.max_batch_size < 1) {
    return InvalidArgumentError("max_batch_size must be at least 1, got " +
                                std::to_string(o.max_batch_size));
  }
  if (o.instances < 1 || o.instances > kMaxInstances) {
    return InvalidArgumentError("instances must be in [1, " + std::to_string(kMaxInstances) +
                                "], got " + std::to_string(o.instances));
  }
  if (o.max_queue_size < 1) {
    return InvalidArgumentError("max_queue_size must be at least 1, got " +
                                std::to_string(o.max_queue_size));
  }
  for (int64_t size : o.preferred_batch_sizes) {
    if (size < 1 || size > o.max_batch_size) {
      return InvalidArgumentError("preferred batch size " + std::to_string(size) +
                                  " is outside [1, max_batch_size " +
                                  std::to_string(o.max_batch_size) + "]");
    }
  }
  if (o.max_queue_delay.count() < 0) {
    return InvalidArgumentError("max_queue_delay must not be negative, got " +
                                std::to_string(o.max_queue_delay.count()) + " µs");
  }
  if (o.execution == BatchExecution::kCaller && o.max_queue_delay.count() != 0) {
    return InvalidArgumentError(
        "caller execution needs max_queue_delay 0: a caller never waits for more requests");
  }
  return OkStatus();
}

// [rows] → 1 when a batch of that many rows is dispatched at once.
std::vector<uint8_t> ReadyAt(const BatcherOptions& o) {
  std::vector<uint8_t> ready(static_cast<size_t>(o.max_batch_size) + 1, 0);
  ready[static_cast<size_t>(o.max_batch_size)] = 1;
  for (int64_t size : o.preferred_batch_sizes) ready[static_cast<size_t>(size)] = 1;
  return ready;
}

}  // namespace

DynamicBatcher::Shared::Shared(const BatchComputer& c, const BatcherOptions& o)
    : computer(c),
      options(o),
      capacity(o.max_queue_size),
      ring(static_cast<size_t>(o.max_queue_size), nullptr),
      ready_at(ReadyAt(o)) {}

DynamicBatcher::DynamicBatcher(std::shared_ptr<const BatchComputer> computer,
                               BatcherOptions options)
    : computer_(std::move(computer)), options_(std::move(options)) {
  shared_ = std::make_unique<Shared>(*computer_, options_);
}

StatusOr<std::unique_ptr<DynamicBatcher>> DynamicBatcher::Create(
    std::shared_ptr<const BatchComputer> computer, BatcherOptions options) {
  if (computer == nullptr) return InvalidArgumentError("no batch computer");
  SELU_RETURN_IF_ERROR(ValidateOptions(options));
  std::vector<int64_t> sizes;
  if (options.warmup_all_batch_sizes) {
    sizes.reserve(static_cast<size_t>(options.max_batch_size));
    for (int64_t b = 1; b <= options.max_batch_size; ++b) sizes.push_back(b);
  } else {
    sizes.push_back(1);
  }
  SELU_RETURN_IF_ERROR(computer->Warmup(sizes));

  std::unique_ptr<DynamicBatcher> batcher(
      new DynamicBatcher(std::move(computer), std::move(options)));
  Shared& s = *batcher->shared_;
  const int instances = batcher->options_.instances;
  if (batcher->options_.execution == BatchExecution::kCaller) {
    try {
      const auto rows = static_cast<size_t>(batcher->options_.max_batch_size);
      for (int i = 0; i < instances; ++i) {
        auto slot = std::make_unique<Shared::Slot>();
        slot->context = batcher->computer_->CreateContext();
        if (slot->context == nullptr) return InternalError("the engine returned no context");
        slot->input.resize(rows * static_cast<size_t>(batcher->computer_->input_features()));
        slot->output.resize(rows * static_cast<size_t>(batcher->computer_->output_features()));
        slot->batch.reserve(rows);
        s.free_slots.push_back(slot.get());
        s.slots.push_back(std::move(slot));
      }
    } catch (const std::exception& e) {
      return InternalError(std::string("cannot set up caller execution: ") + e.what());
    }
  }
  s.threads.reserve(static_cast<size_t>(instances));
  Status status;
  try {
    for (int i = 0; i < instances; ++i) {
      s.threads.emplace_back([&s, i] { s.WorkerMain(i); });
    }
  } catch (const std::system_error& e) {
    status = InternalError(std::string("cannot start batch worker: ") + e.what());
  }
  {
    std::unique_lock lock(s.mu);
    const int expected = static_cast<int>(s.threads.size());
    s.startup_cv.wait(lock, [&] { return s.started == expected; });
    if (status.ok()) status = s.startup_status;
  }
  if (!status.ok()) {
    batcher->Drain(Clock::now());
    return status;
  }
  return batcher;
}

DynamicBatcher::~DynamicBatcher() { Drain(Clock::now()); }

Status DynamicBatcher::Submit(InferenceRequest* request) {
  if (request == nullptr || request->input == nullptr || request->output == nullptr) {
    return InvalidArgumentError("request without input or output buffer");
  }
  if (request->rows < 1 || request->rows > options_.max_batch_size) {
    return InvalidArgumentError("batch of " + std::to_string(request->rows) +
                                " rows is outside [1, max_batch_size " +
                                std::to_string(options_.max_batch_size) + "]");
  }
  request->enqueue_time = Clock::now();
  Shared& s = *shared_;
  bool wake_former = false;
  bool wake_idle = false;
  if (options_.execution == BatchExecution::kCaller) {
    std::unique_lock lock(s.mu);
    // An idle batcher (nothing queued, nobody forming): compute right here.
    if (!s.draining && s.count == 0 && !s.forming && !s.free_slots.empty()) {
      s.ring[static_cast<size_t>(s.head)] = request;
      s.count = 1;
      s.queue_depth.store(1, std::memory_order_relaxed);
      s.accepted.fetch_add(1, std::memory_order_relaxed);
      Shared::Slot* slot = s.free_slots.back();
      s.free_slots.pop_back();
      s.forming = true;
      s.Lead(lock, slot);
      return OkStatus();
    }
  }
  {
    std::lock_guard lock(s.mu);
    if (s.draining) return UnavailableError(kDrainingMessage);
    if (s.count == s.capacity) {
      s.rejected_full.fetch_add(1, std::memory_order_relaxed);
      return ResourceExhaustedError("queue full: " + std::to_string(s.count) +
                                    " requests waiting (max_queue_size " +
                                    std::to_string(s.capacity) + ")");
    }
    int64_t tail = s.head + s.count;
    if (tail >= s.capacity) tail -= s.capacity;
    s.ring[static_cast<size_t>(tail)] = request;
    ++s.count;
    s.queue_depth.store(s.count, std::memory_order_relaxed);
    s.accepted.fetch_add(1, std::memory_order_relaxed);
    if (s.forming) {
      // The token holder is waiting for the delay (it holds the lock otherwise).
      // Wake it when the batch became ready, or when this request's deadline
      // comes before the time it sleeps until.
      const Clock::time_point earliest_before = s.formed_deadline;
      const bool ready = s.ExtendFormingLocked();
      if ((ready || s.formed_deadline < earliest_before) && !s.former_notified) {
        s.former_notified = true;
        wake_former = true;
      }
    } else if (s.idle_waiters > 0 && !s.idle_wakeup_pending) {
      s.idle_wakeup_pending = true;
      wake_idle = true;
    }
  }
  if (wake_former) {
    s.former_cv.notify_one();
  } else if (wake_idle) {
    s.idle_cv.notify_one();
  }
  return OkStatus();
}

void DynamicBatcher::Drain(Clock::time_point deadline) {
  Shared& s = *shared_;
  {
    std::lock_guard lock(s.mu);
    s.draining = true;
    s.drain_deadline = std::min(s.drain_deadline, deadline);
  }
  s.former_cv.notify_all();
  s.idle_cv.notify_all();

  std::lock_guard join_lock(s.join_mu);
  for (std::thread& t : s.threads) {
    if (t.joinable()) t.join();
  }
  if (!s.slots.empty()) {
    // Computing callers finish what is queued (until the deadline) and free
    // their slots.
    std::unique_lock lock(s.mu);
    s.slots_cv.wait(lock, [&] { return s.free_slots.size() == s.slots.size(); });
  }
  std::vector<InferenceRequest*> left;
  {
    std::lock_guard lock(s.mu);
    left.reserve(static_cast<size_t>(s.count));
    for (int64_t i = 0; i < s.count; ++i) left.push_back(s.At(i));
    s.head = s.count = 0;
    s.queue_depth.store(0, std::memory_order_relaxed);
  }
  if (left.empty()) return;
  s.failed.fetch_add(left.size(), std::memory_order_relaxed);
  const Status unavailable =
      UnavailableError(std::string("not computed before the drain deadline: ") + kDrainingMessage);
  for (InferenceRequest* r : left) r->Done(unavailable);
}

BatcherStats DynamicBatcher::stats() const {
  const Shared& s = *shared_;
  constexpr auto kRelaxed = std::memory_order_relaxed;
  BatcherStats out;
  out.accepted = s.accepted.load(kRelaxed);
  out.rejected_full = s.rejected_full.load(kRelaxed);
  out.succeeded = s.succeeded.load(kRelaxed);
  out.failed = s.failed.load(kRelaxed);
  out.expired = s.expired.load(kRelaxed);
  out.cancelled = s.cancelled.load(kRelaxed);
  out.batches = s.batches.load(kRelaxed);
  out.batched_rows = s.batched_rows.load(kRelaxed);
  out.queue_ns = s.queue_ns.load(kRelaxed);
  out.compute_ns = s.compute_ns.load(kRelaxed);
  out.queue_depth = s.queue_depth.load(kRelaxed);
  return out;
}

}  // namespace selu::core
