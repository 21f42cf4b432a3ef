#include "server/core/repository/model_registry.h"

#include <malloc.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <system_error>

namespace selu::core {

namespace fs = std::filesystem;

std::string_view ModelStateName(ModelState state) {
  switch (state) {
    case ModelState::kReady:
      return "READY";
    case ModelState::kFailed:
    case ModelState::kUnloaded:
      return "UNAVAILABLE";
    case ModelState::kLoading:
      return "LOADING";
    case ModelState::kUnloading:
      return "UNLOADING";
  }
  return "UNKNOWN";
}

namespace {

// The server-wide options with a model's config.pbtxt applied.
ModelServingOptions ApplySettings(const ModelServingOptions& base, const ModelConfigSettings& s) {
  ModelServingOptions o = base;
  if (s.max_batch_size) {
    o.batcher.max_batch_size = *s.max_batch_size;
    // Server-wide preferred sizes that this model's batch cannot reach.
    std::erase_if(o.batcher.preferred_batch_sizes,
                  [&](int64_t size) { return size > *s.max_batch_size; });
  }
  if (s.preferred_batch_sizes) o.batcher.preferred_batch_sizes = *s.preferred_batch_sizes;
  if (s.max_queue_delay_us)
    o.batcher.max_queue_delay = std::chrono::microseconds(*s.max_queue_delay_us);
  if (s.max_queue_size) o.batcher.max_queue_size = *s.max_queue_size;
  if (s.default_timeout_us)
    o.default_queue_timeout = std::chrono::microseconds(*s.default_timeout_us);
  if (s.instances) o.batcher.instances = *s.instances;
  if (s.engine_primitive) {
    o.engine.primitive =
        *s.engine_primitive == "matmul" ? EnginePrimitive::kMatmul : EnginePrimitive::kInnerProduct;
  }
  if (s.batch_execution) {
    o.auto_execution = *s.batch_execution == "auto";
    o.batcher.execution =
        *s.batch_execution == "caller" ? BatchExecution::kCaller : BatchExecution::kWorkers;
  }
  return o;
}

}  // namespace

// ---- ModelRegistry

ModelRegistry::ModelRegistry(ModelRegistryOptions options) : options_(std::move(options)) {}

ModelRegistry::~ModelRegistry() {
  {
    std::lock_guard lock(control_mu_);
    stopping_ = true;
  }
  control_cv_.notify_all();
  if (control_thread_.joinable()) control_thread_.join();
}

StatusOr<std::unique_ptr<ModelRegistry>> ModelRegistry::Open(ModelRegistryOptions options) {
  std::error_code ec;
  if (!fs::is_directory(options.root, ec)) {
    return NotFoundError("model repository '" + options.root + "' is not a readable folder");
  }
  std::unique_ptr<ModelRegistry> registry(new ModelRegistry(std::move(options)));
  registry->canonical_root_ = fs::canonical(registry->options_.root, ec).string();
  if (ec) {
    return NotFoundError("cannot resolve model repository '" + registry->options_.root +
                         "': " + ec.message());
  }
  std::vector<std::string> startup;
  if (registry->options_.mode == ModelControlMode::kExplicit) {
    for (const std::string& name : registry->options_.startup_models) {
      if (name == "*") {
        for (std::string& folder : ModelFolderNames(registry->options_.root))
          startup.push_back(folder);
      } else {
        startup.push_back(name);
      }
    }
    std::sort(startup.begin(), startup.end());
    startup.erase(std::unique(startup.begin(), startup.end()), startup.end());
  } else {
    startup = ModelFolderNames(registry->options_.root);
  }
  for (const std::string& name : startup) {
    Status status = CheckModelName(name);
    if (status.ok()) status = registry->Reconcile(name, /*explicit_load=*/true);
    // Load failures are recorded and logged where they happen, and the other
    // models serve; a --load-model that names no model folder is an error.
    if (status.code() == StatusCode::kInvalidArgument || status.code() == StatusCode::kNotFound) {
      return status.WithPrefix("--load-model");
    }
    std::unique_lock lock(registry->mu_);
    if (ModelEntry* entry = registry->FindEntryLocked(name)) entry->required = true;
  }
  if (registry->options_.on_change) registry->options_.on_change();
  registry->control_thread_ = std::thread([r = registry.get()] { r->ControlLoop(); });
  return registry;
}

ModelRegistry::ModelEntry* ModelRegistry::FindEntryLocked(std::string_view name) {
  auto it = std::lower_bound(models_.begin(), models_.end(), name,
                             [](const ModelEntry& e, std::string_view n) { return e.name < n; });
  return it != models_.end() && it->name == name ? &*it : nullptr;
}

ModelRegistry::ModelEntry* ModelRegistry::InsertEntryLocked(const std::string& name) {
  auto it = std::lower_bound(models_.begin(), models_.end(), name,
                             [](const ModelEntry& e, const std::string& n) { return e.name < n; });
  ModelEntry entry;
  entry.name = name;
  return &*models_.insert(it, std::move(entry));
}

const ModelRegistry::ModelEntry* ModelRegistry::FindEntryLocked(std::string_view name) const {
  return const_cast<ModelRegistry*>(this)->FindEntryLocked(name);
}

void ModelRegistry::Log(std::string_view level, const std::string& message) const {
  if (options_.log) options_.log(level, message);
}

Status ModelRegistry::Reconcile(const std::string& name, bool explicit_load,
                                const inference::ModelConfig* override_config) {
  // Only this thread changes models_, so reading it without the lock is safe
  // here; writes take the exclusive lock.
  const ModelEntry* current = FindEntryLocked(name);
  const fs::path dir = fs::path(options_.root) / name;
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) {
    const Status gone = NotFoundError("no model folder '" + name + "' in the model repository '" +
                                      options_.root + "'");
    if (current == nullptr) return gone;
    // The folder was removed: stop serving the model and forget it.
    std::vector<std::shared_ptr<ServableModel>> retired;
    {
      std::unique_lock lock(mu_);
      ModelEntry* entry = FindEntryLocked(name);
      for (VersionSlot& slot : entry->versions) {
        if (slot.model) {
          slot.model->StopAccepting();
          retired.push_back(slot.model);
          retiring_.push_back(slot.model);
        }
      }
      models_.erase(models_.begin() + (entry - models_.data()));
    }
    Log("info", "model '" + name + "' removed from the repository: unloading");
    if (options_.on_change) options_.on_change();
    Retire(std::move(retired));
    return gone;
  }

  ModelFolder folder = ReadModelFolder(options_.root, canonical_root_, name, override_config);
  // Nothing changed since the last scan: nothing to do (and a failure is not
  // retried until its files change; LoadModel retries).
  const std::vector<DiskVersion>& disk = folder.versions;
  const ModelConfigSettings& settings = folder.settings;
  if (!explicit_load && current != nullptr && current->wanted &&
      current->fingerprint == folder.fingerprint) {
    return OkStatus();
  }
  for (const std::string& warning : folder.warnings) {
    Log("warn", "model '" + name + "': " + warning);
  }

  if (!folder.config_status.ok()) {
    // Keep whatever serves; the model's reason says why nothing new loads.
    RecordLoad(name, false, Clock::duration::zero());
    const std::string reason = folder.folder_status.ok()
                                   ? "invalid configuration: " + folder.config_status.message()
                                   : folder.folder_status.message();
    {
      std::unique_lock lock(mu_);
      ModelEntry* entry = FindEntryLocked(name);
      if (entry == nullptr) entry = InsertEntryLocked(name);
      entry->wanted = true;
      entry->reason = reason;
      entry->fingerprint = folder.fingerprint;
    }
    Log("error", "model '" + name + "': " + reason);
    if (options_.on_change) options_.on_change();
    return FailedPreconditionError("model '" + name + "': " + reason);
  }

  const ModelServingOptions serving = ApplySettings(options_.serving, settings);
  const std::string config_key = folder.have_config ? ConfigKey(folder.config) : std::string();
  std::vector<VersionSlot> old = current ? current->versions : std::vector<VersionSlot>();
  auto find_old = [&](int64_t version) -> const VersionSlot* {
    for (const VersionSlot& slot : old) {
      if (slot.version == version) return &slot;
    }
    return nullptr;
  };
  std::vector<VersionSlot> slots;
  std::string newest_failure;
  auto try_version = [&](const DiskVersion& d) -> bool {
    const VersionSlot* before = find_old(d.version);
    if (before != nullptr && before->stamp == d.stamp && before->config == config_key) {
      const bool ready = before->state == ModelState::kReady && before->model;
      if (ready || !explicit_load) {
        slots.push_back(*before);
        if (!ready && newest_failure.empty()) newest_failure = before->reason;
        return ready;
      }
    }
    VersionSlot slot;
    slot.version = d.version;
    slot.stamp = d.stamp;
    slot.config = config_key;
    const Clock::time_point start = Clock::now();
    SetLoading(name, d.version);
    StatusOr<std::shared_ptr<ServableModel>> model =
        d.problem.ok() ? ServableModel::Load(name, d.version, d.file, serving,
                                             folder.have_config ? &folder.config : nullptr)
                       : StatusOr<std::shared_ptr<ServableModel>>(d.problem);
    SetLoading("", 0);
    RecordLoad(name, model.ok(), Clock::now() - start);
    if (model.ok()) {
      slot.state = ModelState::kReady;
      slot.model = std::move(model).value();
      const ServableModel& m = *slot.model;
      const ModelSpec& spec = m.spec();
      Log("info",
          "model '" + name + "' version " + std::to_string(d.version) +
              " READY: " + std::to_string(spec.layers.size()) + " layers, " +
              std::to_string(spec.input_features) + " -> " + std::to_string(spec.output_features) +
              ", max_batch_size " + std::to_string(m.max_batch_size()) + ", execution " +
              (m.execution() == BatchExecution::kCaller ? "caller" : "workers") +
              (m.full_batch_time().count() > 0
                   ? " (full batch " + std::to_string(m.full_batch_time().count() / 1000) + " µs)"
                   : "") +
              ", loaded in " +
              std::to_string(std::chrono::duration<double>(Clock::now() - start).count()) + " s");
    } else {
      slot.state = ModelState::kFailed;
      slot.reason = model.status().message();
      if (newest_failure.empty()) newest_failure = slot.reason;
      Log("error", "model '" + name + "' version " + std::to_string(d.version) +
                       " failed to load: " + slot.reason);
    }
    const bool ready = slot.state == ModelState::kReady;
    slots.push_back(std::move(slot));
    return ready;
  };

  int ready = 0;
  switch (settings.version_policy.kind) {
    case VersionPolicy::Kind::kLatest:
      for (const DiskVersion& d : disk) {
        if (ready >= static_cast<int>(settings.version_policy.num_versions)) break;
        ready += try_version(d) ? 1 : 0;
      }
      break;
    case VersionPolicy::Kind::kAll:
      for (const DiskVersion& d : disk) ready += try_version(d) ? 1 : 0;
      break;
    case VersionPolicy::Kind::kSpecific:
      for (auto it = settings.version_policy.versions.rbegin();
           it != settings.version_policy.versions.rend(); ++it) {
        auto found = std::find_if(disk.begin(), disk.end(),
                                  [&](const DiskVersion& d) { return d.version == *it; });
        if (found != disk.end()) {
          ready += try_version(*found) ? 1 : 0;
        } else {
          VersionSlot missing;
          missing.version = *it;
          missing.reason =
              "version_policy.specific names version " + std::to_string(*it) + " but '" +
              (dir / std::to_string(*it) / settings.model_filename).string() + "' does not exist";
          slots.push_back(std::move(missing));
          if (newest_failure.empty()) newest_failure = slots.back().reason;
        }
      }
      break;
  }

  // A bad new version never replaces a good one: when nothing chosen loads,
  // the versions serving before stay (those still on disk).
  if (ready == 0) {
    for (const VersionSlot& before : old) {
      if (!before.model) continue;
      const bool on_disk = std::any_of(disk.begin(), disk.end(), [&](const DiskVersion& d) {
        return d.version == before.version;
      });
      if (!on_disk) continue;
      std::erase_if(slots, [&](const VersionSlot& s) { return s.version == before.version; });
      slots.push_back(before);
      Log("warn", "model '" + name + "': keeping version " + std::to_string(before.version) +
                      " serving, no version chosen by the version policy loads");
    }
  }
  std::sort(slots.begin(), slots.end(),
            [](const VersionSlot& a, const VersionSlot& b) { return a.version < b.version; });

  std::string reason;
  if (disk.empty() && slots.empty()) {
    reason = "no version folder with a " + settings.model_filename + " in '" + dir.string() + "'";
  } else if (ready == 0) {
    reason = "no version loads: " + newest_failure;
  }
  if (disk.empty() && slots.empty()) RecordLoad(name, false, Clock::duration::zero());

  std::vector<std::shared_ptr<ServableModel>> retired;
  {
    std::unique_lock lock(mu_);
    ModelEntry* entry = FindEntryLocked(name);
    if (entry == nullptr) entry = InsertEntryLocked(name);
    for (VersionSlot& before : entry->versions) {
      if (!before.model) continue;
      const bool kept = std::any_of(slots.begin(), slots.end(),
                                    [&](const VersionSlot& s) { return s.model == before.model; });
      if (kept) continue;
      before.model->StopAccepting();
      retired.push_back(before.model);
      retiring_.push_back(before.model);
    }
    entry->versions = std::move(slots);
    entry->wanted = true;
    entry->reason = reason;
    entry->fingerprint = folder.fingerprint;
  }
  if (!reason.empty()) Log("error", "model '" + name + "' UNAVAILABLE: " + reason);
  if (options_.on_change) options_.on_change();
  old.clear();  // the retired versions' last references are in `retired`
  Retire(std::move(retired));
  if (ready == 0) return FailedPreconditionError("model '" + name + "': " + reason);
  return OkStatus();
}

void ModelRegistry::SetLoading(const std::string& name, int64_t version) {
  std::unique_lock lock(mu_);
  loading_name_ = name;
  loading_version_ = version;
}

void ModelRegistry::Retire(std::vector<std::shared_ptr<ServableModel>> models) {
  if (models.empty()) return;
  const Clock::time_point deadline = Clock::now() + options_.drain_timeout;
  for (auto& model : models) {
    // Queued and running requests finish on the old version.
    model->Drain(deadline);
    Log("info", "model '" + model->name() + "' version " + model->version_string() +
                    " drained and unloaded");
  }
  {
    std::unique_lock lock(mu_);
    std::erase_if(retiring_, [&](const std::shared_ptr<ServableModel>& m) {
      return std::find(models.begin(), models.end(), m) != models.end();
    });
  }
  // Calls answered moments ago may still hold a reference until gRPC is done
  // with them; wait briefly so the memory goes back now, not later.
  for (auto& model : models) {
    const Clock::time_point until = Clock::now() + std::chrono::seconds(2);
    while (model.use_count() > 1 && Clock::now() < until) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    model.reset();
  }
  malloc_trim(0);
}

Status ModelRegistry::Unload(const std::string& name) {
  std::vector<std::shared_ptr<ServableModel>> retired;
  {
    std::unique_lock lock(mu_);
    ModelEntry* entry = FindEntryLocked(name);
    if (entry == nullptr) {
      std::error_code ec;
      if (!fs::is_directory(fs::path(options_.root) / name, ec)) {
        return NotFoundError("unknown model '" + name + "'");
      }
      entry = InsertEntryLocked(name);
    }
    for (VersionSlot& slot : entry->versions) {
      if (!slot.model) continue;
      slot.model->StopAccepting();
      retired.push_back(slot.model);
      retiring_.push_back(slot.model);
    }
    entry->versions.clear();
    entry->wanted = false;
    entry->reason = "unloaded";
    entry->fingerprint.clear();
  }
  Log("info", "model '" + name + "' unloading");
  if (options_.on_change) options_.on_change();
  Retire(std::move(retired));
  return OkStatus();
}

void ModelRegistry::Poll() {
  std::vector<std::string> names = ModelFolderNames(options_.root);
  {
    std::shared_lock lock(mu_);
    for (const ModelEntry& e : models_) names.push_back(e.name);
  }
  std::sort(names.begin(), names.end());
  names.erase(std::unique(names.begin(), names.end()), names.end());
  for (const std::string& name : names) {
    {
      std::lock_guard lock(control_mu_);
      if (stopping_) return;
    }
    (void)Reconcile(name, /*explicit_load=*/false);
  }
}

void ModelRegistry::ControlLoop() {
  // Loads and warm-ups are background work: on a busy machine they yield to
  // the threads that serve requests (a nice value applies per thread on Linux).
  if (options_.control_thread_nice > 0) {
    errno = 0;
    if (setpriority(PRIO_PROCESS, static_cast<id_t>(gettid()), options_.control_thread_nice) != 0) {
      Log("warn",
          std::string("cannot lower the model loading thread's priority: ") + std::strerror(errno));
    }
  }
  Clock::time_point next_poll = Clock::now() + options_.poll_period;
  std::unique_lock lock(control_mu_);
  while (!stopping_) {
    if (!tasks_.empty()) {
      auto task = std::move(tasks_.front().first);
      tasks_.pop_front();
      lock.unlock();
      task();
      lock.lock();
      continue;
    }
    if (options_.mode == ModelControlMode::kPoll) {
      if (Clock::now() >= next_poll) {
        lock.unlock();
        Poll();
        lock.lock();
        next_poll = Clock::now() + options_.poll_period;
        continue;
      }
      control_cv_.wait_until(lock, next_poll);
    } else {
      control_cv_.wait(lock);
    }
  }
  // Shutting down: answer what was not started.
  auto pending = std::move(tasks_);
  tasks_.clear();
  lock.unlock();
  for (auto& [task, refused] : pending) {
    if (refused) refused(UnavailableError("the server is shutting down"));
  }
}

void ModelRegistry::Post(std::function<void()> task, std::function<void(Status)> on_refused) {
  {
    std::lock_guard lock(control_mu_);
    if (!stopping_) {
      tasks_.emplace_back(std::move(task), std::move(on_refused));
      control_cv_.notify_all();
      return;
    }
  }
  on_refused(UnavailableError("the server is shutting down"));
}

namespace {

Status RequireExplicit(ModelControlMode mode, std::string_view rpc) {
  if (mode == ModelControlMode::kExplicit) return OkStatus();
  return FailedPreconditionError(std::string(rpc) + " needs --model-control-mode=explicit (it is " +
                                 (mode == ModelControlMode::kPoll ? "poll" : "none") + ")");
}

}  // namespace

void ModelRegistry::LoadModel(std::string name, std::optional<std::string> config_json,
                              std::function<void(Status)> done) {
  Status status = RequireExplicit(options_.mode, "loading a model");
  if (status.ok()) status = CheckModelName(name);
  if (!status.ok()) return done(status);
  std::optional<inference::ModelConfig> config;
  std::vector<std::string> warnings;
  if (config_json) {
    auto parsed = ParseModelConfigJson(*config_json, &warnings);
    if (!parsed.ok()) return done(parsed.status().WithPrefix("parameter 'config'"));
    config = std::move(parsed).value();
  }
  Post(
      [this, name = std::move(name), config = std::move(config), warnings = std::move(warnings),
       done] {
        for (const std::string& warning : warnings) {
          Log("warn", "model '" + name + "': the load request's 'config': " + warning);
        }
        done(Reconcile(name, /*explicit_load=*/true, config ? &*config : nullptr));
      },
      done);
}

void ModelRegistry::UnloadModel(std::string name, std::function<void(Status)> done) {
  Status status = RequireExplicit(options_.mode, "unloading a model");
  if (status.ok()) status = CheckModelName(name);
  if (!status.ok()) return done(status);
  Post([this, name = std::move(name), done] { done(Unload(name)); }, done);
}

StatusOr<std::shared_ptr<ServableModel>> ModelRegistry::Find(std::string_view name,
                                                             std::string_view version) const {
  std::optional<int64_t> wanted;
  if (!version.empty()) {
    wanted = ParseModelVersion(version);
    if (!wanted) {
      return InvalidArgumentError("model version '" + std::string(version) +
                                  "' is not a positive integer");
    }
  }
  std::shared_lock lock(mu_);
  const ModelEntry* entry = FindEntryLocked(name);
  if (entry == nullptr) return NotFoundError("unknown model '" + std::string(name) + "'");
  if (!entry->wanted) {
    return UnavailableError("model '" + entry->name + "' is not loaded (" + entry->reason + ")");
  }
  const VersionSlot* found = nullptr;
  for (const VersionSlot& slot : entry->versions) {
    if (wanted) {
      if (slot.version == *wanted) found = &slot;
    } else if (slot.model && slot.model->ready()) {
      found = &slot;  // sorted: the last one is the newest
    }
  }
  if (found == nullptr) {
    if (wanted) {
      return NotFoundError("model '" + entry->name + "' has no version " + std::string(version) +
                           " being served");
    }
    return UnavailableError("model '" + entry->name + "' is not ready: " + entry->reason);
  }
  if (!found->model) {
    return UnavailableError("model '" + entry->name + "' version " +
                            std::to_string(found->version) + " is not ready: " + found->reason);
  }
  if (!found->model->ready()) {
    return UnavailableError("model '" + entry->name + "' version " +
                            found->model->version_string() + " is being unloaded");
  }
  return found->model;
}

void ModelRegistry::RecordLoad(const std::string& name, bool success, Clock::duration took) {
  load_duration_ns_.Observe(static_cast<uint64_t>(
      std::max<int64_t>(0, std::chrono::duration_cast<std::chrono::nanoseconds>(took).count())));
  std::unique_lock lock(mu_);
  auto it = std::find_if(load_counts_.begin(), load_counts_.end(),
                         [&](const LoadCounts& c) { return c.name == name; });
  if (it == load_counts_.end()) it = load_counts_.insert(load_counts_.end(), LoadCounts{name});
  ++(success ? it->success : it->failure);
}

std::vector<ModelRegistry::LoadCounts> ModelRegistry::LoadCountsByModel() const {
  std::shared_lock lock(mu_);
  return load_counts_;
}

namespace {

void SortIndex(std::vector<ModelRegistry::Entry>* index) {
  std::stable_sort(index->begin(), index->end(),
                   [](const ModelRegistry::Entry& a, const ModelRegistry::Entry& b) {
                     return a.name != b.name ? a.name < b.name : a.version < b.version;
                   });
}

}  // namespace

std::vector<ModelRegistry::Entry> ModelRegistry::Index() const {
  std::shared_lock lock(mu_);
  std::vector<Entry> out;
  for (const ModelEntry& m : models_) {
    if (m.versions.empty()) {
      out.push_back(Entry{.name = m.name,
                          .version = 0,
                          .state = m.wanted ? ModelState::kFailed : ModelState::kUnloaded,
                          .reason = m.reason,
                          .model = nullptr});
    }
    for (const VersionSlot& slot : m.versions) {
      Entry e{.name = m.name,
              .version = slot.version,
              .state = slot.state,
              .reason = slot.reason,
              .model = slot.model};
      // A serving version of a model whose latest change failed (say, an
      // invalid config.pbtxt) says so.
      if (e.reason.empty() && !m.reason.empty()) e.reason = "still serving; " + m.reason;
      if (e.model && !e.model->ready()) e.state = ModelState::kUnloading;
      out.push_back(std::move(e));
    }
  }
  if (!loading_name_.empty()) {
    const bool listed = std::any_of(out.begin(), out.end(), [&](const Entry& e) {
      return e.name == loading_name_ && e.version == loading_version_;
    });
    if (!listed) {
      out.push_back(Entry{.name = loading_name_,
                          .version = loading_version_,
                          .state = ModelState::kLoading,
                          .reason = "loading and warming up",
                          .model = nullptr});
    }
  }
  for (const auto& model : retiring_) {
    // A version reloaded in place (its file changed) is listed once, as the
    // new one: metrics need one series per model version.
    const bool listed = std::any_of(out.begin(), out.end(), [&](const Entry& e) {
      return e.name == model->name() && e.version == model->version();
    });
    if (listed) continue;
    out.push_back(Entry{.name = model->name(),
                        .version = model->version(),
                        .state = ModelState::kUnloading,
                        .reason = "being replaced or unloaded: finishing its queued requests",
                        .model = model});
  }
  SortIndex(&out);
  return out;
}

std::vector<ModelRegistry::Entry> ModelRegistry::RepositoryIndex() const {
  std::vector<Entry> out = Index();
  for (const std::string& name : ModelFolderNames(options_.root)) {
    const bool known =
        std::any_of(out.begin(), out.end(), [&](const Entry& e) { return e.name == name; });
    if (!known) {
      out.push_back(Entry{.name = name,
                          .version = 0,
                          .state = ModelState::kUnloaded,
                          .reason = "not loaded",
                          .model = nullptr});
    }
  }
  SortIndex(&out);
  return out;
}

bool ModelRegistry::AllReady() const {
  std::shared_lock lock(mu_);
  int required = 0;
  bool any_ready = false;
  for (const ModelEntry& m : models_) {
    const bool ready = m.Serves();
    any_ready |= ready;
    if (m.wanted && m.required) {
      ++required;
      if (!ready) return false;
    }
  }
  // With nothing required (an empty repository at start-up), the first model
  // that serves makes the server ready.
  return required > 0 || any_ready || options_.mode == ModelControlMode::kExplicit;
}

bool ModelRegistry::ModelReady(std::string_view name) const {
  std::shared_lock lock(mu_);
  const ModelEntry* m = FindEntryLocked(name);
  return m != nullptr && m->Serves();
}

bool ModelRegistry::ModelEntry::Serves() const {
  return wanted && std::any_of(versions.begin(), versions.end(),
                               [](const VersionSlot& s) { return s.model && s.model->ready(); });
}

void ModelRegistry::DrainAll(Clock::time_point deadline) {
  {
    std::lock_guard lock(control_mu_);
    stopping_ = true;
  }
  control_cv_.notify_all();
  if (control_thread_.joinable()) control_thread_.join();
  std::vector<std::shared_ptr<ServableModel>> models;
  {
    std::shared_lock lock(mu_);
    for (const ModelEntry& m : models_) {
      for (const VersionSlot& slot : m.versions) {
        if (slot.model) models.push_back(slot.model);
      }
    }
    for (const auto& model : retiring_) models.push_back(model);
  }
  // Stop intake everywhere first, then wait for each queue.
  for (auto& m : models) m->StopAccepting();
  for (auto& m : models) m->Drain(deadline);
}

}  // namespace selu::core
