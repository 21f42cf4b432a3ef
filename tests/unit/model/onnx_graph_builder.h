// Test helpers for the ONNX loader's graph tests: GraphBuilder writes small
// ONNX graphs with the protobuf schema, RunSpec evaluates a ModelSpec's graph
// in double by its definition (model_spec.h), independent of the engine.
#pragma once

#include <onnx/onnx_pb.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "server/core/model/activation.h"
#include "server/core/model/model_spec.h"
#include "server/core/model/onnx_model_loader.h"

namespace selu::core::testing_graph {

// The weights GraphBuilder::Gemm writes for a [k, n] layer (element i of W
// row-major) and its bias.
inline float GemmWeight(int64_t i, float scale = 0.1f) { return scale * float(i % 7) - 0.2f; }
inline float GemmBias(int64_t j) { return 0.01f * float(j); }

class GraphBuilder {
 public:
  explicit GraphBuilder(int opset = 13) {
    model_.set_ir_version(8);
    auto* op = model_.add_opset_import();
    op->set_domain("");
    op->set_version(opset);
    g()->set_name("graph");
  }
  onnx::GraphProto* g() { return model_.mutable_graph(); }

  // dims: -1 for a symbolic dimension.
  void Input(const std::string& name, const std::vector<int64_t>& dims) {
    SetType(g()->add_input(), name, dims);
  }
  // dims: -1 symbolic, 0 unknown; by default [batch, ?].
  void Output(const std::string& name, const std::vector<int64_t>& dims = {-1, 0}) {
    SetType(g()->add_output(), name, dims);
  }
  std::string Init(const std::string& name, const std::vector<int64_t>& dims,
                   const std::vector<float>& values) {
    for (const auto& t : g()->initializer()) {
      if (t.name() == name) return name;  // shared weights: declared once
    }
    auto* t = g()->add_initializer();
    t->set_name(name);
    t->set_data_type(onnx::TensorProto::FLOAT);
    for (int64_t d : dims) t->add_dims(d);
    for (float v : values) t->add_float_data(v);
    return name;
  }
  std::string Ints(const std::string& name, const std::vector<int64_t>& dims,
                   const std::vector<int64_t>& values) {
    auto* t = g()->add_initializer();
    t->set_name(name);
    t->set_data_type(onnx::TensorProto::INT64);
    for (int64_t d : dims) t->add_dims(d);
    for (int64_t v : values) t->add_int64_data(v);
    return name;
  }
  onnx::NodeProto* Node(const std::string& op, const std::vector<std::string>& inputs,
                        const std::string& name, int outputs = 1) {
    auto* n = g()->add_node();
    n->set_op_type(op);
    n->set_name(name);
    for (const auto& i : inputs) n->add_input(i);
    for (int o = 0; o < outputs; ++o) {
      n->add_output(outputs == 1 ? name + "_out" : name + "_out" + std::to_string(o));
    }
    return n;
  }
  // Returns the node's (first) output.
  std::string Op(const std::string& op, const std::vector<std::string>& inputs,
                 const std::string& name) {
    return Node(op, inputs, name)->output(0);
  }
  // y = x·W + b, W [k, n] from initializer `w` (created with `values` when new).
  std::string Gemm(const std::string& x, const std::string& w, int64_t k, int64_t n,
                   const std::string& name, float scale = 0.1f) {
    std::vector<float> values(static_cast<size_t>(k * n)), bias(static_cast<size_t>(n));
    for (size_t i = 0; i < values.size(); ++i) values[i] = GemmWeight(int64_t(i), scale);
    for (size_t i = 0; i < bias.size(); ++i) bias[i] = GemmBias(int64_t(i));
    Init(w + "_W", {k, n}, values);
    Init(w + "_b", {n}, bias);
    return Op("Gemm", {x, w + "_W", w + "_b"}, name);
  }
  static void SetInt(onnx::NodeProto* n, const std::string& name, int64_t v) {
    auto* a = n->add_attribute();
    a->set_name(name);
    a->set_type(onnx::AttributeProto::INT);
    a->set_i(v);
  }
  static void SetInts(onnx::NodeProto* n, const std::string& name, std::vector<int64_t> v) {
    auto* a = n->add_attribute();
    a->set_name(name);
    a->set_type(onnx::AttributeProto::INTS);
    for (int64_t x : v) a->add_ints(x);
  }
  StatusOr<ModelSpec> Load(const OnnxLoaderOptions& options = {}) {
    return LoadOnnxModelFromBytes(model_.SerializeAsString(), options);
  }

 private:
  static void SetType(onnx::ValueInfoProto* vi, const std::string& name,
                      const std::vector<int64_t>& dims) {
    vi->set_name(name);
    auto* tt = vi->mutable_type()->mutable_tensor_type();
    tt->set_elem_type(onnx::TensorProto::FLOAT);
    for (int64_t d : dims) {
      auto* dim = tt->mutable_shape()->add_dim();
      if (d < 0) {
        dim->set_dim_param("batch");
      } else if (d > 0) {
        dim->set_dim_value(d);
      }
    }
  }
  onnx::ModelProto model_;
};

// x·W + b for GraphBuilder::Gemm's weights, in double.
inline std::vector<double> Dense(const std::vector<double>& x, int64_t k, int64_t n,
                                 float scale = 0.1f) {
  std::vector<double> y(static_cast<size_t>(n));
  for (int64_t j = 0; j < n; ++j) {
    y[j] = GemmBias(j);
    for (int64_t i = 0; i < k; ++i) y[j] += x[i] * GemmWeight(i * n + j, scale);
  }
  return y;
}

// Smooth test values.
inline std::vector<double> Row(int64_t n, double seed) {
  std::vector<double> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) v[i] = std::sin(seed + 0.7 * double(i));
  return v;
}

// `spec` run on `rows` packed input rows: the packed output rows.
inline std::vector<double> RunSpec(const ModelSpec& spec, const std::vector<double>& packed,
                                   int64_t rows) {
  std::vector<std::vector<double>> t(spec.tensors.size());
  auto width = [&](int id) { return spec.tensors[static_cast<size_t>(id)].features; };
  for (const TensorPort& p : spec.inputs) {
    auto& x = t[static_cast<size_t>(p.tensor)];
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t j = 0; j < p.features; ++j) {
        x.push_back(packed[static_cast<size_t>(r * spec.input_features + p.offset + j)]);
      }
    }
  }
  auto activate = [](const std::vector<Activation>& acts, double v, int64_t feature) {
    for (const Activation& a : acts) v = ReferenceActivation(a, v, feature);
    return v;
  };
  for (const GraphStep& s : spec.steps) {
    const int64_t out = width(s.output), in = width(s.inputs[0]);
    const std::vector<double>& x = t[static_cast<size_t>(s.inputs[0])];
    std::vector<double> y(static_cast<size_t>(rows * out));
    for (int64_t r = 0; r < rows; ++r) {
      const double* xr = x.data() + r * in;
      double* yr = y.data() + r * out;
      switch (s.kind) {
        case StepKind::kDense: {
          const DenseLayer& l = spec.layers[static_cast<size_t>(s.layer)];
          for (int64_t n = 0; n < out; ++n) {
            double acc = l.bias[static_cast<size_t>(n)];
            for (int64_t k = 0; k < in; ++k)
              acc += xr[k] * l.weights[static_cast<size_t>(k * out + n)];
            yr[n] = activate(l.activations, acc, n);
          }
          break;
        }
        case StepKind::kAdd:
          for (int64_t j = 0; j < out; ++j)
            yr[j] = xr[j] + t[static_cast<size_t>(s.inputs[1])][r * out + j];
          break;
        case StepKind::kConcat: {
          int64_t at = 0;
          for (int id : s.inputs) {
            for (int64_t j = 0; j < width(id); ++j)
              yr[at++] = t[static_cast<size_t>(id)][r * width(id) + j];
          }
          break;
        }
        case StepKind::kSlice:
          for (int64_t j = 0; j < out; ++j) yr[j] = xr[s.offset + j];
          break;
        case StepKind::kActivate:
          for (int64_t j = 0; j < out; ++j) yr[j] = activate(s.activations, xr[j], j);
          break;
        case StepKind::kSoftmax: {
          const double m = *std::max_element(xr, xr + in);
          double sum = 0;
          for (int64_t j = 0; j < out; ++j) sum += yr[j] = std::exp(xr[j] - m);
          for (int64_t j = 0; j < out; ++j) yr[j] /= sum;
          break;
        }
      }
    }
    t[static_cast<size_t>(s.output)] = std::move(y);
  }
  std::vector<double> result;
  for (int64_t r = 0; r < rows; ++r) {
    for (const TensorPort& p : spec.outputs) {
      const auto& y = t[static_cast<size_t>(p.tensor)];
      result.insert(result.end(), y.begin() + r * p.features, y.begin() + (r + 1) * p.features);
    }
  }
  return result;
}

}  // namespace selu::core::testing_graph
