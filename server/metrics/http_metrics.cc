#include "server/metrics/http_metrics.h"

#include "server/metrics/metric_families.h"

namespace selu::metrics {

std::vector<prometheus::MetricFamily> HttpServerMetrics::Collect() const {
  const HttpReadings readings = read_();
  auto requests = CounterFamily("selu_http_requests_total",
                                "REST requests answered, by endpoint and HTTP status code.");
  auto duration = HistogramFamily("selu_http_request_duration_seconds",
                                  "REST request handling time, from the headers read to the "
                                  "answer written, by endpoint.");
  auto in_flight = GaugeFamily("selu_http_in_flight_requests",
                               "REST inference requests accepted and not yet answered.");
  for (const HttpEndpointReading& e : readings.endpoints) {
    bool any = false;
    for (const auto& [code, n] : e.requests_by_code) {
      // 200 is always present (like grpc_code="OK"); other codes once seen.
      if (n == 0 && code != 200) continue;
      any = true;
      AddCounter(requests,
                 {{"code", code == 0 ? std::string("other") : std::to_string(code)},
                  {"endpoint", e.endpoint}},
                 double(n));
    }
    if (any) AddHistogram(duration, {{"endpoint", e.endpoint}}, e.duration_ns, 1e9);
  }
  AddGauge(in_flight, {}, double(readings.in_flight));
  return {std::move(requests), std::move(duration), std::move(in_flight)};
}

}  // namespace selu::metrics
