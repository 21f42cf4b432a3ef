// libFuzzer target: ModelInfer request bytes ->
// inference::ModelInferRequest::ParseFromArray -> what the ModelInfer handler
// does with it (InferCall::Start in server/grpc/inference_service.cc):
// DecodeInferInput, then PrepareInferResponse, against the bundled model
// (rank-2 input, max batch 64) and the rank-3 spec (max batch 3).
// Invariants:
// - decoded: 1 <= rows <= max batch, rows = shape[0], the shape holds
//   exactly the model's features, every one of rows x features values is
//   readable, finite and equal to an independent decoding of the request;
//   FP32 data is used in place (raw or typed), other types are converted.
// - refused: INVALID_ARGUMENT with a message short enough for gRPC.
// - the response has one FP32 output [rows, output_features] whose buffer
//   (raw or typed, as the input came) takes rows x output_features values;
//   it is refused exactly when the request asks for another output name.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>

#include "proto/grpc_service.pb.h"
#include "server/grpc/infer_codec.h"
#include "tests/fuzz/fuzz_support.h"

namespace {

using selu::core::ModelSpec;
using selu::core::StatusCode;
using selu::grpc_transport::DecodedInput;

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

// The value at `i` as the request carries it, decoded here from scratch.
float ExpectedValue(const inference::ModelInferRequest& request, int64_t i) {
  const auto& input = request.inputs(0);
  const std::string& type = input.datatype();
  if (request.raw_input_contents_size() == 0) {
    return type == "FP32" ? input.contents().fp32_contents(static_cast<int>(i))
                          : static_cast<float>(input.contents().fp64_contents(static_cast<int>(i)));
  }
  const char* raw = request.raw_input_contents(0).data();
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

void CheckDecoded(const inference::ModelInferRequest& request, const ModelSpec& spec,
                  int64_t max_batch, const DecodedInput& in) {
  FUZZ_CHECK(request.inputs_size() == 1,
             "decoded a request with " + std::to_string(request.inputs_size()) + " inputs");
  const auto& input = request.inputs(0);
  FUZZ_CHECK(input.name() == spec.input_name, "decoded an input of another name");
  FUZZ_CHECK(in.rows >= 1 && in.rows <= max_batch, "rows " + std::to_string(in.rows));
  FUZZ_CHECK(input.shape_size() >= 2 && input.shape(0) == in.rows, "rows is not shape[0]");
  int64_t features = 1;
  for (int d = 1; d < input.shape_size(); ++d) {
    FUZZ_CHECK(input.shape(d) > 0, "decoded a shape with a dim <= 0");
    features *= input.shape(d);
    FUZZ_CHECK(features <= spec.input_features, "decoded a shape wider than the model");
  }
  FUZZ_CHECK(features == spec.input_features, "the shape holds " + std::to_string(features) +
                                                  " features, the model takes " +
                                                  std::to_string(spec.input_features));
  FUZZ_CHECK(in.data != nullptr, "no data");
  FUZZ_CHECK(in.raw == (request.raw_input_contents_size() > 0), "raw flag");
  const int64_t count = in.rows * spec.input_features;
  const bool fp32 = input.datatype() == "FP32";
  if (in.raw) {
    const std::string& raw = request.raw_input_contents(0);
    const int64_t element = input.datatype() == "FP64" ? 8 : fp32 ? 4 : 2;
    FUZZ_CHECK(static_cast<int64_t>(raw.size()) == count * element,
               "raw_input_contents holds " + std::to_string(raw.size()) + " bytes for " +
                   std::to_string(count) + " values");
    if (fp32) FUZZ_CHECK(in.data == reinterpret_cast<const float*>(raw.data()), "raw FP32 copied");
  } else {
    FUZZ_CHECK(fp32 || input.datatype() == "FP64", "typed contents of " + input.datatype());
    const int n =
        fp32 ? input.contents().fp32_contents_size() : input.contents().fp64_contents_size();
    FUZZ_CHECK(n == count,
               "contents hold " + std::to_string(n) + " values for " + std::to_string(count));
    if (fp32) FUZZ_CHECK(in.data == input.contents().fp32_contents().data(), "typed FP32 copied");
  }
  if (!fp32) {
    FUZZ_CHECK(in.converted.size() == static_cast<size_t>(count) && in.data == in.converted.data(),
               "converted data of the wrong size");
  }
  for (int64_t i = 0; i < count; ++i) {
    const float got = in.data[i];
    const float want = ExpectedValue(request, i);
    FUZZ_CHECK(std::isfinite(got), "a non-finite value was accepted at " + std::to_string(i));
    FUZZ_CHECK(std::memcmp(&got, &want, sizeof got) == 0,
               "value " + std::to_string(i) + " decoded as " + std::to_string(got) +
                   ", the request holds " + std::to_string(want));
  }
}

void CheckResponse(const inference::ModelInferRequest& request, const ModelSpec& spec,
                   const DecodedInput& in) {
  bool other_output = false;
  for (const auto& wanted : request.outputs()) other_output |= wanted.name() != spec.output_name;
  inference::ModelInferResponse response;
  auto out =
      selu::grpc_transport::PrepareInferResponse(request, spec, "1", in.rows, in.raw, &response);
  if (!out.ok()) {
    FUZZ_CHECK(other_output, "the response was refused: " + out.status().ToString());
    selu::fuzz::CheckRefusal(out.status(), {StatusCode::kInvalidArgument},
                             selu::fuzz::kMaxClientMessageBytes, "PrepareInferResponse");
    return;
  }
  FUZZ_CHECK(!other_output, "an unknown output name was accepted");
  FUZZ_CHECK(response.outputs_size() == 1, "outputs");
  const auto& output = response.outputs(0);
  FUZZ_CHECK(output.name() == spec.output_name && output.datatype() == "FP32" &&
                 output.shape_size() == 2 && output.shape(0) == in.rows &&
                 output.shape(1) == spec.output_features,
             "output metadata");
  const int64_t count = in.rows * spec.output_features;
  if (in.raw) {
    FUZZ_CHECK(response.raw_output_contents_size() == 1 &&
                   static_cast<int64_t>(response.raw_output_contents(0).size()) == count * 4,
               "raw output size");
  } else {
    FUZZ_CHECK(
        response.raw_output_contents_size() == 0 && output.contents().fp32_contents_size() == count,
        "typed output size");
  }
  // The engine writes every value: ASan checks the buffer holds them.
  for (int64_t i = 0; i < count; ++i) (*out)[i] = static_cast<float>(i);
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
  return 0;
}
