// libFuzzer target: ONNX model bytes -> core::LoadOnnxModelFromBytes.
//
// Each input is loaded with the ONNX checker on (what the server does) and
// off (so the graph reader also sees what the checker would have refused:
// it promises never to crash on hostile input by itself). Invariants:
// - OK: the spec is a well-formed graph (CheckSpecInvariants: among others,
//   CompleteModelSpec accepts it unchanged; it need not be a chain); the
//   checker only ever refuses more, so OK with the checker means OK and the
//   same spec (graph and layers) without.
// - refused: INVALID_ARGUMENT (RESOURCE_EXHAUSTED for the size limit), never
//   INTERNAL (an exception escaping the graph reader), with a message.
// - a size limit below the input's size is RESOURCE_EXHAUSTED.
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include "server/core/model/onnx_model_loader.h"
#include "tests/fuzz/fuzz_support.h"

namespace {

using selu::core::ModelSpec;
using selu::core::OnnxLoaderOptions;
using selu::core::StatusCode;

// Model files are the operator's, but their names reach messages; this only
// catches runaway messages, not long names.
constexpr size_t kMaxLoaderMessage = size_t{1} << 20;

bool SamePorts(const std::vector<selu::core::TensorPort>& a,
               const std::vector<selu::core::TensorPort>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (a[i].name != b[i].name || a[i].shape != b[i].shape || a[i].features != b[i].features ||
        a[i].offset != b[i].offset || a[i].tensor != b[i].tensor) {
      return false;
    }
  }
  return true;
}

bool SameSpec(const ModelSpec& a, const ModelSpec& b) {
  if (a.input_name != b.input_name || a.output_name != b.output_name ||
      a.input_features != b.input_features || a.output_features != b.output_features ||
      a.input_shape != b.input_shape || a.fixed_batch_size != b.fixed_batch_size ||
      a.softmax_output != b.softmax_output || a.metadata != b.metadata ||
      a.layers.size() != b.layers.size() || a.steps.size() != b.steps.size() ||
      a.tensors.size() != b.tensors.size() || !SamePorts(a.inputs, b.inputs) ||
      !SamePorts(a.outputs, b.outputs)) {
    return false;
  }
  for (size_t i = 0; i < a.layers.size(); ++i) {
    const auto& x = a.layers[i];
    const auto& y = b.layers[i];
    if (x.name != y.name || x.in_features != y.in_features || x.out_features != y.out_features ||
        x.weights != y.weights || x.bias != y.bias || x.activations != y.activations) {
      return false;
    }
  }
  for (size_t i = 0; i < a.steps.size(); ++i) {
    const auto& x = a.steps[i];
    const auto& y = b.steps[i];
    if (x.kind != y.kind || x.name != y.name || x.inputs != y.inputs || x.output != y.output ||
        x.layer != y.layer || x.offset != y.offset || x.activations != y.activations) {
      return false;
    }
  }
  for (size_t i = 0; i < a.tensors.size(); ++i) {
    if (a.tensors[i].name != b.tensors[i].name || a.tensors[i].features != b.tensors[i].features) {
      return false;
    }
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  selu::fuzz::QuietProtobuf();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);

  OnnxLoaderOptions checked;
  OnnxLoaderOptions unchecked;
  unchecked.run_onnx_checker = false;
  auto with_checker = selu::core::LoadOnnxModelFromBytes(bytes, checked);
  auto without_checker = selu::core::LoadOnnxModelFromBytes(bytes, unchecked);

  FUZZ_NOTE("checker: " + with_checker.status().ToString().substr(0, 300) +
            "\nno checker: " + without_checker.status().ToString().substr(0, 300));
  if (without_checker.ok()) {
    selu::fuzz::CheckSpecInvariants(*without_checker, unchecked);
  } else {
    selu::fuzz::CheckRefusal(without_checker.status(),
                             {StatusCode::kInvalidArgument, StatusCode::kResourceExhausted},
                             kMaxLoaderMessage, "the loader (no checker)");
  }
  if (with_checker.ok()) {
    selu::fuzz::CheckSpecInvariants(*with_checker, checked);
    FUZZ_CHECK(without_checker.ok(), "the checker accepted what the graph reader refused: " +
                                         without_checker.status().ToString());
    FUZZ_CHECK(SameSpec(*with_checker, *without_checker),
               "the spec differs with and without the checker");
  } else {
    selu::fuzz::CheckRefusal(with_checker.status(),
                             {StatusCode::kInvalidArgument, StatusCode::kResourceExhausted},
                             kMaxLoaderMessage, "the loader");
  }

  if (size > 0) {
    OnnxLoaderOptions small = unchecked;
    small.max_file_bytes = static_cast<int64_t>(size) - 1;
    auto refused = selu::core::LoadOnnxModelFromBytes(bytes, small);
    FUZZ_CHECK(
        !refused.ok() && refused.status().code() == StatusCode::kResourceExhausted,
        "a file over max_file_bytes was not RESOURCE_EXHAUSTED: " + refused.status().ToString());
  }
  return 0;
}
