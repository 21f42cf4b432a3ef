#include "tests/fuzz/fuzz_support.h"

#include <google/protobuf/stubs/logging.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

namespace selu::fuzz {

void Fail(const char* file, int line, const char* condition, const std::string& detail) {
  std::fprintf(stderr, "\n%s:%d: fuzz invariant broken: %s\n  %s\n", file, line, condition,
               detail.c_str());
  std::fflush(stderr);
  std::abort();
}

bool Verbose() {
  static const bool verbose = std::getenv("SELU_FUZZ_VERBOSE") != nullptr;
  return verbose;
}

void Note(const std::string& line) { std::fprintf(stderr, "%s\n", line.c_str()); }

void QuietProtobuf() { google::protobuf::SetLogHandler(nullptr); }

std::string SourcePath(const std::string& relative) {
  const char* root = std::getenv("SELU_SOURCE_DIR");
  return std::string(root != nullptr && *root != '\0' ? root : SELU_FUZZ_SOURCE_DIR) + "/" +
         relative;
}

const core::ModelSpec& DigitsSpec() {
  static const core::ModelSpec spec = [] {
    const std::string path = SourcePath("models/digits_snn/1/model.onnx");
    auto loaded = core::LoadOnnxModelFromFile(path);
    FUZZ_CHECK(loaded.ok(), "the bundled model does not load: " + loaded.status().ToString());
    // As the server serves it (ServableModel::Load): with its ports.
    const core::Status completed = core::CompleteModelSpec(*loaded);
    FUZZ_CHECK(completed.ok(), "the bundled model does not complete: " + completed.ToString());
    return std::move(loaded).value();
  }();
  return spec;
}

const core::ModelSpec& Rank3Spec() {
  static const core::ModelSpec spec = [] {
    core::ModelSpec s;
    s.input_name = "x";
    s.output_name = "y";
    s.input_shape = {-1, 2, 3};
    s.input_features = 6;
    s.output_features = 2;
    s.fixed_batch_size = 3;
    core::DenseLayer layer;
    layer.name = "gemm";
    layer.in_features = 6;
    layer.out_features = 2;
    layer.weights.assign(12, 0.25f);
    layer.bias.assign(2, 0.0f);
    layer.activations.push_back(core::Activation::Selu());
    s.layers.push_back(std::move(layer));
    const core::Status completed = core::CompleteModelSpec(s);
    FUZZ_CHECK(completed.ok(), "the rank-3 spec does not complete: " + completed.ToString());
    return s;
  }();
  return spec;
}

const core::ModelSpec& TwoPortSpec() {
  static const core::ModelSpec spec = [] {
    core::ModelSpec s;
    s.tensors = {{"a", 2}, {"b", 6}, {"ab", 8}, {"h", 4}, {"s", 1}};
    core::DenseLayer layer;
    layer.name = "dense";
    layer.in_features = 8;
    layer.out_features = 4;
    layer.weights.assign(32, 0.125f);
    layer.bias.assign(4, 0.0f);
    s.layers.push_back(std::move(layer));
    core::GraphStep concat;
    concat.kind = core::StepKind::kConcat;
    concat.inputs = {0, 1};
    concat.output = 2;
    core::GraphStep dense;
    dense.kind = core::StepKind::kDense;
    dense.inputs = {2};
    dense.output = 3;
    dense.layer = 0;
    core::GraphStep slice;
    slice.kind = core::StepKind::kSlice;
    slice.inputs = {3};
    slice.output = 4;
    slice.offset = 1;
    s.steps = {concat, dense, slice};
    s.inputs = {{"a", {-1, 2}, 2, 0, 0}, {"b", {-1, 2, 3}, 6, 0, 1}};
    s.outputs = {{"h", {-1, 2, 2}, 4, 0, 3}, {"s", {-1, 1}, 1, 0, 4}};
    s.fixed_batch_size = 4;
    const core::Status completed = core::CompleteModelSpec(s);
    FUZZ_CHECK(completed.ok(), "the two-port spec does not complete: " + completed.ToString());
    return s;
  }();
  return spec;
}

namespace {

void CheckActivations(const std::vector<core::Activation>& acts, int64_t features,
                      const std::string& where) {
  FUZZ_CHECK(acts.size() <= 8, where + " has more than 8 activations");
  for (const core::Activation& a : acts) {
    const std::string act = where + " " + std::string(core::ActivationName(a.kind));
    FUZZ_CHECK(std::isfinite(a.alpha) && std::isfinite(a.gamma) && std::isfinite(a.beta),
               act + " has a non-finite parameter");
    if (a.kind == core::ActivationKind::kClip) {
      FUZZ_CHECK(a.alpha <= a.beta, act + " has min above max");
    }
    if (core::IsPerFeature(a.kind)) {
      const bool shared = a.kind == core::ActivationKind::kPRelu && a.values.size() == 1;
      FUZZ_CHECK(shared || a.values.size() == static_cast<size_t>(features),
                 act + " has " + std::to_string(a.values.size()) + " values for " +
                     std::to_string(features) + " features");
    } else {
      FUZZ_CHECK(a.values.empty(), act + " has per-feature values");
    }
    for (float v : a.values) FUZZ_CHECK(std::isfinite(v), act + " has a non-finite value");
  }
}

void CheckPortShapes(const std::vector<core::TensorPort>& ports, int64_t packed,
                     const core::OnnxLoaderOptions& options, const char* what) {
  int64_t offset = 0;
  for (const core::TensorPort& p : ports) {
    const std::string where = std::string(what) + " '" + p.name.substr(0, 100) + "'";
    FUZZ_CHECK(!p.shape.empty() && p.shape[0] == -1,
               where + " shape must be [-1, dims...], has rank " + std::to_string(p.shape.size()));
    int64_t features = 1;
    for (size_t i = 1; i < p.shape.size(); ++i) {
      FUZZ_CHECK(p.shape[i] > 0,
                 where + " dim " + std::to_string(i) + " is " + std::to_string(p.shape[i]));
      features *= p.shape[i];
      FUZZ_CHECK(features <= options.max_features, where + " wider than max_features");
    }
    FUZZ_CHECK(features == p.features, where + " shape holds " + std::to_string(features) +
                                           " features, the port " + std::to_string(p.features));
    FUZZ_CHECK(p.offset == offset, where + " is not packed after the one before");
    offset += p.features;
  }
  FUZZ_CHECK(offset == packed, std::string(what) + "s pack " + std::to_string(offset) +
                                   " features, the spec says " + std::to_string(packed));
}

}  // namespace

void CheckSpecInvariants(const core::ModelSpec& spec, const core::OnnxLoaderOptions& options) {
  FUZZ_CHECK(!spec.layers.empty(), "a loaded model has no layer");
  FUZZ_CHECK(!spec.steps.empty(), "the loader returned a spec without steps");
  FUZZ_CHECK(!spec.softmax_output, "a graph spec sets the chain's softmax_output");
  FUZZ_CHECK(spec.fixed_batch_size >= 0, "negative fixed batch size");
  FUZZ_CHECK(!spec.inputs.empty() && !spec.outputs.empty(), "a spec without inputs or outputs");
  // A second completion accepts it and changes nothing.
  core::ModelSpec again = spec;
  const core::Status completed = core::CompleteModelSpec(again);
  FUZZ_CHECK(completed.ok(),
             "CompleteModelSpec refuses the loaded spec: " + completed.ToString().substr(0, 300));
  FUZZ_CHECK(again.input_features == spec.input_features &&
                 again.output_features == spec.output_features &&
                 again.input_shape == spec.input_shape && again.input_name == spec.input_name &&
                 again.output_name == spec.output_name,
             "completing the loaded spec again changes its chain view");
  CheckPortShapes(spec.inputs, spec.input_features, options, "input");
  CheckPortShapes(spec.outputs, spec.output_features, options, "output");
  FUZZ_CHECK(spec.input_shape == spec.inputs[0].shape, "input_shape is not the first input's");
  // Every layer is used, and layers come in order of first use.
  int next_layer = 0;
  for (const core::GraphStep& step : spec.steps) {
    FUZZ_CHECK(spec.tensors[static_cast<size_t>(step.output)].features <= options.max_features,
               "step '" + step.name.substr(0, 100) + "' is wider than max_features");
    if (step.kind == core::StepKind::kDense) {
      FUZZ_CHECK(step.layer <= next_layer, "layers are not in order of first use");
      if (step.layer == next_layer) ++next_layer;
    }
    if (step.kind == core::StepKind::kActivate) {
      CheckActivations(step.activations, spec.tensors[static_cast<size_t>(step.output)].features,
                       "step '" + step.name.substr(0, 100) + "'");
    }
  }
  FUZZ_CHECK(next_layer == static_cast<int>(spec.layers.size()), "a layer no step uses");
  for (size_t i = 0; i < spec.layers.size(); ++i) {
    const core::DenseLayer& layer = spec.layers[i];
    const std::string where = "layer " + std::to_string(i) + " '" + layer.name.substr(0, 100) + "'";
    FUZZ_CHECK(layer.in_features > 0 && layer.out_features > 0 &&
                   layer.out_features <= options.max_features,
               where + " is " + std::to_string(layer.in_features) + " -> " +
                   std::to_string(layer.out_features));
    FUZZ_CHECK(layer.weights.size() == static_cast<size_t>(layer.in_features * layer.out_features),
               where + " has " + std::to_string(layer.weights.size()) + " weights");
    FUZZ_CHECK(layer.bias.size() == static_cast<size_t>(layer.out_features),
               where + " has " + std::to_string(layer.bias.size()) + " biases");
    for (float w : layer.weights) FUZZ_CHECK(std::isfinite(w), where + " has a non-finite weight");
    for (float b : layer.bias) FUZZ_CHECK(std::isfinite(b), where + " has a non-finite bias");
    CheckActivations(layer.activations, layer.out_features, where);
  }
}

void CheckRefusal(const core::Status& status, std::initializer_list<core::StatusCode> allowed,
                  size_t max_message, const char* what) {
  bool code_allowed = false;
  for (core::StatusCode code : allowed) code_allowed = code_allowed || status.code() == code;
  FUZZ_CHECK(code_allowed, std::string(what) + " refused with an unexpected code: " +
                               status.ToString().substr(0, 2000));
  FUZZ_CHECK(!status.message().empty(), std::string(what) + " refused with an empty message");
  FUZZ_CHECK(status.message().size() <= max_message,
             std::string(what) + " refused with a message of " +
                 std::to_string(status.message().size()) + " bytes (limit " +
                 std::to_string(max_message) + "): " + status.message().substr(0, 300) + "...");
}

}  // namespace selu::fuzz
