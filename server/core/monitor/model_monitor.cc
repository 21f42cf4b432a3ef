#include "server/core/monitor/model_monitor.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>

namespace selu::core {

Status ValidateMonitorOptions(const MonitorOptions& o) {
  if (!(o.sample_rate >= 0 && o.sample_rate <= 1)) {
    return InvalidArgumentError("monitor sample rate must be in [0, 1], got " +
                                std::to_string(o.sample_rate));
  }
  if (o.window_rows < 16 || o.window_rows > (1 << 20)) {
    return InvalidArgumentError("monitor window must be in [16, 1048576] rows, got " +
                                std::to_string(o.window_rows));
  }
  return OkStatus();
}

std::string_view MonitorStateName(MonitorState state) {
  switch (state) {
    case MonitorState::kOff:
      return "off";
    case MonitorState::kNoReference:
      return "no_reference";
    case MonitorState::kBadReference:
      return "bad_reference";
    case MonitorState::kActive:
      return "active";
  }
  return "?";
}

namespace {

double LayerWeight(int64_t layer) { return layer <= 0 ? 1.0 : std::ldexp(1.0, -int(layer)); }

}  // namespace

ModelMonitor::ModelMonitor(const ModelSpec& spec, MonitorOptions options, LoadedReference reference,
                           SelfNormalizationReport probe)
    : options_(options),
      problem_(std::move(reference.problem)),
      reference_source_(std::move(reference.source)),
      reference_(std::move(reference.stats)),
      probe_(std::move(probe)) {
  if (!enabled()) {
    state_ = MonitorState::kOff;
  } else if (reference_) {
    state_ = MonitorState::kActive;
  } else {
    state_ = problem_.empty() ? MonitorState::kNoReference : MonitorState::kBadReference;
  }
  MonitoredTensor input;
  input.layer = -1;
  input.name = spec.input_name.empty() ? "input" : spec.input_name;
  if (spec.inputs.size() > 1) {
    // Several inputs: one packed row holds them all ("a+b").
    input.name.clear();
    for (const TensorPort& port : spec.inputs) {
      input.name += (input.name.empty() ? "" : "+") + port.name;
    }
  }
  input.features = spec.input_features;
  if (reference_ && reference_->input) {
    input.weight = 1.0;
    input.has_reference = true;
    input.reference_mean = reference_->input->mean;
    input.reference_variance = reference_->input->variance;
  }
  layout_.push_back(std::move(input));
  const std::vector<ObservedLayer> observed = ObservedLayers(spec);
  for (size_t k = 0; k < observed.size(); ++k) {
    const ObservedLayer& l = observed[k];
    MonitoredTensor t;
    t.layer = static_cast<int64_t>(k);
    t.name = l.name;
    t.features = l.features;
    t.activation = LayerActivationName(l);
    if (reference_) {
      t.weight = LayerWeight(t.layer);
      t.has_reference = true;
      t.reference_mean = reference_->layers[k].stats.mean;
      t.reference_variance = reference_->layers[k].stats.variance;
    }
    if (probe_.ran && k < probe_.layer_mean.size()) {
      t.has_probe = true;
      t.probe_mean = probe_.layer_mean[k];
      t.probe_variance = probe_.layer_variance[k];
    }
    layout_.push_back(std::move(t));
  }
  published_.resize(layout_.size());
}

ModelMonitor::~ModelMonitor() = default;

std::unique_ptr<MonitorSlot> ModelMonitor::NewSlot() {
  if (!enabled()) return nullptr;
  const uint64_t seed = next_seed_.fetch_add(0x9e3779b97f4a7c15ull, std::memory_order_relaxed);
  return std::unique_ptr<MonitorSlot>(new MonitorSlot(*this, seed));
}

void ModelMonitor::Publish(const std::vector<TensorWindow>& tensors, double score, bool has_score,
                           int64_t rows, uint64_t batches) {
  std::lock_guard<std::mutex> lock(mu_);
  std::copy(tensors.begin(), tensors.end(), published_.begin());
  has_window_ = true;
  has_score_ = has_score;
  score_ = score;
  last_window_rows_ = rows;
  last_window_unix_seconds_ =
      std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  sampled_rows_ += static_cast<uint64_t>(rows);
  sampled_batches_ += batches;
  ++windows_;
  if (has_score && score >= kDriftThreshold) ++alarms_;
}

MonitorSnapshot ModelMonitor::Snapshot() const {
  MonitorSnapshot s;
  s.state = state_;
  s.problem = problem_;
  s.reference_source = reference_source_;
  s.sample_rate = options_.sample_rate;
  s.window_rows = options_.window_rows;
  s.probe = probe_;
  s.tensors = layout_;
  std::lock_guard<std::mutex> lock(mu_);
  s.sampled_batches = sampled_batches_;
  s.sampled_rows = sampled_rows_;
  s.windows = windows_;
  s.alarms = alarms_;
  s.has_score = has_score_;
  s.drift_score = score_;
  s.last_window_rows = last_window_rows_;
  s.last_window_unix_seconds = last_window_unix_seconds_;
  if (has_window_) {
    for (size_t i = 0; i < s.tensors.size(); ++i) {
      s.tensors[i].has_live = true;
      s.tensors[i].live_mean = published_[i].mean;
      s.tensors[i].live_variance = published_[i].variance;
      s.tensors[i].divergence = published_[i].divergence;
    }
  }
  return s;
}

MonitorSlot::MonitorSlot(ModelMonitor& monitor, uint64_t seed)
    : monitor_(monitor), rng_(seed | 1), tensor_windows_(monitor.layout_.size()) {
  const double rate = monitor.options_.sample_rate;
  threshold_ = rate >= 1.0 ? std::numeric_limits<uint64_t>::max()
                           : static_cast<uint64_t>(rate * 18446744073709551616.0);
  for (const MonitoredTensor& t : monitor.layout_) moments_.emplace_back(t.features);
}

void MonitorSlot::OnInput(const float* input, int64_t rows, int64_t /*features*/) {
  moments_[0].Add(input, rows);
}

void MonitorSlot::OnLayer(int layer, const float* output, int64_t rows, int64_t /*features*/) {
  moments_[static_cast<size_t>(layer) + 1].Add(output, rows);
}

double MonitorSlot::Evaluate(bool* has_score) {
  const std::optional<ReferenceStats>& ref = monitor_.reference_;
  const int64_t rows = moments_[0].rows();
  const int64_t window = monitor_.options_.window_rows;
  double score = 0;
  *has_score = ref.has_value();
  for (size_t i = 0; i < moments_.size(); ++i) {
    ModelMonitor::TensorWindow& w = tensor_windows_[i];
    w.mean = moments_[i].TensorMean();
    w.variance = moments_[i].TensorVariance();
    w.divergence = 0;
    if (!ref) continue;
    const TensorStats* r =
        i == 0 ? (ref->input ? &*ref->input : nullptr) : &ref->layers[i - 1].stats;
    if (r == nullptr) continue;
    w.divergence = ExcessDivergence(moments_[i], *r, ref->rows);
    score = std::max(score, monitor_.layout_[i].weight * std::max(0.0, w.divergence));
  }
  if (rows < window) score *= double(rows) / double(window);
  return score;
}

void MonitorSlot::Close(double score, bool has_score) {
  monitor_.Publish(tensor_windows_, score, has_score, moments_[0].rows(), batches_);
  for (UnitMoments& m : moments_) m.Reset();
  batches_ = 0;
  next_check_ = kFirstEarlyCheckRows;
}

void MonitorSlot::EndBatch(bool ok) {
  if (!ok) {
    for (UnitMoments& m : moments_) m.Reset();
    batches_ = 0;
    next_check_ = kFirstEarlyCheckRows;
    return;
  }
  ++batches_;
  const int64_t rows = moments_[0].rows();
  const int64_t window = monitor_.options_.window_rows;
  bool has_score = false;
  if (rows >= window) {
    const double score = Evaluate(&has_score);
    Close(score, has_score);
    return;
  }
  if (rows >= next_check_) {
    while (next_check_ <= rows) next_check_ *= 2;
    const double score = Evaluate(&has_score);
    if (has_score && score >= kDriftThreshold) Close(score, has_score);
  }
}

}  // namespace selu::core
