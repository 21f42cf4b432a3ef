// Private to server/core/model (not included outside it): GraphReader, the
// walk of an ONNX graph into a ModelSpec. The graph's boundary (opset,
// initializers, graph input and output) is read in onnx_model_loader.cc, the
// nodes one by one in onnx_node_reader.cc, with constant folds in
// onnx_fold_reader.cc, multi-node patterns and activations with constant
// inputs in onnx_activation_reader.cc.
#pragma once

#include <onnx/onnx_pb.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "server/core/base/status.h"
#include "server/core/model/model_spec.h"
#include "server/core/model/onnx_model_loader.h"
#include "server/core/model/onnx_tensor_decode.h"

namespace selu::core::onnx_internal {

// "node 'name' (OpType)", or "node #index (OpType)" for an unnamed node.
std::string NodeLabel(const onnx::NodeProto& node, int index);
const onnx::AttributeProto* FindAttribute(const onnx::NodeProto& node, std::string_view name);
// The attribute's value, `fallback` when absent; refused when of another type
// (or, for floats, not finite).
StatusOr<float> FloatAttribute(const onnx::NodeProto& node, const std::string& label,
                               std::string_view name, float fallback);
StatusOr<int64_t> IntAttribute(const onnx::NodeProto& node, const std::string& label,
                               std::string_view name, int64_t fallback);

// Walks the node list of an MLP graph and builds the ModelSpec.
class GraphReader {
 public:
  GraphReader(const onnx::ModelProto& model, const OnnxLoaderOptions& options)
      : model_(model), graph_(model.graph()), options_(options) {}

  StatusOr<ModelSpec> Read();

 private:
  // The graph's boundary (onnx_model_loader.cc).
  Status ReadOpset();
  Status CollectConstants();
  Status ReadInput();
  Status ReadOutput();

  // One node at a time (onnx_node_reader.cc).
  Status ReadNode(const onnx::NodeProto& node, int index);
  // The node's first input must be the running tensor; every other input must
  // be a constant. Returns the constant for input `i`, or nullptr when absent.
  StatusOr<const ConstTensor*> ConstantInput(const onnx::NodeProto& node, const std::string& label,
                                             int i);
  Status CheckChained(const onnx::NodeProto& node, const std::string& label);
  Status RequireRank2(const std::string& label);
  Status StartLayer(const onnx::NodeProto& node, const std::string& label, int index,
                    std::vector<float> weights_kn, int64_t k, int64_t n);
  // Adds a bias of shape [n], [1, n] or a scalar ([] or [1]) to the open layer.
  Status AddBias(const ConstTensor& c, const std::string& label, float scale);
  Status ReadGemm(const onnx::NodeProto& node, const std::string& label, int index);
  Status ReadMatMul(const onnx::NodeProto& node, const std::string& label, int index);
  Status AddActivation(const std::string& label, Activation act);
  Status ReadClip(const onnx::NodeProto& node, const std::string& label);
  Status ReadCast(const onnx::NodeProto& node, const std::string& label);

  // The whole graph's consumers and Constant nodes, indexed before the walk
  // so that patterns can look ahead (onnx_activation_reader.cc).
  Status IndexGraph();
  // The node consuming `tensor` when it is the only consumer (and `tensor` is
  // no graph output), else nullptr.
  const onnx::NodeProto* SoleConsumer(const std::string& tensor, int* index) const;
  // Div(x, √2) → Erf → Add(1) → Mul(x, ·) → Mul(0.5), as PyTorch exports GELU.
  bool StartsGelu(const onnx::NodeProto& node) const;
  Status ReadGelu(const onnx::NodeProto& div, const std::string& label);
  // The next node of a pattern: the sole consumer of `tensor`, of type `op`.
  StatusOr<int> NextInPattern(const std::string& tensor, const std::string& from_label,
                              const std::string& op, const std::string& pattern) const;
  // `node` (at `index`) combines `tensor` with a one-value constant that must
  // be `want` (to 1e-6, relative).
  Status ExpectScalarOperand(const onnx::NodeProto& node, int index, const std::string& tensor,
                             double want, const std::string& pattern);
  // Mul(x, gate(x)) for gate Sigmoid (SiLU) or HardSigmoid(1/6, 1/2) (HardSwish).
  bool StartsGatedProduct(const onnx::NodeProto& node) const;
  Status ReadGatedProduct(const onnx::NodeProto& gate, const std::string& label);

  // Constant Add/Sub/Mul/Div and BatchNormalization: folded into the open
  // layer's weights and bias, or post-ops after an activation
  // (onnx_fold_reader.cc).
  Status ReadArithmetic(const onnx::NodeProto& node, const std::string& label);
  Status ReadBatchNorm(const onnx::NodeProto& node, const std::string& label);
  Status ReadPRelu(const onnx::NodeProto& node, const std::string& label);
  // y = m·x + a per feature (m, a: one value, or one per feature).
  Status ApplyAffine(const std::string& label, const std::vector<double>& m,
                     const std::vector<double>& a);
  // A constant of shape [], [1], [1,1] (one value) or [n], [1,n] (one per
  // feature), as doubles.
  Status FeatureConstant(const ConstTensor& c, const std::string& label, const std::string& role,
                         std::vector<double>* values);
  Status ReadFlatten(const onnx::NodeProto& node, const std::string& label);
  Status ReadSoftmax(const onnx::NodeProto& node, const std::string& label);
  Status ReadDropout(const onnx::NodeProto& node, const std::string& label);

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
  // Tensor name → indices of the nodes reading it (-1 for a graph output).
  std::unordered_map<std::string, std::vector<int>> consumers_;
  // Nodes already read as part of a pattern.
  std::vector<bool> absorbed_;
  // Set by a pattern reader: the tensor the pattern ends in.
  std::string pattern_end_;
};

}  // namespace selu::core::onnx_internal
