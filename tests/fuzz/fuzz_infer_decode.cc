// libFuzzer target: ModelInfer request bytes ->
// inference::ModelInferRequest::ParseFromArray -> what the ModelInfer handler
// does with it (InferCall::Start in server/grpc/inference_service.cc):
// DecodeInferInput, then PrepareInferResponse (and FinishInferResponse),
// against the bundled model (rank-2 input, max batch 64), the rank-3 spec
// (max batch 3) and the two-input, two-output spec (max batch 4).
// Invariants:
// - decoded: 1 <= rows <= max batch; the request holds each of the model's
//   inputs exactly once, with rows = shape[0] and a shape holding exactly
//   the input's features; every one of rows x input_features packed values
//   is readable, finite and equal to an independent decoding of the request
//   (raw entries going, in order, to the inputs without contents); a
//   one-input model's FP32 data is used in place (raw or typed), other types
//   are converted.
// - refused: INVALID_ARGUMENT with a message short enough for gRPC.
// - the response has the requested outputs (all, in model order, when none
//   is named), each FP32 [rows, <its dims>] with a buffer (raw or typed, raw
//   when any input came raw) of rows x its features values, holding its
//   columns of the packed answer; it is refused exactly when the request
//   names an output the model lacks (or, with several outputs, one twice).
// - classification: an output whose "classification" parameter is an
//   int64_param or uint64_param k >= 1 comes back BYTES [rows, min(k,
//   features)] holding, per row, its best classes' "<score>:<index>" strings
//   (std::to_string of the score), best first; any other value of the
//   parameter, or a classified output of a one-output model named twice, is
//   refused.
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "proto/grpc_service.pb.h"
#include "server/grpc/infer_codec.h"
#include "tests/fuzz/fuzz_support.h"

namespace {

using selu::core::ModelSpec;
using selu::core::StatusCode;
using selu::grpc_transport::DecodedInput;
using selu::grpc_transport::PreparedOutputs;

// IEEE binary16 -> float by arithmetic, independent of the bit twiddling in
// infer_codec.cc.
float ReferenceHalf(uint16_t h) {
  const int exponent = (h >> 10) & 0x1f;
  const int mantissa = h & 0x3ff;
  const float sign = (h & 0x8000) ? -1.0f : 1.0f;
  if (exponent == 0x1f) return mantissa ? NAN : sign * INFINITY;
  if (exponent == 0) return sign * std::ldexp(static_cast<float>(mantissa), -24);
  return sign * std::ldexp(static_cast<float>(1024 + mantissa), exponent - 25);
}

// A request input and its raw_input_contents entry (-1: typed contents).
struct Located {
  int index = -1;
  int raw = -1;
  int count = 0;  // inputs of that name
};

Located Locate(const inference::ModelInferRequest& request, const std::string& name) {
  Located at;
  int untyped = 0;
  for (int i = 0; i < request.inputs_size(); ++i) {
    const auto& input = request.inputs(i);
    const bool typed = input.has_contents() && input.contents().ByteSizeLong() > 0;
    if (input.name() == name) {
      ++at.count;
      if (at.index < 0) {
        at.index = i;
        at.raw = request.raw_input_contents_size() > 0 && !typed ? untyped : -1;
      }
    }
    if (!typed) ++untyped;
  }
  return at;
}

// The value at `i` of the located input as the request carries it, decoded
// here from scratch.
float ExpectedValue(const inference::ModelInferRequest& request, const Located& at, int64_t i) {
  const auto& input = request.inputs(at.index);
  const std::string& type = input.datatype();
  if (at.raw < 0) {
    return type == "FP32" ? input.contents().fp32_contents(static_cast<int>(i))
                          : static_cast<float>(input.contents().fp64_contents(static_cast<int>(i)));
  }
  const char* raw = request.raw_input_contents(at.raw).data();
  if (type == "FP32") {
    float v;
    std::memcpy(&v, raw + 4 * i, 4);
    return v;
  }
  if (type == "FP64") {
    double v;
    std::memcpy(&v, raw + 8 * i, 8);
    return static_cast<float>(v);
  }
  uint16_t v;
  std::memcpy(&v, raw + 2 * i, 2);
  if (type == "FP16") return ReferenceHalf(v);
  uint32_t bits = uint32_t{v} << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

// One input of `features` floats per row, at `offset` in packed rows of
// `stride` floats.
void CheckInputDecoded(const inference::ModelInferRequest& request, const std::string& name,
                       int64_t features, int64_t offset, int64_t stride, const DecodedInput& in) {
  const Located at = Locate(request, name);
  FUZZ_CHECK(at.count == 1,
             "decoded a request with input " + name + " " + std::to_string(at.count) + " times");
  const auto& input = request.inputs(at.index);
  FUZZ_CHECK(input.shape_size() >= 2 && input.shape(0) == in.rows, "rows is not shape[0]");
  int64_t held = 1;
  for (int d = 1; d < input.shape_size(); ++d) {
    FUZZ_CHECK(input.shape(d) > 0, "decoded a shape with a dim <= 0");
    held *= input.shape(d);
    FUZZ_CHECK(held <= features, "decoded a shape wider than the input");
  }
  FUZZ_CHECK(held == features, "the shape holds " + std::to_string(held) +
                                   " features, the input takes " + std::to_string(features));
  const int64_t count = in.rows * features;
  const bool fp32 = input.datatype() == "FP32";
  if (at.raw >= 0) {
    const std::string& raw = request.raw_input_contents(at.raw);
    const int64_t element = input.datatype() == "FP64" ? 8 : fp32 ? 4 : 2;
    FUZZ_CHECK(static_cast<int64_t>(raw.size()) == count * element,
               "raw_input_contents holds " + std::to_string(raw.size()) + " bytes for " +
                   std::to_string(count) + " values");
  } else {
    FUZZ_CHECK(fp32 || input.datatype() == "FP64", "typed contents of " + input.datatype());
    const int n =
        fp32 ? input.contents().fp32_contents_size() : input.contents().fp64_contents_size();
    FUZZ_CHECK(n == count,
               "contents hold " + std::to_string(n) + " values for " + std::to_string(count));
  }
  for (int64_t i = 0; i < count; ++i) {
    const float got = in.data[(i / features) * stride + offset + i % features];
    const float want = ExpectedValue(request, at, i);
    FUZZ_CHECK(std::isfinite(got), "a non-finite value was accepted at " + std::to_string(i));
    FUZZ_CHECK(std::memcmp(&got, &want, sizeof got) == 0,
               name + " value " + std::to_string(i) + " decoded as " + std::to_string(got) +
                   ", the request holds " + std::to_string(want));
  }
}

void CheckDecoded(const inference::ModelInferRequest& request, const ModelSpec& spec,
                  int64_t max_batch, const DecodedInput& in) {
  const size_t inputs = spec.inputs.size();
  FUZZ_CHECK(request.inputs_size() == static_cast<int>(inputs),
             "decoded a request with " + std::to_string(request.inputs_size()) + " inputs");
  FUZZ_CHECK(in.rows >= 1 && in.rows <= max_batch, "rows " + std::to_string(in.rows));
  FUZZ_CHECK(in.data != nullptr, "no data");
  FUZZ_CHECK(in.raw == (request.raw_input_contents_size() > 0), "raw flag");
  for (const auto& port : spec.inputs) {
    CheckInputDecoded(request, port.name, port.features, port.offset, spec.input_features, in);
  }
  const auto& input = request.inputs(0);
  if (inputs == 1 && input.datatype() == "FP32") {
    const void* in_place = in.raw ? static_cast<const void*>(request.raw_input_contents(0).data())
                                  : input.contents().fp32_contents().data();
    FUZZ_CHECK(in.data == in_place, "FP32 rows of a one-input model copied");
  } else {
    FUZZ_CHECK(in.converted.size() == static_cast<size_t>(in.rows * spec.input_features) &&
                   in.data == in.converted.data(),
               "converted data of the wrong size");
  }
}

// The classes a requested output's "classification" parameter asks for: 0
// for none, -1 for a value to refuse.
int64_t ExpectedClasses(const inference::ModelInferRequest::InferRequestedOutputTensor& wanted) {
  const auto it = wanted.parameters().find("classification");
  if (it == wanted.parameters().end()) return 0;
  if (it->second.has_int64_param())
    return it->second.int64_param() >= 1 ? it->second.int64_param() : -1;
  if (it->second.has_uint64_param()) {
    const uint64_t k = it->second.uint64_param();
    return k >= 1 ? static_cast<int64_t>(std::min<uint64_t>(k, INT64_MAX)) : -1;
  }
  return -1;
}

// Response output `i`, classified: per row, the best `classes` columns of
// the packed answer (values 0, 1, 2, ... so the highest columns win).
void CheckClassified(const inference::ModelInferResponse& response, int i,
                     const selu::core::TensorPort& port, int64_t classes, int64_t stride,
                     const DecodedInput& in) {
  const auto& output = response.outputs(i);
  const int64_t k = std::min(classes, port.features);
  FUZZ_CHECK(output.name() == port.name && output.datatype() == "BYTES" &&
                 output.shape_size() == 2 && output.shape(0) == in.rows && output.shape(1) == k,
             "classified output " + std::to_string(i) + " metadata");
  std::vector<std::string> strings;
  if (in.raw) {
    const std::string& bytes = response.raw_output_contents(i);
    size_t at = 0;
    while (at + 4 <= bytes.size()) {
      uint32_t size = 0;
      for (int b = 3; b >= 0; --b) size = size << 8 | static_cast<uint8_t>(bytes[at + b]);
      at += 4;
      FUZZ_CHECK(at + size <= bytes.size(), "raw BYTES element overruns its entry");
      strings.emplace_back(bytes.substr(at, size));
      at += size;
    }
    FUZZ_CHECK(at == bytes.size(), "raw BYTES entry has trailing bytes");
  } else {
    strings.assign(output.contents().bytes_contents().begin(),
                   output.contents().bytes_contents().end());
  }
  FUZZ_CHECK(static_cast<int64_t>(strings.size()) == in.rows * k, "classified output size");
  for (int64_t r = 0; r < in.rows; ++r) {
    for (int64_t c = 0; c < k; ++c) {
      const int64_t column = port.features - 1 - c;
      const float score = static_cast<float>(r * stride + port.offset + column);
      FUZZ_CHECK(strings[static_cast<size_t>(r * k + c)] ==
                     std::to_string(score) + ":" + std::to_string(column),
                 "classified output " + port.name + " row " + std::to_string(r) + " class " +
                     std::to_string(c));
    }
  }
}

void CheckResponse(const inference::ModelInferRequest& request, const ModelSpec& spec,
                   const DecodedInput& in) {
  // The outputs the response must hold, or a refusal.
  std::vector<size_t> expected;
  std::vector<int64_t> classes;  // per response output: its classification
  bool refusable = false;
  for (const auto& wanted : request.outputs()) {
    const int64_t asked = ExpectedClasses(wanted);
    refusable |= asked < 0;
    classes.push_back(asked);
    size_t k = 0;
    while (k < spec.outputs.size() && spec.outputs[k].name != wanted.name()) ++k;
    if (k == spec.outputs.size()) {
      refusable = true;
    } else if (spec.outputs.size() > 1) {
      for (size_t taken : expected) refusable |= taken == k;
      expected.push_back(k);
    }
  }
  const bool classified =
      std::any_of(classes.begin(), classes.end(), [](int64_t k) { return k > 0; });
  if (spec.outputs.size() == 1 && classified && request.outputs_size() > 1) refusable = true;
  if (spec.outputs.size() == 1 || request.outputs().empty()) {
    expected.clear();
    for (size_t k = 0; k < spec.outputs.size(); ++k) expected.push_back(k);
    classes.resize(expected.size());
  }
  inference::ModelInferResponse response;
  PreparedOutputs prepared;
  auto out = selu::grpc_transport::PrepareInferResponse(request, spec, "1", in.rows, in.raw,
                                                        &response, &prepared);
  if (!out.ok()) {
    FUZZ_CHECK(refusable, "the response was refused: " + out.status().ToString());
    selu::fuzz::CheckRefusal(out.status(), {StatusCode::kInvalidArgument},
                             selu::fuzz::kMaxClientMessageBytes, "PrepareInferResponse");
    return;
  }
  FUZZ_CHECK(!refusable, "an unknown or repeated output was accepted");
  FUZZ_CHECK(response.outputs_size() == static_cast<int>(expected.size()), "outputs");
  FUZZ_CHECK(response.raw_output_contents_size() == (in.raw ? response.outputs_size() : 0),
             "raw outputs");
  FUZZ_CHECK((spec.outputs.size() == 1 && !classified) == prepared.packed.empty(), "staged answer");
  // The engine writes every value: ASan checks the buffer holds them.
  const int64_t stride = spec.output_features;
  for (int64_t i = 0; i < in.rows * stride; ++i) (*out)[i] = static_cast<float>(i);
  selu::grpc_transport::FinishInferResponse(spec, selu::core::ClassLabels(), prepared, &response);
  for (size_t i = 0; i < expected.size(); ++i) {
    const auto& port = spec.outputs[expected[i]];
    if (classes[i] > 0) {
      CheckClassified(response, static_cast<int>(i), port, classes[i], stride, in);
      continue;
    }
    const auto& output = response.outputs(static_cast<int>(i));
    bool shape = output.name() == port.name && output.datatype() == "FP32" &&
                 output.shape_size() == static_cast<int>(port.shape.size()) &&
                 output.shape(0) == in.rows;
    for (size_t d = 1; shape && d < port.shape.size(); ++d) {
      shape = output.shape(static_cast<int>(d)) == port.shape[d];
    }
    FUZZ_CHECK(shape, "output " + std::to_string(i) + " metadata");
    const int64_t count = in.rows * port.features;
    const float* values = nullptr;
    if (in.raw) {
      const std::string& bytes = response.raw_output_contents(static_cast<int>(i));
      FUZZ_CHECK(static_cast<int64_t>(bytes.size()) == count * 4, "raw output size");
      values = reinterpret_cast<const float*>(bytes.data());
    } else {
      FUZZ_CHECK(output.contents().fp32_contents_size() == count, "typed output size");
      values = output.contents().fp32_contents().data();
    }
    for (int64_t v = 0; v < count; ++v) {
      const int64_t packed = (v / port.features) * stride + port.offset + v % port.features;
      FUZZ_CHECK(values[v] == static_cast<float>(packed),
                 "output " + port.name + " value " + std::to_string(v) + " misplaced");
    }
  }
}

void CheckAgainst(const inference::ModelInferRequest& request, const ModelSpec& spec,
                  int64_t max_batch) {
  DecodedInput in;
  const selu::core::Status status =
      selu::grpc_transport::DecodeInferInput(request, spec, max_batch, &in);
  FUZZ_NOTE(spec.input_name + ": " + status.ToString().substr(0, 300));
  if (!status.ok()) {
    selu::fuzz::CheckRefusal(status, {StatusCode::kInvalidArgument},
                             selu::fuzz::kMaxClientMessageBytes, "DecodeInferInput");
    return;
  }
  CheckDecoded(request, spec, max_batch, in);
  CheckResponse(request, spec, in);
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  selu::fuzz::QuietProtobuf();
  selu::fuzz::DigitsSpec();
  selu::fuzz::TwoPortSpec();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  inference::ModelInferRequest request;
  if (size > static_cast<size_t>(INT32_MAX) ||
      !request.ParseFromArray(data, static_cast<int>(size))) {
    return 0;
  }
  CheckAgainst(request, selu::fuzz::DigitsSpec(), 64);
  CheckAgainst(request, selu::fuzz::Rank3Spec(), selu::fuzz::Rank3Spec().fixed_batch_size);
  CheckAgainst(request, selu::fuzz::TwoPortSpec(), selu::fuzz::TwoPortSpec().fixed_batch_size);
  return 0;
}
