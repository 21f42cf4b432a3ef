// MlpEngine at run time: workspaces, binding a plan to a workspace's
// buffers, and Run (observed or not).
#include <algorithm>
#include <utility>
#include <vector>

#include "server/core/engine/mlp_engine.h"
#include "server/core/engine/mlp_engine_impl.h"

namespace selu::core {

using dnnl::memory;
using engine_internal::FromDnnlError;
using engine_internal::kNoBuffer;
using engine_internal::UseThreads;

namespace {

// The execution arguments of layer i's element-wise operations: the operands
// of its binary post-ops, and those of the operations run after it, in place
// on its output.
void BindLayerOps(const engine_internal::LayerOps& ops,
                  const std::vector<memory::desc>& after_scratch_mds, const dnnl::engine& cpu,
                  BoundBatchPlan& wp, size_t i) {
  using Kind = engine_internal::ElementOp::Kind;
  for (size_t k = 0; k < ops.fused.size(); ++k) {
    if (ops.fused[k].kind != Kind::kBinary) continue;
    wp.args[i].emplace(DNNL_ARG_ATTR_MULTIPLE_POST_OP(static_cast<int>(k)) | DNNL_ARG_SRC_1,
                       ops.fused[k].operand);
  }
  auto& scratch = wp.after_scratch.emplace_back();
  auto& args = wp.after_args.emplace_back();
  for (size_t k = 0; k < ops.after.size(); ++k) {
    const auto& op = ops.after[k];
    scratch.emplace_back(after_scratch_mds[k], cpu, kNoBuffer);
    const memory& data = wp.dst[i];
    switch (op.kind) {
      case Kind::kEltwise:
        args.push_back({{DNNL_ARG_SRC, data}, {DNNL_ARG_DST, data}});
        break;
      case Kind::kBinary:
        args.push_back(
            {{DNNL_ARG_SRC_0, data}, {DNNL_ARG_SRC_1, op.operand}, {DNNL_ARG_DST, data}});
        break;
      case Kind::kPrelu:
        args.push_back(
            {{DNNL_ARG_SRC, data}, {DNNL_ARG_WEIGHTS, op.operand}, {DNNL_ARG_DST, data}});
        break;
    }
    args.back().emplace(DNNL_ARG_SCRATCHPAD, scratch.back());
  }
}

}  // namespace

std::unique_ptr<MlpEngine::Workspace> MlpEngine::CreateWorkspace() const {
  return std::unique_ptr<Workspace>(new Workspace(std::make_unique<Workspace::State>(impl_->cpu)));
}

Status MlpEngine::Run(Workspace& workspace, const float* input, int64_t rows, float* output) const {
  return RunImpl</*kObserved=*/false>(workspace, input, rows, output, nullptr);
}

Status MlpEngine::Run(Workspace& workspace, const float* input, int64_t rows, float* output,
                      LayerObserver& observer) const {
  return RunImpl</*kObserved=*/true>(workspace, input, rows, output, &observer);
}

// One body for both Run()s; the observer calls are compiled out of the
// unobserved one, so it stays exactly the loop it was.
template <bool kObserved>
Status MlpEngine::RunImpl(Workspace& workspace, const float* input, int64_t rows, float* output,
                          LayerObserver* observer) const {
  Workspace::State& ws = *workspace.state_;
  if (rows < 1 || rows > impl_->options.max_rows) {
    return InvalidArgumentError("batch of " + std::to_string(rows) + " rows is outside [1, " +
                                std::to_string(impl_->options.max_rows) + "]");
  }
  if (input == nullptr || output == nullptr) return InvalidArgumentError("null buffer");
  UseThreads(impl_->options.threads_per_call);
  try {
    auto prepared = impl_->Prepare(ws, rows);
    if (!prepared.ok()) return prepared.status();
    BoundBatchPlan& wp = **prepared;
    const BatchPlan& plan = *wp.plan;
    const size_t n = plan.layers.size();
    wp.src[0].set_data_handle(const_cast<float*>(input));
    wp.dst[n - 1].set_data_handle(output);
    if constexpr (kObserved) observer->OnInput(input, rows, impl_->spec.input_features);
    for (size_t i = 0; i < n; ++i) {
      plan.layers[i].execute(ws.stream, wp.args[i]);
      if (plan.has_after) {
        for (size_t k = 0; k < plan.after[i].size(); ++k) {
          plan.after[i][k].execute(ws.stream, wp.after_args[i][k]);
        }
      }
      if constexpr (kObserved) {
        // Layer i's output is overwritten two layers on (buffers alternate):
        // it is shown now, before the next layer runs.
        ws.stream.wait();
        observer->OnLayer(static_cast<int>(i),
                          static_cast<const float*>(wp.dst[i].get_data_handle()), rows,
                          impl_->spec.layers[i].out_features);
      }
    }
    if (plan.has_softmax) {
      wp.softmax_data.set_data_handle(output);
      plan.softmax.execute(ws.stream, wp.softmax_args);
    }
    ws.stream.wait();
  } catch (const dnnl::error& e) {
    return FromDnnlError("running the model", e);
  } catch (const std::bad_alloc&) {
    return ResourceExhaustedError("out of memory for a batch of " + std::to_string(rows) + " rows");
  }
  return OkStatus();
}

StatusOr<BoundBatchPlan*> MlpEngine::Impl::Prepare(Workspace::State& ws, int64_t rows) const {
  const Impl& impl = *this;
  auto it = ws.plans.find(rows);
  if (it == ws.plans.end()) {
    auto plan_or = impl.GetPlan(rows);
    if (!plan_or.ok()) return plan_or.status();
    if (static_cast<int>(ws.plans.size()) >= impl.options.max_cached_plans) {
      ws.plans.erase(ws.plans.begin());
    }
    BoundBatchPlan wp;
    wp.plan = std::move(*plan_or);
    const BatchPlan& plan = *wp.plan;
    const dnnl::engine& cpu = impl.cpu;
    for (size_t i = 0; i < plan.layers.size(); ++i) {
      // Handles are set below (intermediates) or per call (input/output).
      wp.src.emplace_back(plan.src_mds[i], cpu, kNoBuffer);
      wp.dst.emplace_back(plan.dst_mds[i], cpu, kNoBuffer);
      wp.scratch.emplace_back(plan.scratch_mds[i], cpu, kNoBuffer);
      wp.args.push_back({{DNNL_ARG_SRC, wp.src[i]},
                         {DNNL_ARG_WEIGHTS, plan.weights[i]},
                         {DNNL_ARG_BIAS, plan.biases[i]},
                         {DNNL_ARG_DST, wp.dst[i]},
                         {DNNL_ARG_SCRATCHPAD, wp.scratch[i]}});
      BindLayerOps(impl.layer_ops[i], plan.after_scratch_mds[i], cpu, wp, i);
    }
    if (plan.has_softmax) {
      wp.softmax_data = memory(plan.softmax_md, cpu, kNoBuffer);
      wp.softmax_scratch = memory(plan.softmax_scratch_md, cpu, kNoBuffer);
      wp.softmax_args = {{DNNL_ARG_SRC, wp.softmax_data},
                         {DNNL_ARG_DST, wp.softmax_data},
                         {DNNL_ARG_SCRATCHPAD, wp.softmax_scratch}};
    }
    it = ws.plans.emplace(rows, std::move(wp)).first;
  }
  BoundBatchPlan& wp = it->second;
  const BatchPlan& plan = *wp.plan;
  const size_t hidden_bytes =
      static_cast<size_t>(rows) * static_cast<size_t>(impl.max_hidden_width) * sizeof(float);
  bool moved = ws.intermediate[0].Reserve(hidden_bytes);
  moved |= ws.intermediate[1].Reserve(hidden_bytes);
  moved |= ws.scratch.Reserve(std::max<size_t>(plan.max_scratch_bytes, 64));
  if (moved) ++ws.generation;
  if (wp.bound_generation != ws.generation) {
    const size_t n = plan.layers.size();
    for (size_t i = 0; i + 1 < n; ++i) {
      void* buf = ws.intermediate[i % 2].data();
      wp.dst[i].set_data_handle(buf);
      wp.src[i + 1].set_data_handle(buf);
    }
    for (size_t i = 0; i < n; ++i) {
      wp.scratch[i].set_data_handle(ws.scratch.data());
      for (memory& m : wp.after_scratch[i]) m.set_data_handle(ws.scratch.data());
    }
    if (plan.has_softmax) wp.softmax_scratch.set_data_handle(ws.scratch.data());
    wp.bound_generation = ws.generation;
  }
  return &wp;
}

Status MlpEngine::Run(const float* input, int64_t rows, float* output) const {
  std::unique_ptr<Workspace> ws;
  {
    std::lock_guard<std::mutex> lock(impl_->pool_mu);
    if (!impl_->pool.empty()) {
      ws = std::move(impl_->pool.back());
      impl_->pool.pop_back();
    }
  }
  if (!ws) ws = CreateWorkspace();
  Status status = Run(*ws, input, rows, output);
  std::lock_guard<std::mutex> lock(impl_->pool_mu);
  impl_->pool.push_back(std::move(ws));
  return status;
}

}  // namespace selu::core
