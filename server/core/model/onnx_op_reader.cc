// GraphReader's dispatch of one node by op type, and the refusals of the
// op types the graph cannot hold (recurrences, shape computations, anything
// unknown), each with why and what to do instead.
#include <initializer_list>
#include <string>

#include "server/core/model/onnx_graph_reader.h"

namespace selu::core::onnx_internal {
namespace {

bool Is(const std::string& op, std::initializer_list<const char*> ops) {
  for (const char* o : ops) {
    if (op == o) return true;
  }
  return false;
}

constexpr const char* kRecurrenceHint =
    "recurrent ops are not supported; export the recurrence unrolled (a Python loop over time "
    "steps in forward()), so that every step is a Gemm/MatMul of the shared weights";

bool IsRecurrent(const std::string& op) { return Is(op, {"Loop", "Scan", "RNN", "GRU", "LSTM"}); }

}  // namespace

Status GraphReader::RefuseRecurrences() {
  // Named first, before anything else: PyTorch's nn.LSTM/GRU/RNN export
  // starts with the shape computations of its initial state, and the
  // recurrence is what the user has to change.
  for (int i = 0; i < graph_.node_size(); ++i) {
    if (IsRecurrent(graph_.node(i).op_type())) {
      return Refuse(NodeLabel(graph_.node(i), i), kRecurrenceHint);
    }
  }
  return OkStatus();
}

Status GraphReader::ReadOp(const onnx::NodeProto& node, const std::string& label, int index) {
  const std::string& op = node.op_type();
  if (IsRecurrent(op)) return Refuse(label, kRecurrenceHint);
  if (Is(op, {"If", "Shape", "Size", "ConstantOfShape", "Expand", "Tile", "Range", "NonZero"})) {
    return Refuse(label,
                  "shape computations and control flow are not supported (PyTorch emits them "
                  "for x.shape or x.size() in forward()); use flatten(1) or reshape(-1, ...), "
                  "or export with a fixed batch so that the exporter folds them into "
                  "constants");
  }
  if (node.output_size() == 0 || node.output(0).empty()) return Refuse(label, "has no output");
  // Every op read below takes a tensor first (a Cast without inputs was a
  // fuzzer's null dereference).
  if (node.input_size() == 0 || node.input(0).empty()) return Refuse(label, "has no input");
  if (op == "Gemm") return ReadGemm(node, label, index);
  if (op == "MatMul") return ReadMatMul(node, label, index);
  if (op == "Div" && StartsGelu(node)) return ReadGelu(node, label, index);
  if ((op == "Sigmoid" || op == "HardSigmoid") && StartsGatedProduct(node)) {
    return ReadGatedProduct(node, label);
  }
  if (Is(op, {"Add", "Sub", "Mul", "Div"})) {
    if (op == "Add" && node.input_size() == 2 && FindTensor(node.input(0)) != nullptr &&
        FindTensor(node.input(1)) != nullptr) {
      return ReadAddOfTensors(node, label);
    }
    return ReadArithmetic(node, label);
  }
  if (op == "BatchNormalization") return ReadBatchNorm(node, label);
  if (op == "Selu") {
    auto alpha = FloatAttribute(node, label, "alpha", static_cast<float>(kSeluAlpha));
    auto gamma = FloatAttribute(node, label, "gamma", static_cast<float>(kSeluLambda));
    if (!alpha.ok()) return alpha.status();
    if (!gamma.ok()) return gamma.status();
    return Activate(node, label, Activation::Selu(*alpha, *gamma));
  }
  if (op == "Elu" || op == "LeakyRelu") {
    const bool elu = op == "Elu";
    auto alpha = FloatAttribute(node, label, "alpha", elu ? 1.0f : 0.01f);
    if (!alpha.ok()) return alpha.status();
    return Activate(node, label, elu ? Activation::Elu(*alpha) : Activation::LeakyRelu(*alpha));
  }
  if (op == "HardSigmoid") {
    auto alpha = FloatAttribute(node, label, "alpha", 0.2f);
    auto beta = FloatAttribute(node, label, "beta", 0.5f);
    if (!alpha.ok()) return alpha.status();
    if (!beta.ok()) return beta.status();
    return Activate(node, label, Activation::HardSigmoid(*alpha, *beta));
  }
  if (op == "PRelu") return ReadPRelu(node, label);
  if (op == "Clip") return ReadClip(node, label);
  if (op == "Relu") return Activate(node, label, Activation::Relu());
  if (op == "Tanh") return Activate(node, label, Activation::Tanh());
  if (op == "Sigmoid") return Activate(node, label, Activation::Sigmoid());
  if (op == "Softplus") return Activate(node, label, Activation::Softplus());
  if (op == "Cast" || op == "Identity") {
    if (op == "Cast") SELU_RETURN_IF_ERROR(ReadCast(node, label));
    auto in = DataInput(node, label, 0);
    if (!in.ok()) return in.status();
    return Alias(node.input(0), node.output(0), label, (*in)->dims, index);
  }
  if (op == "Dropout") return ReadDropout(node, label, index);
  if (op == "Softmax") return ReadSoftmax(node, label);
  if (op == "Flatten") return ReadFlatten(node, label, index);
  if (op == "Concat") return ReadConcat(node, label);
  if (op == "Gather") return ReadGather(node, label, index);
  if (op == "Slice") return ReadSlice(node, label, index);
  if (op == "Split") return ReadSplit(node, label, index);
  if (op == "Squeeze") return ReadSqueeze(node, label, index);
  if (op == "Unsqueeze") return ReadUnsqueeze(node, label, index);
  if (op == "Reshape") return ReadReshape(node, label, index);
  return Refuse(label, "unsupported op type " + Quote(op) +
                           "; an MLP may use Gemm, MatMul, Add/Sub/Mul/Div by constants, Add of "
                           "two tensors, BatchNormalization, Selu, Elu, Relu, LeakyRelu, PRelu, "
                           "Tanh, Sigmoid, HardSigmoid, Softplus, Clip, GELU (erf) and SiLU/"
                           "HardSwish patterns, Identity, Dropout, Cast to FLOAT, Flatten, "
                           "Reshape, Squeeze, Unsqueeze, Gather, Slice, Split and Concat of "
                           "features, and Softmax");
}

}  // namespace selu::core::onnx_internal
