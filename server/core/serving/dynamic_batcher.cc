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
#include "server/core/serving/dynamic_batcher.h"

#include <pthread.h>

#include <algorithm>
#include <condition_variable>
#include <cstring>
#include <exception>
#include <mutex>
#include <string>
#include <system_error>
#include <thread>
#include <utility>

namespace selu::core {
namespace {

constexpr int kMaxInstances = 64;

uint64_t Nanos(Clock::duration d) {
  return static_cast<uint64_t>(
      std::max<int64_t>(0, std::chrono::duration_cast<std::chrono::nanoseconds>(d).count()));
}

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

struct DynamicBatcher::Shared {
  Shared(const BatchComputer& c, const BatcherOptions& o)
      : computer(c),
        options(o),
        capacity(o.max_queue_size),
        ring(static_cast<size_t>(o.max_queue_size), nullptr),
        ready_at(ReadyAt(o)) {}

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
