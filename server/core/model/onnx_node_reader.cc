// GraphReader's node-by-node interpretation: each ONNX node of the chain
// checked and turned into a layer, a bias, an activation or a no-op.
#include <cmath>
#include <sstream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "server/core/model/onnx_graph_reader.h"
#include "server/core/model/onnx_tensor_decode.h"

namespace selu::core::onnx_internal {

std::string NodeLabel(const onnx::NodeProto& node, int index) {
  std::string label = "node ";
  if (node.name().empty()) {
    label += "#" + std::to_string(index);
  } else {
    label += "'" + node.name() + "'";
  }
  label += " (" + node.op_type() + ")";
  return label;
}

const onnx::AttributeProto* FindAttribute(const onnx::NodeProto& node, std::string_view name) {
  for (const auto& attr : node.attribute()) {
    if (attr.name() == name) return &attr;
  }
  return nullptr;
}

StatusOr<float> FloatAttribute(const onnx::NodeProto& node, const std::string& label,
                               std::string_view name, float fallback) {
  const auto* attr = FindAttribute(node, name);
  if (attr == nullptr) return fallback;
  if (attr->type() != onnx::AttributeProto::FLOAT) {
    return Refuse(label, "attribute '" + std::string(name) + "' must be a float");
  }
  if (!std::isfinite(attr->f())) {
    return Refuse(label, "attribute '" + std::string(name) + "' is not finite");
  }
  return attr->f();
}

StatusOr<int64_t> IntAttribute(const onnx::NodeProto& node, const std::string& label,
                               std::string_view name, int64_t fallback) {
  const auto* attr = FindAttribute(node, name);
  if (attr == nullptr) return fallback;
  if (attr->type() != onnx::AttributeProto::INT) {
    return Refuse(label, "attribute '" + std::string(name) + "' must be an int");
  }
  return attr->i();
}

StatusOr<const ConstTensor*> GraphReader::ConstantInput(const onnx::NodeProto& node,
                                                        const std::string& label, int i) {
  if (i >= node.input_size() || node.input(i).empty()) return nullptr;
  auto it = constants_.find(node.input(i));
  if (it == constants_.end()) {
    return Refuse(label, "input " + std::to_string(i) + " '" + node.input(i) +
                             "' is not a constant (initializer); only weights may be "
                             "side inputs of an MLP layer");
  }
  return &it->second;
}

Status GraphReader::CheckChained(const onnx::NodeProto& node, const std::string& label) {
  // The running tensor may be either operand of a constant Add, Sub, Mul or
  // Div (ReadArithmetic sorts out which).
  const std::string& op = node.op_type();
  const bool arithmetic = op == "Add" || op == "Sub" || op == "Mul" || op == "Div";
  const bool chained = node.input_size() > 0 &&
                       (node.input(0) == current_ ||
                        (arithmetic && node.input_size() == 2 && node.input(1) == current_));
  if (!chained) {
    return Refuse(label, "does not take the previous tensor '" + current_ +
                             "' as its first input; only a single chain of layers is supported");
  }
  if (node.output_size() == 0 || node.output(0).empty()) return Refuse(label, "has no output");
  if (softmax_seen_) {
    return Refuse(label, "follows the Softmax; Softmax must be the last operation");
  }
  return OkStatus();
}

Status GraphReader::RequireRank2(const std::string& label) {
  if (current_rank_ != 2) {
    return Refuse(label, "input has rank " + std::to_string(current_rank_) +
                             "; flatten the input with Flatten(axis=1) first");
  }
  return OkStatus();
}

Status GraphReader::StartLayer(const onnx::NodeProto& node, const std::string& label, int index,
                               std::vector<float> weights_kn, int64_t k, int64_t n) {
  if (k != features_) {
    return Refuse(label, "weights expect " + std::to_string(k) +
                             " input features but the previous layer produces " +
                             std::to_string(features_));
  }
  if (n <= 0 || n > options_.max_features) {
    return Refuse(label, "output width " + std::to_string(n) + " is outside [1, " +
                             std::to_string(options_.max_features) + "]");
  }
  DenseLayer layer;
  layer.name = node.name().empty() ? node.op_type() + "_" + std::to_string(index) : node.name();
  layer.in_features = k;
  layer.out_features = n;
  layer.weights = std::move(weights_kn);
  layer.bias.assign(static_cast<size_t>(n), 0.0f);
  spec_.layers.push_back(std::move(layer));
  layer_open_for_bias_ = true;
  features_ = n;
  return OkStatus();
}

Status GraphReader::AddBias(const ConstTensor& c, const std::string& label, float scale) {
  std::vector<float> values;
  SELU_RETURN_IF_ERROR(ReadFloats(c, label, &values));
  const auto& dims = c.tensor->dims();
  const int64_t n = features_;
  const bool is_vector =
      (dims.size() == 1 && dims[0] == n) || (dims.size() == 2 && dims[0] == 1 && dims[1] == n);
  const bool is_scalar = values.size() == 1 && dims.size() <= 2;
  if (!is_vector && !is_scalar) {
    std::ostringstream shape;
    for (int i = 0; i < dims.size(); ++i) shape << (i ? "," : "") << dims[i];
    return Refuse(label, "bias '" + c.tensor->name() + "' has shape [" + shape.str() +
                             "]; expected [" + std::to_string(n) + "], [1," + std::to_string(n) +
                             "] or a scalar");
  }
  auto& bias = spec_.layers.back().bias;
  for (int64_t j = 0; j < n; ++j) {
    bias[j] += scale * (is_scalar ? values[0] : values[j]);
  }
  for (float b : bias) {
    if (!std::isfinite(b)) return Refuse(label, "bias overflows to a non-finite value");
  }
  return OkStatus();
}

Status GraphReader::ReadGemm(const onnx::NodeProto& node, const std::string& label, int index) {
  SELU_RETURN_IF_ERROR(RequireRank2(label));
  auto trans_a = IntAttribute(node, label, "transA", 0);
  auto trans_b = IntAttribute(node, label, "transB", 0);
  auto alpha = FloatAttribute(node, label, "alpha", 1.0f);
  auto beta = FloatAttribute(node, label, "beta", 1.0f);
  for (const Status* s : {&trans_a.status(), &trans_b.status(), &alpha.status(), &beta.status()}) {
    if (!s->ok()) return *s;
  }
  if (*trans_a != 0) return Refuse(label, "transA=1 is not supported (the batch must be rows)");
  if (node.input_size() < 2) return Refuse(label, "has no weight input B");
  auto b_or = ConstantInput(node, label, 1);
  if (!b_or.ok()) return b_or.status();
  auto c_or = ConstantInput(node, label, 2);
  if (!c_or.ok()) return c_or.status();
  const ConstTensor& b = **b_or;
  if (b.tensor->dims_size() != 2) {
    return Refuse(label, "weight '" + b.tensor->name() + "' must have rank 2, has rank " +
                             std::to_string(b.tensor->dims_size()));
  }
  std::vector<float> raw;
  SELU_RETURN_IF_ERROR(ReadFloats(b, label, &raw));
  const int64_t d0 = b.tensor->dims(0), d1 = b.tensor->dims(1);
  const int64_t k = *trans_b ? d1 : d0;
  const int64_t n = *trans_b ? d0 : d1;
  std::vector<float> w(raw.size());
  for (int64_t i = 0; i < k; ++i) {
    for (int64_t j = 0; j < n; ++j) {
      const float v = *trans_b ? raw[j * k + i] : raw[i * n + j];
      w[i * n + j] = *alpha * v;
    }
  }
  SELU_RETURN_IF_ERROR(StartLayer(node, label, index, std::move(w), k, n));
  if (*c_or != nullptr) SELU_RETURN_IF_ERROR(AddBias(**c_or, label, *beta));
  return OkStatus();
}

Status GraphReader::ReadMatMul(const onnx::NodeProto& node, const std::string& label, int index) {
  SELU_RETURN_IF_ERROR(RequireRank2(label));
  if (node.input_size() != 2) return Refuse(label, "must have exactly two inputs");
  auto b_or = ConstantInput(node, label, 1);
  if (!b_or.ok()) return b_or.status();
  if (*b_or == nullptr) return Refuse(label, "has no weight input");
  const ConstTensor& b = **b_or;
  if (b.tensor->dims_size() != 2) {
    return Refuse(label, "weight '" + b.tensor->name() + "' must have rank 2, has rank " +
                             std::to_string(b.tensor->dims_size()));
  }
  std::vector<float> w;
  SELU_RETURN_IF_ERROR(ReadFloats(b, label, &w));
  return StartLayer(node, label, index, std::move(w), b.tensor->dims(0), b.tensor->dims(1));
}

Status GraphReader::AddActivation(const std::string& label, Activation act) {
  if (spec_.layers.empty()) {
    return Refuse(label, "activation before the first Gemm/MatMul is not supported");
  }
  auto& acts = spec_.layers.back().activations;
  if (acts.size() >= 8) return Refuse(label, "more than 8 activations in a row");
  acts.push_back(act);
  layer_open_for_bias_ = false;
  return OkStatus();
}

Status GraphReader::ReadFlatten(const onnx::NodeProto& node, const std::string& label) {
  if (!spec_.layers.empty()) return Refuse(label, "Flatten is only supported at the input");
  auto axis = IntAttribute(node, label, "axis", 1);
  if (!axis.ok()) return axis.status();
  if (*axis != 1 && *axis != 1 - current_rank_) {
    return Refuse(label, "axis=" + std::to_string(*axis) +
                             " is not supported; only axis=1 keeps the batch dimension");
  }
  current_rank_ = 2;
  return OkStatus();
}

Status GraphReader::ReadSoftmax(const onnx::NodeProto& node, const std::string& label) {
  if (spec_.layers.empty()) return Refuse(label, "Softmax before any layer is not supported");
  // Opset < 13 defaults to axis 1 (coerced to 2-D); >= 13 to -1. On a rank-2
  // tensor both are the feature axis.
  auto axis = IntAttribute(node, label, "axis", opset_ >= 13 ? -1 : 1);
  if (!axis.ok()) return axis.status();
  if (*axis != 1 && *axis != -1) {
    return Refuse(label, "axis=" + std::to_string(*axis) +
                             " is not supported; softmax must run over the last axis");
  }
  spec_.softmax_output = true;
  softmax_seen_ = true;
  layer_open_for_bias_ = false;
  return OkStatus();
}

Status GraphReader::ReadDropout(const onnx::NodeProto& node, const std::string& label) {
  // Opset >= 12 carries training_mode as an optional input; inference
  // ignores it unless it is a constant true.
  if (node.input_size() >= 3 && !node.input(2).empty()) {
    auto c = constants_.find(node.input(2));
    if (c == constants_.end()) return Refuse(label, "training_mode is not a constant");
    const auto& t = *c->second.tensor;
    const bool training = (t.int32_data_size() > 0 && t.int32_data(0) != 0) ||
                          (!t.raw_data().empty() && t.raw_data()[0] != 0);
    if (training) return Refuse(label, "training_mode=true is not supported at inference");
  }
  return OkStatus();
}

Status GraphReader::ReadNode(const onnx::NodeProto& node, int index) {
  if (index < static_cast<int>(absorbed_.size()) && absorbed_[index]) return OkStatus();
  const std::string label = NodeLabel(node, index);
  if (!node.domain().empty() && node.domain() != "ai.onnx") {
    return Refuse(label, "operator domain '" + node.domain() + "' is not supported");
  }
  const std::string& op = node.op_type();
  // Constants (and Identity or Cast of a constant, as exporters emit for
  // shared or converted weights) are side inputs, not steps of the chain.
  if (op == "Constant") {
    const auto* value = FindAttribute(node, "value");
    if (value == nullptr || value->type() != onnx::AttributeProto::TENSOR ||
        node.output_size() != 1) {
      return Refuse(label, "only Constant nodes with a tensor 'value' are supported");
    }
    constants_[node.output(0)] = {&value->t(), "Constant " + label};
    return OkStatus();
  }
  if ((op == "Identity" || op == "Cast") && node.input_size() == 1 && node.output_size() == 1 &&
      node.input(0) != current_ && constants_.count(node.input(0))) {
    if (op == "Cast") SELU_RETURN_IF_ERROR(ReadCast(node, label));
    constants_[node.output(0)] = constants_[node.input(0)];
    return OkStatus();
  }
  SELU_RETURN_IF_ERROR(CheckChained(node, label));

  Status status;
  if (op == "Gemm") {
    status = ReadGemm(node, label, index);
  } else if (op == "MatMul") {
    status = ReadMatMul(node, label, index);
  } else if (op == "Div" && StartsGelu(node)) {
    status = ReadGelu(node, label);
  } else if ((op == "Sigmoid" || op == "HardSigmoid") && StartsGatedProduct(node)) {
    status = ReadGatedProduct(node, label);
  } else if (op == "Add" || op == "Sub" || op == "Mul" || op == "Div") {
    status = ReadArithmetic(node, label);
  } else if (op == "BatchNormalization") {
    status = ReadBatchNorm(node, label);
  } else if (op == "Selu") {
    auto alpha = FloatAttribute(node, label, "alpha", static_cast<float>(kSeluAlpha));
    auto gamma = FloatAttribute(node, label, "gamma", static_cast<float>(kSeluLambda));
    if (!alpha.ok()) return alpha.status();
    if (!gamma.ok()) return gamma.status();
    status = AddActivation(label, Activation::Selu(*alpha, *gamma));
  } else if (op == "Elu" || op == "LeakyRelu") {
    const bool elu = op == "Elu";
    auto alpha = FloatAttribute(node, label, "alpha", elu ? 1.0f : 0.01f);
    if (!alpha.ok()) return alpha.status();
    status = AddActivation(label, elu ? Activation::Elu(*alpha) : Activation::LeakyRelu(*alpha));
  } else if (op == "HardSigmoid") {
    auto alpha = FloatAttribute(node, label, "alpha", 0.2f);
    auto beta = FloatAttribute(node, label, "beta", 0.5f);
    if (!alpha.ok()) return alpha.status();
    if (!beta.ok()) return beta.status();
    status = AddActivation(label, Activation::HardSigmoid(*alpha, *beta));
  } else if (op == "PRelu") {
    status = ReadPRelu(node, label);
  } else if (op == "Clip") {
    status = ReadClip(node, label);
  } else if (op == "Relu") {
    status = AddActivation(label, Activation::Relu());
  } else if (op == "Tanh") {
    status = AddActivation(label, Activation::Tanh());
  } else if (op == "Sigmoid") {
    status = AddActivation(label, Activation::Sigmoid());
  } else if (op == "Softplus") {
    status = AddActivation(label, Activation::Softplus());
  } else if (op == "Cast") {
    status = ReadCast(node, label);
  } else if (op == "Identity") {
    status = OkStatus();
  } else if (op == "Dropout") {
    status = ReadDropout(node, label);
  } else if (op == "Flatten") {
    status = ReadFlatten(node, label);
  } else if (op == "Softmax") {
    status = ReadSoftmax(node, label);
  } else {
    status = Refuse(label, "unsupported op type '" + op +
                               "'; an MLP may use Gemm, MatMul, Add/Sub/Mul/Div by constants, "
                               "BatchNormalization, Selu, Elu, Relu, LeakyRelu, PRelu, Tanh, "
                               "Sigmoid, HardSigmoid, Softplus, Clip, GELU (erf) and SiLU/"
                               "HardSwish patterns, Identity, Dropout, Cast to FLOAT, Flatten "
                               "(at the input) and Softmax (at the end)");
  }
  SELU_RETURN_IF_ERROR(status);
  const bool may_stay_affine = op == "Gemm" || op == "MatMul" || op == "Add" || op == "Sub" ||
                               op == "Mul" || op == "Div" || op == "BatchNormalization" ||
                               op == "Identity" || op == "Dropout" || op == "Cast";
  if (!may_stay_affine || !pattern_end_.empty()) layer_open_for_bias_ = false;
  current_ = pattern_end_.empty() ? node.output(0) : pattern_end_;
  pattern_end_.clear();
  return OkStatus();
}

}  // namespace selu::core::onnx_internal
