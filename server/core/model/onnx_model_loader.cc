#include "server/core/model/onnx_model_loader.h"

#include <onnx/checker.h>
#include <onnx/onnx_pb.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <limits>
#include <optional>
#include <sstream>
#include <unordered_map>

namespace selu::core {
namespace {

// A constant tensor known by name: an initializer or a Constant node's value.
struct ConstTensor {
  const onnx::TensorProto* tensor;
  std::string origin;  // "initializer" or "Constant node 'x'"
};

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

Status Refuse(const std::string& where, const std::string& why) {
  return InvalidArgumentError(where + ": " + why);
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

// Element count of `dims`, refusing negative dims and overflow.
StatusOr<int64_t> ElementCount(const google::protobuf::RepeatedField<int64_t>& dims,
                               const std::string& what, int64_t max_elements) {
  int64_t count = 1;
  for (int64_t d : dims) {
    if (d < 0) return InvalidArgumentError(what + " has a negative dimension");
    if (d != 0 && count > max_elements / d) {
      return InvalidArgumentError(what + " is too large");
    }
    count *= d;
  }
  return count;
}

// Reads a constant tensor as floats (fp32 or fp64 source), checking its size
// against its dims and that every value is finite.
Status ReadFloats(const ConstTensor& ct, const std::string& label, std::vector<float>* out) {
  const onnx::TensorProto& t = *ct.tensor;
  const std::string what = "tensor '" + t.name() + "' (" + ct.origin + ")";
  if (t.data_location() == onnx::TensorProto::EXTERNAL || t.external_data_size() > 0) {
    return Refuse(label, what +
                             " uses external data; only weights stored inside the model file "
                             "are supported");
  }
  constexpr int64_t kMaxElements = int64_t{1} << 31;
  auto count_or = ElementCount(t.dims(), what, kMaxElements);
  if (!count_or.ok()) return count_or.status().WithPrefix(label);
  const int64_t n = *count_or;
  // Sizes are checked against the dims before anything is allocated, so a
  // hostile dims field cannot ask for gigabytes.
  switch (t.data_type()) {
    case onnx::TensorProto::FLOAT:
      if (!t.raw_data().empty()) {
        if (t.raw_data().size() != static_cast<size_t>(n) * sizeof(float)) {
          return Refuse(label, what + " holds " + std::to_string(t.raw_data().size()) +
                                   " bytes of raw data, its dims need " +
                                   std::to_string(n * sizeof(float)));
        }
        out->resize(static_cast<size_t>(n));
        std::memcpy(out->data(), t.raw_data().data(), t.raw_data().size());
      } else {
        if (t.float_data_size() != n) {
          return Refuse(label, what + " holds " + std::to_string(t.float_data_size()) +
                                   " float values, its dims need " + std::to_string(n));
        }
        out->assign(t.float_data().begin(), t.float_data().end());
      }
      break;
    case onnx::TensorProto::DOUBLE:
      if (!t.raw_data().empty()) {
        if (t.raw_data().size() != static_cast<size_t>(n) * sizeof(double)) {
          return Refuse(label, what + " holds " + std::to_string(t.raw_data().size()) +
                                   " bytes of raw data, its dims need " +
                                   std::to_string(n * sizeof(double)));
        }
        out->resize(static_cast<size_t>(n));
        for (int64_t i = 0; i < n; ++i) {
          double v;
          std::memcpy(&v, t.raw_data().data() + i * sizeof(double), sizeof(double));
          (*out)[i] = static_cast<float>(v);
        }
      } else {
        if (t.double_data_size() != n) {
          return Refuse(label, what + " holds " + std::to_string(t.double_data_size()) +
                                   " double values, its dims need " + std::to_string(n));
        }
        out->resize(static_cast<size_t>(n));
        for (int64_t i = 0; i < n; ++i) (*out)[i] = static_cast<float>(t.double_data(i));
      }
      break;
    default:
      return Refuse(label, what + " has element type " +
                               onnx::TensorProto::DataType_Name(
                                   static_cast<onnx::TensorProto::DataType>(t.data_type())) +
                               "; weights must be FLOAT (or DOUBLE, converted)");
  }
  for (int64_t i = 0; i < n; ++i) {
    if (!std::isfinite((*out)[i])) {
      return Refuse(label, what + " has a non-finite value at index " + std::to_string(i));
    }
  }
  return OkStatus();
}

// Walks the node list of an MLP graph and builds the ModelSpec.
class GraphReader {
 public:
  GraphReader(const onnx::ModelProto& model, const OnnxLoaderOptions& options)
      : model_(model), graph_(model.graph()), options_(options) {}

  StatusOr<ModelSpec> Read() {
    SELU_RETURN_IF_ERROR(ReadOpset());
    SELU_RETURN_IF_ERROR(CollectConstants());
    SELU_RETURN_IF_ERROR(ReadInput());
    for (int i = 0; i < graph_.node_size(); ++i) {
      SELU_RETURN_IF_ERROR(ReadNode(graph_.node(i), i));
    }
    SELU_RETURN_IF_ERROR(ReadOutput());
    spec_.input_features = spec_.layers.front().in_features;
    spec_.output_features = spec_.layers.back().out_features;
    for (const auto& prop : model_.metadata_props()) spec_.metadata[prop.key()] = prop.value();
    spec_.producer_name = model_.producer_name();
    spec_.producer_version = model_.producer_version();
    return std::move(spec_);
  }

 private:
  Status ReadOpset() {
    for (const auto& opset : model_.opset_import()) {
      if (opset.domain().empty() || opset.domain() == "ai.onnx") opset_ = opset.version();
    }
    if (opset_ <= 0) return InvalidArgumentError("model imports no default ONNX opset");
    return OkStatus();
  }

  Status CollectConstants() {
    for (const auto& init : graph_.initializer()) {
      constants_[init.name()] = {&init, "initializer"};
    }
    if (graph_.sparse_initializer_size() > 0) {
      return InvalidArgumentError("sparse initializer '" +
                                  graph_.sparse_initializer(0).values().name() +
                                  "' is not supported; store weights as dense tensors");
    }
    return OkStatus();
  }

  Status ReadInput() {
    const onnx::ValueInfoProto* input = nullptr;
    for (const auto& vi : graph_.input()) {
      if (constants_.count(vi.name())) continue;  // IR < 4 lists initializers as inputs
      if (input != nullptr) {
        return InvalidArgumentError("graph has more than one input ('" + input->name() + "', '" +
                                    vi.name() + "'); an MLP takes one input tensor");
      }
      input = &vi;
    }
    if (input == nullptr) return InvalidArgumentError("graph has no input");
    const std::string what = "graph input '" + input->name() + "'";
    if (!input->type().has_tensor_type()) return InvalidArgumentError(what + " is not a tensor");
    const auto& tt = input->type().tensor_type();
    if (tt.elem_type() != onnx::TensorProto::FLOAT) {
      return InvalidArgumentError(what + " has element type " +
                                  onnx::TensorProto::DataType_Name(
                                      static_cast<onnx::TensorProto::DataType>(tt.elem_type())) +
                                  "; only FLOAT inputs are supported");
    }
    if (!tt.has_shape() || tt.shape().dim_size() < 2) {
      return InvalidArgumentError(what + " must have a known shape [batch, features...]");
    }
    const auto& shape = tt.shape();
    const auto& batch = shape.dim(0);
    if (batch.has_dim_value()) {
      if (batch.dim_value() <= 0) return InvalidArgumentError(what + " has batch dimension <= 0");
      spec_.fixed_batch_size = batch.dim_value();
    }
    spec_.input_shape.push_back(-1);
    int64_t features = 1;
    for (int d = 1; d < shape.dim_size(); ++d) {
      const auto& dim = shape.dim(d);
      if (!dim.has_dim_value() || dim.dim_value() <= 0) {
        return InvalidArgumentError(what + " dimension " + std::to_string(d) +
                                    " must be a fixed positive size (only the batch dimension "
                                    "may be symbolic)");
      }
      if (dim.dim_value() > options_.max_features / features) {
        return InvalidArgumentError(what + " has more than " +
                                    std::to_string(options_.max_features) + " features");
      }
      features *= dim.dim_value();
      spec_.input_shape.push_back(dim.dim_value());
    }
    spec_.input_name = input->name();
    current_ = input->name();
    current_rank_ = shape.dim_size();
    features_ = features;
    return OkStatus();
  }

  // The node's first input must be the running tensor; every other input must
  // be a constant. Returns the constant for input `i`, or nullptr when absent.
  StatusOr<const ConstTensor*> ConstantInput(const onnx::NodeProto& node, const std::string& label,
                                             int i) {
    if (i >= node.input_size() || node.input(i).empty()) return nullptr;
    auto it = constants_.find(node.input(i));
    if (it == constants_.end()) {
      return Refuse(label, "input " + std::to_string(i) + " '" + node.input(i) +
                               "' is not a constant (initializer); only weights may be "
                               "side inputs of an MLP layer");
    }
    return &it->second;
  }

  Status CheckChained(const onnx::NodeProto& node, const std::string& label) {
    // Add is commutative: the running tensor may be either operand.
    const bool chained =
        node.input_size() > 0 &&
        (node.input(0) == current_ ||
         (node.op_type() == "Add" && node.input_size() == 2 && node.input(1) == current_));
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

  Status RequireRank2(const std::string& label) {
    if (current_rank_ != 2) {
      return Refuse(label, "input has rank " + std::to_string(current_rank_) +
                               "; flatten the input with Flatten(axis=1) first");
    }
    return OkStatus();
  }

  Status StartLayer(const onnx::NodeProto& node, const std::string& label, int index,
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

  // Adds a bias of shape [n], [1, n] or a scalar ([] or [1]) to the open layer.
  Status AddBias(const ConstTensor& c, const std::string& label, float scale) {
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

  Status ReadGemm(const onnx::NodeProto& node, const std::string& label, int index) {
    SELU_RETURN_IF_ERROR(RequireRank2(label));
    auto trans_a = IntAttribute(node, label, "transA", 0);
    auto trans_b = IntAttribute(node, label, "transB", 0);
    auto alpha = FloatAttribute(node, label, "alpha", 1.0f);
    auto beta = FloatAttribute(node, label, "beta", 1.0f);
    for (const Status* s :
         {&trans_a.status(), &trans_b.status(), &alpha.status(), &beta.status()}) {
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

  Status ReadMatMul(const onnx::NodeProto& node, const std::string& label, int index) {
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

  Status ReadAdd(const onnx::NodeProto& node, const std::string& label) {
    if (node.input_size() != 2) return Refuse(label, "must have exactly two inputs");
    if (!layer_open_for_bias_) {
      return Refuse(label,
                    "adds to a tensor that is not the output of a Gemm or MatMul; only a "
                    "bias directly after the matrix product is supported");
    }
    // Either operand order: x + b or b + x.
    const int other = node.input(0) == current_ ? 1 : 0;
    if (node.input(1 - other) != current_) {
      return Refuse(label, "does not take the previous tensor '" + current_ + "' as an input");
    }
    auto c = constants_.find(node.input(other));
    if (c == constants_.end()) {
      return Refuse(
          label, "operand '" + node.input(other) + "' is not a constant; only a bias may be added");
    }
    return AddBias(c->second, label, 1.0f);
  }

  Status AddActivation(const std::string& label, Activation act) {
    if (spec_.layers.empty()) {
      return Refuse(label, "activation before the first Gemm/MatMul is not supported");
    }
    auto& acts = spec_.layers.back().activations;
    if (acts.size() >= 8) return Refuse(label, "more than 8 activations in a row");
    acts.push_back(act);
    layer_open_for_bias_ = false;
    return OkStatus();
  }

  Status ReadFlatten(const onnx::NodeProto& node, const std::string& label) {
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

  Status ReadSoftmax(const onnx::NodeProto& node, const std::string& label) {
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

  Status ReadDropout(const onnx::NodeProto& node, const std::string& label) {
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

  Status ReadNode(const onnx::NodeProto& node, int index) {
    const std::string label = NodeLabel(node, index);
    if (!node.domain().empty() && node.domain() != "ai.onnx") {
      return Refuse(label, "operator domain '" + node.domain() + "' is not supported");
    }
    const std::string& op = node.op_type();
    // Constants (and Identity of a constant, as some exporters emit for shared
    // weights) are side inputs, not steps of the chain.
    if (op == "Constant") {
      const auto* value = FindAttribute(node, "value");
      if (value == nullptr || value->type() != onnx::AttributeProto::TENSOR ||
          node.output_size() != 1) {
        return Refuse(label, "only Constant nodes with a tensor 'value' are supported");
      }
      constants_[node.output(0)] = {&value->t(), "Constant " + label};
      return OkStatus();
    }
    if (op == "Identity" && node.input_size() == 1 && node.output_size() == 1 &&
        node.input(0) != current_ && constants_.count(node.input(0))) {
      constants_[node.output(0)] = constants_[node.input(0)];
      return OkStatus();
    }
    SELU_RETURN_IF_ERROR(CheckChained(node, label));

    Status status;
    if (op == "Gemm") {
      status = ReadGemm(node, label, index);
    } else if (op == "MatMul") {
      status = ReadMatMul(node, label, index);
    } else if (op == "Add") {
      status = ReadAdd(node, label);
    } else if (op == "Selu") {
      auto alpha = FloatAttribute(node, label, "alpha", static_cast<float>(kSeluAlpha));
      auto gamma = FloatAttribute(node, label, "gamma", static_cast<float>(kSeluLambda));
      if (!alpha.ok()) return alpha.status();
      if (!gamma.ok()) return gamma.status();
      status = AddActivation(label, Activation::Selu(*alpha, *gamma));
    } else if (op == "Elu") {
      auto alpha = FloatAttribute(node, label, "alpha", 1.0f);
      if (!alpha.ok()) return alpha.status();
      status = AddActivation(label, Activation::Elu(*alpha));
    } else if (op == "Relu") {
      status = AddActivation(label, Activation::Relu());
    } else if (op == "Tanh") {
      status = AddActivation(label, Activation::Tanh());
    } else if (op == "Sigmoid") {
      status = AddActivation(label, Activation::Sigmoid());
    } else if (op == "Identity") {
      status = OkStatus();
    } else if (op == "Dropout") {
      status = ReadDropout(node, label);
    } else if (op == "Flatten") {
      status = ReadFlatten(node, label);
    } else if (op == "Softmax") {
      status = ReadSoftmax(node, label);
    } else {
      status =
          Refuse(label, "unsupported op type '" + op +
                            "'; an MLP may use Gemm, MatMul, Add, Selu, Elu, Relu, Tanh, Sigmoid, "
                            "Identity, Dropout, Flatten (at the input) and Softmax (at the end)");
    }
    SELU_RETURN_IF_ERROR(status);
    if (op != "Gemm" && op != "MatMul" && op != "Add" && op != "Identity" && op != "Dropout") {
      layer_open_for_bias_ = false;
    }
    current_ = node.output(0);
    return OkStatus();
  }

  Status ReadOutput() {
    if (spec_.layers.empty()) {
      return InvalidArgumentError("graph has no Gemm or MatMul layer; nothing to compute");
    }
    if (graph_.output_size() != 1) {
      return InvalidArgumentError("graph has " + std::to_string(graph_.output_size()) +
                                  " outputs; an MLP has exactly one");
    }
    const auto& out = graph_.output(0);
    if (out.name() != current_) {
      return InvalidArgumentError("graph output '" + out.name() +
                                  "' is not the end of the layer chain (the last node produces '" +
                                  current_ + "')");
    }
    if (out.type().has_tensor_type()) {
      const auto& tt = out.type().tensor_type();
      if (tt.elem_type() != onnx::TensorProto::FLOAT && tt.elem_type() != 0) {
        return InvalidArgumentError("graph output '" + out.name() + "' must be FLOAT");
      }
      if (tt.has_shape()) {
        const auto& shape = tt.shape();
        if (shape.dim_size() != 2) {
          return InvalidArgumentError("graph output '" + out.name() + "' has rank " +
                                      std::to_string(shape.dim_size()) + "; expected 2");
        }
        if (shape.dim(1).has_dim_value() && shape.dim(1).dim_value() != features_) {
          return InvalidArgumentError("graph output '" + out.name() + "' declares " +
                                      std::to_string(shape.dim(1).dim_value()) +
                                      " features but the last layer produces " +
                                      std::to_string(features_));
        }
      }
    }
    spec_.output_name = out.name();
    return OkStatus();
  }

  const onnx::ModelProto& model_;
  const onnx::GraphProto& graph_;
  const OnnxLoaderOptions& options_;
  ModelSpec spec_;
  std::unordered_map<std::string, ConstTensor> constants_;
  int64_t opset_ = 0;
  std::string current_;
  int current_rank_ = 0;
  int64_t features_ = 0;
  bool layer_open_for_bias_ = false;
  bool softmax_seen_ = false;
};

}  // namespace

StatusOr<ModelSpec> LoadOnnxModelFromBytes(std::string_view bytes,
                                           const OnnxLoaderOptions& options) {
  if (static_cast<int64_t>(bytes.size()) > options.max_file_bytes) {
    return ResourceExhaustedError("model file is " + std::to_string(bytes.size()) +
                                  " bytes, over the limit of " +
                                  std::to_string(options.max_file_bytes));
  }
  if (bytes.empty()) return InvalidArgumentError("model file is empty");
  if (bytes.size() > static_cast<size_t>(std::numeric_limits<int>::max())) {
    return ResourceExhaustedError("model file is over 2 GiB, the protobuf limit");
  }
  onnx::ModelProto model;
  if (!model.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
    return InvalidArgumentError(
        "not a valid ONNX model: the protobuf does not parse (truncated or corrupt file)");
  }
  if (!model.has_graph()) return InvalidArgumentError("not a valid ONNX model: it has no graph");
  if (options.run_onnx_checker) {
    try {
      onnx::checker::check_model(model);
    } catch (const std::exception& e) {
      return InvalidArgumentError(std::string("ONNX checker refused the model: ") + e.what());
    }
  }
  try {
    return GraphReader(model, options).Read();
  } catch (const std::exception& e) {
    return InternalError(std::string("unexpected error reading the ONNX graph: ") + e.what());
  }
}

StatusOr<ModelSpec> LoadOnnxModelFromFile(const std::string& path,
                                          const OnnxLoaderOptions& options) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) return NotFoundError("cannot open model file '" + path + "'");
  const std::streamoff size = in.tellg();
  if (size < 0) return InvalidArgumentError("cannot read model file '" + path + "'");
  if (size > options.max_file_bytes) {
    return ResourceExhaustedError("model file '" + path + "' is " + std::to_string(size) +
                                  " bytes, over the limit of " +
                                  std::to_string(options.max_file_bytes));
  }
  std::string bytes(static_cast<size_t>(size), '\0');
  in.seekg(0);
  if (!in.read(bytes.data(), size)) {
    return InvalidArgumentError("cannot read model file '" + path + "' (changed while reading?)");
  }
  auto spec = LoadOnnxModelFromBytes(bytes, options);
  if (!spec.ok()) return spec.status().WithPrefix(path);
  return spec;
}

}  // namespace selu::core
