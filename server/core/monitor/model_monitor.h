// ModelMonitor: watches one model version's self-normalization live.
//
// For a sampled fraction of batches (MonitorOptions::sample_rate) the engine
// shows each tensor of the call (input, every dense layer's output after its
// activations) to the worker's MonitorSlot, which adds per-unit moments to
// its window, on the thread that computed the batch: no copy of the tensors,
// no lock, no allocation. Unsampled batches cost one pseudo-random draw.
//
// Windows are tumbling, per slot: a window closes after `window_rows`
// sampled rows, or early at 8, 16, 32, ... rows when its score has already
// reached 1 (so gross drift alarms within a few sampled requests). On
// closing, the slot computes the window's statistics and drift score and
// publishes them under the monitor's mutex: one short lock per window, never
// per request, shared only with readers (metrics scrapes, the monitor rpc).
//
// Drift score (≥ 1 means drift). For each monitored tensor t with a
// reference: D_t = ExcessDivergence (unit_moments.h), the mean per-unit
// Jeffreys divergence from the reference beyond sampling noise, in nats.
// score = max_t w_t · max(0, D_t) · (n / window_rows) / 1 nat, over a
// window of n rows, with w = 1 for the input and the first layer and
// w = 2^-k for layer k (deep layers of an SNN wash drift out, so they alarm
// only on larger divergences). The factor n / window_rows < 1 on a window
// closed early keeps a small window, whose noise is larger, from alarming
// on noise. Without a reference there is no score: live figures, and their
// distance from the SELU fixed point (mean 0, variance 1), are information.
//
// Thread safety: NewSlot() and Snapshot() from any thread; a MonitorSlot is
// used by one thread at a time (it belongs to a batcher worker's context).
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "server/core/engine/mlp_engine.h"
#include "server/core/model/model_spec.h"
#include "server/core/monitor/reference_stats.h"
#include "server/core/monitor/self_normalization.h"
#include "server/core/monitor/unit_moments.h"

namespace selu::core {

inline constexpr double kDefaultMonitorSampleRate = 0.25;
inline constexpr int64_t kDefaultMonitorWindowRows = 128;
// A score at or above this is drift (part of the score's definition).
inline constexpr double kDriftThreshold = 1.0;
// A window may close early (on an alarm) from this many rows on.
inline constexpr int64_t kFirstEarlyCheckRows = 8;

struct MonitorOptions {
  // Fraction of batches sampled, in [0, 1]; 0 turns the monitor off.
  double sample_rate = kDefaultMonitorSampleRate;
  // Sampled rows per window, ≥ 16.
  int64_t window_rows = kDefaultMonitorWindowRows;
};

// INVALID_ARGUMENT naming the option when out of range.
Status ValidateMonitorOptions(const MonitorOptions& options);

enum class MonitorState {
  kOff,           // sample_rate 0
  kNoReference,   // live figures only
  kBadReference,  // a reference exists but is unusable (problem says why): live figures only
  kActive,        // live figures and drift score
};
std::string_view MonitorStateName(MonitorState state);

// One monitored tensor in a snapshot.
struct MonitoredTensor {
  int64_t layer = -1;  // -1: the model's input; else the dense layer's index
  std::string name;    // "input" or the layer's name
  std::string activation;
  int64_t features = 0;
  double weight = 0;      // its weight in the drift score; 0 when it has no reference
  bool has_live = false;  // last closed window:
  double live_mean = 0, live_variance = 0;
  double divergence = 0;  // ExcessDivergence of the last window (nats; with a reference)
  bool has_reference = false;
  double reference_mean = 0, reference_variance = 0;
  bool has_probe = false;  // N(0,1) inputs at load:
  double probe_mean = 0, probe_variance = 0;
};

struct MonitorSnapshot {
  MonitorState state = MonitorState::kOff;
  std::string problem;           // kBadReference: what is wrong with it
  std::string reference_source;  // file or metadata key it came from
  double sample_rate = 0;
  int64_t window_rows = 0;
  uint64_t sampled_batches = 0;  // in closed windows
  uint64_t sampled_rows = 0;
  uint64_t windows = 0;  // closed windows
  uint64_t alarms = 0;   // of which with score ≥ 1
  bool has_score = false;
  double drift_score = 0;               // of the last closed window
  int64_t last_window_rows = 0;         // rows in the last closed window
  double last_window_unix_seconds = 0;  // when it closed (0: none yet), for staleness
  SelfNormalizationReport probe;
  std::vector<MonitoredTensor> tensors;  // the input, then every dense layer
};

class MonitorSlot;

class ModelMonitor {
 public:
  // `reference` as loaded (may be empty or carry a problem); `probe` from
  // ProbeSelfNormalization (may be empty). `options` must be valid.
  ModelMonitor(const ModelSpec& spec, MonitorOptions options, LoadedReference reference,
               SelfNormalizationReport probe);
  ~ModelMonitor();
  ModelMonitor(const ModelMonitor&) = delete;
  ModelMonitor& operator=(const ModelMonitor&) = delete;

  bool enabled() const { return options_.sample_rate > 0; }
  const MonitorOptions& options() const { return options_; }
  MonitorState state() const { return state_; }
  // A slot for one engine worker; null when the monitor is off. Must not
  // outlive the monitor.
  std::unique_ptr<MonitorSlot> NewSlot();
  MonitorSnapshot Snapshot() const;

 private:
  friend class MonitorSlot;
  struct TensorWindow {  // what a closed window publishes per tensor
    double mean = 0, variance = 0, divergence = 0;
  };
  void Publish(const std::vector<TensorWindow>& tensors, double score, bool has_score, int64_t rows,
               uint64_t batches);

  const MonitorOptions options_;
  MonitorState state_ = MonitorState::kOff;
  std::string problem_;
  std::string reference_source_;
  std::optional<ReferenceStats> reference_;
  SelfNormalizationReport probe_;
  std::vector<MonitoredTensor> layout_;  // names, widths, weights, reference and probe figures
  std::atomic<uint64_t> next_seed_{0x9e3779b97f4a7c15ull};

  mutable std::mutex mu_;  // guards the published window below
  std::vector<TensorWindow> published_;
  bool has_window_ = false;
  bool has_score_ = false;
  double score_ = 0;
  int64_t last_window_rows_ = 0;
  double last_window_unix_seconds_ = 0;
  uint64_t sampled_batches_ = 0, sampled_rows_ = 0, windows_ = 0, alarms_ = 0;
};

// One engine worker's window; the LayerObserver a sampled Run() is given.
class MonitorSlot final : public LayerObserver {
 public:
  // Whether to observe the next batch: true for a sample_rate fraction.
  bool Sample() {
    rng_ ^= rng_ << 13;
    rng_ ^= rng_ >> 7;
    rng_ ^= rng_ << 17;
    return rng_ < threshold_;
  }
  void OnInput(const float* input, int64_t rows, int64_t features) override;
  void OnLayer(int layer, const float* output, int64_t rows, int64_t features) override;
  // After the observed Run(): counts the batch and closes the window when it
  // is due. `ok` false (the engine failed) discards the window.
  void EndBatch(bool ok);

 private:
  friend class ModelMonitor;
  MonitorSlot(ModelMonitor& monitor, uint64_t seed);
  // The window's score at its current size, filling tensor_windows_.
  double Evaluate(bool* has_score);
  void Close(double score, bool has_score);

  ModelMonitor& monitor_;
  uint64_t rng_;
  uint64_t threshold_;
  std::vector<UnitMoments> moments_;  // [0] input, [1 + k] layer k
  std::vector<ModelMonitor::TensorWindow> tensor_windows_;
  uint64_t batches_ = 0;
  int64_t next_check_ = kFirstEarlyCheckRows;
};

}  // namespace selu::core
