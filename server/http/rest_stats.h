// Per-endpoint counters of the REST binding: requests by HTTP status code
// and their handling time, read by the metrics at scrape time
// (server/metrics/http_metrics.h) through plain readings, so neither side
// knows the other's types.
//
// Thread safety: relaxed atomics, recorded from any thread, read
// concurrently.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <string_view>

#include "server/core/base/atomic_histogram.h"

namespace selu::http {

enum class Endpoint : int {
  kHealthLive,
  kHealthReady,
  kServerMetadata,
  kModelMetadata,
  kModelReady,
  kModelInfer,
  kModelConfig,
  kModelStatistics,
  kRepositoryIndex,
  kRepositoryModelLoad,
  kRepositoryModelUnload,
  kUnknown,  // no such route
  kCount,
};

// "health_live", "model_infer", ...: the metric's endpoint label.
std::string_view EndpointName(Endpoint endpoint);

// The HTTP status codes the binding answers, in the order counted.
inline constexpr std::array<int, 14> kHttpCodes = {200, 400, 401, 403, 404, 405, 408,
                                                   411, 413, 429, 500, 501, 503, 504};

struct EndpointCounters {
  std::array<std::atomic<uint64_t>, kHttpCodes.size() + 1> by_code = {};  // last: others
  core::AtomicHistogram duration_ns{core::LatencyBucketsNs()};

  void Record(int code, std::chrono::steady_clock::time_point start) {
    size_t i = 0;
    while (i < kHttpCodes.size() && kHttpCodes[i] != code) ++i;
    by_code[i].fetch_add(1, std::memory_order_relaxed);
    const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
                        std::chrono::steady_clock::now() - start)
                        .count();
    duration_ns.Observe(ns > 0 ? static_cast<uint64_t>(ns) : 0);
  }
};

class RestStats {
 public:
  EndpointCounters& operator[](Endpoint e) { return counters_[static_cast<size_t>(e)]; }
  const EndpointCounters& operator[](Endpoint e) const { return counters_[static_cast<size_t>(e)]; }

 private:
  std::array<EndpointCounters, static_cast<size_t>(Endpoint::kCount)> counters_;
};

}  // namespace selu::http
