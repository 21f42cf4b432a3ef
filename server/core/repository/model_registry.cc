// ModelRegistry's serving state: Open (the start-up loads, then the control
// thread), the table's lookups (FindEntryLocked, InsertEntryLocked) and its
// readers (Find, Index, RepositoryIndex, AllReady, ModelReady, the load
// counts), and DrainAll. What changes the table runs on the control thread:
// model_registry_control.cc (the thread, its tasks, unloading) and
// model_registry_reconcile.cc (bringing a model in line with its folder).
#include "server/core/repository/model_registry.h"

#include <algorithm>
#include <filesystem>
#include <system_error>

#include "server/core/base/client_text.h"

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
    return NotFoundError("model repository '" + options.root + "' is not a readable folder" +
                         (ec ? ": " + ec.message() : std::string()));
  }
  if (fs::directory_iterator(options.root, ec); ec) {
    return FailedPreconditionError("cannot read the model repository '" + options.root +
                                   "': " + ec.message());
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

StatusOr<std::shared_ptr<ServableModel>> ModelRegistry::Find(std::string_view name,
                                                             std::string_view version) const {
  std::optional<int64_t> wanted;
  if (!version.empty()) {
    wanted = ParseModelVersion(version);
    if (!wanted) {
      return InvalidArgumentError("model version '" + QuoteClientText(version) +
                                  "' is not a positive integer");
    }
  }
  std::shared_lock lock(mu_);
  const ModelEntry* entry = FindEntryLocked(name);
  if (entry == nullptr) return NotFoundError("unknown model '" + QuoteClientText(name) + "'");
  if (!entry->wanted) {
    return UnavailableError("model '" + QuoteClientText(entry->name) + "' is not loaded (" +
                            entry->reason + ")");
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
      return NotFoundError("model '" + QuoteClientText(entry->name) + "' has no version " +
                           QuoteClientText(version) + " being served");
    }
    return UnavailableError("model '" + QuoteClientText(entry->name) +
                            "' is not ready: " + entry->reason);
  }
  if (!found->model) {
    return UnavailableError("model '" + QuoteClientText(entry->name) + "' version " +
                            std::to_string(found->version) + " is not ready: " + found->reason);
  }
  if (!found->model->ready()) {
    return UnavailableError("model '" + QuoteClientText(entry->name) + "' version " +
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
