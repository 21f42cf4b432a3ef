#include "server/core/engine/layer_ops.h"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <map>
#include <utility>

namespace selu::core::engine_internal {
namespace {

using dnnl::algorithm;
using dnnl::memory;
using Kind = ElementOp::Kind;

ElementOp Eltwise(algorithm alg, float alpha = 0.0f, float beta = 0.0f) {
  ElementOp op;
  op.alg = alg;
  op.alpha = alpha;
  op.beta = beta;
  return op;
}

ElementOp WithRow(Kind kind, algorithm alg, const std::vector<float>& values,
                  const dnnl::engine& cpu) {
  ElementOp op;
  op.kind = kind;
  op.alg = alg;
  op.operand = memory(memory::desc({1, static_cast<int64_t>(values.size())}, memory::data_type::f32,
                                   memory::format_tag::ab),
                      cpu);
  std::copy(values.begin(), values.end(), static_cast<float*>(op.operand.get_data_handle()));
  return op;
}

void Lower(const Activation& a, const dnnl::engine& cpu, std::vector<ElementOp>* out) {
  const bool vector = IsPerFeature(a.kind) && a.values.size() > 1;
  switch (a.kind) {
    case ActivationKind::kSelu:
      // oneDNN 2.6 has no SELU: λ·elu_α(x) is exactly SELU.
      out->push_back(Eltwise(algorithm::eltwise_elu, a.alpha));
      out->push_back(Eltwise(algorithm::eltwise_linear, a.gamma));
      return;
    case ActivationKind::kElu:
      out->push_back(Eltwise(algorithm::eltwise_elu, a.alpha));
      return;
    case ActivationKind::kRelu:
      out->push_back(Eltwise(algorithm::eltwise_relu));
      return;
    case ActivationKind::kTanh:
      out->push_back(Eltwise(algorithm::eltwise_tanh));
      return;
    case ActivationKind::kSigmoid:
      out->push_back(Eltwise(algorithm::eltwise_logistic));
      return;
    case ActivationKind::kLeakyRelu:
      out->push_back(Eltwise(algorithm::eltwise_relu, a.alpha));  // alpha: the negative slope
      return;
    case ActivationKind::kPRelu:
      out->push_back(vector ? WithRow(Kind::kPrelu, algorithm::undef, a.values, cpu)
                            : Eltwise(algorithm::eltwise_relu, a.values.at(0)));
      return;
    case ActivationKind::kHardSigmoid:
      out->push_back(Eltwise(algorithm::eltwise_linear, a.alpha, a.beta));
      out->push_back(Eltwise(algorithm::eltwise_clip, 0.0f, 1.0f));
      return;
    case ActivationKind::kSoftplus:
      // oneDNN 2.6's soft_relu is off by up to ~4e-6 (absolute) for x < 0
      // and can dip below zero there; the relu keeps Softplus ≥ 0.
      out->push_back(Eltwise(algorithm::eltwise_soft_relu));
      out->push_back(Eltwise(algorithm::eltwise_relu));
      return;
    case ActivationKind::kClip:
      out->push_back(Eltwise(algorithm::eltwise_clip, a.alpha, a.beta));
      return;
    case ActivationKind::kGelu:
      out->push_back(Eltwise(algorithm::eltwise_gelu_erf));
      return;
    case ActivationKind::kSilu:
      out->push_back(Eltwise(algorithm::eltwise_swish, 1.0f));  // x·σ(αx), α = 1
      return;
    case ActivationKind::kHardSwish:
      out->push_back(Eltwise(algorithm::eltwise_hardswish));
      return;
    case ActivationKind::kLinear:
      out->push_back(Eltwise(algorithm::eltwise_linear, a.alpha, a.beta));
      return;
    case ActivationKind::kScale:
      out->push_back(vector ? WithRow(Kind::kBinary, algorithm::binary_mul, a.values, cpu)
                            : Eltwise(algorithm::eltwise_linear, a.values.at(0), 0.0f));
      return;
    case ActivationKind::kShift:
      out->push_back(vector ? WithRow(Kind::kBinary, algorithm::binary_add, a.values, cpu)
                            : Eltwise(algorithm::eltwise_linear, 1.0f, a.values.at(0)));
      return;
  }
}

bool IsLinear(const ElementOp& op) {
  return op.kind == Kind::kEltwise && op.alg == algorithm::eltwise_linear;
}

}  // namespace

namespace {

// Appends `op`, merging consecutive eltwise_linear operations.
void Push(ElementOp op, std::vector<ElementOp>* ops) {
  if (IsLinear(op) && !ops->empty() && IsLinear(ops->back())) {
    // a₂(a₁x + b₁) + b₂
    ElementOp& last = ops->back();
    const double alpha = double(op.alpha) * last.alpha;
    const double beta = double(op.alpha) * last.beta + op.beta;
    last.alpha = static_cast<float>(alpha);
    last.beta = static_cast<float>(beta);
  } else {
    ops->push_back(std::move(op));
  }
}

LayerOps Split(std::vector<ElementOp> ops) {
  LayerOps out;
  std::map<algorithm, std::pair<float, float>> used;  // eltwise algorithm → its parameters
  size_t k = 0;
  for (; k < ops.size(); ++k) {
    const ElementOp& op = ops[k];
    if (op.kind == Kind::kPrelu) break;
    if (op.kind == Kind::kEltwise) {
      auto [it, fresh] = used.emplace(op.alg, std::make_pair(op.alpha, op.beta));
      if (!fresh && it->second != std::make_pair(op.alpha, op.beta)) break;
    }
    out.fused.push_back(op);
  }
  out.after.assign(ops.begin() + static_cast<std::ptrdiff_t>(k), ops.end());
  return out;
}

void LowerAll(const std::vector<Activation>& activations, const dnnl::engine& cpu,
              std::vector<ElementOp>* ops) {
  for (const Activation& a : activations) {
    std::vector<ElementOp> lowered;
    Lower(a, cpu, &lowered);
    for (ElementOp& op : lowered) Push(std::move(op), ops);
  }
}

}  // namespace

LayerOps LowerActivations(const std::vector<Activation>& activations, const dnnl::engine& cpu) {
  std::vector<ElementOp> ops;
  LowerAll(activations, cpu, &ops);
  return Split(std::move(ops));
}

LayerOps LowerPostItems(const std::vector<PostItem>& items, const dnnl::engine& cpu) {
  std::vector<ElementOp> ops;
  for (const PostItem& item : items) {
    if (!item.is_add) {
      LowerAll(item.acts, cpu, &ops);
      continue;
    }
    ElementOp op;
    op.kind = Kind::kBinary;
    op.alg = algorithm::binary_add;
    op.reads_tensor = true;
    op.tensor = item.addend;
    ops.push_back(std::move(op));
  }
  return Split(std::move(ops));
}

bool UnfuseTensorOperands(LayerOps* ops) {
  auto first = std::find_if(ops->fused.begin(), ops->fused.end(),
                            [](const ElementOp& op) { return op.reads_tensor; });
  if (first == ops->fused.end()) return false;
  std::vector<ElementOp> moved(first, ops->fused.end());
  moved.insert(moved.end(), ops->after.begin(), ops->after.end());
  ops->fused.erase(first, ops->fused.end());
  ops->after = std::move(moved);
  return true;
}

memory::desc OperandMd(const ElementOp& op, int64_t rows) {
  return op.reads_tensor ? ViewMd(op.tensor, rows) : op.operand.get_desc();
}

dnnl::post_ops FusedPostOps(const LayerOps& ops, int64_t rows) {
  dnnl::post_ops post_ops;
  for (const ElementOp& op : ops.fused) {
    if (op.kind == Kind::kBinary) {
      post_ops.append_binary(op.alg, OperandMd(op, rows));
    } else {
      post_ops.append_eltwise(1.0f, op.alg, op.alpha, op.beta);
    }
  }
  return post_ops;
}

dnnl::primitive AfterPrimitive(const ElementOp& op, const memory::desc& dst_md, int64_t rows,
                               const dnnl::engine& cpu, memory::desc* scratch_md) {
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  switch (op.kind) {
    case Kind::kEltwise: {
      dnnl::eltwise_forward::desc d(dnnl::prop_kind::forward_inference, op.alg, dst_md, op.alpha,
                                    op.beta);
      dnnl::eltwise_forward::primitive_desc pd(d, attr, cpu);
      *scratch_md = pd.scratchpad_desc();
      return dnnl::eltwise_forward(pd);
    }
    case Kind::kBinary: {
      dnnl::binary::desc d(op.alg, dst_md, OperandMd(op, rows), dst_md);
      dnnl::binary::primitive_desc pd(d, attr, cpu);
      *scratch_md = pd.scratchpad_desc();
      return dnnl::binary(pd);
    }
    case Kind::kPrelu: {
      dnnl::prelu_forward::desc d(dnnl::prop_kind::forward_inference, dst_md,
                                  op.operand.get_desc());
      dnnl::prelu_forward::primitive_desc pd(d, attr, cpu);
      *scratch_md = pd.scratchpad_desc();
      return dnnl::prelu_forward(pd);
    }
  }
  return {};
}

}  // namespace selu::core::engine_internal
