// Protocol ⇄ packed rows for models with several inputs and outputs: inputs
// matched by name and packed in model order, whatever the request's order
// and form; requested outputs cut out of the packed answer rows.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>

#include "server/grpc/infer_codec.h"

namespace selu::grpc_transport {
namespace {

using ::testing::ElementsAre;
using ::testing::ElementsAreArray;
using ::testing::HasSubstr;
using Request = inference::ModelInferRequest;
using Response = inference::ModelInferResponse;

// Inputs a [-1,2] and b [-1,2,3] (packed row: a's 2 features, then b's 6);
// concat → dense 8→4 = h, outputs h [-1,2,2] and s = h[:, 1:2] [-1,1]
// (packed answer row: h's 4, then s's 1).
core::ModelSpec GraphSpec() {
  core::ModelSpec spec;
  spec.tensors = {{"a", 2}, {"b", 6}, {"ab", 8}, {"h", 4}, {"s", 1}};
  core::DenseLayer dense;
  dense.name = "dense";
  dense.in_features = 8;
  dense.out_features = 4;
  dense.weights.assign(32, 0.0f);
  dense.bias.assign(4, 0.0f);
  spec.layers = {dense};
  core::GraphStep concat;
  concat.kind = core::StepKind::kConcat;
  concat.inputs = {0, 1};
  concat.output = 2;
  core::GraphStep gemm;
  gemm.kind = core::StepKind::kDense;
  gemm.inputs = {2};
  gemm.output = 3;
  gemm.layer = 0;
  core::GraphStep slice;
  slice.kind = core::StepKind::kSlice;
  slice.inputs = {3};
  slice.output = 4;
  slice.offset = 1;
  spec.steps = {concat, gemm, slice};
  spec.inputs = {{"a", {-1, 2}, 2, 0, 0}, {"b", {-1, 2, 3}, 6, 0, 1}};
  spec.outputs = {{"h", {-1, 2, 2}, 4, 0, 3}, {"s", {-1, 1}, 1, 0, 4}};
  const core::Status s = core::CompleteModelSpec(spec);
  EXPECT_TRUE(s.ok()) << s.ToString();
  return spec;
}

// Adds input `name` of `rows` × `features` FP32 values, typed.
void AddTyped(Request* r, const std::string& name, int64_t rows, int64_t features,
              const std::vector<float>& values) {
  auto* in = r->add_inputs();
  in->set_name(name);
  in->set_datatype("FP32");
  in->add_shape(rows);
  in->add_shape(features);
  for (float v : values) in->mutable_contents()->add_fp32_contents(v);
}

// Adds input `name` with its values in the next raw_input_contents entry.
template <typename T>
void AddRaw(Request* r, const std::string& name, const std::string& datatype,
            std::vector<int64_t> shape, const std::vector<T>& values) {
  auto* in = r->add_inputs();
  in->set_name(name);
  in->set_datatype(datatype);
  for (int64_t d : shape) in->add_shape(d);
  r->add_raw_input_contents(
      std::string(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(T)));
}

const std::vector<float> kA = {1, 2, 3, 4};                                      // 2 rows × 2
const std::vector<float> kB = {10, 11, 12, 13, 14, 15, 20, 21, 22, 23, 24, 25};  // 2 rows × 6
const std::vector<float> kPacked = {1, 2, 10, 11, 12, 13, 14, 15, 3, 4, 20, 21, 22, 23, 24, 25};

Request Named(const std::string& model = "g") {
  Request r;
  r.set_model_name(model);
  return r;
}

std::vector<float> Rows(const DecodedInput& in, int64_t features) {
  return std::vector<float>(in.data, in.data + in.rows * features);
}

void ExpectInvalid(const Request& r, std::vector<std::string> parts, int64_t max_batch = 8) {
  DecodedInput in;
  const core::Status s = DecodeInferInput(r, GraphSpec(), max_batch, &in);
  EXPECT_EQ(s.code(), core::StatusCode::kInvalidArgument) << s.ToString();
  for (const auto& p : parts) EXPECT_THAT(s.message(), HasSubstr(p));
}

TEST(InferCodecGraphTest, SpecPacksInputsAndOutputs) {
  const core::ModelSpec spec = GraphSpec();
  EXPECT_EQ(spec.input_features, 8);
  EXPECT_EQ(spec.output_features, 5);
  EXPECT_EQ(spec.inputs[1].offset, 2);
  EXPECT_EQ(spec.outputs[1].offset, 4);
  // Completing again changes nothing.
  core::ModelSpec again = spec;
  ASSERT_TRUE(core::CompleteModelSpec(again).ok());
  EXPECT_EQ(again.steps.size(), spec.steps.size());
  EXPECT_EQ(again.inputs[1].offset, 2);
  EXPECT_EQ(again.input_features, 8);
}

TEST(InferCodecGraphTest, PacksInModelOrderWhateverTheRequestOrder) {
  const core::ModelSpec spec = GraphSpec();
  for (bool a_first : {true, false}) {
    Request r = Named();
    if (a_first) AddTyped(&r, "a", 2, 2, kA);
    AddTyped(&r, "b", 2, 6, kB);
    if (!a_first) AddTyped(&r, "a", 2, 2, kA);
    DecodedInput in;
    const core::Status s = DecodeInferInput(r, spec, 8, &in);
    ASSERT_TRUE(s.ok()) << s.ToString();
    EXPECT_EQ(in.rows, 2);
    EXPECT_FALSE(in.raw);
    EXPECT_EQ(in.data, in.converted.data());
    EXPECT_EQ(Rows(in, 8), kPacked);
  }
}

TEST(InferCodecGraphTest, MixedTypedAndRawAndConvertedTypes) {
  const core::ModelSpec spec = GraphSpec();
  // b raw FP16 in its declared shape, a typed FP64.
  Request r = Named();
  AddRaw<uint16_t>(&r, "b", "FP16", {1, 2, 3}, {0x3C00, 0xC000, 0x3800, 0, 0x4000, 0x4200});
  auto* a = r.add_inputs();
  a->set_name("a");
  a->set_datatype("FP64");
  a->add_shape(1);
  a->add_shape(2);
  a->mutable_contents()->add_fp64_contents(0.25);
  a->mutable_contents()->add_fp64_contents(-4.0);
  DecodedInput in;
  const core::Status s = DecodeInferInput(r, spec, 8, &in);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_TRUE(in.raw);  // some input came raw: raw outputs
  EXPECT_THAT(Rows(in, 8), ElementsAre(0.25f, -4, 1, -2, 0.5f, 0, 2, 3));
}

TEST(InferCodecGraphTest, AllRawFollowsTheRequestOrder) {
  Request r = Named();
  AddRaw<float>(&r, "b", "FP32", {2, 6}, kB);
  AddRaw<double>(&r, "a", "FP64", {2, 2}, {1, 2, 3, 4});
  DecodedInput in;
  ASSERT_TRUE(DecodeInferInput(r, GraphSpec(), 8, &in).ok());
  EXPECT_TRUE(in.raw);
  EXPECT_EQ(Rows(in, 8), kPacked);
}

TEST(InferCodecGraphTest, InputsMissingUnknownOrTwice) {
  {
    Request r = Named();
    AddTyped(&r, "a", 2, 2, kA);
    ExpectInvalid(r, {"the request lacks input 'b'", "model 'g' takes inputs 'a', 'b'"});
  }
  {
    Request r = Named();
    AddTyped(&r, "a", 2, 2, kA);
    AddTyped(&r, "b", 2, 6, kB);
    AddTyped(&r, "c\n", 2, 1, {1, 2});
    ExpectInvalid(r, {"unknown input 'c\\n'", "takes inputs 'a', 'b'"});
  }
  {
    Request r = Named();
    AddTyped(&r, "a", 2, 2, kA);
    AddTyped(&r, "a", 2, 2, kA);
    AddTyped(&r, "b", 2, 6, kB);
    ExpectInvalid(r, {"input 'a' twice"});
  }
  {
    // A name far over the quoting limit comes out bounded.
    Request r = Named();
    AddTyped(&r, std::string(5000, 'x'), 2, 2, kA);
    DecodedInput in;
    const core::Status s = DecodeInferInput(r, GraphSpec(), 8, &in);
    EXPECT_EQ(s.code(), core::StatusCode::kInvalidArgument);
    EXPECT_LT(s.message().size(), 600u);
  }
}

TEST(InferCodecGraphTest, EveryInputHasTheSameBatch) {
  Request r = Named();
  AddTyped(&r, "a", 2, 2, kA);
  AddTyped(&r, "b", 1, 6, {1, 2, 3, 4, 5, 6});
  ExpectInvalid(r, {"input 'b' has a batch of 1 rows, input 'a' one of 2",
                    "every input must have the same batch size"});
  Request big = Named();
  AddTyped(&big, "a", 9, 2, std::vector<float>(18));
  AddTyped(&big, "b", 9, 6, std::vector<float>(54));
  ExpectInvalid(big, {"input 'a' has a batch of 9 rows", "max_batch_size of 8"});
}

TEST(InferCodecGraphTest, EachInputIsCheckedAgainstItsPort) {
  {
    Request r = Named();
    AddTyped(&r, "a", 2, 2, kA);
    AddTyped(&r, "b", 2, 7, std::vector<float>(14));
    ExpectInvalid(r, {"input 'b' has shape [2,7]", "expects [N,6] or [N,2,3]"});
  }
  {
    Request r = Named();
    AddTyped(&r, "a", 2, 2, {1, 2, 3});
    AddTyped(&r, "b", 2, 6, kB);
    ExpectInvalid(r, {"input 'a' has 3 values", "needs 4"});
  }
  {
    Request r = Named();
    AddTyped(&r, "a", 2, 2, kA);
    AddTyped(&r, "b", 2, 6, kB);
    r.mutable_inputs(1)->set_datatype("INT8");
    ExpectInvalid(r, {"input 'b' has datatype 'INT8'"});
  }
  {
    std::vector<float> b = kB;
    b[7] = std::numeric_limits<float>::infinity();
    Request r = Named();
    AddTyped(&r, "a", 2, 2, kA);
    AddRaw<float>(&r, "b", "FP32", {2, 6}, b);
    ExpectInvalid(r, {"input 'b' has a non-finite value (+inf) at index 7 (row 1, column 1)"});
  }
}

TEST(InferCodecGraphTest, RawEntriesMustMatchTheInputsWithoutContents) {
  {
    // Every input has a raw entry, yet one also has contents.
    Request r = Named();
    AddRaw<float>(&r, "a", "FP32", {2, 2}, kA);
    AddRaw<float>(&r, "b", "FP32", {2, 6}, kB);
    r.mutable_inputs(1)->mutable_contents()->add_fp32_contents(1);
    ExpectInvalid(r, {"input 'b' has both contents and raw_input_contents"});
  }
  {
    Request r = Named();
    AddTyped(&r, "a", 2, 2, kA);
    AddRaw<float>(&r, "b", "FP32", {2, 6}, kB);
    r.add_raw_input_contents("extra");
    // As many entries as inputs: the protocol's one entry per input.
    ExpectInvalid(r, {"input 'a' has both contents and raw_input_contents"});
    r.add_raw_input_contents("more");
    ExpectInvalid(r, {"3 raw_input_contents entries for 1 input without contents"});
  }
}

// The response of GraphSpec() for 2 rows with the engine's packed answer
// rows value 10·row + column.
Response Answer(const Request& r, bool raw, core::StatusOr<float*>* where = nullptr) {
  const core::ModelSpec spec = GraphSpec();
  Response response;
  PreparedOutputs prepared;
  auto out = PrepareInferResponse(r, spec, "1", 2, raw, &response, &prepared);
  if (where != nullptr) *where = out;
  if (!out.ok()) return response;
  EXPECT_EQ(*out, prepared.packed.data());
  EXPECT_EQ(prepared.packed.size(), 10u);
  for (int64_t row = 0; row < 2; ++row) {
    for (int64_t c = 0; c < 5; ++c) (*out)[row * 5 + c] = static_cast<float>(10 * row + c);
  }
  FinishInferResponse(spec, core::ClassLabels(), prepared, &response);
  return response;
}

std::vector<float> Values(const Response& response, int index) {
  if (response.raw_output_contents_size() == 0) {
    const auto& v = response.outputs(index).contents().fp32_contents();
    return std::vector<float>(v.begin(), v.end());
  }
  const std::string& bytes = response.raw_output_contents(index);
  std::vector<float> v(bytes.size() / sizeof(float));
  std::memcpy(v.data(), bytes.data(), bytes.size());
  return v;
}

TEST(InferCodecGraphTest, EveryOutputInModelOrderByDefault) {
  for (bool raw : {false, true}) {
    const Response response = Answer(Named(), raw);
    ASSERT_EQ(response.outputs_size(), 2);
    EXPECT_EQ(response.raw_output_contents_size(), raw ? 2 : 0);
    EXPECT_EQ(response.outputs(0).name(), "h");
    EXPECT_EQ(response.outputs(0).datatype(), "FP32");
    EXPECT_THAT(response.outputs(0).shape(), ElementsAre(2, 2, 2));
    EXPECT_THAT(Values(response, 0), ElementsAreArray({0, 1, 2, 3, 10, 11, 12, 13}));
    EXPECT_EQ(response.outputs(1).name(), "s");
    EXPECT_THAT(response.outputs(1).shape(), ElementsAre(2, 1));
    EXPECT_THAT(Values(response, 1), ElementsAre(4, 14));
    EXPECT_EQ(response.outputs(0).has_contents(), !raw);
  }
}

TEST(InferCodecGraphTest, RequestedOutputsChooseAndOrder) {
  Request r = Named();
  r.add_outputs()->set_name("s");
  r.add_outputs()->set_name("h");
  Response response = Answer(r, /*raw=*/true);
  ASSERT_EQ(response.outputs_size(), 2);
  EXPECT_EQ(response.outputs(0).name(), "s");
  EXPECT_THAT(Values(response, 0), ElementsAre(4, 14));
  EXPECT_EQ(response.outputs(1).name(), "h");
  EXPECT_THAT(Values(response, 1), ElementsAreArray({0, 1, 2, 3, 10, 11, 12, 13}));

  Request one = Named();
  one.add_outputs()->set_name("s");
  response = Answer(one, /*raw=*/false);
  ASSERT_EQ(response.outputs_size(), 1);
  EXPECT_EQ(response.outputs(0).name(), "s");
  EXPECT_THAT(Values(response, 0), ElementsAre(4, 14));
}

TEST(InferCodecGraphTest, UnknownOrRepeatedOutputsAreRefused) {
  Request r = Named();
  r.add_outputs()->set_name("h");
  r.add_outputs()->set_name("logits");
  core::StatusOr<float*> out = nullptr;
  Answer(r, false, &out);
  EXPECT_EQ(out.status().code(), core::StatusCode::kInvalidArgument);
  EXPECT_THAT(out.status().message(),
              HasSubstr("unknown output 'logits'; model 'g' has outputs 'h', 's'"));

  Request twice = Named();
  twice.add_outputs()->set_name("s");
  twice.add_outputs()->set_name("s");
  Answer(twice, false, &out);
  EXPECT_EQ(out.status().code(), core::StatusCode::kInvalidArgument);
  EXPECT_THAT(out.status().message(), HasSubstr("output 's' twice"));
}

// A chain spec completed into its graph keeps today's zero-copy paths.
TEST(InferCodecGraphTest, CompletedChainStaysInPlace) {
  core::ModelSpec spec;
  spec.input_name = "x";
  spec.output_name = "y";
  spec.input_shape = {-1, 4};
  spec.input_features = 4;
  core::DenseLayer layer;
  layer.name = "gemm";
  layer.in_features = 4;
  layer.out_features = 3;
  layer.weights.assign(12, 0.0f);
  layer.bias.assign(3, 0.0f);
  spec.layers = {layer};
  ASSERT_TRUE(core::CompleteModelSpec(spec).ok());
  ASSERT_TRUE(core::CompleteModelSpec(spec).ok());  // twice is harmless
  ASSERT_EQ(spec.inputs.size(), 1u);
  ASSERT_EQ(spec.outputs.size(), 1u);
  EXPECT_EQ(spec.output_features, 3);

  Request r = Named("m");
  AddRaw<float>(&r, "x", "FP32", {2, 4}, {1, 2, 3, 4, 5, 6, 7, 8});
  DecodedInput in;
  ASSERT_TRUE(DecodeInferInput(r, spec, 8, &in).ok());
  EXPECT_EQ(static_cast<const void*>(in.data), r.raw_input_contents(0).data());
  EXPECT_TRUE(in.converted.empty());

  Response response;
  PreparedOutputs prepared;
  auto out = PrepareInferResponse(r, spec, "1", 2, in.raw, &response, &prepared);
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(static_cast<void*>(*out), response.raw_output_contents(0).data());
  EXPECT_TRUE(prepared.packed.empty());
  EXPECT_THAT(response.outputs(0).shape(), ElementsAre(2, 3));
  FinishInferResponse(spec, core::ClassLabels(), prepared, &response);  // nothing to do
  EXPECT_EQ(response.raw_output_contents(0).size(), 6 * sizeof(float));
}

}  // namespace
}  // namespace selu::grpc_transport
