// Triton's classification extension on the wire: a requested output with
// parameter "classification" comes back BYTES [N, min(k, classes)] as
// "<score>:<index>[:<label>]" strings, typed (bytes_contents) or raw
// (Triton's length-prefixed BYTES), beside plain FP32 outputs; bad values
// of the parameter are INVALID_ARGUMENT naming the output.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "server/grpc/infer_codec.h"

namespace selu::grpc_transport {
namespace {

using ::testing::ElementsAre;
using ::testing::ElementsAreArray;
using ::testing::HasSubstr;
using Request = inference::ModelInferRequest;
using Response = inference::ModelInferResponse;

// One input x [-1,2], one output y [-1,4] (a chain of one dense layer).
core::ModelSpec OneOutput() {
  core::ModelSpec spec;
  spec.input_name = "x";
  spec.output_name = "y";
  spec.input_shape = {-1, 2};
  spec.input_features = 2;
  core::DenseLayer layer;
  layer.name = "gemm";
  layer.in_features = 2;
  layer.out_features = 4;
  layer.weights.assign(8, 0.0f);
  layer.bias.assign(4, 0.0f);
  spec.layers = {layer};
  EXPECT_TRUE(core::CompleteModelSpec(spec).ok());
  return spec;
}

// Outputs h [-1,2,2] (4 features, packed first) and s [-1,1], as in
// infer_codec_graph_test.cc.
core::ModelSpec TwoOutputs() {
  core::ModelSpec spec;
  spec.tensors = {{"a", 2}, {"h", 4}, {"s", 1}};
  core::DenseLayer dense;
  dense.name = "dense";
  dense.in_features = 2;
  dense.out_features = 4;
  dense.weights.assign(8, 0.0f);
  dense.bias.assign(4, 0.0f);
  spec.layers = {dense};
  core::GraphStep gemm;
  gemm.kind = core::StepKind::kDense;
  gemm.inputs = {0};
  gemm.output = 1;
  gemm.layer = 0;
  core::GraphStep slice;
  slice.kind = core::StepKind::kSlice;
  slice.inputs = {1};
  slice.output = 2;
  slice.offset = 1;
  spec.steps = {gemm, slice};
  spec.inputs = {{"a", {-1, 2}, 2, 0, 0}};
  spec.outputs = {{"h", {-1, 2, 2}, 4, 0, 1}, {"s", {-1, 1}, 1, 0, 2}};
  const core::Status s = core::CompleteModelSpec(spec);
  EXPECT_TRUE(s.ok()) << s.ToString();
  return spec;
}

Request Named() {
  Request r;
  r.set_model_name("m");
  return r;
}

void Classify(Request* r, const std::string& output, int64_t k) {
  auto* o = r->add_outputs();
  o->set_name(output);
  (*o->mutable_parameters())["classification"].set_int64_param(k);
}

// Prepares the response for 2 rows, has the "engine" write `packed` (2 rows
// of the spec's packed answer) and finishes it.
Response Answer(const Request& r, const core::ModelSpec& spec, const std::vector<float>& packed,
                bool raw, const core::ClassLabels& labels = core::ClassLabels(),
                PreparedOutputs* reuse = nullptr) {
  PreparedOutputs own;
  PreparedOutputs* prepared = reuse != nullptr ? reuse : &own;
  Response response;
  auto out = PrepareInferResponse(r, spec, "1", 2, raw, &response, prepared);
  EXPECT_TRUE(out.ok()) << out.status().ToString();
  if (!out.ok()) return response;
  EXPECT_EQ(packed.size(), static_cast<size_t>(2 * spec.output_features));
  std::memcpy(*out, packed.data(), packed.size() * sizeof(float));
  FinishInferResponse(spec, labels, *prepared, &response);
  return response;
}

// The strings of BYTES output `index`, typed or raw.
std::vector<std::string> Strings(const Response& response, int index) {
  if (response.raw_output_contents_size() == 0) {
    const auto& v = response.outputs(index).contents().bytes_contents();
    return std::vector<std::string>(v.begin(), v.end());
  }
  const std::string& bytes = response.raw_output_contents(index);
  std::vector<std::string> strings;
  size_t at = 0;
  while (at + 4 <= bytes.size()) {
    const uint32_t size = static_cast<uint8_t>(bytes[at]) |
                          static_cast<uint32_t>(static_cast<uint8_t>(bytes[at + 1])) << 8 |
                          static_cast<uint32_t>(static_cast<uint8_t>(bytes[at + 2])) << 16 |
                          static_cast<uint32_t>(static_cast<uint8_t>(bytes[at + 3])) << 24;
    strings.push_back(bytes.substr(at + 4, size));
    at += 4 + size;
  }
  EXPECT_EQ(at, bytes.size()) << "raw BYTES entry not a whole number of elements";
  return strings;
}

std::vector<float> Floats(const Response& response, int index) {
  if (response.raw_output_contents_size() == 0) {
    const auto& v = response.outputs(index).contents().fp32_contents();
    return std::vector<float>(v.begin(), v.end());
  }
  const std::string& bytes = response.raw_output_contents(index);
  std::vector<float> v(bytes.size() / sizeof(float));
  std::memcpy(v.data(), bytes.data(), bytes.size());
  return v;
}

const std::vector<float> kScores = {0.1f, 0.6f, 0.05f, 0.25f,  // row 0
                                    0.7f, 0.1f, 0.1f,  0.1f};  // row 1

TEST(InferClassificationTest, TopKPerRowTypedAndRaw) {
  Request r = Named();
  Classify(&r, "y", 2);
  for (bool raw : {false, true}) {
    const Response response = Answer(r, OneOutput(), kScores, raw);
    ASSERT_EQ(response.outputs_size(), 1);
    EXPECT_EQ(response.outputs(0).name(), "y");
    EXPECT_EQ(response.outputs(0).datatype(), "BYTES");
    EXPECT_THAT(response.outputs(0).shape(), ElementsAre(2, 2));
    EXPECT_EQ(response.raw_output_contents_size(), raw ? 1 : 0);
    EXPECT_EQ(response.outputs(0).has_contents(), !raw);
    EXPECT_THAT(Strings(response, 0),
                ElementsAre("0.600000:1", "0.250000:3", "0.700000:0", "0.100000:1"));
  }
}

TEST(InferClassificationTest, RawBytesAreLengthPrefixedLittleEndian) {
  Request r = Named();
  Classify(&r, "y", 1);
  const Response response = Answer(r, OneOutput(), kScores, /*raw=*/true);
  const std::string expected =
      std::string("\x0a\0\0\0", 4) + "0.600000:1" + std::string("\x0a\0\0\0", 4) + "0.700000:0";
  EXPECT_EQ(response.raw_output_contents(0), expected);
}

TEST(InferClassificationTest, LabelsWhereTheFileHasThem) {
  Request r = Named();
  Classify(&r, "y", 4);
  // Labels for classes 0..2 only, class 1's empty: no label for 1 and 3.
  const core::ClassLabels labels({{"zero", "", "two"}});
  const Response response = Answer(r, OneOutput(), kScores, /*raw=*/false, labels);
  EXPECT_THAT(Strings(response, 0),
              ElementsAreArray({"0.600000:1", "0.250000:3", "0.100000:0:zero", "0.050000:2:two",
                                "0.700000:0:zero", "0.100000:1", "0.100000:2:two", "0.100000:3"}));
}

TEST(InferClassificationTest, KPastTheClassesGivesEveryClass) {
  Request r = Named();
  Classify(&r, "y", 1000000);
  const Response response = Answer(r, OneOutput(), kScores, /*raw=*/false);
  EXPECT_THAT(response.outputs(0).shape(), ElementsAre(2, 4));
  EXPECT_EQ(Strings(response, 0).size(), 8u);
  // uint64_param means the same.
  Request u = Named();
  auto* o = u.add_outputs();
  o->set_name("y");
  (*o->mutable_parameters())["classification"].set_uint64_param(3);
  EXPECT_THAT(Answer(u, OneOutput(), kScores, false).outputs(0).shape(), ElementsAre(2, 3));
}

TEST(InferClassificationTest, SeveralOutputsClassifiedOrNot) {
  // Packed answer rows: h's 4 values, then s's 1.
  const std::vector<float> packed = {0.1f, 0.9f, 0.3f, 0.2f, 5.0f,   // row 0
                                     0.4f, 0.1f, 0.2f, 0.8f, 6.0f};  // row 1
  Request r = Named();
  r.add_outputs()->set_name("s");
  Classify(&r, "h", 2);  // multi-dim [2,2]: flat class indexes 0..3
  for (bool raw : {false, true}) {
    const core::ClassLabels labels({{"a", "b", "c", "d"}});
    const Response response = Answer(r, TwoOutputs(), packed, raw, labels);
    ASSERT_EQ(response.outputs_size(), 2);
    EXPECT_EQ(response.raw_output_contents_size(), raw ? 2 : 0);
    EXPECT_EQ(response.outputs(0).name(), "s");
    EXPECT_EQ(response.outputs(0).datatype(), "FP32");
    EXPECT_THAT(Floats(response, 0), ElementsAre(5.0f, 6.0f));
    EXPECT_EQ(response.outputs(1).name(), "h");
    EXPECT_EQ(response.outputs(1).datatype(), "BYTES");
    EXPECT_THAT(response.outputs(1).shape(), ElementsAre(2, 2));
    EXPECT_THAT(Strings(response, 1),
                ElementsAre("0.900000:1:b", "0.300000:2:c", "0.800000:3:d", "0.400000:0:a"));
  }
  // Both classified; the second output's labels are its own (none here).
  Request both = Named();
  Classify(&both, "s", 5);
  Classify(&both, "h", 1);
  const Response response =
      Answer(both, TwoOutputs(), packed, false, core::ClassLabels({{"a", "b", "c", "d"}}));
  EXPECT_THAT(response.outputs(0).shape(), ElementsAre(2, 1));
  EXPECT_THAT(Strings(response, 0), ElementsAre("5.000000:0", "6.000000:0"));
  EXPECT_THAT(Strings(response, 1), ElementsAre("0.900000:1:b", "0.800000:3:d"));
}

// A reused PreparedOutputs (a stream's pooled message) carries nothing from
// one request, of one model, to the next.
TEST(InferClassificationTest, ReusedPreparedOutputsStartClean) {
  const std::vector<float> packed = {0.1f, 0.9f, 0.3f, 0.2f, 5.0f, 0.4f, 0.1f, 0.2f, 0.8f, 6.0f};
  PreparedOutputs prepared;
  Request two = Named();
  Classify(&two, "h", 1);
  two.add_outputs()->set_name("s");
  Answer(two, TwoOutputs(), packed, false, core::ClassLabels(), &prepared);

  Request plain = Named();
  Response response;
  auto out = PrepareInferResponse(plain, OneOutput(), "1", 2, false, &response, &prepared);
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(*out, response.outputs(0).contents().fp32_contents().data());  // in place again
  std::memcpy(*out, kScores.data(), kScores.size() * sizeof(float));
  FinishInferResponse(OneOutput(), core::ClassLabels(), prepared, &response);
  EXPECT_EQ(response.outputs(0).datatype(), "FP32");
  EXPECT_THAT(Floats(response, 0), ElementsAreArray(kScores));

  Request classified = Named();
  Classify(&classified, "y", 1);
  response = Answer(classified, OneOutput(), kScores, false, core::ClassLabels(), &prepared);
  EXPECT_THAT(Strings(response, 0), ElementsAre("0.600000:1", "0.700000:0"));
  response = Answer(plain, TwoOutputs(), packed, false, core::ClassLabels(), &prepared);
  EXPECT_EQ(response.outputs(0).datatype(), "FP32");
  EXPECT_EQ(response.outputs(1).datatype(), "FP32");
}

// Other parameters of an output change nothing.
TEST(InferClassificationTest, OtherOutputParametersAreIgnored) {
  Request r = Named();
  auto* o = r.add_outputs();
  o->set_name("y");
  (*o->mutable_parameters())["binary_data"].set_bool_param(true);
  PreparedOutputs prepared;
  Response response;
  auto out = PrepareInferResponse(r, OneOutput(), "1", 2, false, &response, &prepared);
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(response.outputs(0).datatype(), "FP32");
  EXPECT_TRUE(prepared.classes.empty());
  EXPECT_TRUE(prepared.packed.empty());
}

void ExpectRefused(const Request& r, const core::ModelSpec& spec, const std::string& part) {
  PreparedOutputs prepared;
  Response response;
  auto out = PrepareInferResponse(r, spec, "1", 2, false, &response, &prepared);
  ASSERT_FALSE(out.ok()) << "accepted: " << r.ShortDebugString();
  EXPECT_EQ(out.status().code(), core::StatusCode::kInvalidArgument);
  EXPECT_THAT(out.status().message(), HasSubstr(part));
}

TEST(InferClassificationTest, BadParameterValuesAreRefusedNamingTheOutput) {
  for (int64_t k : {0, -3}) {
    Request r = Named();
    Classify(&r, "y", k);
    ExpectRefused(r, OneOutput(),
                  "output 'y': parameter 'classification' is " + std::to_string(k) +
                      "; it must be at least 1");
  }
  {
    Request r = Named();
    auto* o = r.add_outputs();
    o->set_name("y");
    (*o->mutable_parameters())["classification"].set_uint64_param(0);
    ExpectRefused(r, OneOutput(), "is 0; it must be at least 1");
  }
  const std::vector<std::pair<std::string, void (*)(inference::InferParameter*)>> wrong = {
      {"a string_param", [](inference::InferParameter* p) { p->set_string_param("3"); }},
      {"a double_param", [](inference::InferParameter* p) { p->set_double_param(3.0); }},
      {"a bool_param", [](inference::InferParameter* p) { p->set_bool_param(true); }},
      {"no value", [](inference::InferParameter*) {}},
  };
  for (const auto& [name, set] : wrong) {
    Request r = Named();
    auto* o = r.add_outputs();
    o->set_name("h");
    set(&(*o->mutable_parameters())["classification"]);
    ExpectRefused(r, TwoOutputs(),
                  "output 'h': parameter 'classification' must be an int64_param (the number "
                  "of classes), not " +
                      name);
  }
  // A one-output model's classified output named twice.
  Request twice = Named();
  Classify(&twice, "y", 1);
  twice.add_outputs()->set_name("y");
  ExpectRefused(twice, OneOutput(), "output 'y' twice");
  // Unknown outputs are still refused as before.
  Request unknown = Named();
  Classify(&unknown, "logits", 1);
  ExpectRefused(unknown, OneOutput(), "unknown output 'logits'");
}

}  // namespace
}  // namespace selu::grpc_transport
