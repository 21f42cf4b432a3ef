// Per-rpc counters of GRPCInferenceService, recorded by the handlers
// themselves (started, handled by code, handling time) and exported by
// server/metrics with go-grpc-prometheus' names. Counting in the handlers
// instead of in a gRPC server interceptor matters: in gRPC 1.51 an
// interceptor sends every call through an extra completion-queue round trip
// (measured: 3–15 µs per request, bench/SERVER_BENCH.md).
//
// Thread safety: relaxed atomics, recorded from any thread.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <string_view>

#include "server/core/atomic_histogram.h"
#include "server/core/status.h"

namespace selu::grpc_transport {

enum class Rpc : int {
  kServerLive,
  kServerReady,
  kModelReady,
  kServerMetadata,
  kModelMetadata,
  kModelInfer,
  kModelStatistics,
  kModelConfig,
  kRepositoryIndex,
  kRepositoryModelLoad,
  kRepositoryModelUnload,
  kCount,
};

std::string_view RpcName(Rpc rpc);  // "ModelInfer", ...
inline constexpr std::string_view kInferenceServiceName = "inference.GRPCInferenceService";

struct RpcCounters {
  std::atomic<uint64_t> started{0};
  std::atomic<uint64_t> handled[core::kStatusCodeCount] = {};
  core::AtomicHistogram handling_ns{core::LatencyBucketsNs()};

  void Start() { started.fetch_add(1, std::memory_order_relaxed); }
  void Finish(int code, std::chrono::steady_clock::time_point start) {
    if (code >= 0 && code < core::kStatusCodeCount) {
      handled[code].fetch_add(1, std::memory_order_relaxed);
    }
    const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
                        std::chrono::steady_clock::now() - start)
                        .count();
    handling_ns.Observe(ns > 0 ? static_cast<uint64_t>(ns) : 0);
  }
};

class RpcStats {
 public:
  RpcCounters& operator[](Rpc rpc) { return counters_[static_cast<int>(rpc)]; }
  const RpcCounters& operator[](Rpc rpc) const { return counters_[static_cast<int>(rpc)]; }

 private:
  std::array<RpcCounters, static_cast<size_t>(Rpc::kCount)> counters_;
};

}  // namespace selu::grpc_transport
