// The models a server serves: read from a model repository folder, each
// version with its engine and dynamic batcher, and changed while serving.
//
// Repository layout: <root>/<model>/config.pbtxt (optional, Triton's model
// configuration, model_config.h) and <root>/<model>/<version>/model.onnx,
// version a positive integer folder name. The version policy of a model
// (config.pbtxt `version_policy`) picks the versions that serve:
//   latest { num_versions: n }  the n newest versions that load (default n=1;
//                               a version that fails to load is skipped, so
//                               an older good one keeps serving)
//   all {}                      every version that loads
//   specific { versions: [..] } those versions
// A bad new version never replaces a good one: when no chosen version loads,
// the versions serving before stay.
//
// Control modes (Triton's): kNone loads the repository at start-up and never
// changes; kPoll rescans it every poll period (new, changed and removed
// version folders, changed config.pbtxt); kExplicit loads what it is told,
// at start-up and through LoadModel/UnloadModel.
//
// Swaps: a new version is loaded and warmed up (primitives for every batch
// size) on the registry's control thread, off the serving path, then put in
// the table under a short exclusive lock. The version it replaces stops being
// found, finishes its queued and running requests on its own batcher, and is
// freed once the last in-flight call lets go of it. A request that found the
// old version just before the swap and is refused by its draining batcher
// looks the model up again (the inference service retries), so a swap fails
// no request.
//
// Safety: model names from rpcs must be plain folder names; a model folder,
// version folder or model file that resolves (through symlinks) outside the
// repository is refused; a model file is read whole through one descriptor
// and refused if it changes while being read (a later poll retries it).
//
// Thread safety: every public method may be called from any thread. Find() is
// the per-request path: a shared lock, a short scan and a shared_ptr copy.
// Changes to the repository run one at a time on the control thread.
#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "proto/model_config.pb.h"
#include "server/core/base/atomic_histogram.h"
#include "server/core/base/status.h"
#include "server/core/engine/mlp_engine.h"
#include "server/core/model/model_config.h"
#include "server/core/model/model_spec.h"
#include "server/core/model/onnx_model_loader.h"
#include "server/core/repository/model_folder.h"
#include "server/core/serving/dynamic_batcher.h"
#include "server/core/serving/model_stats.h"
#include "server/core/serving/servable_model.h"

namespace selu::core {

// Triton's model states, as RepositoryIndex reports them.
enum class ModelState { kReady, kFailed, kLoading, kUnloading, kUnloaded };
// "READY", "UNAVAILABLE" (failed and unloaded), "LOADING", "UNLOADING".
std::string_view ModelStateName(ModelState state);

enum class ModelControlMode { kNone, kPoll, kExplicit };

struct ModelRegistryOptions {
  std::string root;
  ModelServingOptions serving;
  ModelControlMode mode = ModelControlMode::kNone;
  std::chrono::milliseconds poll_period{15000};
  // kExplicit: the models to load at start-up ("*": every model folder).
  std::vector<std::string> startup_models;
  // Nice value of the control thread, which loads and warms up models (0:
  // that of the process): loads yield to the threads serving requests.
  int control_thread_nice = 10;
  // How long a replaced or unloaded version may take to finish its queue.
  std::chrono::milliseconds drain_timeout{30000};
  // Called on the control thread after every change of what is served (and
  // once after start-up); for health. Must not call back into the registry's
  // LoadModel/UnloadModel.
  std::function<void()> on_change;
  // Log lines (level: "info", "warn" or "error"); may be empty.
  std::function<void(std::string_view level, const std::string& message)> log;
};

class ModelRegistry {
 public:
  // One row of the index: a model version, or a model with no version
  // (version 0) when none is known (never loaded, unloaded, or failed before
  // any version was tried).
  struct Entry {
    std::string name;
    int64_t version = 0;
    ModelState state = ModelState::kFailed;
    std::string reason;                    // why it is not READY
    std::shared_ptr<ServableModel> model;  // set when READY or UNLOADING
  };

  // Checks `options.root` and loads the start-up models (every model folder
  // for kNone and kPoll, options.startup_models for kExplicit), then starts
  // the control thread. NOT_FOUND if the root is not a folder,
  // FAILED_PRECONDITION if it cannot be listed;
  // INVALID_ARGUMENT or NOT_FOUND if a start-up model name is not a model
  // folder.
  // Model folders whose load fails are recorded, not returned as an error.
  static StatusOr<std::unique_ptr<ModelRegistry>> Open(ModelRegistryOptions options);
  // Stops the control thread; drains nothing (see DrainAll).
  ~ModelRegistry();

  // `version` empty: the newest ready version. Errors:
  //   NOT_FOUND        no such model, or no such version
  //   INVALID_ARGUMENT version is not a positive integer
  //   UNAVAILABLE      the model (version) failed to load, is unloaded or
  //                    is being replaced
  StatusOr<std::shared_ptr<ServableModel>> Find(std::string_view name,
                                                std::string_view version) const;

  // Every model and version being served, failed or unloaded, sorted by
  // name then version.
  std::vector<Entry> Index() const;
  // Index() plus the model folders on disk never loaded ("not loaded").
  std::vector<Entry> RepositoryIndex() const;
  // The model has a version that serves.
  bool ModelReady(std::string_view name) const;

  // kExplicit only (FAILED_PRECONDITION otherwise). Loads `name` from disk
  // (again) with `config_json` (Triton's JSON model configuration; unused
  // fields logged as warnings) replacing its config.pbtxt when given, on the
  // control thread; `done` gets OK once a version serves, else:
  //   INVALID_ARGUMENT    the name is not a plain folder name, or the JSON
  //                       does not parse
  //   NOT_FOUND           no such model folder
  //   FAILED_PRECONDITION no version loads (the reason of the newest), the
  //                       config is invalid, or the folder escapes the root
  //   UNAVAILABLE         the server is shutting down
  void LoadModel(std::string name, std::optional<std::string> config_json,
                 std::function<void(Status)> done);
  // kExplicit only. Stops serving every version of `name`, waits for their
  // queues to drain and frees them; `done` gets OK then. NOT_FOUND if the
  // model is neither loaded nor in the repository.
  void UnloadModel(std::string name, std::function<void(Status)> done);

  ModelControlMode mode() const { return options_.mode; }
  const std::string& root() const { return options_.root; }

  // Model loads so far, for metrics: per model name, successes and failures,
  // and the load-duration histogram (nanoseconds).
  struct LoadCounts {
    std::string name;
    uint64_t success = 0;
    uint64_t failure = 0;
  };
  std::vector<LoadCounts> LoadCountsByModel() const;
  AtomicHistogram::Snapshot LoadDurations() const { return load_duration_ns_.Read(); }
  // Every model loaded at start-up that should still serve (not unloaded,
  // folder not removed) has a ready version; for kNone and kPoll there must
  // be at least one. Models added later do not count: one that fails to load
  // shows in ModelReady, the index and the metrics, but must not take a
  // server that serves its other models out of rotation.
  bool AllReady() const;
  // Stops repository changes (pending LoadModel/UnloadModel calls are
  // answered UNAVAILABLE), then drains every model until `deadline`.
  void DrainAll(Clock::time_point deadline);

 private:
  struct VersionSlot {
    int64_t version = 0;
    ModelState state = ModelState::kFailed;
    std::string reason;
    std::shared_ptr<ServableModel> model;
    FileStamp stamp;            // of the model file loaded or tried
    FileStamp reference_stamp;  // of its reference_stats.json (size -1: none)
    std::string config;  // serialized config (and label file stamps) it was loaded or tried with
  };
  struct ModelEntry {
    std::string name;
    bool wanted = false;                // should serve (not unloaded / never loaded)
    bool required = false;              // loaded at start-up: counts for AllReady()
    std::string reason;                 // model-level failure or "unloaded"
    std::vector<VersionSlot> versions;  // sorted by version
    // Config and model files as last reconciled: unchanged means nothing to do.
    std::string fingerprint;
    // Should serve and has a version that does.
    bool Serves() const;
  };

  explicit ModelRegistry(ModelRegistryOptions options);
  // Brings `name` in line with the disk (and `wanted`); returns the load
  // status for LoadModel. Control thread (or Open) only.
  // `override_config` (may be null) replaces config.pbtxt.
  Status Reconcile(const std::string& name, bool explicit_load,
                   const inference::ModelConfig* override_config = nullptr);
  Status Unload(const std::string& name);
  void Poll();
  void ControlLoop();
  void Post(std::function<void()> task, std::function<void(Status)> on_refused);
  void Retire(std::vector<std::shared_ptr<ServableModel>> models);
  // The version being loaded, shown LOADING by Index() ("" when none).
  void SetLoading(const std::string& name, int64_t version);
  void RecordLoad(const std::string& name, bool success, Clock::duration took);
  void Log(std::string_view level, const std::string& message) const;
  ModelEntry* FindEntryLocked(std::string_view name);
  const ModelEntry* FindEntryLocked(std::string_view name) const;
  ModelEntry* InsertEntryLocked(const std::string& name);  // exclusive lock held

  ModelRegistryOptions options_;
  std::string canonical_root_;

  mutable std::shared_mutex mu_;
  std::vector<ModelEntry> models_;                        // sorted by name
  std::vector<std::shared_ptr<ServableModel>> retiring_;  // draining, shown UNLOADING
  std::vector<LoadCounts> load_counts_;
  std::string loading_name_;  // guarded by mu_, like the members above
  int64_t loading_version_ = 0;
  AtomicHistogram load_duration_ns_{LoadDurationBucketsNs()};

  // Control thread: tasks, one at a time, and (kPoll) the periodic scan.
  std::mutex control_mu_;
  std::condition_variable control_cv_;
  std::deque<std::pair<std::function<void()>, std::function<void(Status)>>> tasks_;
  bool stopping_ = false;
  std::thread control_thread_;
  // Why the last poll could not list the repository ("" when it could);
  // control thread only.
  std::string poll_problem_;
};

}  // namespace selu::core
