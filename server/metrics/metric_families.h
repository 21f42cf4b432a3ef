// Small helpers to build prometheus::MetricFamily values from the core's
// counters and histograms at scrape time.
#pragma once

#include <prometheus/metric_family.h>

#include <string>
#include <string_view>
#include <vector>

#include "server/core/atomic_histogram.h"
#include "server/core/status.h"

namespace selu::metrics {

using Labels = std::vector<prometheus::ClientMetric::Label>;

prometheus::MetricFamily CounterFamily(std::string name, std::string help);
prometheus::MetricFamily GaugeFamily(std::string name, std::string help);
prometheus::MetricFamily HistogramFamily(std::string name, std::string help);

void AddCounter(prometheus::MetricFamily& family, Labels labels, double value);
void AddGauge(prometheus::MetricFamily& family, Labels labels, double value);
// `scale` converts the snapshot's integer units (e.g. 1e-9: ns → seconds).
void AddHistogram(prometheus::MetricFamily& family, Labels labels,
                  const core::AtomicHistogram::Snapshot& snapshot, double scale);

// The code names go-grpc-prometheus uses ("OK", "InvalidArgument", ...).
std::string GrpcCodeName(core::StatusCode code);

}  // namespace selu::metrics
