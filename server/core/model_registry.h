// The models a server serves: loaded from a model repository folder, each
// version with its engine and dynamic batcher.
//
// Repository layout: <root>/<model>/<version>/model.onnx, version a positive
// integer folder name. LoadRepository() loads the newest version of every
// model folder (Triton's default version policy, latest { num_versions: 1 }).
// A model that fails to load is kept in the index as FAILED with its reason;
// the others serve.
//
// Thread safety: all methods may be called from any thread. Find() is the
// per-request path: a shared (reader) lock and a shared_ptr copy.
#pragma once

#include <atomic>
#include <memory>
#include <optional>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <vector>

#include "server/core/atomic_histogram.h"
#include "server/core/dynamic_batcher.h"
#include "server/core/mlp_engine.h"
#include "server/core/model_spec.h"
#include "server/core/model_stats.h"
#include "server/core/onnx_model_loader.h"
#include "server/core/status.h"

namespace selu::core {

enum class ModelState { kReady, kFailed, kDraining };
std::string_view ModelStateName(ModelState state);  // "READY", "UNAVAILABLE", "DRAINING"

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
};

// One loaded model version: its spec, engine and batcher. Immutable but for
// its state.
class ServableModel {
 public:
  // Loads `path` (a model.onnx) and starts its batcher.
  static StatusOr<std::shared_ptr<ServableModel>> Load(std::string name, int64_t version,
                                                       const std::string& path,
                                                       const ModelServingOptions& options);

  const std::string& name() const { return name_; }
  int64_t version() const { return version_; }
  const std::string& version_string() const { return version_string_; }
  const std::string& path() const { return path_; }
  const ModelSpec& spec() const { return engine_->spec(); }
  const MlpEngine& engine() const { return *engine_; }
  DynamicBatcher& batcher() const { return *batcher_; }
  int64_t max_batch_size() const { return batcher_->options().max_batch_size; }
  bool ready() const { return !draining_.load(std::memory_order_relaxed); }
  BatchExecution execution() const { return batcher_->options().execution; }
  // Engine time of one full batch, measured at load (0 if not measured).
  std::chrono::nanoseconds full_batch_time() const { return full_batch_time_; }
  ModelStats& stats() const { return *stats_; }

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
  std::shared_ptr<const MlpEngine> engine_;
  std::unique_ptr<ModelStats> stats_;  // declared before batcher_: outlives it
  std::unique_ptr<DynamicBatcher> batcher_;
  std::atomic<bool> draining_{false};
  std::chrono::nanoseconds full_batch_time_{0};
};

class ModelRegistry {
 public:
  struct Entry {
    std::string name;
    int64_t version = 0;  // 0 when no version folder was found
    ModelState state = ModelState::kFailed;
    std::string reason;                    // why it failed, empty when ready
    std::shared_ptr<ServableModel> model;  // null when failed
  };

  // Scans `root`. NOT_FOUND if it is not a readable folder. Model folders
  // whose load fails are recorded as failed, not returned as an error.
  static StatusOr<std::unique_ptr<ModelRegistry>> LoadRepository(
      const std::string& root, const ModelServingOptions& options);

  // `version` empty: the newest ready version. Errors:
  //   NOT_FOUND        no such model, or no such version
  //   INVALID_ARGUMENT version is not a positive integer
  //   UNAVAILABLE      the model failed to load or is draining
  StatusOr<std::shared_ptr<ServableModel>> Find(std::string_view name,
                                                std::string_view version) const;

  std::vector<Entry> Index() const;

  // Model loads so far, for metrics: per model name, successes and failures,
  // and the load-duration histogram (nanoseconds).
  struct LoadCounts {
    std::string name;
    uint64_t success = 0;
    uint64_t failure = 0;
  };
  std::vector<LoadCounts> LoadCountsByModel() const;
  AtomicHistogram::Snapshot LoadDurations() const { return load_duration_ns_.Read(); }
  // Every model in the index is ready (and there is at least one).
  bool AllReady() const;
  // Drains every model until `deadline`.
  void DrainAll(Clock::time_point deadline);

 private:
  ModelRegistry() = default;
  void RecordLoad(const std::string& name, bool success, Clock::duration took);

  mutable std::shared_mutex mu_;
  std::vector<Entry> entries_;           // sorted by name, then version
  std::vector<LoadCounts> load_counts_;  // guarded by mu_
  AtomicHistogram load_duration_ns_{LoadDurationBucketsNs()};
};

}  // namespace selu::core
