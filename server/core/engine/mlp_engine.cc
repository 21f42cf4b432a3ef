#include "server/core/engine/mlp_engine.h"

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "server/core/engine/graph_program.h"
#include "server/core/engine/layer_ops.h"
#include "server/core/engine/mlp_engine_impl.h"

namespace selu::core {

using dnnl::memory;
using engine_internal::FromDnnlError;
using engine_internal::UseThreads;
using tag = dnnl::memory::format_tag;
using dt = dnnl::memory::data_type;

MlpEngine::Workspace::Workspace(std::unique_ptr<State> state) : state_(std::move(state)) {}
MlpEngine::Workspace::~Workspace() = default;

MlpEngine::MlpEngine(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
MlpEngine::~MlpEngine() = default;

const ModelSpec& MlpEngine::spec() const { return impl_->spec; }
int64_t MlpEngine::input_features() const { return impl_->spec.input_features; }
int64_t MlpEngine::output_features() const { return impl_->spec.output_features; }
const MlpEngineOptions& MlpEngine::options() const { return impl_->options; }

StatusOr<std::unique_ptr<MlpEngine>> MlpEngine::Create(ModelSpec spec,
                                                       const MlpEngineOptions& options) {
  SELU_RETURN_IF_ERROR(CompleteModelSpec(spec));
  for (size_t i = 0; i < spec.layers.size(); ++i) {
    const DenseLayer& l = spec.layers[i];
    if (static_cast<int64_t>(l.weights.size()) != l.in_features * l.out_features) {
      return InvalidArgumentError("layer " + std::to_string(i) + " '" + l.name + "' has " +
                                  std::to_string(l.weights.size()) + " weights, expected " +
                                  std::to_string(l.in_features * l.out_features));
    }
  }
  if (options.threads_per_call < 1) {
    return InvalidArgumentError("threads_per_call must be at least 1");
  }
  if (options.max_cached_plans < 1) {
    return InvalidArgumentError("max_cached_plans must be at least 1");
  }
  if (options.max_rows < 1) return InvalidArgumentError("max_rows must be at least 1");
  const bool bf16 = options.weights == WeightsPrecision::kBf16;
  if (bf16 && !CpuHasBf16()) {
    return FailedPreconditionError(
        "weights_precision bf16 needs a CPU with native bf16 instructions (AVX512-BF16 or AMX); "
        "oneDNN dispatches to " +
        CpuIsaName() + " here: use weights_precision fp32");
  }
  auto program = engine_internal::PlanGraph(spec);
  if (!program.ok()) return program.status();
  auto impl = std::make_unique<Impl>();
  impl->options = options;
  impl->spec = std::move(spec);
  impl->program = std::move(*program);
  const engine_internal::GraphProgram& prog = impl->program;
  for (int64_t w : prog.slot_widths) {
    impl->slot_offsets.push_back(impl->slot_row_floats);
    impl->slot_row_floats += (w + 15) / 16 * 16;  // each slot 64-byte aligned
  }
  try {
    impl->cpu = dnnl::engine(dnnl::engine::kind::cpu, 0);
    for (size_t i = 0; i < impl->spec.layers.size(); ++i) {
      DenseLayer& l = impl->spec.layers[i];
      // The spec stores [in, out] row-major: "io" for inner product's
      // {out, in} dims (a matmul's {in, out} "ab" is the same bytes).
      impl->plain_weights.emplace_back(
          memory::desc({l.out_features, l.in_features}, dt::f32, tag::io), impl->cpu,
          l.weights.data());
      memory bias(memory::desc({l.out_features}, dt::f32, tag::a), impl->cpu);
      std::copy(l.bias.begin(), l.bias.end(), static_cast<float*>(bias.get_data_handle()));
      impl->biases.push_back(bias);
      impl->bias_rows.emplace_back(memory::desc({1, l.out_features}, dt::f32, tag::ab), impl->cpu,
                                   bias.get_data_handle());
      if (bf16) {
        impl->convert_row_bytes =
            std::max(impl->convert_row_bytes, (l.in_features * 2 + 63) / 64 * 64);
      }
    }
    for (const engine_internal::ExecOp& op : prog.ops) {
      if (op.kind == engine_internal::ExecOp::Kind::kDense) {
        impl->op_ops.push_back(engine_internal::LowerPostItems(op.post, impl->cpu));
        if (!op.dst.dense()) impl->widest_observed = std::max(impl->widest_observed, op.dst.width);
      } else if (op.kind == engine_internal::ExecOp::Kind::kActivate) {
        engine_internal::LayerOps ops = engine_internal::LowerActivations(op.acts, impl->cpu);
        ops.after.insert(ops.after.begin(), ops.fused.begin(), ops.fused.end());
        ops.fused.clear();
        impl->op_ops.push_back(std::move(ops));
      } else {
        impl->op_ops.emplace_back();
      }
    }
    impl->reordered_weights.resize(impl->spec.layers.size());
  } catch (const dnnl::error& e) {
    return FromDnnlError("creating the oneDNN engine", e);
  }
  // The plan for one row; where oneDNN will not fuse a residual add into
  // its layer, the add (and what follows it) runs after the layer instead.
  {
    std::lock_guard<std::mutex> lock(impl->mu);
    auto first = impl->BuildPlan(1);
    if (!first.ok()) {
      bool changed = false;
      for (auto& ops : impl->op_ops) changed |= engine_internal::UnfuseTensorOperands(&ops);
      if (!changed) return first.status();
      first = impl->BuildPlan(1);
      if (!first.ok()) return first.status();
    }
    impl->plans.emplace(1, *first);
    impl->plan_order.push_back(1);
  }
  return std::unique_ptr<MlpEngine>(new MlpEngine(std::move(impl)));
}

bool MlpEngine::Impl::UsesMatmul(size_t layer, int64_t rows) const {
  if (program.layer_needs_strides[layer]) return true;
  switch (options.primitive) {
    case EnginePrimitive::kInnerProduct:
      return false;
    case EnginePrimitive::kMatmul:
      return true;
    case EnginePrimitive::kAuto:
      break;
  }
  const DenseLayer& l = spec.layers[layer];
  return AutoPicksMatmul(rows, l.in_features, l.out_features, options.weights);
}

memory MlpEngine::Impl::WeightsIn(size_t layer, const memory::desc& want, bool matmul,
                                  dnnl::stream& s) const {
  // Kept as {out, in}; a matmul's {in, out} is a view with the axes swapped.
  const memory::desc held = matmul ? want.permute_axes({1, 0}) : want;
  auto as_wanted = [&](const memory& m) {
    return matmul ? memory(want, cpu, m.get_data_handle()) : m;
  };
  for (const memory& m : reordered_weights[layer]) {
    if (m.get_desc() == held) return as_wanted(m);
  }
  memory fresh(held, cpu);
  // The plain weights while they exist; after that, any layout made before
  // (a reorder between layouts of one tensor of one data type is an exact
  // copy; every layout made holds the same data type).
  std::list<memory>& made = reordered_weights[layer];
  memory source = made.empty() ? plain_weights[layer] : made.front();
  dnnl::reorder(source, fresh).execute(s, source, fresh);
  s.wait();
  made.push_back(fresh);
  // The plain copy is no longer needed: give its memory back (a loaded model
  // would otherwise hold its weights twice).
  if (plain_weights[layer]) {
    plain_weights[layer] = memory();
    std::vector<float>().swap(spec.layers[layer].weights);
  }
  return as_wanted(fresh);
}

namespace {

using engine_internal::ExecOp;
using engine_internal::ViewMd;

dnnl::primitive_attr UserScratchpad() {
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  return attr;
}

}  // namespace

StatusOr<std::shared_ptr<const BatchPlan>> MlpEngine::Impl::BuildPlan(int64_t rows) const {
  UseThreads(options.threads_per_call);
  auto plan = std::make_shared<BatchPlan>();
  plan->rows = rows;
  size_t at = 0;
  try {
    dnnl::stream s(cpu);
    for (; at < program.ops.size(); ++at) {
      const ExecOp& op = program.ops[at];
      OpPlan& p = plan->ops.emplace_back();
      p.dst_md = ViewMd(op.dst, rows);
      switch (op.kind) {
        case ExecOp::Kind::kDense: {
          const size_t li = static_cast<size_t>(op.layer);
          const DenseLayer& l = spec.layers[li];
          const bool matmul = UsesMatmul(li, rows);
          const dt wdt = options.weights == WeightsPrecision::kBf16 ? dt::bf16 : dt::f32;
          p.src_md = ViewMd(op.src, rows);
          if (wdt == dt::bf16) {
            // Dense, so that every bf16 primitive gets a JIT kernel (a strided
            // bf16 source with a binary post-op falls to ref:any in 2.6).
            p.convert_src_md = p.src_md;
            p.src_md = memory::desc({rows, l.in_features}, dt::bf16, tag::ab);
            dnnl::reorder::primitive_desc cpd(cpu, p.convert_src_md, cpu, p.src_md,
                                              UserScratchpad());
            p.convert_scratch_md = cpd.scratchpad_desc();
            p.convert = dnnl::reorder(cpd);
            p.has_convert = true;
            plan->max_scratch_bytes =
                std::max(plan->max_scratch_bytes, p.convert_scratch_md.get_size());
          }
          dnnl::primitive_attr attr = UserScratchpad();
          attr.set_post_ops(engine_internal::FusedPostOps(op_ops[at], rows));
          memory::desc weights_md;
          if (!matmul) {
            memory::desc wany({l.out_features, l.in_features}, wdt, tag::any);
            dnnl::inner_product_forward::desc d(dnnl::prop_kind::forward_inference, p.src_md, wany,
                                                biases[li].get_desc(), p.dst_md);
            dnnl::inner_product_forward::primitive_desc pd(d, attr, cpu);
            weights_md = pd.weights_desc();
            p.scratch_md = pd.scratchpad_desc();
            p.prim = dnnl::inner_product_forward(pd);
          } else {
            memory::desc wany({l.in_features, l.out_features}, wdt, tag::any);
            dnnl::matmul::desc d(p.src_md, wany, bias_rows[li].get_desc(), p.dst_md);
            dnnl::matmul::primitive_desc pd(d, attr, cpu);
            weights_md = pd.weights_desc();
            p.scratch_md = pd.scratchpad_desc();
            p.prim = dnnl::matmul(pd);
          }
          p.weights = WeightsIn(li, weights_md, matmul, s);
          p.bias = matmul ? bias_rows[li] : biases[li];
          p.has_prim = true;
          break;
        }
        case ExecOp::Kind::kCopy: {
          p.src_md = ViewMd(op.src, rows);
          dnnl::reorder::primitive_desc pd(cpu, p.src_md, cpu, p.dst_md, UserScratchpad());
          p.scratch_md = pd.scratchpad_desc();
          p.prim = dnnl::reorder(pd);
          p.has_prim = true;
          break;
        }
        case ExecOp::Kind::kAdd: {
          p.src_md = ViewMd(op.src, rows);
          p.src1_md = ViewMd(op.src1, rows);
          dnnl::binary::desc d(dnnl::algorithm::binary_add, p.src_md, p.src1_md, p.dst_md);
          dnnl::binary::primitive_desc pd(d, UserScratchpad(), cpu);
          p.scratch_md = pd.scratchpad_desc();
          p.prim = dnnl::binary(pd);
          p.has_prim = true;
          break;
        }
        case ExecOp::Kind::kSoftmax: {
          dnnl::softmax_forward::desc d(dnnl::prop_kind::forward_inference, p.dst_md, 1);
          dnnl::softmax_forward::primitive_desc pd(d, UserScratchpad(), cpu);
          p.scratch_md = pd.scratchpad_desc();
          p.prim = dnnl::softmax_forward(pd);
          p.has_prim = true;
          break;
        }
        case ExecOp::Kind::kActivate:
          break;
      }
      plan->max_scratch_bytes = std::max(plan->max_scratch_bytes, p.scratch_md.get_size());
      // Operations that cannot be fused run after it, in place (layer_ops.h).
      for (const auto& element : op_ops[at].after) {
        memory::desc step_scratch;
        p.after.push_back(
            engine_internal::AfterPrimitive(element, p.dst_md, rows, cpu, &step_scratch));
        p.after_scratch_mds.push_back(step_scratch);
        plan->max_scratch_bytes = std::max(plan->max_scratch_bytes, step_scratch.get_size());
      }
    }
  } catch (const dnnl::error& e) {
    return FromDnnlError(("building primitives for batch size " + std::to_string(rows) +
                          " (operation " + std::to_string(at) + ")")
                             .c_str(),
                         e);
  }
  return std::shared_ptr<const BatchPlan>(std::move(plan));
}

StatusOr<std::shared_ptr<const BatchPlan>> MlpEngine::Impl::GetPlan(int64_t rows) const {
  std::lock_guard<std::mutex> lock(mu);
  auto it = plans.find(rows);
  if (it != plans.end()) return it->second;
  auto built = BuildPlan(rows);
  if (!built.ok()) return built.status();
  plans.emplace(rows, *built);
  plan_order.push_back(rows);
  while (static_cast<int>(plan_order.size()) > options.max_cached_plans) {
    plans.erase(plan_order.front());
    plan_order.pop_front();
  }
  return built;
}

Status MlpEngine::Warmup(std::span<const int64_t> batch_sizes) const {
  for (int64_t rows : batch_sizes) {
    if (rows < 1 || rows > impl_->options.max_rows) {
      return InvalidArgumentError("warm-up batch size " + std::to_string(rows) +
                                  " is outside [1, " + std::to_string(impl_->options.max_rows) +
                                  "]");
    }
    auto plan = impl_->GetPlan(rows);
    if (!plan.ok()) return plan.status();
  }
  return OkStatus();
}

int64_t MlpEngine::cached_plan_count() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return static_cast<int64_t>(impl_->plans.size());
}

}  // namespace selu::core
