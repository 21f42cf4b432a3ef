// libFuzzer target: a REST inference body -> selu::http::ParseInferRequest
// (the JSON request, or Triton's binary tensor extension) -> the shared
// decoding of ModelInfer (DecodeInferInput against the bundled model), and
// RenderInferResponse of an answer made from the parsed request.
// The first input byte chooses the Inference-Header-Content-Length: 0 none;
// otherwise the rest's length minus (byte - 1) (so the binary section is
// 0..254 bytes), as a client using the extension sends it.
// Invariants:
// - refused: INVALID_ARGUMENT only, with a non-empty message;
// - parsed: each raw_input_contents entry is part of the body (their sizes
//   sum to at most its length), output_binary has one entry per requested
//   output, and the request goes through DecodeInferInput without a crash
//   (its answer is the gRPC path's business, fuzzed by fuzz_infer_decode);
// - rendered: the JSON part parses as a JSON object whose "outputs" has one
//   entry per output, and the binary part's length is the sum of the
//   binary_data_size parameters.
#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "server/grpc/infer_codec.h"
#include "server/http/rest_codec.h"
#include "tests/fuzz/fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::string_view all(reinterpret_cast<const char*>(data), size);
  const unsigned choice = static_cast<unsigned char>(all[0]);
  const std::string_view body = all.substr(1);
  std::optional<size_t> header_length;
  if (choice > 0) {
    const size_t binary = choice - 1;
    header_length = binary <= body.size() ? body.size() - binary : body.size() + binary;
  }
  selu::http::RestInferRequest request;
  const selu::core::Status status =
      selu::http::ParseInferRequest(body, header_length, "digits_snn", "", &request);
  if (!status.ok()) {
    FUZZ_CHECK(status.code() == selu::core::StatusCode::kInvalidArgument, status.ToString());
    FUZZ_CHECK(!status.message().empty(), "empty message");
    return 0;
  }
  size_t raw_bytes = 0;
  for (const std::string& raw : request.request.raw_input_contents()) raw_bytes += raw.size();
  // FP16/BF16 JSON data becomes raw bytes too: at most 2 per JSON value,
  // and each value takes at least 2 body bytes ("0,").
  FUZZ_CHECK(raw_bytes <= body.size(), "raw bytes beyond the body");
  FUZZ_CHECK(static_cast<int>(request.output_binary.size()) == request.request.outputs_size(),
             "output_binary size");

  selu::grpc_transport::DecodedInput decoded;
  (void)selu::grpc_transport::DecodeInferInput(request.request, selu::fuzz::DigitsSpec(), 64,
                                               &decoded);

  // An answer with one output per requested output (BYTES and FP32 in
  // turn), rendered.
  inference::ModelInferResponse response;
  response.set_model_name("digits_snn");
  response.set_model_version("1");
  response.set_id(request.request.id());
  size_t expected_binary = 0;
  for (int i = 0; i < request.request.outputs_size(); ++i) {
    auto* out = response.add_outputs();
    out->set_name(request.request.outputs(i).name());
    out->add_shape(1);
    if (i % 2 == 0) {
      out->set_datatype("FP32");
      out->add_shape(2);
      out->mutable_contents()->add_fp32_contents(0.5f);
      out->mutable_contents()->add_fp32_contents(-1e-7f);
    } else {
      out->set_datatype("BYTES");
      out->add_shape(1);
      out->mutable_contents()->add_bytes_contents(request.request.id());
    }
  }
  std::string rendered;
  size_t json_length = 0;
  const selu::core::Status render =
      selu::http::RenderInferResponse(request, response, &rendered, &json_length);
  FUZZ_CHECK(render.ok(), render.ToString());
  FUZZ_CHECK(json_length <= rendered.size(), "json length beyond the body");
  nlohmann::json doc;
  try {
    doc = nlohmann::json::parse(rendered.begin(), rendered.begin() + json_length);
  } catch (const nlohmann::json::exception& e) {
    FUZZ_CHECK(false, std::string("rendered JSON does not parse: ") + e.what());
  }
  FUZZ_CHECK(doc.is_object() && doc["outputs"].size() == response.outputs().size(),
             "outputs count");
  for (const auto& out : doc["outputs"]) {
    if (out.contains("parameters"))
      expected_binary += out["parameters"]["binary_data_size"].get<size_t>();
  }
  FUZZ_CHECK(rendered.size() - json_length == expected_binary, "binary section length");
  return 0;
}
