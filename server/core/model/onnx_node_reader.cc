// GraphReader's node-by-node interpretation: each ONNX node checked and
// turned into a step of the graph (a dense layer, a join, an activation, a
// softmax), folded into the step producing its input, or mapped to no step
// at all (its output names its input's tensor).
#include <cmath>
#include <sstream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "server/core/base/client_text.h"
#include "server/core/model/onnx_graph_reader.h"
#include "server/core/model/onnx_tensor_decode.h"

namespace selu::core::onnx_internal {

std::string Quote(std::string_view text) { return "'" + QuoteClientText(text) + "'"; }

std::string NodeLabel(const onnx::NodeProto& node, int index) {
  std::string label = "node ";
  if (node.name().empty()) {
    label += "#" + std::to_string(index);
  } else {
    label += Quote(node.name());
  }
  label += " (" + QuoteClientText(node.op_type()) + ")";
  return label;
}

std::string ShapeText(const std::vector<int64_t>& dims) {
  std::string text = "[";
  for (size_t i = 0; i < dims.size(); ++i) text += (i ? "," : "") + std::to_string(dims[i]);
  return text + "]";
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

const GraphReader::Named* GraphReader::FindTensor(const std::string& name) const {
  auto it = names_.find(name);
  return it == names_.end() ? nullptr : &it->second;
}

StatusOr<const GraphReader::Named*> GraphReader::DataInput(const onnx::NodeProto& node,
                                                           const std::string& label, int i) {
  if (i >= node.input_size() || node.input(i).empty()) {
    return Refuse(label, "has no input " + std::to_string(i));
  }
  const Named* named = FindTensor(node.input(i));
  if (named != nullptr) return named;
  if (constants_.count(node.input(i))) {
    return Refuse(label, "input " + std::to_string(i) + " " + Quote(node.input(i)) +
                             " is a constant; it must be a tensor computed from the graph inputs");
  }
  return Refuse(label, "input " + std::to_string(i) + " " + Quote(node.input(i)) +
                           " is produced by no earlier node and is no graph input");
}

StatusOr<const ConstTensor*> GraphReader::ConstantInput(const onnx::NodeProto& node,
                                                        const std::string& label, int i) {
  if (i >= node.input_size() || node.input(i).empty()) return nullptr;
  auto it = constants_.find(node.input(i));
  if (it == constants_.end() || FindTensor(node.input(i)) != nullptr) {
    return Refuse(label, "input " + std::to_string(i) + " " + Quote(node.input(i)) +
                             " is not a constant (initializer); only weights may be "
                             "side inputs of an MLP layer");
  }
  return &it->second;
}

Status GraphReader::RequireRank2(const Named& in, const std::string& label) {
  if (in.dims.size() != 1) {
    return Refuse(label, "input has rank " + std::to_string(in.dims.size() + 1) +
                             "; flatten the input with Flatten(axis=1) first");
  }
  return OkStatus();
}

int GraphReader::NewTensor(const std::string& name, int64_t features) {
  spec_.tensors.push_back({name, features});
  producer_.push_back(-1);
  return static_cast<int>(spec_.tensors.size()) - 1;
}

int GraphReader::AddStep(GraphStep step, const std::string& name, int64_t features) {
  step.output = NewTensor(name, features);
  producer_.back() = static_cast<int>(spec_.steps.size());
  spec_.steps.push_back(std::move(step));
  open_.push_back(false);
  return spec_.steps.back().output;
}

Status GraphReader::Bind(const std::string& name, const std::string& label, Named named) {
  if (name.empty()) return Refuse(label, "has no output");
  if (names_.count(name) || constants_.count(name)) {
    return Refuse(label, "output " + Quote(name) + " is already defined");
  }
  names_[name] = std::move(named);
  return OkStatus();
}

Status GraphReader::Alias(const std::string& in, const std::string& out, const std::string& label,
                          std::vector<int64_t> dims, int index) {
  const Named* src = FindTensor(in);
  Named named;
  named.id = src->id;
  named.dims = std::move(dims);
  auto it = consumers_.find(in);
  named.exclusive =
      src->exclusive && it != consumers_.end() && it->second.size() == 1 && it->second[0] == index;
  return Bind(out, label, std::move(named));
}

GraphReader::Sink GraphReader::OpenSink(const std::string& tensor, int uses,
                                        const std::string& name, const std::string& out) {
  const Named& in = *FindTensor(tensor);
  Sink sink;
  const int step = producer_[static_cast<size_t>(in.id)];
  auto it = consumers_.find(tensor);
  bool sole = in.exclusive && step >= 0 && it != consumers_.end() &&
              it->second.size() == static_cast<size_t>(uses);
  if (sole) {
    for (int c : it->second) sole = sole && c >= 0;
  }
  if (sole && spec_.steps[step].kind == StepKind::kDense) {
    DenseLayer& layer = spec_.layers[static_cast<size_t>(spec_.steps[step].layer)];
    sink.acts = &layer.activations;
    sink.open_layer = open_[static_cast<size_t>(step)] ? &layer : nullptr;
    sink.step = step;
    sink.id = in.id;
    return sink;
  }
  if (sole && spec_.steps[step].kind == StepKind::kActivate) {
    sink.acts = &spec_.steps[step].activations;
    sink.step = step;
    sink.id = in.id;
    return sink;
  }
  GraphStep act;
  act.kind = StepKind::kActivate;
  act.name = name;
  act.inputs = {in.id};
  const int64_t features = spec_.tensors[static_cast<size_t>(in.id)].features;
  sink.id = AddStep(std::move(act), out, features);
  sink.step = static_cast<int>(spec_.steps.size()) - 1;
  sink.acts = &spec_.steps.back().activations;
  return sink;
}

Status GraphReader::AddActivation(const std::string& label, Sink& sink, Activation act) {
  if (sink.acts->size() >= 8) return Refuse(label, "more than 8 activations in a row");
  sink.acts->push_back(std::move(act));
  open_[static_cast<size_t>(sink.step)] = false;
  sink.open_layer = nullptr;
  return OkStatus();
}

Status GraphReader::Activate(const onnx::NodeProto& node, const std::string& label,
                             Activation act) {
  auto in = DataInput(node, label, 0);
  if (!in.ok()) return in.status();
  if (node.output_size() == 0) return Refuse(label, "has no output");
  std::vector<int64_t> dims = (*in)->dims;
  Sink sink = OpenSink(node.input(0), 1, node.name(), node.output(0));
  SELU_RETURN_IF_ERROR(AddActivation(label, sink, std::move(act)));
  return Bind(node.output(0), label, {sink.id, std::move(dims), true});
}

Status GraphReader::StartLayer(const onnx::NodeProto& node, const std::string& label, int index,
                               const Named& in, const ConstTensor& weight,
                               std::vector<float> weights_kn, int64_t k, int64_t n,
                               const ConstTensor* bias, float beta) {
  const int64_t features = spec_.tensors[static_cast<size_t>(in.id)].features;
  if (k != features) {
    return Refuse(label, "weights expect " + std::to_string(k) + " input features but its input " +
                             Quote(node.input(0)) + " produces " + std::to_string(features));
  }
  if (n <= 0 || n > options_.max_features) {
    return Refuse(label, "output width " + std::to_string(n) + " is outside [1, " +
                             std::to_string(options_.max_features) + "]");
  }
  if (node.output_size() == 0 || node.output(0).empty()) return Refuse(label, "has no output");
  DenseLayer layer;
  layer.name = node.name().empty() ? node.op_type() + "_" + std::to_string(index) : node.name();
  layer.in_features = k;
  layer.out_features = n;
  layer.weights = std::move(weights_kn);
  layer.bias.assign(static_cast<size_t>(n), 0.0f);
  if (bias != nullptr) SELU_RETURN_IF_ERROR(AddBias(layer, *bias, label, beta));
  GraphStep step;
  step.kind = StepKind::kDense;
  step.name = layer.name;
  step.inputs = {in.id};
  step.layer = static_cast<int>(spec_.layers.size());
  spec_.layers.push_back(std::move(layer));
  weight_source_.push_back(weight.tensor);
  const int id = AddStep(std::move(step), node.output(0), n);
  open_.back() = true;
  return Bind(node.output(0), label, {id, {n}, true});
}

Status GraphReader::AddBias(DenseLayer& layer, const ConstTensor& c, const std::string& label,
                            float scale) {
  std::vector<float> values;
  SELU_RETURN_IF_ERROR(ReadFloats(c, label, &values));
  const auto& dims = c.tensor->dims();
  const int64_t n = layer.out_features;
  const bool is_vector =
      (dims.size() == 1 && dims[0] == n) || (dims.size() == 2 && dims[0] == 1 && dims[1] == n);
  const bool is_scalar = values.size() == 1 && dims.size() <= 2;
  if (!is_vector && !is_scalar) {
    std::ostringstream shape;
    for (int i = 0; i < dims.size(); ++i) shape << (i ? "," : "") << dims[i];
    return Refuse(label, "bias " + Quote(c.tensor->name()) + " has shape [" + shape.str() +
                             "]; expected [" + std::to_string(n) + "], [1," + std::to_string(n) +
                             "] or a scalar");
  }
  for (int64_t j = 0; j < n; ++j) {
    layer.bias[j] += scale * (is_scalar ? values[0] : values[j]);
  }
  for (float b : layer.bias) {
    if (!std::isfinite(b)) return Refuse(label, "bias overflows to a non-finite value");
  }
  return OkStatus();
}

Status GraphReader::ReadGemm(const onnx::NodeProto& node, const std::string& label, int index) {
  auto in = DataInput(node, label, 0);
  if (!in.ok()) return in.status();
  SELU_RETURN_IF_ERROR(RequireRank2(**in, label));
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
  if (*b_or == nullptr) return Refuse(label, "has no weight input B");
  auto c_or = ConstantInput(node, label, 2);
  if (!c_or.ok()) return c_or.status();
  const ConstTensor& b = **b_or;
  if (b.tensor->dims_size() != 2) {
    return Refuse(label, "weight " + Quote(b.tensor->name()) + " must have rank 2, has rank " +
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
  return StartLayer(node, label, index, **in, b, std::move(w), k, n, *c_or, *beta);
}

Status GraphReader::ReadMatMul(const onnx::NodeProto& node, const std::string& label, int index) {
  if (node.input_size() != 2) return Refuse(label, "must have exactly two inputs");
  auto in = DataInput(node, label, 0);
  if (!in.ok()) return in.status();
  SELU_RETURN_IF_ERROR(RequireRank2(**in, label));
  auto b_or = ConstantInput(node, label, 1);
  if (!b_or.ok()) return b_or.status();
  if (*b_or == nullptr) return Refuse(label, "has no weight input");
  const ConstTensor& b = **b_or;
  if (b.tensor->dims_size() != 2) {
    return Refuse(label, "weight " + Quote(b.tensor->name()) + " must have rank 2, has rank " +
                             std::to_string(b.tensor->dims_size()));
  }
  std::vector<float> w;
  SELU_RETURN_IF_ERROR(ReadFloats(b, label, &w));
  return StartLayer(node, label, index, **in, b, std::move(w), b.tensor->dims(0), b.tensor->dims(1),
                    nullptr, 1.0f);
}

Status GraphReader::ReadAddOfTensors(const onnx::NodeProto& node, const std::string& label) {
  const Named& a = *FindTensor(node.input(0));
  const Named& b = *FindTensor(node.input(1));
  if (a.dims != b.dims) {
    return Refuse(label, "adds tensors of shapes [batch," + ShapeText(a.dims).substr(1) +
                             " and [batch," + ShapeText(b.dims).substr(1) +
                             "; broadcasting between computed tensors is not supported");
  }
  if (node.output_size() == 0 || node.output(0).empty()) return Refuse(label, "has no output");
  GraphStep step;
  step.kind = StepKind::kAdd;
  step.name = node.name();
  step.inputs = {a.id, b.id};
  std::vector<int64_t> dims = a.dims;
  const int id =
      AddStep(std::move(step), node.output(0), spec_.tensors[static_cast<size_t>(a.id)].features);
  return Bind(node.output(0), label, {id, std::move(dims), true});
}

Status GraphReader::ReadSoftmax(const onnx::NodeProto& node, const std::string& label) {
  auto in = DataInput(node, label, 0);
  if (!in.ok()) return in.status();
  const int64_t rank = static_cast<int64_t>((*in)->dims.size()) + 1;
  // Opset < 13 defaults to axis 1 and coerces the input to 2-D there: a
  // softmax over all features of a row. From 13 it defaults to -1 and runs
  // over the last axis only, which is all features for rank 2.
  auto axis = IntAttribute(node, label, "axis", opset_ >= 13 ? -1 : 1);
  if (!axis.ok()) return axis.status();
  const bool last = *axis == -1 || *axis == rank - 1;
  const bool coerced_all = opset_ < 13 && (*axis == 1 || *axis == 1 - rank);
  if (!(rank == 2 ? (last || *axis == 1) : coerced_all)) {
    return Refuse(label, "axis=" + std::to_string(*axis) +
                             " is not supported; softmax must run over the last axis" +
                             (rank > 2 ? " of a rank-2 tensor (Flatten first)" : ""));
  }
  if (node.output_size() == 0 || node.output(0).empty()) return Refuse(label, "has no output");
  GraphStep step;
  step.kind = StepKind::kSoftmax;
  step.name = node.name();
  step.inputs = {(*in)->id};
  std::vector<int64_t> dims = (*in)->dims;
  const int id = AddStep(std::move(step), node.output(0),
                         spec_.tensors[static_cast<size_t>((*in)->id)].features);
  return Bind(node.output(0), label, {id, std::move(dims), true});
}

Status GraphReader::ReadDropout(const onnx::NodeProto& node, const std::string& label, int index) {
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
  auto in = DataInput(node, label, 0);
  if (!in.ok()) return in.status();
  if (node.output_size() == 0) return Refuse(label, "has no output");
  return Alias(node.input(0), node.output(0), label, (*in)->dims, index);
}

Status GraphReader::ReadNode(const onnx::NodeProto& node, int index) {
  if (index < static_cast<int>(absorbed_.size()) && absorbed_[index]) return OkStatus();
  const std::string label = NodeLabel(node, index);
  if (!node.domain().empty() && node.domain() != "ai.onnx") {
    return Refuse(label, "operator domain " + Quote(node.domain()) + " is not supported");
  }
  const std::string& op = node.op_type();
  // Constants (and Identity or Cast of a constant, as exporters emit for
  // shared or converted weights) are side inputs, not steps of the graph.
  if (op == "Constant") {
    const auto* value = FindAttribute(node, "value");
    if (value == nullptr || value->type() != onnx::AttributeProto::TENSOR ||
        node.output_size() != 1) {
      return Refuse(label, "only Constant nodes with a tensor 'value' are supported");
    }
    if (names_.count(node.output(0))) {
      return Refuse(label, "output " + Quote(node.output(0)) + " is already defined");
    }
    constants_[node.output(0)] = {&value->t(), "Constant " + label};
    return OkStatus();
  }
  if ((op == "Identity" || op == "Cast") && node.input_size() == 1 && node.output_size() == 1 &&
      FindTensor(node.input(0)) == nullptr && constants_.count(node.input(0))) {
    if (op == "Cast") SELU_RETURN_IF_ERROR(ReadCast(node, label));
    if (names_.count(node.output(0))) {
      return Refuse(label, "output " + Quote(node.output(0)) + " is already defined");
    }
    constants_[node.output(0)] = constants_[node.input(0)];
    return OkStatus();
  }
  return ReadOp(node, label, index);
}

}  // namespace selu::core::onnx_internal
