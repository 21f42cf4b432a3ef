#include "server/core/engine/mlp_engine.h"

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

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

static Status ValidateSpec(const ModelSpec& spec) {
  if (spec.layers.empty()) return InvalidArgumentError("model has no layers");
  int64_t features = spec.input_features;
  for (size_t i = 0; i < spec.layers.size(); ++i) {
    const DenseLayer& l = spec.layers[i];
    const std::string where = "layer " + std::to_string(i) + " '" + l.name + "'";
    if (l.in_features != features) {
      return InvalidArgumentError(where + " takes " + std::to_string(l.in_features) +
                                  " features but receives " + std::to_string(features));
    }
    if (l.in_features <= 0 || l.out_features <= 0) {
      return InvalidArgumentError(where + " has an empty dimension");
    }
    if (static_cast<int64_t>(l.weights.size()) != l.in_features * l.out_features) {
      return InvalidArgumentError(where + " has " + std::to_string(l.weights.size()) +
                                  " weights, expected " +
                                  std::to_string(l.in_features * l.out_features));
    }
    if (static_cast<int64_t>(l.bias.size()) != l.out_features) {
      return InvalidArgumentError(where + " has " + std::to_string(l.bias.size()) +
                                  " biases, expected " + std::to_string(l.out_features));
    }
    for (const Activation& a : l.activations) {
      const size_t count = a.values.size();
      if (IsPerFeature(a.kind) && count != 1 && count != static_cast<size_t>(l.out_features)) {
        return InvalidArgumentError(where + " has a " + std::string(ActivationName(a.kind)) +
                                    " with " + std::to_string(count) + " values for " +
                                    std::to_string(l.out_features) + " features");
      }
    }
    features = l.out_features;
  }
  if (features != spec.output_features) {
    return InvalidArgumentError("model declares " + std::to_string(spec.output_features) +
                                " outputs but its last layer produces " + std::to_string(features));
  }
  return OkStatus();
}

StatusOr<std::unique_ptr<MlpEngine>> MlpEngine::Create(ModelSpec spec,
                                                       const MlpEngineOptions& options) {
  SELU_RETURN_IF_ERROR(ValidateSpec(spec));
  if (options.threads_per_call < 1) {
    return InvalidArgumentError("threads_per_call must be at least 1");
  }
  if (options.max_cached_plans < 1) {
    return InvalidArgumentError("max_cached_plans must be at least 1");
  }
  if (options.max_rows < 1) return InvalidArgumentError("max_rows must be at least 1");
  auto impl = std::make_unique<Impl>();
  impl->options = options;
  impl->spec = std::move(spec);
  try {
    impl->cpu = dnnl::engine(dnnl::engine::kind::cpu, 0);
    const bool ip = options.primitive == EnginePrimitive::kInnerProduct;
    for (size_t i = 0; i < impl->spec.layers.size(); ++i) {
      DenseLayer& l = impl->spec.layers[i];
      // The spec stores [in, out] row-major: "io" for inner product's
      // {out, in} dims, "ab" for matmul's {in, out}.
      memory::desc wmd = ip ? memory::desc({l.out_features, l.in_features}, dt::f32, tag::io)
                            : memory::desc({l.in_features, l.out_features}, dt::f32, tag::ab);
      impl->plain_weights.emplace_back(wmd, impl->cpu, l.weights.data());
      memory::desc bmd = ip ? memory::desc({l.out_features}, dt::f32, tag::a)
                            : memory::desc({1, l.out_features}, dt::f32, tag::ab);
      memory bias(bmd, impl->cpu);
      std::copy(l.bias.begin(), l.bias.end(), static_cast<float*>(bias.get_data_handle()));
      impl->biases.push_back(bias);
      impl->layer_ops.push_back(engine_internal::LowerActivations(l.activations, impl->cpu));
      if (i + 1 < impl->spec.layers.size()) {
        impl->max_hidden_width = std::max(impl->max_hidden_width, l.out_features);
      }
    }
    impl->reordered_weights.resize(impl->spec.layers.size());
  } catch (const dnnl::error& e) {
    return FromDnnlError("creating the oneDNN engine", e);
  }
  std::unique_ptr<MlpEngine> engine(new MlpEngine(std::move(impl)));
  const int64_t one = 1;
  SELU_RETURN_IF_ERROR(engine->Warmup(std::span<const int64_t>(&one, 1)));
  return engine;
}

memory MlpEngine::Impl::WeightsIn(size_t layer, const memory::desc& want, dnnl::stream& s) const {
  for (const memory& m : reordered_weights[layer]) {
    if (m.get_desc() == want) return m;
  }
  memory fresh(want, cpu);
  // The plain weights while they exist; after that, any layout made before
  // (a reorder between layouts of the same f32 tensor is an exact copy).
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
  return fresh;
}

StatusOr<std::shared_ptr<const BatchPlan>> MlpEngine::Impl::BuildPlan(int64_t rows) const {
  UseThreads(options.threads_per_call);
  auto plan = std::make_shared<BatchPlan>();
  plan->rows = rows;
  const bool ip = options.primitive == EnginePrimitive::kInnerProduct;
  try {
    dnnl::stream s(cpu);
    for (size_t i = 0; i < spec.layers.size(); ++i) {
      const DenseLayer& l = spec.layers[i];
      memory::desc src_md({rows, l.in_features}, dt::f32, tag::ab);
      memory::desc dst_md({rows, l.out_features}, dt::f32, tag::ab);
      dnnl::primitive_attr attr;
      attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
      attr.set_post_ops(engine_internal::FusedPostOps(layer_ops[i]));
      dnnl::primitive prim;
      memory::desc weights_md, scratch_md;
      if (ip) {
        memory::desc wany({l.out_features, l.in_features}, dt::f32, tag::any);
        dnnl::inner_product_forward::desc d(dnnl::prop_kind::forward_inference, src_md, wany,
                                            biases[i].get_desc(), dst_md);
        dnnl::inner_product_forward::primitive_desc pd(d, attr, cpu);
        weights_md = pd.weights_desc();
        scratch_md = pd.scratchpad_desc();
        prim = dnnl::inner_product_forward(pd);
      } else {
        memory::desc wany({l.in_features, l.out_features}, dt::f32, tag::any);
        dnnl::matmul::desc d(src_md, wany, biases[i].get_desc(), dst_md);
        dnnl::matmul::primitive_desc pd(d, attr, cpu);
        weights_md = pd.weights_desc();
        scratch_md = pd.scratchpad_desc();
        prim = dnnl::matmul(pd);
      }
      plan->layers.push_back(prim);
      plan->src_mds.push_back(src_md);
      plan->dst_mds.push_back(dst_md);
      plan->scratch_mds.push_back(scratch_md);
      plan->weights.push_back(WeightsIn(i, weights_md, s));
      plan->biases.push_back(biases[i]);
      plan->max_scratch_bytes = std::max(plan->max_scratch_bytes, scratch_md.get_size());
      // Operations that cannot be fused run after the layer (layer_ops.h).
      auto& after = plan->after.emplace_back();
      auto& after_scratch = plan->after_scratch_mds.emplace_back();
      for (const auto& op : layer_ops[i].after) {
        memory::desc step_scratch;
        after.push_back(engine_internal::AfterPrimitive(op, dst_md, cpu, &step_scratch));
        after_scratch.push_back(step_scratch);
        plan->max_scratch_bytes = std::max(plan->max_scratch_bytes, step_scratch.get_size());
        plan->has_after = true;
      }
    }
    if (spec.softmax_output) {
      plan->has_softmax = true;
      plan->softmax_md = memory::desc({rows, spec.output_features}, dt::f32, tag::ab);
      dnnl::primitive_attr attr;
      attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
      dnnl::softmax_forward::desc d(dnnl::prop_kind::forward_inference, plan->softmax_md, 1);
      dnnl::softmax_forward::primitive_desc pd(d, attr, cpu);
      plan->softmax_scratch_md = pd.scratchpad_desc();
      plan->max_scratch_bytes =
          std::max(plan->max_scratch_bytes, plan->softmax_scratch_md.get_size());
      plan->softmax = dnnl::softmax_forward(pd);
    }
  } catch (const dnnl::error& e) {
    return FromDnnlError(("building primitives for batch size " + std::to_string(rows)).c_str(), e);
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
