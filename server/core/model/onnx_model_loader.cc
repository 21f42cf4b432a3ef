// The entry points (an ONNX file or its bytes parsed as a protobuf and run
// through the ONNX checker) and GraphReader's reading of the graph's boundary:
// opset, initializers, graph input and output. The nodes between are read in
// onnx_node_reader.cc.
#include "server/core/model/onnx_model_loader.h"

#include <onnx/checker.h>
#include <onnx/onnx_pb.h>

#include <cstdint>
#include <fstream>
#include <limits>
#include <string>
#include <utility>

#include "server/core/model/onnx_graph_reader.h"

namespace selu::core {
namespace onnx_internal {

StatusOr<ModelSpec> GraphReader::Read() {
  SELU_RETURN_IF_ERROR(ReadOpset());
  SELU_RETURN_IF_ERROR(CollectConstants());
  SELU_RETURN_IF_ERROR(IndexGraph());
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

Status GraphReader::ReadOpset() {
  for (const auto& opset : model_.opset_import()) {
    if (opset.domain().empty() || opset.domain() == "ai.onnx") opset_ = opset.version();
  }
  if (opset_ <= 0) return InvalidArgumentError("model imports no default ONNX opset");
  return OkStatus();
}

Status GraphReader::CollectConstants() {
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

Status GraphReader::ReadInput() {
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
    return InvalidArgumentError(
        what + " has element type " +
        onnx::TensorProto::DataType_Name(static_cast<onnx::TensorProto::DataType>(tt.elem_type())) +
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
      return InvalidArgumentError(what + " has more than " + std::to_string(options_.max_features) +
                                  " features");
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

Status GraphReader::ReadOutput() {
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

}  // namespace onnx_internal

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
    return onnx_internal::GraphReader(model, options).Read();
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
