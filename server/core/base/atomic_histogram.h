// AtomicHistogram: a fixed-bucket histogram of non-negative integer samples
// (nanoseconds, rows) recorded with relaxed atomic adds — no lock, no
// allocation — and read as a consistent-enough snapshot for exporting.
//
// Thread safety: Observe() and Read() may run concurrently from any threads.
// A Read() racing Observe() may see a sample in `count` but not yet in its
// bucket (or the reverse); exporters tolerate that, as Prometheus does.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

namespace selu::core {

class AtomicHistogram {
 public:
  struct Snapshot {
    std::vector<uint64_t> upper_bounds;   // inclusive, ascending; +Inf implied
    std::vector<uint64_t> bucket_counts;  // per bucket (not cumulative), size bounds+1
    uint64_t count = 0;
    uint64_t sum = 0;
  };

  explicit AtomicHistogram(std::span<const uint64_t> upper_bounds);

  void Observe(uint64_t value) {
    size_t i = 0;
    while (i < bounds_.size() && value > bounds_[i]) ++i;
    buckets_[i].fetch_add(1, std::memory_order_relaxed);
    sum_.fetch_add(value, std::memory_order_relaxed);
    count_.fetch_add(1, std::memory_order_relaxed);
  }

  Snapshot Read() const;

 private:
  std::vector<uint64_t> bounds_;
  std::unique_ptr<std::atomic<uint64_t>[]> buckets_;
  std::atomic<uint64_t> sum_{0};
  std::atomic<uint64_t> count_{0};
};

// Latency buckets in nanoseconds: 10 µs (a small model's compute here) to 10 s.
std::span<const uint64_t> LatencyBucketsNs();
// Model-load buckets in nanoseconds: 1 ms to 2 min.
std::span<const uint64_t> LoadDurationBucketsNs();
// Batch-size buckets in rows: powers of two up to 8192.
std::span<const uint64_t> BatchSizeBuckets();

}  // namespace selu::core
