// Per-rpc counters of GRPCInferenceService, recorded by the handlers
// themselves (started, handled by code, handling time) and read by
// server/metrics through core::CallStatsSource, exported with
// go-grpc-prometheus' names. Counting in the handlers instead of in a gRPC
// server interceptor matters: in gRPC 1.51 an interceptor sends every call
// through an extra completion-queue round trip (measured: 3–15 µs per
// request, bench/SERVER_BENCH.md).
//
// Thread safety: relaxed atomics, recorded from any thread.
#pragma once

#include <array>
#include <span>
#include <string_view>

#include "server/core/base/call_stats.h"

namespace selu::grpc_transport {

enum class Rpc : int {
  kServerLive,
  kServerReady,
  kModelReady,
  kServerMetadata,
  kModelMetadata,
  kModelInfer,
  kModelStreamInfer,  // bidirectional stream: counted per stream, not per message
  kModelStatistics,
  kModelConfig,
  kRepositoryIndex,
  kRepositoryModelLoad,
  kRepositoryModelUnload,
  kCount,
};

std::string_view RpcName(Rpc rpc);  // "ModelInfer", ...
// go-grpc-prometheus' grpc_type: "bidi_stream" for ModelStreamInfer, "unary" otherwise.
std::string_view RpcType(Rpc rpc);
inline constexpr std::string_view kInferenceServiceName = "inference.GRPCInferenceService";

using RpcCounters = core::CallCounters;

class RpcStats final : public core::CallStatsSource {
 public:
  RpcStats();
  RpcStats(const RpcStats&) = delete;
  RpcStats& operator=(const RpcStats&) = delete;

  RpcCounters& operator[](Rpc rpc) { return counters_[static_cast<int>(rpc)]; }
  const RpcCounters& operator[](Rpc rpc) const { return counters_[static_cast<int>(rpc)]; }
  std::span<const core::CallSite> CallSites() const override { return sites_; }

 private:
  static constexpr size_t kRpcs = static_cast<size_t>(Rpc::kCount);
  std::array<RpcCounters, kRpcs> counters_;
  std::array<core::CallSite, kRpcs> sites_;
};

}  // namespace selu::grpc_transport
