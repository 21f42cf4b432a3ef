// REST (KServe v2 HTTP) server metrics, beside the gRPC ones:
//   selu_http_requests_total{endpoint, code}      requests answered, by HTTP code
//   selu_http_request_duration_seconds{endpoint}  from the request's headers
//                                                 read to the answer written
//   selu_http_in_flight_requests                  inference requests accepted
//                                                 and not yet answered
// Read at scrape time through `read`, which the REST binding provides: the
// metrics know no transport type.
//
// Thread safety: Collect() may run concurrently with the handlers.
#pragma once

#include <prometheus/collectable.h>

#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "server/core/base/atomic_histogram.h"

namespace selu::metrics {

struct HttpEndpointReading {
  std::string endpoint;
  std::vector<std::pair<int, uint64_t>> requests_by_code;  // code 0: any other code
  core::AtomicHistogram::Snapshot duration_ns;
};

struct HttpReadings {
  std::vector<HttpEndpointReading> endpoints;
  int64_t in_flight = 0;
};

class HttpServerMetrics final : public prometheus::Collectable {
 public:
  explicit HttpServerMetrics(std::function<HttpReadings()> read) : read_(std::move(read)) {}
  std::vector<prometheus::MetricFamily> Collect() const override;

 private:
  std::function<HttpReadings()> read_;
};

}  // namespace selu::metrics
