// gRPC server metrics with the names and labels of go-grpc-prometheus, which
// existing dashboards expect: grpc_server_started_total,
// grpc_server_handled_total{grpc_code}, grpc_server_handling_seconds, each
// labelled grpc_type, grpc_service, grpc_method. Read at scrape time from the
// counters a gRPC service's handlers keep, through core::CallStatsSource
// (GRPCInferenceService's is grpc_transport::RpcStats, the monitor service's
// grpc_transport::MonitorCallStats): the metrics know no transport type.
//
// Covered: every rpc of inference.GRPCInferenceService and of
// selu.monitor.v1.ModelMonitor. Not covered: the health and reflection
// services gRPC itself implements, and requests gRPC rejects before a handler
// runs (e.g. over --max-receive-message-bytes); counting those needs a server
// interceptor, which costs every call an extra completion-queue round trip in
// gRPC 1.51.
//
// Thread safety: Collect() may run concurrently with the handlers.
#pragma once

#include <prometheus/collectable.h>

#include <vector>

#include "server/core/base/call_stats.h"

namespace selu::metrics {

class GrpcServerMetrics final : public prometheus::Collectable {
 public:
  // Every source must outlive this collector.
  explicit GrpcServerMetrics(std::vector<const core::CallStatsSource*> sources)
      : sources_(std::move(sources)) {}
  std::vector<prometheus::MetricFamily> Collect() const override;

 private:
  std::vector<const core::CallStatsSource*> sources_;
};

}  // namespace selu::metrics
