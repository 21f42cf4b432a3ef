#include "tests/fuzz/fuzz_support.h"

#include <google/protobuf/stubs/logging.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>

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
    return s;
  }();
  return spec;
}

void CheckSpecInvariants(const core::ModelSpec& spec, const core::OnnxLoaderOptions& options) {
  FUZZ_CHECK(!spec.layers.empty(), "a loaded model has no layer");
  FUZZ_CHECK(
      spec.input_shape.size() >= 2 && spec.input_shape[0] == -1,
      "input_shape must be [-1, dims...], has rank " + std::to_string(spec.input_shape.size()));
  int64_t features = 1;
  for (size_t i = 1; i < spec.input_shape.size(); ++i) {
    FUZZ_CHECK(spec.input_shape[i] > 0,
               "input dim " + std::to_string(i) + " is " + std::to_string(spec.input_shape[i]));
    features *= spec.input_shape[i];
    FUZZ_CHECK(features <= options.max_features, "input wider than max_features");
  }
  FUZZ_CHECK(features == spec.input_features, "input_shape holds " + std::to_string(features) +
                                                  " features, input_features is " +
                                                  std::to_string(spec.input_features));
  FUZZ_CHECK(spec.fixed_batch_size >= 0, "negative fixed batch size");
  FUZZ_CHECK(spec.layers.front().in_features == spec.input_features, "first layer width");
  FUZZ_CHECK(spec.layers.back().out_features == spec.output_features, "last layer width");
  for (size_t i = 0; i < spec.layers.size(); ++i) {
    const core::DenseLayer& layer = spec.layers[i];
    const std::string where = "layer " + std::to_string(i) + " '" + layer.name + "'";
    FUZZ_CHECK(layer.in_features > 0 && layer.out_features > 0 &&
                   layer.out_features <= options.max_features,
               where + " is " + std::to_string(layer.in_features) + " -> " +
                   std::to_string(layer.out_features));
    if (i > 0) {
      FUZZ_CHECK(spec.layers[i - 1].out_features == layer.in_features,
                 where + " does not take the previous layer's width");
    }
    FUZZ_CHECK(layer.weights.size() == static_cast<size_t>(layer.in_features * layer.out_features),
               where + " has " + std::to_string(layer.weights.size()) + " weights");
    FUZZ_CHECK(layer.bias.size() == static_cast<size_t>(layer.out_features),
               where + " has " + std::to_string(layer.bias.size()) + " biases");
    for (float w : layer.weights) FUZZ_CHECK(std::isfinite(w), where + " has a non-finite weight");
    for (float b : layer.bias) FUZZ_CHECK(std::isfinite(b), where + " has a non-finite bias");
    FUZZ_CHECK(layer.activations.size() <= 8, where + " has more than 8 activations");
    for (const core::Activation& a : layer.activations) {
      const std::string act = where + " " + std::string(core::ActivationName(a.kind));
      FUZZ_CHECK(std::isfinite(a.alpha) && std::isfinite(a.gamma) && std::isfinite(a.beta),
                 act + " has a non-finite parameter");
      if (a.kind == core::ActivationKind::kClip) {
        FUZZ_CHECK(a.alpha <= a.beta, act + " has min above max");
      }
      if (core::IsPerFeature(a.kind)) {
        const bool shared = a.kind == core::ActivationKind::kPRelu && a.values.size() == 1;
        FUZZ_CHECK(shared || a.values.size() == static_cast<size_t>(layer.out_features),
                   act + " has " + std::to_string(a.values.size()) + " values for " +
                       std::to_string(layer.out_features) + " features");
      } else {
        FUZZ_CHECK(a.values.empty(), act + " has per-feature values");
      }
      for (float v : a.values) FUZZ_CHECK(std::isfinite(v), act + " has a non-finite value");
    }
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
