// ModelRegistry's control thread (ControlLoop): the tasks posted to it
// (Post, from LoadModel and UnloadModel), the kPoll rescan (Poll), unloading
// a model (Unload) and draining and freeing the versions taken out of service
// (Retire). Reconcile, which loads, is in model_registry_reconcile.cc.
#include <malloc.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <system_error>
#include <thread>

#include "server/core/base/client_text.h"
#include "server/core/repository/model_registry.h"

namespace selu::core {

namespace fs = std::filesystem;

void ModelRegistry::Retire(std::vector<std::shared_ptr<ServableModel>> models) {
  if (models.empty()) return;
  const Clock::time_point deadline = Clock::now() + options_.drain_timeout;
  for (auto& model : models) {
    // Queued and running requests finish on the old version.
    model->Drain(deadline);
    Log("info", "model '" + QuoteClientText(model->name()) + "' version " +
                    model->version_string() + " drained and unloaded");
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
        return NotFoundError("unknown model '" + QuoteClientText(name) + "'");
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
  Log("info", "model '" + QuoteClientText(name) + "' unloading");
  if (options_.on_change) options_.on_change();
  Retire(std::move(retired));
  return OkStatus();
}

void ModelRegistry::Poll() {
  // A repository that cannot be listed (permissions, an unmounted volume) has
  // not lost its models: keep serving them, say so once, and look again at
  // the next poll.
  std::error_code ec;
  fs::directory_iterator listing(options_.root, ec);
  if (ec) {
    const std::string problem = ec.message();
    if (problem != poll_problem_) {
      Log("error", "cannot read the model repository '" + options_.root + "': " + problem +
                       "; the models loaded keep serving, the next polls retry");
    }
    poll_problem_ = problem;
    return;
  }
  if (!poll_problem_.empty()) {
    Log("info", "the model repository '" + options_.root + "' is readable again");
    poll_problem_.clear();
  }
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
          Log("warn",
              "model '" + QuoteClientText(name) + "': the load request's 'config': " + warning);
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

}  // namespace selu::core
