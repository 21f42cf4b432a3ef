// config.pbtxt input/output lists against a model with several inputs and
// outputs: matched by name, checked per port, completed from the model.
#include <gmock/gmock.h>
#include <google/protobuf/text_format.h>
#include <gtest/gtest.h>

#include <string>

#include "server/core/model/model_config.h"

namespace selu::core {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

inference::ModelConfig ParseOrDie(const std::string& text) {
  inference::ModelConfig config;
  EXPECT_TRUE(google::protobuf::TextFormat::ParseFromString(text, &config)) << text;
  return config;
}

// Inputs tokens [-1,16] and image [-1,2,4] (concatenated, then a dense
// 24→10); outputs logits [-1,10] and its first 3 features, head [-1,3].
ModelSpec PortsSpec() {
  ModelSpec spec;
  spec.tensors = {{"tokens", 16}, {"image", 8}, {"joined", 24}, {"logits", 10}, {"head", 3}};
  DenseLayer dense;
  dense.name = "fc";
  dense.in_features = 24;
  dense.out_features = 10;
  dense.weights.assign(240, 0.0f);
  dense.bias.assign(10, 0.0f);
  spec.layers = {dense};
  GraphStep concat;
  concat.kind = StepKind::kConcat;
  concat.inputs = {0, 1};
  concat.output = 2;
  GraphStep fc;
  fc.kind = StepKind::kDense;
  fc.inputs = {2};
  fc.output = 3;
  fc.layer = 0;
  GraphStep slice;
  slice.kind = StepKind::kSlice;
  slice.inputs = {3};
  slice.output = 4;
  spec.steps = {concat, fc, slice};
  spec.inputs = {{"tokens", {-1, 16}, 16, 0, 0}, {"image", {-1, 2, 4}, 8, 0, 1}};
  spec.outputs = {{"logits", {-1, 10}, 10, 0, 3}, {"head", {-1, 3}, 3, 0, 4}};
  const Status s = CompleteModelSpec(spec);
  EXPECT_TRUE(s.ok()) << s.ToString();
  return spec;
}

void ExpectMismatch(const std::string& text, const std::string& part) {
  const Status status = CheckModelConfigAgainstModel(ParseOrDie(text), PortsSpec());
  EXPECT_EQ(status.code(), StatusCode::kInvalidArgument) << text;
  EXPECT_THAT(status.message(), HasSubstr(part)) << text;
}

TEST(ModelConfigPortsTest, EveryPortByNameInAnyOrder) {
  EXPECT_EQ(CheckModelConfigAgainstModel(ParseOrDie(R"(
      input [ { name: "image" data_type: TYPE_FP32 dims: [ 2, -1 ] },
              { name: "tokens" data_type: TYPE_FP32 dims: [ 16 ] } ]
      output [ { name: "head" data_type: TYPE_FP32 dims: [ 3 ] },
               { name: "logits" data_type: TYPE_FP32 dims: [ 10 ] } ])"),
                                         PortsSpec()),
            OkStatus());
}

TEST(ModelConfigPortsTest, PartialAndEmptyListsAreFine) {
  EXPECT_EQ(CheckModelConfigAgainstModel(ParseOrDie(""), PortsSpec()), OkStatus());
  EXPECT_EQ(CheckModelConfigAgainstModel(
                ParseOrDie(R"(input [ { name: "image" data_type: TYPE_FP32 dims: [ 2, 4 ] } ]
                              output [ { name: "head" data_type: TYPE_FP32 dims: [ 3 ] } ])"),
                PortsSpec()),
            OkStatus());
}

TEST(ModelConfigPortsTest, Mismatches) {
  ExpectMismatch(R"(input [ { name: "pixels" data_type: TYPE_FP32 dims: [ 8 ] } ])",
                 "input[0].name 'pixels' is not one of the model's inputs 'tokens', 'image'");
  ExpectMismatch(R"(input [ { name: "image" data_type: TYPE_FP32 dims: [ 2, 4 ] },
                            { name: "image" data_type: TYPE_FP32 dims: [ 2, 4 ] } ])",
                 "input[1].name 'image' is also input[0]");
  ExpectMismatch(R"(input [ { name: "tokens" data_type: TYPE_FP32 dims: [ 16 ] },
                            { name: "image" data_type: TYPE_FP32 dims: [ 2, 4 ] },
                            { name: "extra" data_type: TYPE_FP32 dims: [ 1 ] } ])",
                 "input: the model has 2 inputs, the config lists 3");
  ExpectMismatch(R"(input [ { name: "tokens" data_type: TYPE_FP32 dims: [ 16 ] },
                            { name: "image" data_type: TYPE_FP32 dims: [ 8 ] } ])",
                 "input[1].dims [8] do not match the model's [2, 4] for 'image' (dims exclude "
                 "the batch dimension)");
  ExpectMismatch(R"(input [ { name: "image" data_type: TYPE_FP16 dims: [ 2, 4 ] } ])",
                 "input[0].data_type TYPE_FP16 does not match the model's TYPE_FP32");
  ExpectMismatch(R"(output [ { name: "probs" data_type: TYPE_FP32 dims: [ 10 ] } ])",
                 "output[0].name 'probs' is not one of the model's outputs 'logits', 'head'");
  ExpectMismatch(R"(output [ { name: "logits" data_type: TYPE_FP32 dims: [ 10 ] },
                             { name: "head" data_type: TYPE_FP32 dims: [ 10 ] } ])",
                 "output[1].dims [10] do not match the model's [3] for 'head'");
}

TEST(ModelConfigPortsTest, CompleteModelConfigListsEveryPortInModelOrder) {
  EffectiveServing serving;
  serving.max_batch_size = 16;
  const inference::ModelConfig given =
      ParseOrDie(R"(input [ { name: "image" data_type: TYPE_FP32 dims: [ 2, -1 ] } ])");
  const inference::ModelConfig complete = CompleteModelConfig(given, "g", PortsSpec(), serving);
  ASSERT_EQ(complete.input_size(), 2);
  EXPECT_EQ(complete.input(0).name(), "tokens");
  EXPECT_THAT(complete.input(0).dims(), ElementsAre(16));
  EXPECT_EQ(complete.input(1).name(), "image");
  EXPECT_EQ(complete.input(1).data_type(), inference::TYPE_FP32);
  EXPECT_THAT(complete.input(1).dims(), ElementsAre(2, 4));
  ASSERT_EQ(complete.output_size(), 2);
  EXPECT_EQ(complete.output(0).name(), "logits");
  EXPECT_THAT(complete.output(0).dims(), ElementsAre(10));
  EXPECT_EQ(complete.output(1).name(), "head");
  EXPECT_THAT(complete.output(1).dims(), ElementsAre(3));
  // What the rpc reports checks against the model again.
  EXPECT_EQ(CheckModelConfigAgainstModel(complete, PortsSpec()), OkStatus());
}

// A one-input chain completed into its graph reads as before.
TEST(ModelConfigPortsTest, CompletedChainMatchesItsChainView) {
  ModelSpec spec;
  spec.input_name = "x";
  spec.output_name = "y";
  spec.input_shape = {-1, 8, 8};
  spec.input_features = 64;
  DenseLayer layer;
  layer.name = "fc";
  layer.in_features = 64;
  layer.out_features = 10;
  layer.weights.assign(640, 0.0f);
  layer.bias.assign(10, 0.0f);
  spec.layers = {layer};
  ASSERT_TRUE(CompleteModelSpec(spec).ok());
  const inference::ModelConfig complete =
      CompleteModelConfig(inference::ModelConfig(), "m", spec, EffectiveServing());
  ASSERT_EQ(complete.input_size(), 1);
  EXPECT_THAT(complete.input(0).dims(), ElementsAre(8, 8));
  ASSERT_EQ(complete.output_size(), 1);
  EXPECT_THAT(complete.output(0).dims(), ElementsAre(10));
  const Status status = CheckModelConfigAgainstModel(
      ParseOrDie(R"(input [ { name: "images" data_type: TYPE_FP32 dims: [ 8, 8 ] } ])"), spec);
  EXPECT_THAT(status.message(), HasSubstr("input[0].name 'images' is not the model's input 'x'"));
}

}  // namespace
}  // namespace selu::core
