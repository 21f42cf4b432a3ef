// One loaded model version, ready to serve: its engine, dynamic batcher,
// statistics and effective Triton configuration, and the options a model is
// served with (the server's flags, overridden by its config.pbtxt).
//
// Thread safety: a ServableModel is immutable but for its accepting flag;
// every method may be called from any thread.
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "proto/model_config.pb.h"
#include "server/core/base/status.h"
#include "server/core/engine/mlp_engine.h"
#include "server/core/model/classification.h"
#include "server/core/model/model_config.h"
#include "server/core/model/model_spec.h"
#include "server/core/model/onnx_model_loader.h"
#include "server/core/monitor/model_monitor.h"
#include "server/core/serving/dynamic_batcher.h"
#include "server/core/serving/model_stats.h"

namespace selu::core {

// Server-wide defaults for every model; a model's config.pbtxt overrides them.
struct ModelServingOptions {
  OnnxLoaderOptions loader;
  MlpEngineOptions engine;
  BatcherOptions batcher;
  // Pick BatchExecution per model: callers compute (kCaller) when the queue
  // delay is 0 and a full batch computes within `caller_execution_limit`,
  // measured at load; worker threads otherwise. When false,
  // batcher.execution is used as it is.
  bool auto_execution = true;
  std::chrono::microseconds caller_execution_limit{250};
  // Longest a request may wait in the queue (0: no limit but the client's
  // deadline); config.pbtxt default_queue_policy.default_timeout_microseconds.
  std::chrono::microseconds default_queue_timeout{0};
  // The self-normalization monitor (config.pbtxt parameters
  // monitor_sample_rate and monitor_window_rows override it per model).
  MonitorOptions monitor;
};

// One loaded model version: its spec, engine, batcher and effective
// configuration. Immutable but for its accepting flag.
class ServableModel {
 public:
  // Loads `path` (a model.onnx, <repository>/<model>/<version>/<file>) and
  // starts its batcher. `config` (may be null) is checked against the model
  // and completed into config(); its outputs' label files are read from the
  // model folder (<repository>/<model>) into labels(): a missing or
  // unreadable one fails the load.
  static StatusOr<std::shared_ptr<ServableModel>> Load(std::string name, int64_t version,
                                                       const std::string& path,
                                                       const ModelServingOptions& options,
                                                       const inference::ModelConfig* config);

  const std::string& name() const { return name_; }
  int64_t version() const { return version_; }
  const std::string& version_string() const { return version_string_; }
  const std::string& path() const { return path_; }
  const ModelSpec& spec() const { return engine_->spec(); }
  const MlpEngine& engine() const { return *engine_; }
  DynamicBatcher& batcher() const { return *batcher_; }
  int64_t max_batch_size() const { return batcher_->options().max_batch_size; }
  // Triton's model configuration as served (the ModelConfig rpc).
  const inference::ModelConfig& config() const { return config_; }
  // The class labels of its outputs (Triton's classification extension).
  const ClassLabels& labels() const { return labels_; }
  // Queue time limit per request (0: none).
  std::chrono::microseconds queue_timeout() const { return queue_timeout_; }
  bool ready() const { return !draining_.load(std::memory_order_relaxed); }
  BatchExecution execution() const { return batcher_->options().execution; }
  // Engine time of one full batch, measured at load (0 if not measured).
  std::chrono::nanoseconds full_batch_time() const { return full_batch_time_; }
  ModelStats& stats() const { return *stats_; }
  // The self-normalization monitor: its live figures, reference and score.
  const ModelMonitor& monitor() const { return *monitor_; }
  // What loading said that an operator should read (a bad reference, the
  // N(0,1) probe's verdict); the registry logs these.
  const std::vector<std::string>& load_notes() const { return load_notes_; }

  // Marks the model draining: Find() stops returning it.
  void StopAccepting();
  // Refuses new requests and finishes queued ones until `deadline`.
  void Drain(Clock::time_point deadline);

 private:
  ServableModel() = default;
  std::string name_;
  int64_t version_ = 0;
  std::string version_string_;
  std::string path_;
  inference::ModelConfig config_;
  ClassLabels labels_;
  std::chrono::microseconds queue_timeout_{0};
  std::shared_ptr<const MlpEngine> engine_;
  std::unique_ptr<ModelStats> stats_;      // declared before batcher_: outlives it
  std::shared_ptr<ModelMonitor> monitor_;  // shared with the batch computer's slots
  std::vector<std::string> load_notes_;
  std::unique_ptr<DynamicBatcher> batcher_;
  std::atomic<bool> draining_{false};
  std::chrono::nanoseconds full_batch_time_{0};
};

}  // namespace selu::core
