// The self-normalization monitor's metrics, read at scrape time from each
// loaded model version's core::ModelMonitor::Snapshot() (one short lock per
// version and scrape; nothing on the request path). Labels: model, version,
// and for per-tensor figures layer ("input", or the dense layer's index
// "0", "1", ...).
//
//   selu_activation_mean / _variance            live, last closed window
//   selu_activation_divergence                  its excess divergence (nats)
//   selu_activation_reference_mean / _variance  the model's reference
//   selu_activation_probe_mean / _variance      the load-time N(0,1) probe
//   selu_input_drift_score                      last window's score (≥ 1: drift)
//   selu_monitor_windows_total, selu_monitor_drift_alarms_total,
//   selu_monitor_sampled_rows_total             counters
//   selu_monitor_state{state}                   1 for the current state
//   selu_self_normalizing                       the probe's verdict (0/1)
//
// A figure a version does not have (no window closed yet, no reference, no
// score) is left out rather than exported as 0.
//
// Thread safety: Collect() may run concurrently with everything else.
#pragma once

#include <prometheus/collectable.h>

#include <atomic>
#include <vector>

#include "server/core/repository/model_registry.h"

namespace selu::metrics {

class MonitorCollector final : public prometheus::Collectable {
 public:
  // The registry to report on, once the models are loaded; it must outlive
  // this collector's use.
  void SetRegistry(const core::ModelRegistry* registry) {
    registry_.store(registry, std::memory_order_release);
  }

  std::vector<prometheus::MetricFamily> Collect() const override;

 private:
  std::atomic<const core::ModelRegistry*> registry_{nullptr};
};

}  // namespace selu::metrics
