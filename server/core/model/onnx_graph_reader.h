// Private to server/core/model (not included outside it): GraphReader, the
// walk of an ONNX graph into a ModelSpec. The graph's boundary (opset,
// initializers, graph input and output) is read in onnx_model_loader.cc, the
// nodes one by one in onnx_node_reader.cc.
#pragma once

#include <onnx/onnx_pb.h>

#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include "server/core/base/status.h"
#include "server/core/model/model_spec.h"
#include "server/core/model/onnx_model_loader.h"
#include "server/core/model/onnx_tensor_decode.h"

namespace selu::core::onnx_internal {

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
  Status ReadAdd(const onnx::NodeProto& node, const std::string& label);
  Status AddActivation(const std::string& label, Activation act);
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
};

}  // namespace selu::core::onnx_internal
