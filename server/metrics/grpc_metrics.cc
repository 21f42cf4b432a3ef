#include "server/metrics/grpc_metrics.h"

#include <string>

#include "server/metrics/metric_families.h"

namespace selu::metrics {

std::vector<prometheus::MetricFamily> GrpcServerMetrics::Collect() const {
  auto started =
      CounterFamily("grpc_server_started_total", "Total number of RPCs started on the server.");
  auto handled = CounterFamily("grpc_server_handled_total",
                               "Total number of RPCs completed on the server, regardless of "
                               "success or failure.");
  auto handling = HistogramFamily("grpc_server_handling_seconds",
                                  "Histogram of response latency (seconds) of gRPC that had been "
                                  "application-level handled by the server.");
  for (const core::CallStatsSource* source : sources_) {
    for (const core::CallSite& site : source->CallSites()) {
      const core::CallCounters& c = *site.counters;
      const Labels labels = {{"grpc_method", std::string(site.method)},
                             {"grpc_service", std::string(site.service)},
                             {"grpc_type", std::string(site.type)}};
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
  }
  return {std::move(started), std::move(handled), std::move(handling)};
}

}  // namespace selu::metrics
