// Small helpers to build prometheus::MetricFamily values from the core's
// counters and histograms at scrape time.
#pragma once

#include <prometheus/metric_family.h>

#include <string>
#include <string_view>
#include <vector>

#include "server/core/base/atomic_histogram.h"
#include "server/core/base/status.h"

namespace selu::metrics {

using Labels = std::vector<prometheus::ClientMetric::Label>;

prometheus::MetricFamily CounterFamily(std::string name, std::string help);
prometheus::MetricFamily GaugeFamily(std::string name, std::string help);
prometheus::MetricFamily HistogramFamily(std::string name, std::string help);

void AddCounter(prometheus::MetricFamily& family, Labels labels, double value);
void AddGauge(prometheus::MetricFamily& family, Labels labels, double value);
// `divisor` converts the snapshot's integer units (1e9: ns → seconds). A
// division, not a multiplication by 1e-9, so bounds print exactly ("60",
// not "60.00000000000001") and rules matching le="60" work.
void AddHistogram(prometheus::MetricFamily& family, Labels labels,
                  const core::AtomicHistogram::Snapshot& snapshot, double divisor);

// The code names go-grpc-prometheus uses ("OK", "InvalidArgument", ...).
std::string GrpcCodeName(core::StatusCode code);

}  // namespace selu::metrics
