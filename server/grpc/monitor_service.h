// selu.monitor.v1.ModelMonitor (proto/monitor.proto) on the gRPC callback
// API: the self-normalization monitor of a model version, read from its
// core::ModelMonitor::Snapshot() — live per-layer mean and variance of the
// last sampled window, the reference, the drift score and the load-time
// N(0,1) probe. A shim like InferenceService's rpcs: look up, convert, map
// the status (status_mapping.h). Its calls are counted in its own
// core::CallCounters, exposed as a core::CallStatsSource for the
// grpc_server_* metrics.
//
// Thread safety: Check runs concurrently on gRPC's threads; a snapshot takes
// the monitor's lock once, briefly (never a lock of the request path).
#pragma once

#include <atomic>
#include <span>
#include <string_view>
#include <utility>

#include "proto/monitor.grpc.pb.h"
#include "server/core/base/call_stats.h"
#include "server/core/monitor/model_monitor.h"
#include "server/core/repository/model_registry.h"
#include "server/grpc/restricted_protocols.h"

namespace selu::grpc_transport {

inline constexpr std::string_view kMonitorServiceName = "selu.monitor.v1.ModelMonitor";

// The monitor service's one method, as the metrics label it.
class MonitorCallStats final : public core::CallStatsSource {
 public:
  MonitorCallStats();
  MonitorCallStats(const MonitorCallStats&) = delete;
  MonitorCallStats& operator=(const MonitorCallStats&) = delete;

  core::CallCounters& check() { return check_; }
  std::span<const core::CallSite> CallSites() const override { return {&site_, 1}; }

 private:
  core::CallCounters check_;
  core::CallSite site_;
};

class MonitorService final : public selu::monitor::v1::ModelMonitor::CallbackService {
 public:
  // Check needs the "monitor" group's header if `restricted` restricts it.
  explicit MonitorService(RestrictedProtocols restricted = {})
      : restricted_(std::move(restricted)) {}

  // Until this is called the models are loading: Check answers UNAVAILABLE.
  // `registry` must outlive the service.
  void SetRegistry(const core::ModelRegistry* registry) {
    registry_.store(registry, std::memory_order_release);
  }
  const core::CallStatsSource& call_stats() const { return call_stats_; }

  grpc::ServerUnaryReactor* Check(grpc::CallbackServerContext* context,
                                  const selu::monitor::v1::ModelMonitorRequest* request,
                                  selu::monitor::v1::ModelMonitorResponse* response) override;

 private:
  std::atomic<const core::ModelRegistry*> registry_{nullptr};
  MonitorCallStats call_stats_;
  RestrictedProtocols restricted_;
};

}  // namespace selu::grpc_transport
