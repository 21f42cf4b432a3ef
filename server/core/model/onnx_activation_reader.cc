// GraphReader's multi-node patterns, recognised by looking ahead from their
// first node: GELU (erf form) and x·gate(x) (SiLU, HardSwish) as PyTorch 1.13
// exports them; Clip with its bounds as constant inputs; Cast. Each pattern
// checks every constant it relies on and that its intermediate tensors feed
// nothing else, and otherwise refuses naming the node and why.
#include <cmath>
#include <cstdio>
#include <limits>
#include <string>
#include <vector>

#include "server/core/model/onnx_graph_reader.h"
#include "server/core/model/onnx_tensor_decode.h"

namespace selu::core::onnx_internal {
namespace {

constexpr char kGelu[] = "GELU (Div by √2 → Erf → Add 1 → Mul by x → Mul by 0.5)";

std::string Number(double v) {
  char text[32];
  std::snprintf(text, sizeof(text), "%.9g", v);
  return text;
}

bool DefaultDomain(const onnx::NodeProto& node) {
  return node.domain().empty() || node.domain() == "ai.onnx";
}

}  // namespace

Status GraphReader::IndexGraph() {
  absorbed_.assign(static_cast<size_t>(graph_.node_size()), false);
  for (int i = 0; i < graph_.node_size(); ++i) {
    const onnx::NodeProto& node = graph_.node(i);
    for (const std::string& in : node.input()) {
      if (!in.empty()) consumers_[in].push_back(i);
    }
    // Constants are known before the walk reaches them: a pattern read at its
    // first node may use Constant nodes placed between its later nodes.
    if (node.op_type() == "Constant" && DefaultDomain(node) && node.output_size() == 1) {
      const auto* value = FindAttribute(node, "value");
      if (value != nullptr && value->type() == onnx::AttributeProto::TENSOR) {
        constants_.emplace(node.output(0),
                           ConstTensor{&value->t(), "Constant " + NodeLabel(node, i)});
      }
    }
  }
  for (const auto& out : graph_.output()) consumers_[out.name()].push_back(-1);
  return OkStatus();
}

const onnx::NodeProto* GraphReader::SoleConsumer(const std::string& tensor, int* index) const {
  auto it = consumers_.find(tensor);
  if (it == consumers_.end() || it->second.size() != 1 || it->second[0] < 0) return nullptr;
  *index = it->second[0];
  return &graph_.node(*index);
}

size_t GraphReader::UseCount(const std::string& tensor) const {
  auto it = consumers_.find(tensor);
  return it == consumers_.end() ? 0 : it->second.size();
}

StatusOr<int> GraphReader::NextInPattern(const std::string& tensor, const std::string& from_label,
                                         const std::string& op, const std::string& pattern) const {
  int index = -1;
  const onnx::NodeProto* next = SoleConsumer(tensor, &index);
  if (next != nullptr && next->op_type() == op && DefaultDomain(*next) &&
      next->output_size() >= 1 && !next->output(0).empty()) {
    return index;
  }
  const size_t uses = UseCount(tensor);
  std::string found;
  if (next != nullptr) {
    found = "it feeds " + NodeLabel(*next, index);
  } else if (uses == 0) {
    found = "nothing reads it";
  } else {
    found = "it has " + std::to_string(uses) + " consumers (or is a graph output)";
  }
  return Refuse(from_label, "looks like " + pattern + ", but its output " + Quote(tensor) +
                                " must feed exactly one " + op + " node; " + found);
}

Status GraphReader::ExpectScalarOperand(const onnx::NodeProto& node, int index,
                                        const std::string& tensor, double want,
                                        const std::string& pattern) {
  const std::string label = NodeLabel(node, index);
  const bool first = node.input_size() == 2 && node.input(0) == tensor;
  const bool second = node.input_size() == 2 && node.input(1) == tensor;
  // Div's divisor must be its second input; Add and Mul commute.
  if (!(first || (second && node.op_type() != "Div"))) {
    return Refuse(label, "in " + pattern + " it must take " + Quote(tensor) +
                             " and one constant as its inputs");
  }
  const std::string& other = node.input(first ? 1 : 0);
  auto c = constants_.find(other);
  std::vector<float> value;
  if (c != constants_.end()) SELU_RETURN_IF_ERROR(ReadFloats(c->second, label, &value));
  if (value.size() != 1) {
    return Refuse(label, "in " + pattern + " its operand " + Quote(other) +
                             " must be one constant value (" + Number(want) + ")");
  }
  if (std::fabs(double(value[0]) - want) > 1e-6 * std::fabs(want)) {
    return Refuse(label, "in " + pattern + " its constant must be " + Number(want) + ", got " +
                             Number(value[0]));
  }
  return OkStatus();
}

bool GraphReader::StartsGelu(const onnx::NodeProto& node) const {
  int index = -1;
  if (node.input_size() != 2 || FindTensor(node.input(0)) == nullptr) return false;
  const onnx::NodeProto* next = SoleConsumer(node.output(0), &index);
  return next != nullptr && next->op_type() == "Erf";
}

Status GraphReader::EndPattern(const std::string& x, const std::string& end,
                               const std::string& label, const Sink& sink) {
  std::vector<int64_t> dims = FindTensor(x)->dims;
  return Bind(end, label, {sink.id, std::move(dims), true});
}

Status GraphReader::ReadGelu(const onnx::NodeProto& div, const std::string& label, int index) {
  const std::string x = div.input(0);
  SELU_RETURN_IF_ERROR(ExpectScalarOperand(div, index, x, std::sqrt(2.0), kGelu));
  auto erf = NextInPattern(div.output(0), label, "Erf", kGelu);
  if (!erf.ok()) return erf.status();
  const onnx::NodeProto& erf_node = graph_.node(*erf);
  const std::string erf_label = NodeLabel(erf_node, *erf);
  auto add = NextInPattern(erf_node.output(0), erf_label, "Add", kGelu);
  if (!add.ok()) return add.status();
  const onnx::NodeProto& add_node = graph_.node(*add);
  SELU_RETURN_IF_ERROR(ExpectScalarOperand(add_node, *add, erf_node.output(0), 1.0, kGelu));
  const std::string add_label = NodeLabel(add_node, *add);
  auto mul = NextInPattern(add_node.output(0), add_label, "Mul", kGelu);
  if (!mul.ok()) return mul.status();
  const onnx::NodeProto& mul_node = graph_.node(*mul);
  const std::string mul_label = NodeLabel(mul_node, *mul);
  const bool takes_x = mul_node.input_size() == 2 &&
                       (mul_node.input(0) == x || mul_node.input(1) == x) &&
                       mul_node.input(0) != mul_node.input(1);
  if (!takes_x) {
    return Refuse(mul_label, "in " + std::string(kGelu) + " it must multiply " +
                                 Quote(add_node.output(0)) + " by the pattern's input " + Quote(x));
  }
  auto half = NextInPattern(mul_node.output(0), mul_label, "Mul", kGelu);
  if (!half.ok()) return half.status();
  const onnx::NodeProto& half_node = graph_.node(*half);
  SELU_RETURN_IF_ERROR(ExpectScalarOperand(half_node, *half, mul_node.output(0), 0.5, kGelu));
  // Fused into the step producing x when the pattern reads all of x's uses;
  // else an activation step of its own.
  Sink sink = OpenSink(x, 2, div.name(), half_node.output(0));
  SELU_RETURN_IF_ERROR(AddActivation(label, sink, Activation::Gelu()));
  for (int i : {*erf, *add, *mul, *half}) absorbed_[static_cast<size_t>(i)] = true;
  return EndPattern(x, half_node.output(0), label, sink);
}

bool GraphReader::StartsGatedProduct(const onnx::NodeProto& gate) const {
  int index = -1;
  if (gate.input_size() != 1 || FindTensor(gate.input(0)) == nullptr) return false;
  const std::string& x = gate.input(0);
  const onnx::NodeProto* mul = SoleConsumer(gate.output(0), &index);
  return mul != nullptr && mul->op_type() == "Mul" && mul->input_size() == 2 &&
         ((mul->input(0) == x && mul->input(1) == gate.output(0)) ||
          (mul->input(1) == x && mul->input(0) == gate.output(0)));
}

Status GraphReader::ReadGatedProduct(const onnx::NodeProto& gate, const std::string& label) {
  const bool sigmoid = gate.op_type() == "Sigmoid";
  const std::string pattern = sigmoid ? "SiLU (x·Sigmoid(x))" : "HardSwish (x·HardSigmoid(x))";
  const std::string x = gate.input(0);
  int mul = -1;
  const onnx::NodeProto& mul_node = *SoleConsumer(gate.output(0), &mul);
  if (!DefaultDomain(mul_node) || mul_node.output_size() < 1 || mul_node.output(0).empty()) {
    return Refuse(NodeLabel(mul_node, mul), "in " + pattern + " it must be a plain Mul");
  }
  Activation act = Activation::Silu();
  if (!sigmoid) {
    auto alpha = FloatAttribute(gate, label, "alpha", 0.2f);
    auto beta = FloatAttribute(gate, label, "beta", 0.5f);
    if (!alpha.ok()) return alpha.status();
    if (!beta.ok()) return beta.status();
    if (std::fabs(double(*alpha) - 1.0 / 6.0) > 1e-6 || std::fabs(double(*beta) - 0.5) > 1e-6) {
      return Refuse(label,
                    "x·HardSigmoid(x) is HardSwish only with alpha=1/6 and beta=0.5 "
                    "(as PyTorch exports it); got alpha=" +
                        Number(*alpha) + ", beta=" + Number(*beta));
    }
    act = Activation::HardSwish();
  }
  Sink sink = OpenSink(x, 2, gate.name(), mul_node.output(0));
  SELU_RETURN_IF_ERROR(AddActivation(label, sink, act));
  absorbed_[static_cast<size_t>(mul)] = true;
  return EndPattern(x, mul_node.output(0), label, sink);
}

Status GraphReader::ReadClip(const onnx::NodeProto& node, const std::string& label) {
  float bound[2] = {std::numeric_limits<float>::lowest(), std::numeric_limits<float>::max()};
  static const char* const kNames[] = {"min", "max"};
  for (int i = 0; i < 2; ++i) {
    if (opset_ < 11) {
      // Before opset 11 the bounds are attributes.
      auto v = FloatAttribute(node, label, kNames[i], bound[i]);
      if (!v.ok()) return v.status();
      bound[i] = *v;
      continue;
    }
    auto c = ConstantInput(node, label, i + 1);
    if (!c.ok()) return c.status();
    if (*c == nullptr) continue;
    std::vector<float> value;
    SELU_RETURN_IF_ERROR(ReadFloats(**c, label, &value));
    if (value.size() != 1) {
      return Refuse(label, std::string(kNames[i]) + " " + Quote(node.input(i + 1)) +
                               " must be a single value, has " + std::to_string(value.size()));
    }
    bound[i] = value[0];
  }
  if (bound[0] > bound[1]) {
    return Refuse(label, "min " + Number(bound[0]) + " is above max " + Number(bound[1]));
  }
  return Activate(node, label, Activation::Clip(bound[0], bound[1]));
}

Status GraphReader::ReadCast(const onnx::NodeProto& node, const std::string& label) {
  auto to = IntAttribute(node, label, "to", 0);
  if (!to.ok()) return to.status();
  if (*to == onnx::TensorProto::FLOAT) return OkStatus();
  const std::string type =
      onnx::TensorProto::DataType_IsValid(static_cast<int>(*to))
          ? onnx::TensorProto::DataType_Name(static_cast<onnx::TensorProto::DataType>(*to))
          : std::to_string(*to);
  if (FindTensor(node.input(0)) != nullptr) {
    return Refuse(label, "casts the activations to " + type +
                             "; the engine computes in FLOAT only (FLOAT16, BFLOAT16 and "
                             "DOUBLE weights are converted at load, activations are not)");
  }
  return Refuse(label, "casts constant " + Quote(node.input(0)) + " to " + type +
                           "; weights are converted to FLOAT at load, so only Cast to FLOAT "
                           "is supported");
}

}  // namespace selu::core::onnx_internal
