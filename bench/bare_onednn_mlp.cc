#include "bench/bare_onednn_mlp.h"

#include <algorithm>
#include <cstdlib>
#include <new>
#include <stdexcept>
#include <string>

namespace selu::bench {

namespace {

using dnnl::algorithm;
using dnnl::memory;
using dt = dnnl::memory::data_type;
using tag = dnnl::memory::format_tag;

dnnl::post_ops MakePostOps(const std::vector<core::Activation>& activations) {
  dnnl::post_ops po;
  for (const core::Activation& a : activations) {
    switch (a.kind) {
      case core::ActivationKind::kSelu:
        po.append_eltwise(1.0f, algorithm::eltwise_elu, a.alpha, 0.0f);
        po.append_eltwise(1.0f, algorithm::eltwise_linear, a.gamma, 0.0f);
        break;
      case core::ActivationKind::kElu:
        po.append_eltwise(1.0f, algorithm::eltwise_elu, a.alpha, 0.0f);
        break;
      case core::ActivationKind::kRelu:
        po.append_eltwise(1.0f, algorithm::eltwise_relu, 0.0f, 0.0f);
        break;
      case core::ActivationKind::kTanh:
        po.append_eltwise(1.0f, algorithm::eltwise_tanh, 0.0f, 0.0f);
        break;
      case core::ActivationKind::kSigmoid:
        po.append_eltwise(1.0f, algorithm::eltwise_logistic, 0.0f, 0.0f);
        break;
      default:
        // The benchmarked models (bench_models.cc) use only the kinds above.
        throw std::invalid_argument("BareOneDnnMlp: unsupported activation " +
                                    std::string(core::ActivationName(a.kind)));
    }
  }
  return po;
}

}  // namespace

void BareOneDnnMlp::FreeDeleter::operator()(void* p) const { std::free(p); }

BareOneDnnMlp::AlignedBuffer BareOneDnnMlp::Allocate(size_t bytes) {
  const size_t rounded = std::max<size_t>(64, (bytes + 63) / 64 * 64);
  void* p = std::aligned_alloc(64, rounded);
  if (p == nullptr) throw std::bad_alloc();
  return AlignedBuffer(p);
}

BareOneDnnMlp::BareOneDnnMlp(const core::ModelSpec& spec, core::EnginePrimitive primitive,
                             int64_t rows, const float* input, float* output)
    : engine_(dnnl::engine::kind::cpu, 0), stream_(engine_) {
  if (spec.softmax_output) throw std::invalid_argument("bare chain: softmax not supported");
  int64_t max_width = 0;
  for (const auto& layer : spec.layers) max_width = std::max(max_width, layer.out_features);
  ping_ = Allocate(size_t(rows * max_width) * sizeof(float));
  pong_ = Allocate(size_t(rows * max_width) * sizeof(float));

  std::vector<memory::desc> scratchpad_mds;
  size_t scratchpad_bytes = 0;
  void* src_handle = const_cast<float*>(input);

  for (size_t l = 0; l < spec.layers.size(); ++l) {
    const core::DenseLayer& layer = spec.layers[l];
    const int64_t in = layer.in_features;
    const int64_t out = layer.out_features;
    const bool last = l + 1 == spec.layers.size();
    void* dst_handle = last ? static_cast<void*>(output) : (l % 2 == 0 ? ping_.get() : pong_.get());

    dnnl::primitive_attr attr;
    attr.set_post_ops(MakePostOps(layer.activations));
    attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);

    memory::desc src_md, user_weights_md, weights_md, bias_md, dst_md;
    dnnl::primitive prim;
    memory::desc pd_weights_md, pd_scratchpad_md;
    if (primitive == core::EnginePrimitive::kInnerProduct) {
      src_md = memory::desc({rows, in}, dt::f32, tag::nc);
      // Our weights are [in, out] row-major: oneDNN's {OC, IC} in "io" order.
      user_weights_md = memory::desc({out, in}, dt::f32, tag::io);
      weights_md = memory::desc({out, in}, dt::f32, tag::any);
      bias_md = memory::desc({out}, dt::f32, tag::x);
      dst_md = memory::desc({rows, out}, dt::f32, tag::nc);
      dnnl::inner_product_forward::desc desc(dnnl::prop_kind::forward_inference, src_md, weights_md,
                                             bias_md, dst_md);
      dnnl::inner_product_forward::primitive_desc pd(desc, attr, engine_);
      pd_weights_md = pd.weights_desc();
      pd_scratchpad_md = pd.scratchpad_desc();
      prim = dnnl::inner_product_forward(pd);
    } else {
      src_md = memory::desc({rows, in}, dt::f32, tag::ab);
      user_weights_md = memory::desc({in, out}, dt::f32, tag::ab);
      weights_md = memory::desc({in, out}, dt::f32, tag::any);
      bias_md = memory::desc({1, out}, dt::f32, tag::ab);
      dst_md = memory::desc({rows, out}, dt::f32, tag::ab);
      dnnl::matmul::desc desc(src_md, weights_md, bias_md, dst_md);
      dnnl::matmul::primitive_desc pd(desc, attr, engine_);
      pd_weights_md = pd.weights_desc();
      pd_scratchpad_md = pd.scratchpad_desc();
      prim = dnnl::matmul(pd);
    }

    memory user_weights(user_weights_md, engine_, const_cast<float*>(layer.weights.data()));
    memory weights(pd_weights_md, engine_);
    dnnl::reorder(user_weights, weights).execute(stream_, user_weights, weights);
    memory bias(bias_md, engine_);
    std::copy(layer.bias.begin(), layer.bias.end(), static_cast<float*>(bias.get_data_handle()));

    std::unordered_map<int, memory> args = {
        {DNNL_ARG_SRC, memory(src_md, engine_, src_handle)},
        {DNNL_ARG_WEIGHTS, weights},
        {DNNL_ARG_BIAS, bias},
        {DNNL_ARG_DST, memory(dst_md, engine_, dst_handle)},
    };
    scratchpad_bytes = std::max(scratchpad_bytes, pd_scratchpad_md.get_size());
    primitives_.push_back(prim);
    args_.push_back(std::move(args));
    scratchpad_mds.push_back(pd_scratchpad_md);
    src_handle = dst_handle;
  }
  stream_.wait();

  scratchpad_ = Allocate(scratchpad_bytes);
  for (size_t l = 0; l < args_.size(); ++l) {
    if (scratchpad_mds[l].get_size() == 0) continue;
    args_[l][DNNL_ARG_SCRATCHPAD] = memory(scratchpad_mds[l], engine_, scratchpad_.get());
  }
}

}  // namespace selu::bench
