#include "server/core/model_stats.h"

#include <chrono>

namespace selu::core {
namespace {

uint64_t Nanos(Clock::duration d) {
  const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(d).count();
  return ns > 0 ? static_cast<uint64_t>(ns) : 0;
}

uint64_t WallMillis() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                   std::chrono::system_clock::now().time_since_epoch())
                                   .count());
}

}  // namespace

ModelStats::ModelStats(int64_t max_batch_size)
    : batches_(new Counter[static_cast<size_t>(max_batch_size) + 1]),
      max_batch_size_(max_batch_size) {}

void ModelStats::RecordRequest(const Status& status, Clock::time_point arrival,
                               const InferenceRequest& request) {
  const Clock::time_point now = Clock::now();
  if (!status.ok()) {
    fail_.Add(Nanos(now - arrival));
    return;
  }
  success_.Add(Nanos(now - arrival));
  queue_.Add(Nanos(request.compute_start - request.enqueue_time));
  compute_infer_.Add(Nanos(request.compute_end - request.compute_start));
  inference_count_.fetch_add(static_cast<uint64_t>(request.rows), std::memory_order_relaxed);
  last_inference_ms_.store(WallMillis(), std::memory_order_relaxed);
}

void ModelStats::RecordRefused(Clock::time_point arrival) { fail_.Add(Nanos(Clock::now() - arrival)); }

void ModelStats::OnBatch(int64_t rows, Clock::duration compute) {
  execution_count_.fetch_add(1, std::memory_order_relaxed);
  if (rows >= 1 && rows <= max_batch_size_) batches_[rows].Add(Nanos(compute));
}

ModelStatsSnapshot ModelStats::Snapshot() const {
  ModelStatsSnapshot s;
  s.inference_count = inference_count_.load(std::memory_order_relaxed);
  s.execution_count = execution_count_.load(std::memory_order_relaxed);
  s.last_inference_ms = last_inference_ms_.load(std::memory_order_relaxed);
  s.success = success_.Load();
  s.fail = fail_.Load();
  s.queue = queue_.Load();
  s.compute_infer = compute_infer_.Load();
  s.batches.resize(static_cast<size_t>(max_batch_size_) + 1);
  for (int64_t i = 0; i <= max_batch_size_; ++i) s.batches[i] = batches_[i].Load();
  return s;
}

}  // namespace selu::core
