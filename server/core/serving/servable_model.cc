#include "server/core/serving/servable_model.h"

#include <algorithm>
#include <filesystem>

#include "server/core/base/client_text.h"
#include "server/core/base/stable_file.h"
#include "server/core/serving/mlp_batch_computer.h"

namespace selu::core {

namespace {

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
                                                             const ModelServingOptions& options,
                                                             const inference::ModelConfig* config) {
  auto bytes = ReadStableFile(path, options.loader.max_file_bytes);
  if (!bytes.ok()) return bytes.status();
  auto spec = LoadOnnxModelFromBytes(*bytes, options.loader);
  if (!spec.ok()) return spec.status().WithPrefix(path);
  bytes->clear();
  bytes->shrink_to_fit();
  // Every reader past this point (config check, engine, transport) may use
  // the graph's ports; a chain gets them here (a graph spec is only checked).
  SELU_RETURN_IF_ERROR(CompleteModelSpec(*spec).WithPrefix(path));
  if (config != nullptr) {
    Status checked = CheckModelConfigAgainstModel(*config, *spec);
    if (!checked.ok())
      return checked.WithPrefix("the configuration of '" + QuoteClientText(name) + "'");
  }
  ClassLabels labels;
  if (config != nullptr) {
    auto loaded = ClassLabels::Load(
        *config, std::filesystem::path(path).parent_path().parent_path().string(), *spec);
    if (!loaded.ok()) return loaded.status();
    labels = std::move(loaded).value();
  }
  inference::ModelConfig served =
      CompleteModelConfig(config ? *config : inference::ModelConfig(), name, *spec,
                          EffectiveServing{
                              .max_batch_size = options.batcher.max_batch_size,
                              .preferred_batch_sizes = options.batcher.preferred_batch_sizes,
                              .max_queue_delay_us = options.batcher.max_queue_delay.count(),
                              .max_queue_size = options.batcher.max_queue_size,
                              .default_timeout_us = options.default_queue_timeout.count(),
                              .instances = options.batcher.instances,
                          });
  MlpEngineOptions engine_options = options.engine;
  engine_options.max_rows = std::max(engine_options.max_rows, options.batcher.max_batch_size);
  auto engine = MlpEngine::Create(std::move(spec).value(), engine_options);
  if (!engine.ok()) return engine.status().WithPrefix(path);
  std::shared_ptr<const MlpEngine> shared_engine = std::move(engine).value();
  std::vector<std::string> notes;
  const ModelSpec& loaded = shared_engine->spec();
  for (size_t port = 0; port < loaded.outputs.size(); ++port) {
    const size_t count = labels.Of(port).size();
    if (count == 0) continue;
    const int64_t classes = loaded.outputs[port].features;
    notes.push_back(
        "output '" + QuoteClientText(loaded.outputs[port].name) + "': " + std::to_string(count) +
        " class labels for its " + std::to_string(classes) + " classes" +
        (static_cast<int64_t>(count) < classes ? " (classes " + std::to_string(count) + ".." +
                                                     std::to_string(classes - 1) + " get no label)"
                                               : ""));
  }
  std::shared_ptr<ModelMonitor> monitor;
  {
    SELU_RETURN_IF_ERROR(ValidateMonitorOptions(options.monitor).WithPrefix(path));
    LoadedReference reference = LoadReferenceStats(
        std::filesystem::path(path).parent_path().string(), shared_engine->spec());
    if (!reference.problem.empty()) {
      notes.push_back("bad reference statistics (live figures only, no drift score): " +
                      reference.problem);
    }
    auto probe = ProbeSelfNormalization(*shared_engine);
    if (!probe.ok()) return probe.status().WithPrefix(path);
    notes.push_back("self-normalization: " + probe->summary);
    monitor = std::make_shared<ModelMonitor>(shared_engine->spec(), options.monitor,
                                             std::move(reference), std::move(probe).value());
  }
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
  auto batcher = DynamicBatcher::Create(std::make_shared<MlpBatchComputer>(shared_engine, monitor),
                                        batcher_options);
  if (!batcher.ok()) return batcher.status().WithPrefix(path);
  std::shared_ptr<ServableModel> model(new ServableModel());
  model->stats_ = std::move(stats);
  model->monitor_ = std::move(monitor);
  model->load_notes_ = std::move(notes);
  model->full_batch_time_ = full_batch_time;
  model->name_ = std::move(name);
  model->version_ = version;
  model->version_string_ = std::to_string(version);
  model->path_ = path;
  model->config_ = std::move(served);
  model->labels_ = std::move(labels);
  model->queue_timeout_ = options.default_queue_timeout;
  model->engine_ = std::move(shared_engine);
  model->batcher_ = std::move(batcher).value();
  return model;
}

void ServableModel::StopAccepting() { draining_.store(true, std::memory_order_relaxed); }

void ServableModel::Drain(Clock::time_point deadline) {
  StopAccepting();
  batcher_->Drain(deadline);
}
}  // namespace selu::core
