#include "server/core/serving/model_stats.h"

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
  const uint64_t total = Nanos(now - arrival);
  codes_[static_cast<int>(status.code())].fetch_add(1, std::memory_order_relaxed);
  request_duration_.Observe(total);
  if (!status.ok()) {
    fail_.Add(total);
    return;
  }
  success_.Add(total);
  const uint64_t queued = Nanos(request.compute_start - request.enqueue_time);
  queue_.Add(queued);
  queue_duration_.Observe(queued);
  compute_infer_.Add(Nanos(request.compute_end - request.compute_start));
  inference_count_.fetch_add(static_cast<uint64_t>(request.rows), std::memory_order_relaxed);
  last_inference_ms_.store(WallMillis(), std::memory_order_relaxed);
}

void ModelStats::RecordRefused(StatusCode code, Clock::time_point arrival) {
  const uint64_t total = Nanos(Clock::now() - arrival);
  codes_[static_cast<int>(code)].fetch_add(1, std::memory_order_relaxed);
  request_duration_.Observe(total);
  fail_.Add(total);
}

void ModelStats::OnBatch(int64_t rows, Clock::duration compute) {
  execution_count_.fetch_add(1, std::memory_order_relaxed);
  const uint64_t ns = Nanos(compute);
  if (rows >= 1 && rows <= max_batch_size_) batches_[rows].Add(ns);
  compute_duration_.Observe(ns);
  batch_rows_.Observe(static_cast<uint64_t>(rows));
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
  for (int i = 0; i < kStatusCodeCount; ++i) {
    s.requests_by_code[i] = codes_[i].load(std::memory_order_relaxed);
  }
  s.request_duration_ns = request_duration_.Read();
  s.queue_duration_ns = queue_duration_.Read();
  s.compute_duration_ns = compute_duration_.Read();
  s.batch_rows = batch_rows_.Read();
  return s;
}

}  // namespace selu::core
