#include "server/core/model_registry.h"

#include <algorithm>
#include <charconv>
#include <filesystem>
#include <mutex>
#include <system_error>

#include "server/core/mlp_batch_computer.h"

namespace selu::core {

namespace fs = std::filesystem;

std::string_view ModelStateName(ModelState state) {
  switch (state) {
    case ModelState::kReady:
      return "READY";
    case ModelState::kFailed:
      return "UNAVAILABLE";
    case ModelState::kDraining:
      return "DRAINING";
  }
  return "UNKNOWN";
}

namespace {

// A positive decimal integer without sign or leading zeros, or nothing.
std::optional<int64_t> ParseVersion(std::string_view text) {
  if (text.empty() || text.size() > 18 || text[0] == '0') return std::nullopt;
  int64_t value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size() || value <= 0) return std::nullopt;
  return value;
}

// Engine time of a full batch: the best of a few runs on zeros, after a
// warm-up run (which also builds the primitives).
StatusOr<std::chrono::nanoseconds> TimeFullBatch(const MlpEngine& engine, int64_t rows) {
  std::vector<float> in(static_cast<size_t>(rows * engine.input_features()), 0.0f);
  std::vector<float> out(static_cast<size_t>(rows * engine.output_features()));
  auto ws = engine.CreateWorkspace();
  std::chrono::nanoseconds best = std::chrono::nanoseconds::max();
  for (int i = 0; i < 6; ++i) {
    const auto start = Clock::now();
    SELU_RETURN_IF_ERROR(engine.Run(*ws, in.data(), rows, out.data()));
    if (i > 0)
      best = std::min(best,
                      std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - start));
  }
  return best;
}

}  // namespace

StatusOr<std::shared_ptr<ServableModel>> ServableModel::Load(std::string name, int64_t version,
                                                             const std::string& path,
                                                             const ModelServingOptions& options) {
  auto spec = LoadOnnxModelFromFile(path, options.loader);
  if (!spec.ok()) return spec.status();
  MlpEngineOptions engine_options = options.engine;
  engine_options.max_rows = std::max(engine_options.max_rows, options.batcher.max_batch_size);
  auto engine = MlpEngine::Create(std::move(spec).value(), engine_options);
  if (!engine.ok()) return engine.status().WithPrefix(path);
  std::shared_ptr<const MlpEngine> shared_engine = std::move(engine).value();
  auto stats = std::make_unique<ModelStats>(options.batcher.max_batch_size);
  BatcherOptions batcher_options = options.batcher;
  batcher_options.observer = stats.get();
  std::chrono::nanoseconds full_batch_time{0};
  if (options.auto_execution) {
    batcher_options.execution = BatchExecution::kWorkers;
    if (options.batcher.max_queue_delay.count() == 0) {
      auto measured = TimeFullBatch(*shared_engine, options.batcher.max_batch_size);
      if (!measured.ok()) return measured.status().WithPrefix(path);
      full_batch_time = *measured;
      if (full_batch_time <= options.caller_execution_limit) {
        batcher_options.execution = BatchExecution::kCaller;
      }
    }
  }
  auto batcher =
      DynamicBatcher::Create(std::make_shared<MlpBatchComputer>(shared_engine), batcher_options);
  if (!batcher.ok()) return batcher.status().WithPrefix(path);
  std::shared_ptr<ServableModel> model(new ServableModel());
  model->stats_ = std::move(stats);
  model->full_batch_time_ = full_batch_time;
  model->name_ = std::move(name);
  model->version_ = version;
  model->version_string_ = std::to_string(version);
  model->path_ = path;
  model->engine_ = std::move(shared_engine);
  model->batcher_ = std::move(batcher).value();
  return model;
}

void ServableModel::StopAccepting() { draining_.store(true, std::memory_order_relaxed); }

void ServableModel::Drain(Clock::time_point deadline) {
  StopAccepting();
  batcher_->Drain(deadline);
}

StatusOr<std::unique_ptr<ModelRegistry>> ModelRegistry::LoadRepository(
    const std::string& root, const ModelServingOptions& options) {
  std::error_code ec;
  if (!fs::is_directory(root, ec)) {
    return NotFoundError("model repository '" + root + "' is not a readable folder");
  }
  std::unique_ptr<ModelRegistry> registry(new ModelRegistry());
  std::vector<fs::path> model_dirs;
  for (const auto& entry : fs::directory_iterator(root, ec)) {
    if (entry.is_directory(ec) && entry.path().filename().string()[0] != '.') {
      model_dirs.push_back(entry.path());
    }
  }
  if (ec) return NotFoundError("cannot list model repository '" + root + "': " + ec.message());
  std::sort(model_dirs.begin(), model_dirs.end());
  for (const fs::path& dir : model_dirs) {
    Entry e;
    e.name = dir.filename().string();
    int64_t newest = 0;
    for (const auto& v : fs::directory_iterator(dir, ec)) {
      if (!v.is_directory(ec)) continue;
      if (auto version = ParseVersion(v.path().filename().string())) {
        if (fs::is_regular_file(v.path() / "model.onnx", ec)) newest = std::max(newest, *version);
      }
    }
    if (newest == 0) {
      e.reason = "no version folder with a model.onnx in '" + dir.string() + "'";
      registry->entries_.push_back(std::move(e));
      continue;
    }
    e.version = newest;
    const std::string path = (dir / std::to_string(newest) / "model.onnx").string();
    const Clock::time_point load_start = Clock::now();
    auto model = ServableModel::Load(e.name, newest, path, options);
    registry->RecordLoad(e.name, model.ok(), Clock::now() - load_start);
    if (model.ok()) {
      e.state = ModelState::kReady;
      e.model = std::move(model).value();
    } else {
      e.reason = model.status().ToString();
    }
    registry->entries_.push_back(std::move(e));
  }
  return registry;
}

StatusOr<std::shared_ptr<ServableModel>> ModelRegistry::Find(std::string_view name,
                                                             std::string_view version) const {
  std::optional<int64_t> wanted;
  if (!version.empty()) {
    wanted = ParseVersion(version);
    if (!wanted) {
      return InvalidArgumentError("model version '" + std::string(version) +
                                  "' is not a positive integer");
    }
  }
  std::shared_lock lock(mu_);
  const Entry* found = nullptr;
  bool name_known = false;
  for (const Entry& e : entries_) {
    if (e.name != name) continue;
    name_known = true;
    if (wanted && e.version != *wanted) continue;
    if (!found || e.version > found->version) found = &e;
  }
  if (!name_known) return NotFoundError("unknown model '" + std::string(name) + "'");
  if (found == nullptr) {
    return NotFoundError("model '" + std::string(name) + "' has no version " +
                         std::string(version));
  }
  if (found->state == ModelState::kFailed || !found->model) {
    return UnavailableError("model '" + found->name + "' is not ready: " + found->reason);
  }
  if (!found->model->ready()) {
    return UnavailableError("model '" + found->name + "' version " +
                            found->model->version_string() + " is draining");
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

std::vector<ModelRegistry::Entry> ModelRegistry::Index() const {
  std::shared_lock lock(mu_);
  std::vector<Entry> out = entries_;
  for (Entry& e : out) {
    if (e.model && !e.model->ready()) e.state = ModelState::kDraining;
  }
  return out;
}

bool ModelRegistry::AllReady() const {
  std::shared_lock lock(mu_);
  if (entries_.empty()) return false;
  for (const Entry& e : entries_) {
    if (e.state != ModelState::kReady || !e.model || !e.model->ready()) return false;
  }
  return true;
}

void ModelRegistry::DrainAll(Clock::time_point deadline) {
  std::vector<std::shared_ptr<ServableModel>> models;
  {
    std::shared_lock lock(mu_);
    for (const Entry& e : entries_) {
      if (e.model) models.push_back(e.model);
    }
  }
  // Stop intake everywhere first, then wait for each queue.
  for (auto& m : models) m->StopAccepting();
  for (auto& m : models) m->Drain(deadline);
}

}  // namespace selu::core
