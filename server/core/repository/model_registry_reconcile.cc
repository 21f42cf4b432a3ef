// ModelRegistry::Reconcile: brings one model in line with its folder on the
// control thread (or in Open). It reads the folder, applies config.pbtxt to
// the server-wide options (ApplySettings), chooses the versions by the
// version policy and loads those that changed (shown LOADING through
// SetLoading), then swaps them into the table and retires what they replace.
#include <algorithm>
#include <chrono>
#include <filesystem>
#include <string>
#include <system_error>
#include <vector>

#include "server/core/base/client_text.h"
#include "server/core/repository/model_registry.h"

namespace selu::core {

namespace fs = std::filesystem;

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
    o.engine.primitive = EnginePrimitiveFromName(*s.engine_primitive).value();
  }
  if (s.weights_precision)
    o.engine.weights = WeightsPrecisionFromName(*s.weights_precision).value();
  if (s.batch_execution) {
    o.auto_execution = *s.batch_execution == "auto";
    o.batcher.execution =
        *s.batch_execution == "caller" ? BatchExecution::kCaller : BatchExecution::kWorkers;
  }
  if (s.monitor_sample_rate) o.monitor.sample_rate = *s.monitor_sample_rate;
  if (s.monitor_window_rows) o.monitor.window_rows = *s.monitor_window_rows;
  return o;
}

}  // namespace

Status ModelRegistry::Reconcile(const std::string& name, bool explicit_load,
                                const inference::ModelConfig* override_config) {
  // Only this thread changes models_, so reading it without the lock is safe
  // here; writes take the exclusive lock.
  const ModelEntry* current = FindEntryLocked(name);
  const fs::path dir = fs::path(options_.root) / name;
  std::error_code ec;
  const bool is_folder = fs::is_directory(dir, ec);
  if (!is_folder && ec && ec != std::errc::no_such_file_or_directory &&
      ec != std::errc::not_a_directory) {
    // Whether the folder is there cannot be told (permissions, I/O errors):
    // that is no removal, so what serves keeps serving.
    const std::string reason =
        "cannot read the model folder '" + dir.string() + "': " + ec.message();
    const Status unreadable = FailedPreconditionError(
        "model '" + QuoteClientText(name) + "': " + reason + "; what serves keeps serving");
    if (current == nullptr) return unreadable;
    bool changed = false;
    {
      std::unique_lock lock(mu_);
      ModelEntry* entry = FindEntryLocked(name);
      changed = entry->fingerprint != reason;
      entry->reason = reason;
      entry->fingerprint = reason;
    }
    if (changed) {
      RecordLoad(name, false, Clock::duration::zero());
      Log("error", unreadable.message());
      if (options_.on_change) options_.on_change();
    }
    return unreadable;
  }
  if (!is_folder) {
    const Status gone = NotFoundError("no model folder '" + QuoteClientText(name) +
                                      "' in the model repository '" + options_.root + "'");
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
    Log("info", "model '" + QuoteClientText(name) + "' removed from the repository: unloading");
    if (options_.on_change) options_.on_change();
    Retire(std::move(retired));
    return gone;
  }

  ModelFolder folder = ReadModelFolder(options_.root, canonical_root_, name, override_config);
  // A version folder without its model file counts only while its version
  // serves: the file was deleted under it, so it keeps serving from memory and
  // the failed reload says why. Otherwise the folder is not a version yet.
  std::erase_if(folder.versions, [&](const DiskVersion& d) {
    if (!d.missing || current == nullptr) return d.missing;
    return std::none_of(current->versions.begin(), current->versions.end(),
                        [&](const VersionSlot& s) { return s.version == d.version && s.model; });
  });
  // Nothing changed since the last scan: nothing to do (and a failure is not
  // retried until its files change; LoadModel retries).
  const std::vector<DiskVersion>& disk = folder.versions;
  const ModelConfigSettings& settings = folder.settings;
  if (!explicit_load && current != nullptr && current->wanted &&
      current->fingerprint == folder.fingerprint) {
    return OkStatus();
  }
  for (const std::string& warning : folder.warnings) {
    Log("warn", "model '" + QuoteClientText(name) + "': " + warning);
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
    Log("error", "model '" + QuoteClientText(name) + "': " + reason);
    if (options_.on_change) options_.on_change();
    return FailedPreconditionError("model '" + QuoteClientText(name) + "': " + reason);
  }

  const ModelServingOptions serving = ApplySettings(options_.serving, settings);
  // The label files belong to the config: a changed one reloads the versions.
  const std::string config_key =
      (folder.have_config ? ConfigKey(folder.config) : std::string()) + folder.label_stamps;
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
    if (before != nullptr && before->stamp == d.stamp &&
        before->reference_stamp == d.reference_stamp && before->config == config_key) {
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
    slot.reference_stamp = d.reference_stamp;
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
          "model '" + QuoteClientText(name) + "' version " + std::to_string(d.version) +
              " READY: " + std::to_string(spec.layers.size()) + " layers, " +
              std::to_string(spec.input_features) + " -> " + std::to_string(spec.output_features) +
              ", max_batch_size " + std::to_string(m.max_batch_size()) + ", execution " +
              (m.execution() == BatchExecution::kCaller ? "caller" : "workers") +
              (m.full_batch_time().count() > 0
                   ? " (full batch " + std::to_string(m.full_batch_time().count() / 1000) + " µs)"
                   : "") +
              ", loaded in " +
              std::to_string(std::chrono::duration<double>(Clock::now() - start).count()) + " s");
      const bool bad_reference = m.monitor().state() == MonitorState::kBadReference;
      for (const std::string& note : m.load_notes()) {
        const bool warn = bad_reference && note.starts_with("bad reference");
        Log(warn ? "warn" : "info", "model '" + QuoteClientText(name) + "' version " +
                                        std::to_string(d.version) + ": " + note);
      }
    } else {
      slot.state = ModelState::kFailed;
      slot.reason = model.status().message();
      if (newest_failure.empty()) newest_failure = slot.reason;
      Log("error", "model '" + QuoteClientText(name) + "' version " + std::to_string(d.version) +
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
          missing.reason = "version_policy.specific names version " + std::to_string(*it) +
                           " but '" + (dir / std::to_string(*it)).string() + "/" +
                           QuoteClientText(settings.model_filename) + "' does not exist";
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
      Log("warn", "model '" + QuoteClientText(name) + "': keeping version " +
                      std::to_string(before.version) +
                      " serving, no version chosen by the version policy loads");
    }
  }
  std::sort(slots.begin(), slots.end(),
            [](const VersionSlot& a, const VersionSlot& b) { return a.version < b.version; });

  std::string reason;
  if (disk.empty() && slots.empty()) {
    reason = "no version folder with a " + QuoteClientText(settings.model_filename) + " in '" +
             dir.string() + "'";
  } else if (ready == 0) {
    reason = "no version loads: " + newest_failure;
  }
  if (disk.empty() && slots.empty()) RecordLoad(name, false, Clock::duration::zero());

  std::vector<std::shared_ptr<ServableModel>> retired;
  bool still_serving = false;
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
    still_serving = entry->Serves();
  }
  // A model kept serving its old versions has said so ("keeping version ...").
  if (!reason.empty() && !still_serving) {
    Log("error", "model '" + QuoteClientText(name) + "' UNAVAILABLE: " + reason);
  }
  if (options_.on_change) options_.on_change();
  old.clear();  // the retired versions' last references are in `retired`
  Retire(std::move(retired));
  if (ready == 0)
    return FailedPreconditionError("model '" + QuoteClientText(name) + "': " + reason);
  return OkStatus();
}

void ModelRegistry::SetLoading(const std::string& name, int64_t version) {
  std::unique_lock lock(mu_);
  loading_name_ = name;
  loading_version_ = version;
}

}  // namespace selu::core
