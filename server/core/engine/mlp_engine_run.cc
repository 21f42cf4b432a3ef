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

using engine_internal::ExecOp;
using engine_internal::View;
using Kind = engine_internal::ElementOp::Kind;

// The arguments of an operation's element-wise operations: the operands of
// its binary post-ops, and those of the operations run after it, in place
// on its output `data`.
void BindElementOps(const engine_internal::LayerOps& ops, const OpPlan& p, const memory& data,
                    const dnnl::engine& cpu, BoundBatchPlan& wp, BoundOp& bound) {
  auto operand = [&](const engine_internal::ElementOp& op) {
    if (!op.reads_tensor) return op.operand;
    memory m(engine_internal::ViewMd(op.tensor, wp.plan->rows), cpu, kNoBuffer);
    (op.tensor.buffer < 2 ? wp.io : wp.slots).emplace_back(m, op.tensor);
    return m;
  };
  for (size_t k = 0; k < ops.fused.size(); ++k) {
    if (ops.fused[k].kind != Kind::kBinary) continue;
    bound.args.emplace(DNNL_ARG_ATTR_MULTIPLE_POST_OP(static_cast<int>(k)) | DNNL_ARG_SRC_1,
                       operand(ops.fused[k]));
  }
  for (size_t k = 0; k < ops.after.size(); ++k) {
    const auto& op = ops.after[k];
    memory scratch(p.after_scratch_mds[k], cpu, kNoBuffer);
    wp.scratch.push_back(scratch);
    auto& args = bound.after_args.emplace_back();
    switch (op.kind) {
      case Kind::kEltwise:
        args = {{DNNL_ARG_SRC, data}, {DNNL_ARG_DST, data}};
        break;
      case Kind::kBinary:
        args = {{DNNL_ARG_SRC_0, data}, {DNNL_ARG_SRC_1, operand(op)}, {DNNL_ARG_DST, data}};
        break;
      case Kind::kPrelu:
        args = {{DNNL_ARG_SRC, data}, {DNNL_ARG_WEIGHTS, op.operand}, {DNNL_ARG_DST, data}};
        break;
    }
    args.emplace(DNNL_ARG_SCRATCHPAD, scratch);
  }
}

// Copies a strided view's rows together, for an observer.
const float* Gather(const float* base, const View& v, int64_t rows, float* out) {
  for (int64_t r = 0; r < rows; ++r) {
    std::copy_n(base + r * v.stride, v.width, out + r * v.width);
  }
  return out;
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
    float* const io[2] = {const_cast<float*>(input), output};
    for (auto& [m, v] : wp.io) m.set_data_handle(io[v.buffer] + v.offset);
    if constexpr (kObserved) observer->OnInput(input, rows, impl_->spec.input_features);
    const auto& ops = impl_->program.ops;
    for (size_t i = 0; i < plan.ops.size(); ++i) {
      const OpPlan& p = plan.ops[i];
      BoundOp& b = wp.ops[i];
      if (p.has_convert) p.convert.execute(ws.stream, b.convert_args);
      if (p.has_prim) p.prim.execute(ws.stream, b.args);
      for (size_t k = 0; k < p.after.size(); ++k) p.after[k].execute(ws.stream, b.after_args[k]);
      if constexpr (kObserved) {
        const ExecOp& op = ops[i];
        if (op.observed >= 0) {
          // Its buffer may be overwritten by a later operation: shown now.
          ws.stream.wait();
          const float* data = static_cast<const float*>(b.args.at(DNNL_ARG_DST).get_data_handle());
          if (!op.dst.dense()) {
            data = Gather(data, op.dst, rows, static_cast<float*>(ws.observe.data()));
          }
          observer->OnLayer(op.observed, data, rows, op.dst.width);
        }
      }
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
    // Handles are set below (slots, scratchpad) or per call (input/output).
    auto view = [&](const memory::desc& md, const View& v) {
      memory m(md, cpu, kNoBuffer);
      (v.buffer < 2 ? wp.io : wp.slots).emplace_back(m, v);
      return m;
    };
    for (size_t i = 0; i < plan.ops.size(); ++i) {
      const ExecOp& op = program.ops[i];
      const OpPlan& p = plan.ops[i];
      BoundOp& b = wp.ops.emplace_back();
      memory dst = view(p.dst_md, op.dst);
      if (p.has_prim) {
        memory scratch(p.scratch_md, cpu, kNoBuffer);
        wp.scratch.push_back(scratch);
        b.args.emplace(DNNL_ARG_SCRATCHPAD, scratch);
      }
      b.args.emplace(DNNL_ARG_DST, dst);
      switch (op.kind) {
        case ExecOp::Kind::kDense:
          if (p.has_convert) {
            memory converted(p.src_md, cpu, kNoBuffer);
            wp.converted.push_back(converted);
            memory scratch(p.convert_scratch_md, cpu, kNoBuffer);
            wp.scratch.push_back(scratch);
            b.convert_args = {{DNNL_ARG_FROM, view(p.convert_src_md, op.src)},
                              {DNNL_ARG_TO, converted},
                              {DNNL_ARG_SCRATCHPAD, scratch}};
            b.args.emplace(DNNL_ARG_SRC, converted);
          } else {
            b.args.emplace(DNNL_ARG_SRC, view(p.src_md, op.src));
          }
          b.args.emplace(DNNL_ARG_WEIGHTS, p.weights);
          b.args.emplace(DNNL_ARG_BIAS, p.bias);
          break;
        case ExecOp::Kind::kCopy:
          b.args.emplace(DNNL_ARG_FROM, view(p.src_md, op.src));
          b.args.erase(DNNL_ARG_DST);
          b.args.emplace(DNNL_ARG_TO, dst);
          break;
        case ExecOp::Kind::kAdd:
          b.args.emplace(DNNL_ARG_SRC_0, view(p.src_md, op.src));
          b.args.emplace(DNNL_ARG_SRC_1, view(p.src1_md, op.src1));
          break;
        case ExecOp::Kind::kSoftmax:
          b.args.emplace(DNNL_ARG_SRC, dst);
          break;
        case ExecOp::Kind::kActivate:
          break;
      }
      BindElementOps(impl.op_ops[i], p, dst, cpu, wp, b);
    }
    it = ws.plans.emplace(rows, std::move(wp)).first;
  }
  BoundBatchPlan& wp = it->second;
  const BatchPlan& plan = *wp.plan;
  const size_t r = static_cast<size_t>(rows);
  bool moved = ws.slots.Reserve(
      std::max<size_t>(r * static_cast<size_t>(impl.slot_row_floats) * sizeof(float), 64));
  moved |= ws.observe.Reserve(
      std::max<size_t>(r * static_cast<size_t>(impl.widest_observed) * sizeof(float), 64));
  moved |= ws.scratch.Reserve(std::max<size_t>(plan.max_scratch_bytes, 64));
  moved |=
      ws.convert.Reserve(std::max<size_t>(r * static_cast<size_t>(impl.convert_row_bytes), 64));
  if (moved) ++ws.generation;
  if (wp.bound_generation != ws.generation) {
    float* const slots = static_cast<float*>(ws.slots.data());
    for (auto& [m, v] : wp.slots) {
      m.set_data_handle(
          slots + static_cast<int64_t>(r) * impl.slot_offsets[static_cast<size_t>(v.buffer - 2)] +
          v.offset);
    }
    for (memory& m : wp.scratch) m.set_data_handle(ws.scratch.data());
    for (memory& m : wp.converted) m.set_data_handle(ws.convert.data());
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
