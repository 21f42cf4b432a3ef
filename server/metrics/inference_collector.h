// The selu_* metrics, read from the core's statistics at scrape time: the
// request path only does relaxed atomic adds on counters owned by each model
// version (core::ModelStats), so metrics cost no lock shared by requests and
// no per-request label lookup. Also process_* and selu_build_info.
//
// Thread safety: Collect() may run concurrently with everything else.
#pragma once

#include <prometheus/collectable.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>

#include "server/core/repository/model_registry.h"

namespace selu::metrics {

struct BuildInfo {
  std::string version;
  std::string onednn;
  std::string grpc;
  std::string isa;
};

class InferenceCollector final : public prometheus::Collectable {
 public:
  // What the transport counts, read at scrape time.
  struct TransportReadings {
    std::function<int64_t()> in_flight;              // calls being served
    std::function<uint64_t()> swap_resends;          // requests re-sent to a new version
    std::function<int64_t()> stream_unanswered_max;  // most unanswered on one stream
    std::function<uint64_t()> stream_read_pauses;    // streams stopped at their bound
  };
  InferenceCollector(BuildInfo build, TransportReadings transport);

  // The registry to report on, once the models are loaded; it must outlive
  // this collector's use.
  void SetRegistry(const core::ModelRegistry* registry) {
    registry_.store(registry, std::memory_order_release);
  }

  std::vector<prometheus::MetricFamily> Collect() const override;

 private:
  BuildInfo build_;
  TransportReadings transport_;
  std::atomic<const core::ModelRegistry*> registry_{nullptr};
};

// process_cpu_seconds_total, process_resident_memory_bytes, ... from /proc,
// with the names Prometheus' client libraries use.
class ProcessCollector final : public prometheus::Collectable {
 public:
  std::vector<prometheus::MetricFamily> Collect() const override;
};

}  // namespace selu::metrics
