// GraphReader's constant folds: Add/Sub/Mul/Div by a constant and
// BatchNormalization (inference form) become part of a dense layer's
// weights and bias when they come before any activation and the layer's
// output feeds nothing else, and post-ops (kLinear, kScale, kShift) when
// they come after one or apply to another tensor (a join, a graph input);
// PRelu's slopes are read the same way.
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
                                    const std::string& role, const Named& in,
                                    std::vector<double>* values) {
  std::vector<float> raw;
  SELU_RETURN_IF_ERROR(ReadFloats(c, label, &raw));
  const auto& dims = c.tensor->dims();
  const int64_t n = spec_.tensors[static_cast<size_t>(in.id)].features;
  if (in.dims.size() != 1 && !(raw.size() == 1 && dims.size() <= 2)) {
    return Refuse(label, role + " " + Quote(c.tensor->name()) +
                             " is not a single value, and its input has rank " +
                             std::to_string(in.dims.size() + 1) +
                             "; per-feature constants apply to rank-2 tensors only");
  }
  const bool is_vector =
      (dims.size() == 1 && dims[0] == n) || (dims.size() == 2 && dims[0] == 1 && dims[1] == n);
  const bool is_scalar = raw.size() == 1 && dims.size() <= 2;
  if (!is_vector && !is_scalar) {
    std::ostringstream shape;
    for (int i = 0; i < dims.size(); ++i) shape << (i ? "," : "") << dims[i];
    return Refuse(label, role + " " + Quote(c.tensor->name()) + " has shape [" + shape.str() +
                             "]; expected [" + std::to_string(n) + "], [1," + std::to_string(n) +
                             "] or a scalar (one value per feature, or one for all)");
  }
  values->assign(raw.begin(), raw.end());
  return OkStatus();
}

Status GraphReader::ApplyAffine(const std::string& label, Sink& sink, const std::vector<double>& m,
                                const std::vector<double>& a) {
  if (sink.open_layer != nullptr) {
    DenseLayer& layer = *sink.open_layer;
    const int64_t n = layer.out_features;
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
      return Refuse(label, "folding it into layer " + Quote(layer.name) +
                               " overflows its weights or bias to a non-finite value");
    }
    return OkStatus();
  }
  // After an activation (or on a tensor no layer computes alone): post-ops.
  // One value for all features is an eltwise_linear (merged into a linear one
  // just before); one per feature a binary multiply or add.
  for (const std::vector<double>* values : {&m, &a}) {
    for (double v : *values) {
      if (!std::isfinite(static_cast<float>(v))) {
        return Refuse(label, "its scale or shift " + std::to_string(v) + " overflows FLOAT");
      }
    }
  }
  auto linear = [&](double alpha, double beta) -> Status {
    auto& acts = *sink.acts;
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
    return AddActivation(label, sink, act);
  };
  if (AllEqual(m) && AllEqual(a)) return linear(m[0], a[0]);
  if (!AllEqual(m)) {
    SELU_RETURN_IF_ERROR(AddActivation(label, sink, Activation::Scale(ToFloats(m))));
  } else if (m[0] != 1.0) {
    SELU_RETURN_IF_ERROR(linear(m[0], 0.0));
  }
  if (!AllEqual(a)) return AddActivation(label, sink, Activation::Shift(ToFloats(a)));
  if (a[0] != 0.0) return linear(1.0, a[0]);
  return OkStatus();
}

Status GraphReader::ReadArithmetic(const onnx::NodeProto& node, const std::string& label) {
  const std::string& op = node.op_type();
  if (node.input_size() != 2) return Refuse(label, "must have exactly two inputs");
  const bool tensor_first = FindTensor(node.input(0)) != nullptr;
  if (!tensor_first && FindTensor(node.input(1)) == nullptr) {
    auto in = DataInput(node, label, constants_.count(node.input(0)) ? 1 : 0);
    return in.status();  // neither operand is a tensor of the graph
  }
  const std::string& x = node.input(tensor_first ? 0 : 1);
  const std::string& other = node.input(tensor_first ? 1 : 0);
  auto c = constants_.find(other);
  if (FindTensor(other) != nullptr || c == constants_.end()) {
    return Refuse(label, "operand " + Quote(other) + " is not a constant; " + op +
                             " is supported only with a constant operand (a bias, scale or "
                             "shift of a tensor), or for Add with a tensor of the same shape");
  }
  const Named& in = *FindTensor(x);
  std::vector<double> v;
  SELU_RETURN_IF_ERROR(FeatureConstant(c->second, label, "constant", in, &v));
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
        return Refuse(label, "divides by zero (constant " + Quote(other) + " at index " +
                                 std::to_string(i) + ")");
      }
      m[i] = 1.0 / m[i];
    }
  }
  std::vector<int64_t> dims = in.dims;
  Sink sink = OpenSink(x, 1, node.name(), node.output(0));
  SELU_RETURN_IF_ERROR(ApplyAffine(label, sink, m, a));
  return Bind(node.output(0), label, {sink.id, std::move(dims), true});
}

Status GraphReader::ReadBatchNorm(const onnx::NodeProto& node, const std::string& label) {
  auto in = DataInput(node, label, 0);
  if (!in.ok()) return in.status();
  SELU_RETURN_IF_ERROR(RequireRank2(**in, label));
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
    SELU_RETURN_IF_ERROR(FeatureConstant(**c, label, kRoles[i], **in, &p[i]));
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
  std::vector<int64_t> dims = (*in)->dims;
  Sink sink = OpenSink(node.input(0), 1, node.name(), node.output(0));
  SELU_RETURN_IF_ERROR(ApplyAffine(label, sink, m, a));
  return Bind(node.output(0), label, {sink.id, std::move(dims), true});
}

Status GraphReader::ReadPRelu(const onnx::NodeProto& node, const std::string& label) {
  if (node.input_size() != 2) return Refuse(label, "must have two inputs (X, slope)");
  auto in = DataInput(node, label, 0);
  if (!in.ok()) return in.status();
  auto c = ConstantInput(node, label, 1);
  if (!c.ok()) return c.status();
  if (*c == nullptr) return Refuse(label, "has no slope input");
  std::vector<double> slopes;
  SELU_RETURN_IF_ERROR(FeatureConstant(**c, label, "slope", **in, &slopes));
  // One slope for all features is a plain fused leaky ReLU.
  if (AllEqual(slopes)) slopes.resize(1);
  return Activate(node, label, Activation::PRelu(ToFloats(slopes)));
}

}  // namespace selu::core::onnx_internal
