#include "server/core/engine/mlp_engine.h"

#include <omp.h>

#include <algorithm>
#include <cstdlib>
#include <deque>
#include <list>
#include <mutex>
#include <oneapi/dnnl/dnnl.hpp>
#include <unordered_map>
#include <utility>
#include <vector>

namespace selu::core {
namespace {

using dnnl::memory;
using tag = dnnl::memory::format_tag;
using dt = dnnl::memory::data_type;

// A memory object without a buffer: its handle is set before use.
void* const kNoBuffer = nullptr;

Status FromDnnlError(const char* what, const dnnl::error& e) {
  return InternalError(std::string(what) + ": oneDNN error " + std::to_string(e.status) + ": " +
                       e.what());
}

void UseThreads(int threads) {
  if (omp_get_max_threads() != threads) omp_set_num_threads(threads);
}

dnnl::post_ops PostOpsFor(const std::vector<Activation>& activations) {
  dnnl::post_ops ops;
  for (const Activation& a : activations) {
    switch (a.kind) {
      case ActivationKind::kSelu:
        // oneDNN 2.6 has no SELU: λ·elu_α(x) is exactly SELU.
        ops.append_eltwise(1.0f, dnnl::algorithm::eltwise_elu, a.alpha, 0.0f);
        ops.append_eltwise(1.0f, dnnl::algorithm::eltwise_linear, a.gamma, 0.0f);
        break;
      case ActivationKind::kElu:
        ops.append_eltwise(1.0f, dnnl::algorithm::eltwise_elu, a.alpha, 0.0f);
        break;
      case ActivationKind::kRelu:
        ops.append_eltwise(1.0f, dnnl::algorithm::eltwise_relu, 0.0f, 0.0f);
        break;
      case ActivationKind::kTanh:
        ops.append_eltwise(1.0f, dnnl::algorithm::eltwise_tanh, 0.0f, 0.0f);
        break;
      case ActivationKind::kSigmoid:
        ops.append_eltwise(1.0f, dnnl::algorithm::eltwise_logistic, 0.0f, 0.0f);
        break;
    }
  }
  return ops;
}

// 64-byte aligned growable float buffer.
class AlignedBuffer {
 public:
  AlignedBuffer() = default;
  AlignedBuffer(const AlignedBuffer&) = delete;
  AlignedBuffer& operator=(const AlignedBuffer&) = delete;
  ~AlignedBuffer() { std::free(data_); }

  // Returns true when the buffer moved.
  bool Reserve(size_t bytes) {
    if (bytes <= capacity_) return false;
    const size_t rounded = (bytes + 63) / 64 * 64;
    void* fresh = std::aligned_alloc(64, rounded);
    if (fresh == nullptr) throw std::bad_alloc();
    std::free(data_);
    data_ = fresh;
    capacity_ = rounded;
    return true;
  }
  void* data() const { return data_; }

 private:
  void* data_ = nullptr;
  size_t capacity_ = 0;
};

// The primitives for one batch size. Immutable once built; shared by
// workspaces through shared_ptr.
struct BatchPlan {
  int64_t rows = 0;
  std::vector<dnnl::primitive> layers;
  std::vector<memory::desc> src_mds, dst_mds, scratch_mds;
  std::vector<memory> weights;  // in the layout each primitive wants
  std::vector<memory> biases;
  bool has_softmax = false;
  dnnl::primitive softmax;
  memory::desc softmax_md, softmax_scratch_md;
  size_t max_scratch_bytes = 0;
};

// Per-thread execution state for one batch size.
struct BoundBatchPlan {
  std::shared_ptr<const BatchPlan> plan;
  std::vector<memory> src, dst, scratch;
  std::vector<std::unordered_map<int, memory>> args;
  memory softmax_data, softmax_scratch;
  std::unordered_map<int, memory> softmax_args;
  uint64_t bound_generation = 0;  // buffer generation the intermediates point into
};

}  // namespace

struct MlpEngine::Impl {
  // Its layers' weights are released once reordered (WeightsIn, under mu);
  // everything else in it is immutable after Create.
  mutable ModelSpec spec;
  MlpEngineOptions options;
  dnnl::engine cpu;
  // From the spec, plain layout; empty once the layer has a reordered copy.
  mutable std::vector<memory> plain_weights;
  std::vector<memory> biases;
  int64_t max_hidden_width = 0;  // widest intermediate tensor, for workspace buffers

  mutable std::mutex mu;  // guards everything below
  mutable std::unordered_map<int64_t, std::shared_ptr<const BatchPlan>> plans;
  mutable std::deque<int64_t> plan_order;  // build order, for eviction
  // Weights already reordered, per layer, keyed by the layout a primitive
  // asked for; usually one layout per layer whatever the batch size.
  mutable std::vector<std::list<memory>> reordered_weights;

  mutable std::mutex pool_mu;
  mutable std::vector<std::unique_ptr<Workspace>> pool;

  StatusOr<std::shared_ptr<const BatchPlan>> GetPlan(int64_t rows) const;
  StatusOr<std::shared_ptr<const BatchPlan>> BuildPlan(int64_t rows) const;         // requires mu
  memory WeightsIn(size_t layer, const memory::desc& want, dnnl::stream& s) const;  // requires mu
  // Makes `ws` ready for `rows`: finds or binds its plan, sizes the buffers
  // and points the intermediate tensors at them.
  StatusOr<BoundBatchPlan*> Prepare(Workspace::State& ws, int64_t rows) const;
};

struct MlpEngine::Workspace::State {
  explicit State(const dnnl::engine& cpu) : stream(cpu) {}

  dnnl::stream stream;
  AlignedBuffer intermediate[2];
  AlignedBuffer scratch;
  uint64_t generation = 1;  // bumped whenever a buffer moves
  std::unordered_map<int64_t, BoundBatchPlan> plans;
};

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
      attr.set_post_ops(PostOpsFor(l.activations));
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
    for (size_t i = 0; i < n; ++i) wp.scratch[i].set_data_handle(ws.scratch.data());
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
