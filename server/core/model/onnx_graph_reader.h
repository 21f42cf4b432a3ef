// Private to server/core/model (not included outside it): GraphReader, the
// walk of an ONNX graph into a graph ModelSpec (see model_spec.h). The
// graph's boundary (opset, initializers, graph inputs and outputs) is read in
// onnx_model_loader.cc, the nodes one by one in onnx_node_reader.cc, with
// constant folds in onnx_fold_reader.cc, multi-node patterns and activations
// with constant inputs in onnx_activation_reader.cc, feature selections and
// joins (Gather, Slice, Split, Squeeze, Reshape, Flatten, Concat) in
// onnx_select_reader.cc; dead steps are dropped and shared layers merged in
// onnx_graph_compact.cc.
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

// 'text' quoted for a message, bounded (QuoteClientText): names come from
// the model file.
std::string Quote(std::string_view text);
// "node 'name' (OpType)", or "node #index (OpType)" for an unnamed node.
std::string NodeLabel(const onnx::NodeProto& node, int index);
const onnx::AttributeProto* FindAttribute(const onnx::NodeProto& node, std::string_view name);
// The attribute's value, `fallback` when absent; refused when of another type
// (or, for floats, not finite).
StatusOr<float> FloatAttribute(const onnx::NodeProto& node, const std::string& label,
                               std::string_view name, float fallback);
StatusOr<int64_t> IntAttribute(const onnx::NodeProto& node, const std::string& label,
                               std::string_view name, int64_t fallback);
// An INTS attribute; `*present` says whether the node has it.
Status IntsAttribute(const onnx::NodeProto& node, const std::string& label, std::string_view name,
                     std::vector<int64_t>* values, bool* present);
// Reads an INT64 or INT32 constant (indices, axes, shapes, split sizes).
Status ReadInts(const ConstTensor& ct, const std::string& label, std::vector<int64_t>* out);
// "[a,b,c]"
std::string ShapeText(const std::vector<int64_t>& dims);

// Walks the node list of the graph and builds the ModelSpec.
class GraphReader {
 public:
  GraphReader(const onnx::ModelProto& model, const OnnxLoaderOptions& options)
      : model_(model), graph_(model.graph()), options_(options) {}

  StatusOr<ModelSpec> Read();

 private:
  // An ONNX tensor name bound to a tensor of the graph.
  struct Named {
    int id = -1;
    // The logical shape without the batch dimension ([F] for [N, F]).
    std::vector<int64_t> dims;
    // Every use of tensor `id` goes through this name (so a sole consumer of
    // the name may change the tensor in place).
    bool exclusive = true;
  };
  // Where activations read from a tensor are written: the producing step's
  // list when the reader is that tensor's only user, else a new kActivate
  // step's.
  struct Sink {
    std::vector<Activation>* acts = nullptr;
    // The dense layer whose weights and bias may still absorb an affine map.
    DenseLayer* open_layer = nullptr;
    int step = -1;
    int id = -1;
  };

  // The graph's boundary (onnx_model_loader.cc).
  Status ReadOpset();
  Status CollectConstants();
  Status ReadInputs();
  Status ReadOutputs();
  // Drops steps no output needs, merges layers that share their weights and
  // numbers layers by first use (onnx_graph_compact.cc).
  void Compact();

  // One node at a time (onnx_node_reader.cc).
  Status ReadNode(const onnx::NodeProto& node, int index);
  // A Loop/Scan/RNN/GRU/LSTM anywhere: refused naming it, before any other node.
  Status RefuseRecurrences();
  Status ReadOp(const onnx::NodeProto& node, const std::string& label, int index);
  // Input `i` of `node` as a tensor of the graph (refused when it is a
  // constant or unknown).
  StatusOr<const Named*> DataInput(const onnx::NodeProto& node, const std::string& label, int i);
  const Named* FindTensor(const std::string& name) const;
  // Returns the constant for input `i`, or nullptr when absent.
  StatusOr<const ConstTensor*> ConstantInput(const onnx::NodeProto& node, const std::string& label,
                                             int i);
  Status RequireRank2(const Named& in, const std::string& label);
  int NewTensor(const std::string& name, int64_t features);
  // Appends `step` writing a new tensor `name` of `features`; returns its id.
  int AddStep(GraphStep step, const std::string& name, int64_t features);
  // Binds output `name` of node `index` (refused when the name is taken).
  Status Bind(const std::string& name, const std::string& label, Named named);
  // `out` names what `in` names (a no-op of node `index`), with `dims`.
  Status Alias(const std::string& in, const std::string& out, const std::string& label,
               std::vector<int64_t> dims, int index);
  Status StartLayer(const onnx::NodeProto& node, const std::string& label, int index,
                    const Named& in, const ConstTensor& weight, std::vector<float> weights_kn,
                    int64_t k, int64_t n, const ConstTensor* bias, float beta);
  // Adds a bias of shape [n], [1, n] or a scalar ([] or [1]) to `layer`.
  Status AddBias(DenseLayer& layer, const ConstTensor& c, const std::string& label, float scale);
  Status ReadGemm(const onnx::NodeProto& node, const std::string& label, int index);
  Status ReadMatMul(const onnx::NodeProto& node, const std::string& label, int index);
  Status ReadAddOfTensors(const onnx::NodeProto& node, const std::string& label);
  // The sink for activations of `tensor`, read by `uses` consumers that
  // all belong to the node (or pattern) `name`; a new step writes tensor `out`.
  Sink OpenSink(const std::string& tensor, int uses, const std::string& name,
                const std::string& out);
  Status AddActivation(const std::string& label, Sink& sink, Activation act);
  // One activation of node input 0, written to output 0.
  Status Activate(const onnx::NodeProto& node, const std::string& label, Activation act);
  Status ReadClip(const onnx::NodeProto& node, const std::string& label);
  Status ReadCast(const onnx::NodeProto& node, const std::string& label);

  // The whole graph's consumers and Constant nodes, indexed before the walk
  // so that patterns can look ahead (onnx_activation_reader.cc).
  Status IndexGraph();
  // The node consuming `tensor` when it is the only consumer (and `tensor` is
  // no graph output), else nullptr.
  const onnx::NodeProto* SoleConsumer(const std::string& tensor, int* index) const;
  // Readers of `tensor` (-1 counts a graph output).
  size_t UseCount(const std::string& tensor) const;
  // Div(x, √2) → Erf → Add(1) → Mul(x, ·) → Mul(0.5), as PyTorch exports GELU.
  bool StartsGelu(const onnx::NodeProto& node) const;
  Status ReadGelu(const onnx::NodeProto& div, const std::string& label, int index);
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
  // Binds a pattern's last output to the sink's tensor.
  Status EndPattern(const std::string& x, const std::string& end, const std::string& label,
                    const Sink& sink);

  // Constant Add/Sub/Mul/Div and BatchNormalization: folded into the
  // producing layer's weights and bias, or post-ops after an activation
  // (onnx_fold_reader.cc).
  Status ReadArithmetic(const onnx::NodeProto& node, const std::string& label);
  Status ReadBatchNorm(const onnx::NodeProto& node, const std::string& label);
  Status ReadPRelu(const onnx::NodeProto& node, const std::string& label);
  // y = m·x + a per feature (m, a: one value, or one per feature).
  Status ApplyAffine(const std::string& label, Sink& sink, const std::vector<double>& m,
                     const std::vector<double>& a);
  // A constant of shape [], [1], [1,1] (one value) or [n], [1,n] (one per
  // feature of the rank-2 tensor `in`), as doubles.
  Status FeatureConstant(const ConstTensor& c, const std::string& label, const std::string& role,
                         const Named& in, std::vector<double>* values);
  Status ReadSoftmax(const onnx::NodeProto& node, const std::string& label);
  Status ReadDropout(const onnx::NodeProto& node, const std::string& label, int index);

  // Selections and joins of features (onnx_select_reader.cc).
  // The box [starts[d], starts[d] + lens[d]) of `in`'s logical shape, bound
  // to `out` with shape `out_dims`: an alias when it is all of `in`, a kSlice
  // when it is one contiguous range per row, else refused.
  Status SelectBox(const onnx::NodeProto& node, const std::string& label, int index,
                   const std::string& in, const std::string& out,
                   const std::vector<int64_t>& starts, const std::vector<int64_t>& lens,
                   std::vector<int64_t> out_dims);
  // A non-batch axis of a tensor of logical rank dims+1, normalized to an
  // index into its dims (refused for the batch axis or out of range).
  StatusOr<int> FeatureAxis(const std::string& label, int64_t axis, size_t dims, const char* what);
  // Axes given as input `i` (opset >= 13) or attribute "axes".
  Status AxesOf(const onnx::NodeProto& node, const std::string& label, int input_from_opset13,
                std::vector<int64_t>* axes, bool* present);
  Status ReadGather(const onnx::NodeProto& node, const std::string& label, int index);
  Status ReadSlice(const onnx::NodeProto& node, const std::string& label, int index);
  Status ReadSplit(const onnx::NodeProto& node, const std::string& label, int index);
  Status ReadSqueeze(const onnx::NodeProto& node, const std::string& label, int index);
  Status ReadUnsqueeze(const onnx::NodeProto& node, const std::string& label, int index);
  Status ReadReshape(const onnx::NodeProto& node, const std::string& label, int index);
  Status ReadFlatten(const onnx::NodeProto& node, const std::string& label, int index);
  Status ReadConcat(const onnx::NodeProto& node, const std::string& label);

  const onnx::ModelProto& model_;
  const onnx::GraphProto& graph_;
  const OnnxLoaderOptions& options_;
  ModelSpec spec_;
  std::unordered_map<std::string, ConstTensor> constants_;
  int64_t opset_ = 0;
  // Set once a graph input declares the batch: fixed (spec_.fixed_batch_size)
  // or symbolic.
  bool batch_seen_ = false;
  std::string batch_from_;
  std::unordered_map<std::string, Named> names_;
  // Per tensor id: the step writing it (-1 for a graph input).
  std::vector<int> producer_;
  // Per step: a dense step whose layer may still fold a constant affine map.
  std::vector<bool> open_;
  // Per layer: the weight constant it was read from (shared layers merge).
  std::vector<const onnx::TensorProto*> weight_source_;
  // Tensor name → indices of the nodes reading it (-1 for a graph output).
  std::unordered_map<std::string, std::vector<int>> consumers_;
  // Nodes already read as part of a pattern.
  std::vector<bool> absorbed_;
};

}  // namespace selu::core::onnx_internal
