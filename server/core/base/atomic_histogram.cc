#include "server/core/base/atomic_histogram.h"

namespace selu::core {

AtomicHistogram::AtomicHistogram(std::span<const uint64_t> upper_bounds)
    : bounds_(upper_bounds.begin(), upper_bounds.end()),
      buckets_(new std::atomic<uint64_t>[upper_bounds.size() + 1]) {
  for (size_t i = 0; i <= bounds_.size(); ++i) buckets_[i].store(0, std::memory_order_relaxed);
}

AtomicHistogram::Snapshot AtomicHistogram::Read() const {
  Snapshot s;
  s.upper_bounds = bounds_;
  s.bucket_counts.resize(bounds_.size() + 1);
  for (size_t i = 0; i <= bounds_.size(); ++i) {
    s.bucket_counts[i] = buckets_[i].load(std::memory_order_relaxed);
  }
  s.sum = sum_.load(std::memory_order_relaxed);
  s.count = count_.load(std::memory_order_relaxed);
  return s;
}

std::span<const uint64_t> LatencyBucketsNs() {
  static constexpr uint64_t kUs = 1000, kMs = 1000 * kUs, kS = 1000 * kMs;
  static constexpr uint64_t kBounds[] = {10 * kUs,  25 * kUs,   50 * kUs,   100 * kUs, 250 * kUs,
                                         500 * kUs, 1 * kMs,    2500 * kUs, 5 * kMs,   10 * kMs,
                                         25 * kMs,  50 * kMs,   100 * kMs,  250 * kMs, 500 * kMs,
                                         1 * kS,    2500 * kMs, 5 * kS,     10 * kS};
  return kBounds;
}

std::span<const uint64_t> LoadDurationBucketsNs() {
  static constexpr uint64_t kMs = 1000 * 1000, kS = 1000 * kMs;
  static constexpr uint64_t kBounds[] = {1 * kMs,   5 * kMs,   10 * kMs, 50 * kMs,   100 * kMs,
                                         250 * kMs, 500 * kMs, 1 * kS,   2500 * kMs, 5 * kS,
                                         10 * kS,   30 * kS,   60 * kS,  120 * kS};
  return kBounds;
}

std::span<const uint64_t> BatchSizeBuckets() {
  static constexpr uint64_t kBounds[] = {1,   2,   4,   8,    16,   32,   64,
                                         128, 256, 512, 1024, 2048, 4096, 8192};
  return kBounds;
}

}  // namespace selu::core
