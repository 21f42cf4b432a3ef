// The entry points (an ONNX file or its bytes parsed as a protobuf and run
// through the ONNX checker) and GraphReader's reading of the graph's boundary:
// opset, initializers, graph inputs and outputs. The nodes between are read in
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
  SELU_RETURN_IF_ERROR(RefuseRecurrences());
  SELU_RETURN_IF_ERROR(ReadInputs());
  for (int i = 0; i < graph_.node_size(); ++i) {
    SELU_RETURN_IF_ERROR(ReadNode(graph_.node(i), i));
  }
  SELU_RETURN_IF_ERROR(ReadOutputs());
  Compact();
  if (spec_.layers.empty()) {
    return InvalidArgumentError("graph has no Gemm or MatMul layer; nothing to compute");
  }
  for (const auto& prop : model_.metadata_props()) spec_.metadata[prop.key()] = prop.value();
  spec_.producer_name = model_.producer_name();
  spec_.producer_version = model_.producer_version();
  SELU_RETURN_IF_ERROR(CompleteModelSpec(spec_));
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
    return InvalidArgumentError("sparse initializer " +
                                Quote(graph_.sparse_initializer(0).values().name()) +
                                " is not supported; store weights as dense tensors");
  }
  return OkStatus();
}

Status GraphReader::ReadInputs() {
  for (const auto& input : graph_.input()) {
    if (constants_.count(input.name())) continue;  // IR < 4 lists initializers as inputs
    const std::string what = "graph input " + Quote(input.name());
    if (!input.type().has_tensor_type()) return InvalidArgumentError(what + " is not a tensor");
    const auto& tt = input.type().tensor_type();
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
    const int64_t fixed = batch.has_dim_value() ? batch.dim_value() : 0;
    if (batch.has_dim_value() && fixed <= 0) {
      return InvalidArgumentError(what + " has batch dimension <= 0");
    }
    if (batch_seen_ && fixed != spec_.fixed_batch_size) {
      auto text = [](int64_t b) { return b > 0 ? std::to_string(b) : std::string("symbolic"); };
      return InvalidArgumentError(what + " has batch dimension " + text(fixed) + " but " +
                                  batch_from_ + " has " + text(spec_.fixed_batch_size) +
                                  "; all graph inputs must agree on the batch");
    }
    batch_seen_ = true;
    batch_from_ = what;
    spec_.fixed_batch_size = fixed;
    TensorPort port;
    port.name = input.name();
    port.shape.push_back(-1);
    Named named;
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
      port.shape.push_back(dim.dim_value());
      named.dims.push_back(dim.dim_value());
    }
    if (names_.count(input.name())) return InvalidArgumentError(what + " is listed twice");
    port.features = features;
    named.id = NewTensor(input.name(), features);
    port.tensor = named.id;
    names_[input.name()] = std::move(named);
    spec_.inputs.push_back(std::move(port));
  }
  if (spec_.inputs.empty()) return InvalidArgumentError("graph has no input");
  return OkStatus();
}

Status GraphReader::ReadOutputs() {
  if (spec_.layers.empty()) {
    return InvalidArgumentError("graph has no Gemm or MatMul layer; nothing to compute");
  }
  if (graph_.output_size() == 0) return InvalidArgumentError("graph has no output");
  for (const auto& out : graph_.output()) {
    const std::string what = "graph output " + Quote(out.name());
    for (const TensorPort& earlier : spec_.outputs) {
      if (earlier.name == out.name()) return InvalidArgumentError(what + " is listed twice");
    }
    const Named* named = FindTensor(out.name());
    if (named == nullptr) {
      return InvalidArgumentError(what + (constants_.count(out.name())
                                              ? " is a constant; outputs must be computed"
                                              : " is not produced by any node"));
    }
    const int64_t features = spec_.tensors[named->id].features;
    if (out.type().has_tensor_type()) {
      const auto& tt = out.type().tensor_type();
      if (tt.elem_type() != onnx::TensorProto::FLOAT && tt.elem_type() != 0) {
        return InvalidArgumentError(what + " must be FLOAT");
      }
      if (tt.has_shape()) {
        const auto& shape = tt.shape();
        const int rank = static_cast<int>(named->dims.size()) + 1;
        if (shape.dim_size() != rank) {
          return InvalidArgumentError(what + " has rank " + std::to_string(shape.dim_size()) +
                                      "; expected " + std::to_string(rank));
        }
        const auto& batch = shape.dim(0);
        if (batch.has_dim_value() && spec_.fixed_batch_size > 0 &&
            batch.dim_value() != spec_.fixed_batch_size) {
          return InvalidArgumentError(what + " has batch dimension " +
                                      std::to_string(batch.dim_value()) + " but the inputs have " +
                                      std::to_string(spec_.fixed_batch_size));
        }
        for (int d = 1; d < rank; ++d) {
          const auto& dim = shape.dim(d);
          const int64_t want = named->dims[static_cast<size_t>(d - 1)];
          if (dim.has_dim_value() && dim.dim_value() != want) {
            return InvalidArgumentError(
                what + " declares " + std::to_string(dim.dim_value()) + " features" +
                (rank > 2 ? " at dimension " + std::to_string(d) : std::string()) +
                " but the graph produces " + std::to_string(want) +
                (rank > 2 ? " (shape [batch," + ShapeText(named->dims).substr(1) + ")"
                          : std::string()));
          }
        }
      }
    }
    TensorPort port;
    port.name = out.name();
    port.shape.push_back(-1);
    port.shape.insert(port.shape.end(), named->dims.begin(), named->dims.end());
    port.features = features;
    port.tensor = named->id;
    spec_.outputs.push_back(std::move(port));
  }
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
