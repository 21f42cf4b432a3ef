// The REST binding's pieces that need no server: body parsing and rendering
// (rest_codec.h), routes (rest_routes.h), the status table (http_status.h)
// and the protobuf-to-JSON conversion (proto_json.h).
#include "server/http/rest_codec.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <nlohmann/json.hpp>

#include "server/grpc/infer_codec.h"
#include "server/http/http_status.h"
#include "server/http/proto_json.h"
#include "server/http/rest_routes.h"

namespace selu::http {
namespace {

RestInferRequest Parse(std::string_view body, std::optional<size_t> header = std::nullopt) {
  RestInferRequest out;
  const core::Status s = ParseInferRequest(body, header, "m", "2", &out);
  EXPECT_TRUE(s.ok()) << s.ToString();
  return out;
}

core::Status Refusal(std::string_view body, std::optional<size_t> header = std::nullopt) {
  RestInferRequest out;
  return ParseInferRequest(body, header, "m", "", &out);
}

TEST(RestCodecTest, HalfAndBfloat16RoundTripEveryFiniteValue) {
  for (uint32_t h = 0; h < 0x10000; ++h) {
    const float f = grpc_transport::HalfToFloat(static_cast<uint16_t>(h));
    if (!std::isfinite(f)) continue;
    ASSERT_EQ(FloatToHalf(f), h) << std::hex << h;
  }
  for (uint32_t b = 0; b < 0x10000; ++b) {
    const float f = grpc_transport::Bfloat16ToFloat(static_cast<uint16_t>(b));
    if (!std::isfinite(f)) continue;
    ASSERT_EQ(FloatToBfloat16(f), b) << std::hex << b;
  }
}

TEST(RestCodecTest, HalfRoundsToNearestEvenAndOverflowsToInfinity) {
  EXPECT_EQ(FloatToHalf(1.0f + 1.0f / 2048), 0x3c00);  // tie: to even (1.0)
  EXPECT_EQ(FloatToHalf(1.0f + 3.0f / 2048), 0x3c02);  // tie: to even (up)
  EXPECT_EQ(FloatToHalf(65520.0f), 0x7c00);
  EXPECT_EQ(FloatToHalf(-1e-9f), 0x8000);
  EXPECT_EQ(FloatToHalf(std::ldexp(1.0f, -24)), 0x0001);  // smallest subnormal
}

TEST(RestCodecTest, NestedAndFlatDataGiveTheSameRequest) {
  const auto flat = Parse(R"({"inputs":[{"name":"x","datatype":"FP32","shape":[2,2],
                              "data":[1,2.5,-3,4]}]})");
  const auto nested = Parse(R"({"inputs":[{"name":"x","datatype":"FP32","shape":[2,2],
                                "data":[[1,2.5],[-3,4]]}]})");
  EXPECT_EQ(flat.request.SerializeAsString(), nested.request.SerializeAsString());
  EXPECT_EQ(flat.request.model_name(), "m");
  EXPECT_EQ(flat.request.model_version(), "2");
  ASSERT_EQ(flat.request.inputs(0).contents().fp32_contents_size(), 4);
  EXPECT_EQ(flat.request.inputs(0).contents().fp32_contents(1), 2.5f);
}

TEST(RestCodecTest, BinaryInputsBecomeRawContentsInInputOrder) {
  const float values[2] = {1.5f, -2.0f};
  std::string header =
      R"({"inputs":[{"name":"a","datatype":"FP32","shape":[1,2],"parameters":{"binary_data_size":8}},)"
      R"({"name":"b","datatype":"FP16","shape":[1,1],"data":[0.5]}],)"
      R"("outputs":[{"name":"y","parameters":{"binary_data":true,"classification":3}}],)"
      R"("parameters":{"binary_data_output":false,"priority":1}})";
  std::string body = header + std::string(reinterpret_cast<const char*>(values), 8);
  const auto r = Parse(body, header.size());
  ASSERT_EQ(r.request.raw_input_contents_size(), 2);
  EXPECT_EQ(r.request.raw_input_contents(0), std::string(reinterpret_cast<const char*>(values), 8));
  EXPECT_EQ(r.request.raw_input_contents(1), std::string("\x00\x38", 2));  // 0.5 in half
  EXPECT_FALSE(r.request.inputs(0).parameters().contains("binary_data_size"));
  ASSERT_EQ(r.output_binary.size(), 1u);
  EXPECT_EQ(r.output_binary[0], true);
  EXPECT_FALSE(r.request.outputs(0).parameters().contains("binary_data"));
  EXPECT_EQ(r.request.outputs(0).parameters().at("classification").int64_param(), 3);
  EXPECT_EQ(r.request.parameters().at("priority").int64_param(), 1);
  EXPECT_FALSE(r.request.parameters().contains("binary_data_output"));
}

TEST(RestCodecTest, MalformedBodiesAreInvalidArgumentsNamingTheProblem) {
  const std::pair<std::string, std::string> cases[] = {
      {"{", "malformed JSON"},
      {"[1]", "JSON object"},
      {R"({"inputs":{}})", "'inputs' array"},
      {R"({"inputs":[{"datatype":"FP32","shape":[1],"data":[1]}]})", "string 'name'"},
      {R"({"inputs":[{"name":"x","shape":[1],"data":[1]}]})", "'datatype'"},
      {R"({"inputs":[{"name":"x","datatype":"FP32","shape":[1.5],"data":[1]}]})", "integers"},
      {R"({"inputs":[{"name":"x","datatype":"FP32","shape":[1],"data":[true]}]})",
       "data element 0 is boolean, expected a number"},
      {R"({"inputs":[{"name":"x","datatype":"INT32","shape":[1],"data":[1.5]}]})", "an integer"},
      {R"({"inputs":[{"name":"x","datatype":"FP32","shape":[1],"data":[1],"parameters":{"p":[1]}}]})",
       "bool, a number or a string"},
      {R"({"id":3,"inputs":[]})", "'id' must be a string"},
      {std::string(100, '[') + std::string(100, ']'), "nests deeper"},
  };
  for (const auto& [body, fragment] : cases) {
    const core::Status s = Refusal(body);
    EXPECT_EQ(s.code(), core::StatusCode::kInvalidArgument) << body;
    EXPECT_NE(s.message().find(fragment), std::string::npos) << body << " -> " << s.message();
  }
  EXPECT_NE(Refusal(R"({"inputs":[]})", 99).message().find("exceeds the body"), std::string::npos);
  EXPECT_NE(Refusal(R"({"inputs":[]}xx)", 13).message().find("no input's"), std::string::npos);
}

TEST(RestCodecTest, RendersFloatsExactlyBytesAsStringsAndBinaryAfterTheJson) {
  RestInferRequest request = Parse(
      R"({"inputs":[],"outputs":[{"name":"p"},{"name":"c","parameters":{"binary_data":true}}]})");
  inference::ModelInferResponse response;
  response.set_model_name("m");
  response.set_model_version("1");
  auto* p = response.add_outputs();
  p->set_name("p");
  p->set_datatype("FP32");
  p->add_shape(1);
  p->add_shape(2);
  p->mutable_contents()->add_fp32_contents(0.1f);
  p->mutable_contents()->add_fp32_contents(-3e-20f);
  auto* c = response.add_outputs();
  c->set_name("c");
  c->set_datatype("BYTES");
  c->add_shape(1);
  c->mutable_contents()->add_bytes_contents("0.9:3:three");
  std::string body;
  size_t json_length = 0;
  ASSERT_TRUE(RenderInferResponse(request, response, &body, &json_length).ok());
  const auto doc = nlohmann::json::parse(body.substr(0, json_length));
  EXPECT_EQ(doc["outputs"][0]["data"][0].get<float>(), 0.1f);
  EXPECT_EQ(doc["outputs"][0]["data"][1].get<float>(), -3e-20f);
  EXPECT_EQ(body.substr(0, json_length).find("0.10000000149"), std::string::npos);
  EXPECT_EQ(doc["outputs"][1]["parameters"]["binary_data_size"], 15);
  EXPECT_EQ(body.substr(json_length), std::string("\x0b\0\0\0", 4) + "0.9:3:three");

  request.output_binary[1] = false;  // as JSON strings
  ASSERT_TRUE(RenderInferResponse(request, response, &body, &json_length).ok());
  EXPECT_EQ(json_length, body.size());
  EXPECT_EQ(nlohmann::json::parse(body)["outputs"][1]["data"][0], "0.9:3:three");
}

TEST(RestCodecTest, ErrorBodyEscapesAndReplacesInvalidUtf8) {
  const auto doc = nlohmann::json::parse(ErrorBody("bad \"x\"\n\xff"));
  EXPECT_EQ(doc["error"], "bad \"x\"\n\xEF\xBF\xBD");
}

TEST(RestRoutesTest, RoutesAndMethods) {
  EXPECT_EQ(RouteOf("/v2").endpoint, Endpoint::kServerMetadata);
  EXPECT_EQ(RouteOf("/v2/health/ready").endpoint, Endpoint::kHealthReady);
  const Route infer = RouteOf("/v2/models/digits/versions/3/infer");
  EXPECT_EQ(infer.endpoint, Endpoint::kModelInfer);
  EXPECT_EQ(infer.model, "digits");
  EXPECT_EQ(infer.version, "3");
  EXPECT_STREQ(infer.method, "POST");
  EXPECT_EQ(RouteOf("/v2/models/stats").endpoint, Endpoint::kModelStatistics);
  EXPECT_EQ(RouteOf("/v2/models/m/stats").model, "m");
  EXPECT_EQ(RouteOf("/v2/repository/models/m/unload").endpoint, Endpoint::kRepositoryModelUnload);
  EXPECT_EQ(RouteOf("/v2/models/m/versions/1/bogus").endpoint, Endpoint::kUnknown);
  EXPECT_EQ(RouteOf("/v1/models/m").endpoint, Endpoint::kUnknown);
  EXPECT_EQ(RouteOf("/").endpoint, Endpoint::kUnknown);
}

TEST(HttpStatusTest, TritonsCodes) {
  using core::StatusCode;
  EXPECT_EQ(HttpCodeOf(StatusCode::kInvalidArgument), 400);
  EXPECT_EQ(HttpCodeOf(StatusCode::kNotFound), 404);
  EXPECT_EQ(HttpCodeOf(StatusCode::kUnavailable), 503);
  EXPECT_EQ(HttpCodeOf(StatusCode::kResourceExhausted), 429);
  EXPECT_EQ(HttpCodeOf(StatusCode::kInternal), 500);
  EXPECT_EQ(HttpCodeOf(StatusCode::kUnimplemented), 501);
  EXPECT_EQ(HttpCodeOf(StatusCode::kPermissionDenied), 403);
}

TEST(ProtoJsonTest, Int64AsNumbersMapsAsObjectsAndDefaultsPresent) {
  inference::ModelStatistics stats;
  stats.set_name("m");
  stats.set_inference_count(uint64_t{1} << 40);
  const auto doc = ProtoToJson(stats);
  EXPECT_EQ(doc["inference_count"].get<uint64_t>(), uint64_t{1} << 40);
  EXPECT_EQ(doc["execution_count"], 0);
  EXPECT_FALSE(doc.contains("inference_stats"));  // an unset message
  inference::ModelInferRequest::InferRequestedOutputTensor out;
  (*out.mutable_parameters())["k"].set_int64_param(3);
  EXPECT_EQ(ProtoToJson(out)["parameters"]["k"]["int64_param"], 3);
}

}  // namespace
}  // namespace selu::http
