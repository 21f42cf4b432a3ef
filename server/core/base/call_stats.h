// Per-call counters that a front end (the gRPC service today, the REST one
// later) keeps for each of its methods, and the interface through which the
// metrics read them. The front end counts in its handlers; the metrics only
// read, at scrape time, so neither knows the other's types.
//
// Thread safety: CallCounters are relaxed atomics, recorded from any thread
// and read concurrently. A CallStatsSource's CallSites() span is fixed for
// the source's lifetime.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <span>
#include <string_view>

#include "server/core/base/atomic_histogram.h"
#include "server/core/base/status.h"

namespace selu::core {

struct CallCounters {
  std::atomic<uint64_t> started{0};
  std::atomic<uint64_t> handled[kStatusCodeCount] = {};
  AtomicHistogram handling_ns{LatencyBucketsNs()};

  void Start() { started.fetch_add(1, std::memory_order_relaxed); }
  // `code` is a StatusCode value; out-of-range codes are timed, not counted.
  void Finish(int code, std::chrono::steady_clock::time_point start) {
    if (code >= 0 && code < kStatusCodeCount) {
      handled[code].fetch_add(1, std::memory_order_relaxed);
    }
    const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
                        std::chrono::steady_clock::now() - start)
                        .count();
    handling_ns.Observe(ns > 0 ? static_cast<uint64_t>(ns) : 0);
  }
};

// One method of a front end, as the metrics label it.
struct CallSite {
  std::string_view service;  // e.g. "inference.GRPCInferenceService"
  std::string_view method;   // e.g. "ModelInfer"
  std::string_view type;     // e.g. "unary"
  const CallCounters* counters = nullptr;
};

// What a front end exposes of its counters.
class CallStatsSource {
 public:
  virtual ~CallStatsSource() = default;
  virtual std::span<const CallSite> CallSites() const = 0;
};

}  // namespace selu::core
