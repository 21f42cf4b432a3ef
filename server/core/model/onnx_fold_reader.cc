// GraphReader's constant folds: Add/Sub/Mul/Div by a constant and
// BatchNormalization (inference form) become part of the open layer's
// weights and bias when they come before any activation, and post-ops when
// they come after one; PRelu's slopes are read the same way.
#include <algorithm>
#include <cmath>
#include <sstream>
#include <string>
#include <vector>

#include "server/core/model/onnx_graph_reader.h"
#include "server/core/model/onnx_tensor_decode.h"

namespace selu::core::onnx_internal {
namespace {

bool AllEqual(const std::vector<double>& v) {
  for (double x : v) {
    if (x != v[0]) return false;
  }
  return true;
}

std::vector<float> ToFloats(const std::vector<double>& v) { return {v.begin(), v.end()}; }

double At(const std::vector<double>& v, int64_t j) {
  return v.size() == 1 ? v[0] : v[static_cast<size_t>(j)];
}

bool AllFinite(const std::vector<float>& v) {
  for (float x : v) {
    if (!std::isfinite(x)) return false;
  }
  return true;
}

}  // namespace

Status GraphReader::FeatureConstant(const ConstTensor& c, const std::string& label,
                                    const std::string& role, std::vector<double>* values) {
  std::vector<float> raw;
  SELU_RETURN_IF_ERROR(ReadFloats(c, label, &raw));
  const auto& dims = c.tensor->dims();
  const int64_t n = features_;
  const bool is_vector =
      (dims.size() == 1 && dims[0] == n) || (dims.size() == 2 && dims[0] == 1 && dims[1] == n);
  const bool is_scalar = raw.size() == 1 && dims.size() <= 2;
  if (!is_vector && !is_scalar) {
    std::ostringstream shape;
    for (int i = 0; i < dims.size(); ++i) shape << (i ? "," : "") << dims[i];
    return Refuse(label, role + " '" + c.tensor->name() + "' has shape [" + shape.str() +
                             "]; expected [" + std::to_string(n) + "], [1," + std::to_string(n) +
                             "] or a scalar (one value per feature, or one for all)");
  }
  values->assign(raw.begin(), raw.end());
  return OkStatus();
}

Status GraphReader::ApplyAffine(const std::string& label, const std::vector<double>& m,
                                const std::vector<double>& a) {
  if (spec_.layers.empty()) {
    return Refuse(label,
                  "operates on the input before the first Gemm/MatMul; constant operations on "
                  "the input are not folded");
  }
  DenseLayer& layer = spec_.layers.back();
  const int64_t n = layer.out_features;
  if (layer_open_for_bias_) {
    // Before any activation: m·(x·W + b) + a = x·(W·diag(m)) + (m·b + a),
    // computed in double and rounded once.
    for (int64_t k = 0; k < layer.in_features; ++k) {
      float* row = layer.weights.data() + k * n;
      for (int64_t j = 0; j < n; ++j) row[j] = static_cast<float>(double(row[j]) * At(m, j));
    }
    for (int64_t j = 0; j < n; ++j) {
      layer.bias[j] = static_cast<float>(At(m, j) * double(layer.bias[j]) + At(a, j));
    }
    if (!AllFinite(layer.weights) || !AllFinite(layer.bias)) {
      return Refuse(label, "folding it into layer '" + layer.name +
                               "' overflows its weights or bias to a non-finite value");
    }
    return OkStatus();
  }
  // After an activation: post-ops. One value for all features is an
  // eltwise_linear (merged into a linear one just before); one per feature
  // a binary multiply or add.
  for (const std::vector<double>* values : {&m, &a}) {
    for (double v : *values) {
      if (!std::isfinite(static_cast<float>(v))) {
        return Refuse(label, "its scale or shift " + std::to_string(v) + " overflows FLOAT");
      }
    }
  }
  auto linear = [&](double alpha, double beta) -> Status {
    auto& acts = layer.activations;
    if (!acts.empty() && acts.back().kind == ActivationKind::kLinear) {
      Activation& last = acts.back();
      const double merged_alpha = alpha * last.alpha;
      const double merged_beta = alpha * last.beta + beta;
      last.alpha = static_cast<float>(merged_alpha);
      last.beta = static_cast<float>(merged_beta);
      if (!std::isfinite(last.alpha) || !std::isfinite(last.beta)) {
        return Refuse(label, "the scale and shift overflow to a non-finite value");
      }
      return OkStatus();
    }
    Activation act = Activation::Linear(static_cast<float>(alpha), static_cast<float>(beta));
    if (!std::isfinite(act.alpha) || !std::isfinite(act.beta)) {
      return Refuse(label, "the constant overflows FLOAT");
    }
    return AddActivation(label, act);
  };
  if (AllEqual(m) && AllEqual(a)) return linear(m[0], a[0]);
  if (!AllEqual(m)) {
    SELU_RETURN_IF_ERROR(AddActivation(label, Activation::Scale(ToFloats(m))));
  } else if (m[0] != 1.0) {
    SELU_RETURN_IF_ERROR(linear(m[0], 0.0));
  }
  if (!AllEqual(a)) return AddActivation(label, Activation::Shift(ToFloats(a)));
  if (a[0] != 0.0) return linear(1.0, a[0]);
  return OkStatus();
}

Status GraphReader::ReadArithmetic(const onnx::NodeProto& node, const std::string& label) {
  const std::string& op = node.op_type();
  if (node.input_size() != 2) return Refuse(label, "must have exactly two inputs");
  const bool tensor_first = node.input(0) == current_;
  const std::string& other = node.input(tensor_first ? 1 : 0);
  auto c = constants_.find(other);
  if (other == current_ || c == constants_.end()) {
    return Refuse(label, "operand '" + other + "' is not a constant; " + op +
                             " is supported only with a constant operand (a bias, scale or "
                             "shift of the running tensor)");
  }
  std::vector<double> v;
  SELU_RETURN_IF_ERROR(FeatureConstant(c->second, label, "constant", &v));
  std::vector<double> m{1.0}, a{0.0};
  if (op == "Add") {
    a = v;
  } else if (op == "Sub") {
    if (tensor_first) {
      a = v;
      for (double& x : a) x = -x;
    } else {
      m = {-1.0};
      a = v;
    }
  } else if (op == "Mul") {
    m = v;
  } else {
    if (!tensor_first) {
      return Refuse(label,
                    "divides a constant by the tensor; only division by a constant is affine");
    }
    m = v;
    for (size_t i = 0; i < m.size(); ++i) {
      if (m[i] == 0.0) {
        return Refuse(
            label, "divides by zero (constant '" + other + "' at index " + std::to_string(i) + ")");
      }
      m[i] = 1.0 / m[i];
    }
  }
  return ApplyAffine(label, m, a);
}

Status GraphReader::ReadBatchNorm(const onnx::NodeProto& node, const std::string& label) {
  if (spec_.layers.empty()) {
    return Refuse(label, "BatchNormalization before the first Gemm/MatMul is not supported");
  }
  SELU_RETURN_IF_ERROR(RequireRank2(label));
  if (node.input_size() != 5) {
    return Refuse(label, "must have 5 inputs (X, scale, B, input_mean, input_var)");
  }
  auto training = IntAttribute(node, label, "training_mode", 0);
  if (!training.ok()) return training.status();
  if (*training != 0) return Refuse(label, "training_mode=1 is not supported at inference");
  for (int i = 1; i < node.output_size(); ++i) {
    if (!node.output(i).empty()) {
      return Refuse(label,
                    "has running mean/variance outputs (training form); only the inference "
                    "form (one output) is supported");
    }
  }
  auto epsilon = FloatAttribute(node, label, "epsilon", 1e-5f);
  if (!epsilon.ok()) return epsilon.status();
  static const char* const kRoles[] = {"scale", "B", "input_mean", "input_var"};
  std::vector<double> p[4];
  size_t width = 1;
  for (int i = 0; i < 4; ++i) {
    auto c = ConstantInput(node, label, i + 1);
    if (!c.ok()) return c.status();
    if (*c == nullptr) return Refuse(label, std::string("has no ") + kRoles[i] + " input");
    SELU_RETURN_IF_ERROR(FeatureConstant(**c, label, kRoles[i], &p[i]));
    width = std::max(width, p[i].size());
  }
  // y = scale·(x − mean)/√(var + ε) + B = m·x + a
  std::vector<double> m(width), a(width);
  for (size_t j = 0; j < width; ++j) {
    const double var = At(p[3], static_cast<int64_t>(j)) + double(*epsilon);
    if (!(var > 0.0)) {
      return Refuse(label, "input_var + epsilon is not positive at feature " + std::to_string(j));
    }
    m[j] = At(p[0], static_cast<int64_t>(j)) / std::sqrt(var);
    a[j] = At(p[1], static_cast<int64_t>(j)) - At(p[2], static_cast<int64_t>(j)) * m[j];
  }
  return ApplyAffine(label, m, a);
}

Status GraphReader::ReadPRelu(const onnx::NodeProto& node, const std::string& label) {
  if (node.input_size() != 2) return Refuse(label, "must have two inputs (X, slope)");
  auto c = ConstantInput(node, label, 1);
  if (!c.ok()) return c.status();
  if (*c == nullptr) return Refuse(label, "has no slope input");
  std::vector<double> slopes;
  SELU_RETURN_IF_ERROR(FeatureConstant(**c, label, "slope", &slopes));
  // One slope for all features is a plain fused leaky ReLU.
  if (AllEqual(slopes)) slopes.resize(1);
  return AddActivation(label, Activation::PRelu(ToFloats(slopes)));
}

}  // namespace selu::core::onnx_internal
