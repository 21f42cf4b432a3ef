// MlpBatchComputer: the production BatchComputer, an MlpEngine with one
// engine workspace per batcher worker.
#pragma once

#include <memory>

#include "server/core/engine/mlp_engine.h"
#include "server/core/serving/dynamic_batcher.h"

namespace selu::core {

class MlpBatchComputer final : public BatchComputer {
 public:
  explicit MlpBatchComputer(std::shared_ptr<const MlpEngine> engine) : engine_(std::move(engine)) {}

  int64_t input_features() const override { return engine_->input_features(); }
  int64_t output_features() const override { return engine_->output_features(); }
  std::unique_ptr<Context> CreateContext() const override {
    return std::make_unique<EngineContext>(engine_->CreateWorkspace());
  }
  Status Warmup(const std::vector<int64_t>& batch_sizes) const override {
    return engine_->Warmup(batch_sizes);
  }
  Status Compute(Context& context, const float* input, int64_t rows, float* output) const override {
    return engine_->Run(*static_cast<EngineContext&>(context).workspace, input, rows, output);
  }
  const MlpEngine& engine() const { return *engine_; }

 private:
  struct EngineContext final : Context {
    explicit EngineContext(std::unique_ptr<MlpEngine::Workspace> ws) : workspace(std::move(ws)) {}
    std::unique_ptr<MlpEngine::Workspace> workspace;
  };
  std::shared_ptr<const MlpEngine> engine_;
};

}  // namespace selu::core
