// ModelStats: cumulative statistics of one model version, the figures
// Triton's ModelStatistics rpc reports (and a Prometheus exporter can read).
//
// Recording is lock-free: relaxed atomic adds on counters owned by the model
// version, so it costs a few nanoseconds per request and per batch and needs
// no lock shared by all requests.
//
// Thread safety: every method may be called from any thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

#include "server/core/base/atomic_histogram.h"
#include "server/core/base/status.h"
#include "server/core/serving/dynamic_batcher.h"

namespace selu::core {

struct DurationTotals {
  uint64_t count = 0;
  uint64_t ns = 0;
};

struct ModelStatsSnapshot {
  uint64_t inference_count = 0;    // rows of successful requests
  uint64_t execution_count = 0;    // engine calls
  uint64_t last_inference_ms = 0;  // wall clock, ms since the epoch; 0: never
  DurationTotals success;          // arrival → response ready
  DurationTotals fail;
  DurationTotals queue;          // enqueue → compute start (successful requests)
  DurationTotals compute_infer;  // engine time of the request's batch (successful requests)
  // Index = batch rows; entries with count 0 are omitted by readers.
  std::vector<DurationTotals> batches;

  // For metrics exporters.
  uint64_t requests_by_code[kStatusCodeCount] = {};  // every answered request, by final code
  AtomicHistogram::Snapshot request_duration_ns;     // arrival → answer, every request
  AtomicHistogram::Snapshot queue_duration_ns;       // enqueue → compute start, computed requests
  AtomicHistogram::Snapshot compute_duration_ns;     // per engine call
  AtomicHistogram::Snapshot batch_rows;              // per engine call
};

class ModelStats final : public BatchObserver {
 public:
  explicit ModelStats(int64_t max_batch_size);

  // A request answered with `status`; `request` carries the batcher's
  // timestamps when it was computed.
  void RecordRequest(const Status& status, Clock::time_point arrival,
                     const InferenceRequest& request);
  // A request refused before it reached the batcher (bad input, queue full...).
  void RecordRefused(StatusCode code, Clock::time_point arrival);
  // BatchObserver: one engine call of `rows` rows.
  void OnBatch(int64_t rows, Clock::duration compute) override;

  ModelStatsSnapshot Snapshot() const;

 private:
  struct Counter {
    std::atomic<uint64_t> count{0};
    std::atomic<uint64_t> ns{0};
    void Add(uint64_t nanos) {
      count.fetch_add(1, std::memory_order_relaxed);
      ns.fetch_add(nanos, std::memory_order_relaxed);
    }
    DurationTotals Load() const {
      return {count.load(std::memory_order_relaxed), ns.load(std::memory_order_relaxed)};
    }
  };

  std::atomic<uint64_t> inference_count_{0};
  std::atomic<uint64_t> execution_count_{0};
  std::atomic<uint64_t> last_inference_ms_{0};
  Counter success_, fail_, queue_, compute_infer_;
  std::unique_ptr<Counter[]> batches_;
  int64_t max_batch_size_;
  std::atomic<uint64_t> codes_[kStatusCodeCount] = {};
  AtomicHistogram request_duration_{LatencyBucketsNs()};
  AtomicHistogram queue_duration_{LatencyBucketsNs()};
  AtomicHistogram compute_duration_{LatencyBucketsNs()};
  AtomicHistogram batch_rows_{BatchSizeBuckets()};
};

}  // namespace selu::core
