#include "server/metrics/grpc_metrics.h"

#include <string>

#include "server/metrics/metric_families.h"

namespace selu::metrics {

std::vector<prometheus::MetricFamily> GrpcServerMetrics::Collect() const {
  using grpc_transport::Rpc;
  auto started =
      CounterFamily("grpc_server_started_total", "Total number of RPCs started on the server.");
  auto handled = CounterFamily("grpc_server_handled_total",
                               "Total number of RPCs completed on the server, regardless of "
                               "success or failure.");
  auto handling = HistogramFamily("grpc_server_handling_seconds",
                                  "Histogram of response latency (seconds) of gRPC that had been "
                                  "application-level handled by the server.");
  for (int i = 0; i < static_cast<int>(Rpc::kCount); ++i) {
    const Rpc rpc = static_cast<Rpc>(i);
    const grpc_transport::RpcCounters& c = (*stats_)[rpc];
    const Labels labels = {{"grpc_method", std::string(grpc_transport::RpcName(rpc))},
                           {"grpc_service", std::string(grpc_transport::kInferenceServiceName)},
                           {"grpc_type", "unary"}};
    AddCounter(started, labels, double(c.started.load(std::memory_order_relaxed)));
    for (int code = 0; code < core::kStatusCodeCount; ++code) {
      const uint64_t n = c.handled[code].load(std::memory_order_relaxed);
      // Like go-grpc-prometheus, OK is always present; other codes once seen.
      if (n == 0 && code != 0) continue;
      Labels with_code = labels;
      with_code.push_back({"grpc_code", GrpcCodeName(static_cast<core::StatusCode>(code))});
      AddCounter(handled, with_code, double(n));
    }
    AddHistogram(handling, labels, c.handling_ns.Read(), 1e9);
  }
  return {std::move(started), std::move(handled), std::move(handling)};
}

}  // namespace selu::metrics
