#include "server/metrics/monitor_collector.h"

#include <string>

#include "server/metrics/metric_families.h"

namespace selu::metrics {

namespace {

constexpr core::MonitorState kStates[] = {
    core::MonitorState::kOff, core::MonitorState::kNoReference, core::MonitorState::kBadReference,
    core::MonitorState::kActive};

std::string LayerLabel(int64_t layer) { return layer < 0 ? "input" : std::to_string(layer); }

}  // namespace

std::vector<prometheus::MetricFamily> MonitorCollector::Collect() const {
  auto mean = GaugeFamily("selu_activation_mean",
                          "Mean over units and rows of a monitored tensor (layer=\"input\" or the "
                          "dense layer's index, after its activations) in the last closed window "
                          "of sampled live traffic.");
  auto variance = GaugeFamily("selu_activation_variance",
                              "Variance over units and rows of a monitored tensor in the last "
                              "closed window of sampled live traffic.");
  auto divergence = GaugeFamily(
      "selu_activation_divergence",
      "Mean per-unit Jeffreys divergence (nats) of the last window from the reference, beyond "
      "sampling noise.");
  auto reference_mean = GaugeFamily("selu_activation_reference_mean",
                                    "Mean of a monitored tensor in the model's reference "
                                    "statistics.");
  auto reference_variance = GaugeFamily("selu_activation_reference_variance",
                                        "Variance of a monitored tensor in the model's reference "
                                        "statistics.");
  auto probe_mean = GaugeFamily("selu_activation_probe_mean",
                                "Mean of a dense layer's output on N(0,1) inputs (load-time "
                                "self-normalization probe).");
  auto probe_variance = GaugeFamily("selu_activation_probe_variance",
                                    "Variance of a dense layer's output on N(0,1) inputs "
                                    "(load-time self-normalization probe).");
  auto score = GaugeFamily("selu_input_drift_score",
                           "Drift score of the last closed window against the reference; 1 or "
                           "more means input drift.");
  auto last_window = GaugeFamily("selu_monitor_last_window_timestamp_seconds",
                                 "When the monitor last closed a window (Unix time): the drift "
                                 "score is as old as this.");
  auto windows =
      CounterFamily("selu_monitor_windows_total", "Windows of sampled rows the monitor closed.");
  auto alarms = CounterFamily("selu_monitor_drift_alarms_total",
                              "Closed windows whose drift score reached 1.");
  auto rows = CounterFamily("selu_monitor_sampled_rows_total",
                            "Rows the monitor sampled, in closed windows.");
  auto state = GaugeFamily("selu_monitor_state",
                           "1 for the monitor's current state (off, no_reference, bad_reference, "
                           "active), 0 for the others.");
  auto self_normalizing = GaugeFamily("selu_self_normalizing",
                                      "1 when every SELU layer stayed near mean 0, variance 1 on "
                                      "N(0,1) inputs at load, else 0.");

  if (const core::ModelRegistry* registry = registry_.load(std::memory_order_acquire)) {
    for (const auto& entry : registry->Index()) {
      if (!entry.model) continue;
      const core::MonitorSnapshot s = entry.model->monitor().Snapshot();
      const Labels labels = {{"model", entry.name}, {"version", entry.model->version_string()}};
      for (const core::MonitoredTensor& t : s.tensors) {
        Labels with_layer = labels;
        with_layer.push_back({"layer", LayerLabel(t.layer)});
        if (t.has_live) {
          AddGauge(mean, with_layer, t.live_mean);
          AddGauge(variance, with_layer, t.live_variance);
          if (t.has_reference) AddGauge(divergence, with_layer, t.divergence);
        }
        if (t.has_reference) {
          AddGauge(reference_mean, with_layer, t.reference_mean);
          AddGauge(reference_variance, with_layer, t.reference_variance);
        }
        if (t.has_probe) {
          AddGauge(probe_mean, with_layer, t.probe_mean);
          AddGauge(probe_variance, with_layer, t.probe_variance);
        }
      }
      if (s.has_score) AddGauge(score, labels, s.drift_score);
      if (s.last_window_unix_seconds > 0) {
        AddGauge(last_window, labels, s.last_window_unix_seconds);
      }
      AddCounter(windows, labels, double(s.windows));
      AddCounter(alarms, labels, double(s.alarms));
      AddCounter(rows, labels, double(s.sampled_rows));
      for (core::MonitorState candidate : kStates) {
        Labels with_state = labels;
        with_state.push_back({"state", std::string(core::MonitorStateName(candidate))});
        AddGauge(state, with_state, candidate == s.state ? 1.0 : 0.0);
      }
      if (s.probe.ran) AddGauge(self_normalizing, labels, s.probe.self_normalizing ? 1.0 : 0.0);
    }
  }
  std::vector<prometheus::MetricFamily> out;
  for (auto* f : {&mean, &variance, &divergence, &reference_mean, &reference_variance, &probe_mean,
                  &probe_variance, &score, &last_window, &windows, &alarms, &rows, &state,
                  &self_normalizing}) {
    out.push_back(std::move(*f));
  }
  return out;
}

}  // namespace selu::metrics
