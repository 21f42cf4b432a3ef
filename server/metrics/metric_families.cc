#include "server/metrics/metric_families.h"

#include <limits>

namespace selu::metrics {
namespace {

prometheus::MetricFamily Family(std::string name, std::string help, prometheus::MetricType type) {
  prometheus::MetricFamily f;
  f.name = std::move(name);
  f.help = std::move(help);
  f.type = type;
  return f;
}

}  // namespace

prometheus::MetricFamily CounterFamily(std::string name, std::string help) {
  return Family(std::move(name), std::move(help), prometheus::MetricType::Counter);
}
prometheus::MetricFamily GaugeFamily(std::string name, std::string help) {
  return Family(std::move(name), std::move(help), prometheus::MetricType::Gauge);
}
prometheus::MetricFamily HistogramFamily(std::string name, std::string help) {
  return Family(std::move(name), std::move(help), prometheus::MetricType::Histogram);
}

void AddCounter(prometheus::MetricFamily& family, Labels labels, double value) {
  prometheus::ClientMetric m;
  m.label = std::move(labels);
  m.counter.value = value;
  family.metric.push_back(std::move(m));
}

void AddGauge(prometheus::MetricFamily& family, Labels labels, double value) {
  prometheus::ClientMetric m;
  m.label = std::move(labels);
  m.gauge.value = value;
  family.metric.push_back(std::move(m));
}

void AddHistogram(prometheus::MetricFamily& family, Labels labels,
                  const core::AtomicHistogram::Snapshot& s, double divisor) {
  prometheus::ClientMetric m;
  m.label = std::move(labels);
  uint64_t cumulative = 0;
  for (size_t i = 0; i < s.bucket_counts.size(); ++i) {
    cumulative += s.bucket_counts[i];
    prometheus::ClientMetric::Bucket b;
    b.cumulative_count = cumulative;
    b.upper_bound = i < s.upper_bounds.size() ? double(s.upper_bounds[i]) / divisor
                                              : std::numeric_limits<double>::infinity();
    m.histogram.bucket.push_back(b);
  }
  // The +Inf bucket and the count must agree even if a sample landed between
  // the reads of the buckets and of the count.
  m.histogram.sample_count = cumulative;
  m.histogram.sample_sum = double(s.sum) / divisor;
  family.metric.push_back(std::move(m));
}

std::string GrpcCodeName(core::StatusCode code) {
  switch (code) {
    case core::StatusCode::kOk:
      return "OK";
    case core::StatusCode::kCancelled:
      return "Canceled";
    case core::StatusCode::kUnknown:
      return "Unknown";
    case core::StatusCode::kInvalidArgument:
      return "InvalidArgument";
    case core::StatusCode::kDeadlineExceeded:
      return "DeadlineExceeded";
    case core::StatusCode::kNotFound:
      return "NotFound";
    case core::StatusCode::kAlreadyExists:
      return "AlreadyExists";
    case core::StatusCode::kPermissionDenied:
      return "PermissionDenied";
    case core::StatusCode::kResourceExhausted:
      return "ResourceExhausted";
    case core::StatusCode::kFailedPrecondition:
      return "FailedPrecondition";
    case core::StatusCode::kAborted:
      return "Aborted";
    case core::StatusCode::kOutOfRange:
      return "OutOfRange";
    case core::StatusCode::kUnimplemented:
      return "Unimplemented";
    case core::StatusCode::kInternal:
      return "Internal";
    case core::StatusCode::kUnavailable:
      return "Unavailable";
    case core::StatusCode::kDataLoss:
      return "DataLoss";
    case core::StatusCode::kUnauthenticated:
      return "Unauthenticated";
  }
  return "Unknown";
}

}  // namespace selu::metrics
