// MlpBatchComputer: the production BatchComputer, an MlpEngine with one
// engine workspace and one monitor slot per batcher worker. A batch the slot
// samples runs with the slot as the engine's LayerObserver; every other batch
// runs exactly as without a monitor.
#pragma once

#include <memory>

#include "server/core/engine/mlp_engine.h"
#include "server/core/monitor/model_monitor.h"
#include "server/core/serving/dynamic_batcher.h"

namespace selu::core {

class MlpBatchComputer final : public BatchComputer {
 public:
  // `monitor` may be null (no monitoring).
  MlpBatchComputer(std::shared_ptr<const MlpEngine> engine, std::shared_ptr<ModelMonitor> monitor)
      : engine_(std::move(engine)), monitor_(std::move(monitor)) {}

  int64_t input_features() const override { return engine_->input_features(); }
  int64_t output_features() const override { return engine_->output_features(); }
  std::unique_ptr<Context> CreateContext() const override {
    return std::make_unique<EngineContext>(engine_->CreateWorkspace(),
                                           monitor_ ? monitor_->NewSlot() : nullptr);
  }
  Status Warmup(const std::vector<int64_t>& batch_sizes) const override {
    return engine_->Warmup(batch_sizes);
  }
  Status Compute(Context& context, const float* input, int64_t rows, float* output) const override {
    EngineContext& c = static_cast<EngineContext&>(context);
    if (c.slot != nullptr && c.slot->Sample()) {
      Status status = engine_->Run(*c.workspace, input, rows, output, *c.slot);
      c.slot->EndBatch(status.ok());
      return status;
    }
    return engine_->Run(*c.workspace, input, rows, output);
  }
  const MlpEngine& engine() const { return *engine_; }

 private:
  struct EngineContext final : Context {
    EngineContext(std::unique_ptr<MlpEngine::Workspace> ws, std::unique_ptr<MonitorSlot> s)
        : workspace(std::move(ws)), slot(std::move(s)) {}
    std::unique_ptr<MlpEngine::Workspace> workspace;
    std::unique_ptr<MonitorSlot> slot;
  };
  std::shared_ptr<const MlpEngine> engine_;
  std::shared_ptr<ModelMonitor> monitor_;
};

}  // namespace selu::core
