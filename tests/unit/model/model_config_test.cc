// Triton-compatible config.pbtxt: a real Triton config parses with a warning
// per field selu-serve skips, the settings read back, and a test per refusal
// checks that the message names the field.
#include "server/core/model/model_config.h"

#include <gmock/gmock.h>
#include <google/protobuf/text_format.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace selu::core {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

// A config as Triton users write it, with fields selu-serve does not have:
// optimization (line 7), input.reshape (line 13), dynamic_batching.priority_levels
// (line 25), model_warmup (line 27), response_cache (line 37).
constexpr char kTritonConfig[] = R"pbtxt(name: "digits"
platform: "onnxruntime_onnx"
max_batch_size: 64
version_policy: { specific: { versions: [ 3, 1, 3 ] } }
default_model_filename: "digits.onnx"
parameters { key: "engine_primitive" value: { string_value: "matmul" } }
optimization { execution_accelerators { cpu_execution_accelerator : [ { name : "openvino" } ] } }
input [
  {
    name: "x"
    data_type: TYPE_FP32
    dims: [ 64 ]
    reshape { shape: [ 8, 8 ] }
  }
]
output [ { name: "y", data_type: TYPE_FP32, dims: [ 10 ] } ]
instance_group [ { kind: KIND_CPU, count: 2 }, { kind: KIND_AUTO } ]
dynamic_batching {
  preferred_batch_size: [ 32, 8 ]
  max_queue_delay_microseconds: 500
  default_queue_policy {
    max_queue_size: 128
    default_timeout_microseconds: 20000
  }
  priority_levels: 2
}
model_warmup [
  {
    name: "zeros"
    batch_size: 1
    inputs {
      key: "x"
      value: { data_type: TYPE_FP32, dims: [ 64 ], zero_data: true }
    }
  }
]
response_cache { enable: true }
)pbtxt";

inference::ModelConfig ParseOrDie(const std::string& text) {
  std::vector<std::string> warnings;
  StatusOr<inference::ModelConfig> config = ParseModelConfigText(text, "config.pbtxt", &warnings);
  EXPECT_TRUE(config.ok()) << config.status().ToString();
  return config.ok() ? *config : inference::ModelConfig();
}

// Parses `text`, reads the settings for model "m" and expects a refusal that
// contains every `parts`.
#define EXPECT_REFUSED(text, ...)                                                           \
  do {                                                                                      \
    std::vector<std::string> w_;                                                            \
    StatusOr<ModelConfigSettings> r_ = ReadModelConfigSettings(ParseOrDie(text), "m", &w_); \
    ASSERT_FALSE(r_.ok()) << "accepted: " << (text);                                        \
    EXPECT_EQ(r_.status().code(), StatusCode::kInvalidArgument) << r_.status().ToString();  \
    for (const char* part_ : {__VA_ARGS__}) {                                               \
      EXPECT_THAT(r_.status().message(), HasSubstr(part_));                                 \
    }                                                                                       \
  } while (0)

ModelConfigSettings ReadOrDie(const std::string& text, std::vector<std::string>* warnings) {
  StatusOr<ModelConfigSettings> settings = ReadModelConfigSettings(ParseOrDie(text), "m", warnings);
  EXPECT_TRUE(settings.ok()) << settings.status().ToString();
  return settings.ok() ? *settings : ModelConfigSettings();
}

ModelSpec TestSpec() {
  ModelSpec spec;
  spec.input_name = "x";
  spec.output_name = "y";
  spec.input_features = 64;
  spec.output_features = 10;
  spec.input_shape = {-1, 64};
  return spec;
}

TEST(ModelConfigTest, TritonConfigParsesWithOneWarningPerSkippedField) {
  std::vector<std::string> warnings;
  StatusOr<inference::ModelConfig> config =
      ParseModelConfigText(kTritonConfig, "models/digits/config.pbtxt", &warnings);
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  ASSERT_EQ(warnings.size(), 5u) << ::testing::PrintToString(warnings);
  EXPECT_THAT(warnings[0], HasSubstr("models/digits/config.pbtxt:7"));
  EXPECT_THAT(warnings[0], HasSubstr("'optimization'"));
  EXPECT_THAT(warnings[1], HasSubstr("config.pbtxt:13"));
  EXPECT_THAT(warnings[1], HasSubstr("'input.reshape'"));
  EXPECT_THAT(warnings[2], HasSubstr("config.pbtxt:25"));
  EXPECT_THAT(warnings[2], HasSubstr("'dynamic_batching.priority_levels'"));
  EXPECT_THAT(warnings[3], HasSubstr("config.pbtxt:27"));
  EXPECT_THAT(warnings[3], HasSubstr("'model_warmup'"));
  EXPECT_THAT(warnings[4], HasSubstr("config.pbtxt:37"));
  EXPECT_THAT(warnings[4], HasSubstr("'response_cache'"));

  // Fields after a skipped block are still read.
  EXPECT_EQ(config->name(), "digits");
  ASSERT_EQ(config->input_size(), 1);
  EXPECT_THAT(config->input(0).dims(), ElementsAre(64));
  EXPECT_EQ(config->dynamic_batching().max_queue_delay_microseconds(), 500u);
}

// protobuf 3.21 alone cannot skip an unknown field written as a list without
// a colon (`model_warmup [ ... ]`); nested ones inside skipped blocks, comments
// and strings holding brackets must all survive.
TEST(ModelConfigTest, UnknownListFieldsWithoutColonAreSkipped) {
  std::vector<std::string> warnings;
  StatusOr<inference::ModelConfig> config = ParseModelConfigText(
      "name: \"m\"  # input [ not a list ]\n"
      "sequence_batching {\n"
      "  max_sequence_idle_microseconds: 5000000\n"
      "  control_input [ { name: \"START\" control [ { kind: CONTROL_SEQUENCE_START "
      "int32_false_true: [ 0, 1 ] } ] } ]\n"
      "}\n"
      "parameters [ { key: \"note\" value: { string_value: \"a [b] c\" } } ]\n"
      "input\t[ { name: \"x\", data_type: TYPE_FP32, dims: [ -1 ] } ]\n"
      "instance_group [ { kind: KIND_CPU } ] max_batch_size: \"x\"\n",
      "c", &warnings);
  ASSERT_FALSE(config.ok());
  // The syntax error on the last line keeps its column although a ':' was
  // added before the '[' on that line.
  EXPECT_THAT(config.status().message(), HasSubstr("c:8:55: "));

  warnings.clear();
  config = ParseModelConfigText(
      "name: \"m\"  # input [ not a list ]\n"
      "sequence_batching {\n"
      "  control_input [ { name: \"START\" control [ { kind: CONTROL_SEQUENCE_START } ] } ]\n"
      "}\n"
      "parameters [ { key: \"note\" value: { string_value: \"a [b] c\" } } ]\n"
      "input\t[ { name: \"x\", data_type: TYPE_FP32, dims: [ -1 ] } ]\n"
      "instance_group [ { kind: KIND_CPU } ]\n",
      "c", &warnings);
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  ASSERT_EQ(warnings.size(), 1u) << ::testing::PrintToString(warnings);
  EXPECT_THAT(warnings[0], HasSubstr("c:2: field 'sequence_batching'"));
  EXPECT_EQ(config->parameters().at("note").string_value(), "a [b] c");
  ASSERT_EQ(config->input_size(), 1);
  EXPECT_THAT(config->input(0).dims(), ElementsAre(-1));
  ASSERT_EQ(config->instance_group_size(), 1);
  EXPECT_EQ(config->instance_group(0).kind(), inference::ModelInstanceGroup::KIND_CPU);
}

TEST(ModelConfigTest, SettingsReadBack) {
  std::vector<std::string> warnings;
  StatusOr<inference::ModelConfig> config = ParseModelConfigText(kTritonConfig, "c", &warnings);
  ASSERT_TRUE(config.ok());
  warnings.clear();
  StatusOr<ModelConfigSettings> settings = ReadModelConfigSettings(*config, "digits", &warnings);
  ASSERT_TRUE(settings.ok()) << settings.status().ToString();
  EXPECT_THAT(warnings, IsEmpty());
  EXPECT_EQ(settings->version_policy.kind, VersionPolicy::Kind::kSpecific);
  EXPECT_THAT(settings->version_policy.versions, ElementsAre(1, 3));
  EXPECT_EQ(settings->model_filename, "digits.onnx");
  EXPECT_EQ(settings->max_batch_size, 64);
  ASSERT_TRUE(settings->preferred_batch_sizes.has_value());
  EXPECT_THAT(*settings->preferred_batch_sizes, ElementsAre(8, 32));
  EXPECT_EQ(settings->max_queue_delay_us, 500);
  EXPECT_EQ(settings->max_queue_size, 128);
  EXPECT_EQ(settings->default_timeout_us, 20000);
  EXPECT_EQ(settings->instances, 3);  // 2 + (count 0 counts as 1)
  EXPECT_EQ(settings->engine_primitive, "matmul");
  EXPECT_FALSE(settings->batch_execution.has_value());
  EXPECT_EQ(CheckModelConfigAgainstModel(*config, TestSpec()), OkStatus());
}

TEST(ModelConfigTest, EmptyConfigLeavesEverythingToTheServer) {
  std::vector<std::string> warnings;
  ModelConfigSettings settings = ReadOrDie("", &warnings);
  EXPECT_THAT(warnings, IsEmpty());
  EXPECT_EQ(settings.version_policy.kind, VersionPolicy::Kind::kLatest);
  EXPECT_EQ(settings.version_policy.num_versions, 1u);
  EXPECT_EQ(settings.model_filename, "model.onnx");
  EXPECT_FALSE(settings.max_batch_size.has_value());
  EXPECT_FALSE(settings.preferred_batch_sizes.has_value());
  EXPECT_FALSE(settings.max_queue_delay_us.has_value());
  EXPECT_FALSE(settings.max_queue_size.has_value());
  EXPECT_FALSE(settings.default_timeout_us.has_value());
  EXPECT_FALSE(settings.instances.has_value());
  EXPECT_FALSE(settings.engine_primitive.has_value());
  EXPECT_FALSE(settings.weights_precision.has_value());
  EXPECT_FALSE(settings.batch_execution.has_value());
}

TEST(ModelConfigTest, MaxBatchSizeZeroMeansServerDefault) {
  std::vector<std::string> warnings;
  EXPECT_FALSE(ReadOrDie("max_batch_size: 0", &warnings).max_batch_size.has_value());
}

TEST(ModelConfigTest, DynamicBatchingPresentSetsQueueDelay) {
  std::vector<std::string> warnings;
  ModelConfigSettings settings = ReadOrDie("dynamic_batching {}", &warnings);
  EXPECT_EQ(settings.max_queue_delay_us, 0);
  EXPECT_FALSE(settings.preferred_batch_sizes.has_value());
}

TEST(ModelConfigTest, VersionPolicies) {
  std::vector<std::string> warnings;
  ModelConfigSettings all = ReadOrDie("version_policy: { all: {} }", &warnings);
  EXPECT_EQ(all.version_policy.kind, VersionPolicy::Kind::kAll);
  ModelConfigSettings latest =
      ReadOrDie("version_policy: { latest: { num_versions: 2 } }", &warnings);
  EXPECT_EQ(latest.version_policy.kind, VersionPolicy::Kind::kLatest);
  EXPECT_EQ(latest.version_policy.num_versions, 2u);
}

TEST(ModelConfigTest, BatchExecutionParameter) {
  std::vector<std::string> warnings;
  ModelConfigSettings settings = ReadOrDie(
      R"(parameters { key: "batch_execution" value { string_value: "workers" } })", &warnings);
  EXPECT_EQ(settings.batch_execution, "workers");
}

TEST(ModelConfigTest, KnownButUnusedValuesWarn) {
  std::vector<std::string> warnings;
  ReadOrDie(R"(
    input [ { name: "x" data_type: TYPE_FP32 dims: [ 64 ] format: FORMAT_NCHW optional: true } ]
    output [ { name: "y" data_type: TYPE_FP32 dims: [ 10 ] label_filename: "labels.txt" } ]
    instance_group [ { name: "cpu_group" kind: KIND_CPU count: 1 gpus: [ 0 ] } ]
    dynamic_batching {
      preserve_ordering: true
      default_queue_policy { timeout_action: DELAY allow_timeout_override: true }
    }
    parameters { key: "intra_op_thread_count" value { string_value: "4" } }
  )",
            &warnings);
  // output[0].label_filename is used (classification), so it does not warn.
  const std::vector<std::string> fields = {"input[0].format",
                                           "input[0].optional",
                                           "instance_group[0].gpus",
                                           "instance_group[0].name",
                                           "dynamic_batching.preserve_ordering",
                                           "timeout_action DELAY",
                                           "allow_timeout_override",
                                           "parameters['intra_op_thread_count']"};
  EXPECT_EQ(warnings.size(), fields.size()) << ::testing::PrintToString(warnings);
  for (const std::string& field : fields) {
    bool found = false;
    for (const std::string& w : warnings) found = found || w.find(field) != std::string::npos;
    EXPECT_TRUE(found) << "no warning names " << field << ": "
                       << ::testing::PrintToString(warnings);
  }
}

TEST(ModelConfigTest, LabelFilenameMustStayInTheModelFolder) {
  std::vector<std::string> warnings;
  ReadOrDie(R"(output [ { name: "y" label_filename: "labels.txt" } ])", &warnings);
  ReadOrDie(R"(output [ { name: "y" label_filename: "labels/digits..txt" } ])", &warnings);
  EXPECT_THAT(warnings, IsEmpty());
  EXPECT_REFUSED(R"(output [ { name: "y" label_filename: "/etc/passwd" } ])",
                 "output[0].label_filename '/etc/passwd' must be a path inside the model folder");
  EXPECT_REFUSED(R"(output [ { name: "y" }, { name: "z" label_filename: "../other/l.txt" } ])",
                 "output[1].label_filename '../other/l.txt'");
  EXPECT_REFUSED(R"(output [ { name: "y" label_filename: "a/../../l.txt" } ])",
                 "output[0].label_filename");
}

TEST(ModelConfigTest, CompleteModelConfigKeepsLabelFilename) {
  const inference::ModelConfig given =
      ParseOrDie(R"(output [ { name: "y" data_type: TYPE_FP32 dims: [ 10 ] )"
                 R"(label_filename: "labels.txt" } ])");
  const inference::ModelConfig complete =
      CompleteModelConfig(given, "m", TestSpec(), EffectiveServing());
  ASSERT_EQ(complete.output_size(), 1);
  EXPECT_EQ(complete.output(0).label_filename(), "labels.txt");
  EXPECT_EQ(CompleteModelConfig(inference::ModelConfig(), "m", TestSpec(), EffectiveServing())
                .output(0)
                .label_filename(),
            "");
}

TEST(ModelConfigTest, SyntaxErrorReportsLineAndColumn) {
  std::vector<std::string> warnings;
  StatusOr<inference::ModelConfig> config =
      ParseModelConfigText("name: \"m\"\nmax_batch_size: \"eight\"\n", "m/config.pbtxt", &warnings);
  ASSERT_FALSE(config.ok());
  EXPECT_EQ(config.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(config.status().message(), HasSubstr("m/config.pbtxt:2:17: "));
  EXPECT_THAT(config.status().message(), HasSubstr("eight"));
}

TEST(ModelConfigTest, UnbalancedBraceIsASyntaxError) {
  std::vector<std::string> warnings;
  StatusOr<inference::ModelConfig> config = ParseModelConfigText(
      "dynamic_batching {\n  max_queue_delay_microseconds: 5\n", "c", &warnings);
  ASSERT_FALSE(config.ok());
  EXPECT_EQ(config.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(config.status().message(), HasSubstr("c:3:"));
}

TEST(ModelConfigTest, JsonParsesAndNamesIgnoredFields) {
  std::vector<std::string> warnings;
  StatusOr<inference::ModelConfig> config = ParseModelConfigJson(R"({
    "name": "m",
    "max_batch_size": 16,
    "input": [{"name": "x", "data_type": "TYPE_FP32", "dims": [64], "reshape": {"shape": [8, 8]}}],
    "dynamicBatching": {"maxQueueDelayMicroseconds": "250", "priority_levels": 2},
    "optimization": {"priority": "PRIORITY_MAX"},
    "parameters": {"engine_primitive": {"string_value": "inner_product"}}
  })",
                                                                 &warnings);
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_EQ(config->max_batch_size(), 16);
  EXPECT_EQ(config->dynamic_batching().max_queue_delay_microseconds(), 250u);
  EXPECT_EQ(config->parameters().at("engine_primitive").string_value(), "inner_product");
  ASSERT_EQ(warnings.size(), 1u) << ::testing::PrintToString(warnings);
  EXPECT_THAT(warnings[0], HasSubstr("input.reshape"));
  EXPECT_THAT(warnings[0], HasSubstr("dynamic_batching.priority_levels"));
  EXPECT_THAT(warnings[0], HasSubstr("optimization"));

  warnings.clear();
  ASSERT_TRUE(ParseModelConfigJson(R"({"name": "m"})", &warnings).ok());
  EXPECT_THAT(warnings, IsEmpty());
}

TEST(ModelConfigTest, InvalidJsonIsRefused) {
  std::vector<std::string> warnings;
  StatusOr<inference::ModelConfig> config = ParseModelConfigJson(R"({"name": )", &warnings);
  ASSERT_FALSE(config.ok());
  EXPECT_EQ(config.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(config.status().message(), HasSubstr("config JSON"));

  config = ParseModelConfigJson(R"({"max_batch_size": "lots"})", &warnings);
  ASSERT_FALSE(config.ok());
  EXPECT_EQ(config.status().code(), StatusCode::kInvalidArgument);
}

TEST(ModelConfigRefusalTest, NameMustMatchFolder) {
  EXPECT_REFUSED(R"(name: "other")", "name 'other'", "model folder 'm'");
}

TEST(ModelConfigRefusalTest, PlatformAndBackend) {
  EXPECT_REFUSED(R"(platform: "tensorflow_savedmodel")", "platform 'tensorflow_savedmodel'",
                 "onnxruntime_onnx");
  EXPECT_REFUSED(R"(backend: "pytorch")", "backend 'pytorch'");
  std::vector<std::string> warnings;
  ReadOrDie(R"(platform: "onnxruntime_onnx" backend: "onnxruntime")", &warnings);
  ReadOrDie(R"(backend: "selu")", &warnings);
}

TEST(ModelConfigRefusalTest, NegativeMaxBatchSize) {
  EXPECT_REFUSED("max_batch_size: -4", "max_batch_size -4");
}

TEST(ModelConfigRefusalTest, VersionPolicy) {
  EXPECT_REFUSED("version_policy: { latest: { num_versions: 0 } }",
                 "version_policy.latest.num_versions must be >= 1");
  EXPECT_REFUSED("version_policy: { specific: { versions: [ 2, -3 ] } }",
                 "version_policy.specific.versions[1] -3 is not a positive integer");
  EXPECT_REFUSED("version_policy: { specific: { versions: [ 0 ] } }",
                 "version_policy.specific.versions[0] 0");
  EXPECT_REFUSED("version_policy: { specific: {} }", "version_policy.specific lists no versions");
}

TEST(ModelConfigRefusalTest, InstanceGroups) {
  EXPECT_REFUSED("instance_group [ { kind: KIND_GPU } ]",
                 "instance_group[0].kind KIND_GPU: selu-serve runs models on the CPU");
  EXPECT_REFUSED("instance_group [ { kind: KIND_CPU }, { kind: KIND_MODEL } ]",
                 "instance_group[1].kind KIND_MODEL");
  EXPECT_REFUSED("instance_group [ { count: -1 } ]", "instance_group[0].count -1 must be >= 0");
  EXPECT_REFUSED("instance_group [ { count: 40 }, { count: 25 } ]", "instance_group", "65", "64");
  std::vector<std::string> warnings;
  EXPECT_EQ(ReadOrDie("instance_group [ { count: 32 }, { count: 32 } ]", &warnings).instances, 64);
}

TEST(ModelConfigRefusalTest, DynamicBatching) {
  EXPECT_REFUSED("dynamic_batching { preferred_batch_size: [ 0 ] }",
                 "dynamic_batching.preferred_batch_size[0] 0 must be >= 1");
  EXPECT_REFUSED("max_batch_size: 16 dynamic_batching { preferred_batch_size: [ 8, 32 ] }",
                 "dynamic_batching.preferred_batch_size[1] 32", "max_batch_size 16");
  EXPECT_REFUSED("dynamic_batching { max_queue_delay_microseconds: 20000000 }",
                 "dynamic_batching.max_queue_delay_microseconds 20000000 exceeds 10 s");
  EXPECT_REFUSED(
      "dynamic_batching { default_queue_policy { default_timeout_microseconds: 100000000000 } }",
      "dynamic_batching.default_queue_policy.default_timeout_microseconds 100000000000");
  std::vector<std::string> warnings;
  EXPECT_EQ(ReadOrDie("dynamic_batching { max_queue_delay_microseconds: 10000000 }", &warnings)
                .max_queue_delay_us,
            10'000'000);
}

TEST(ModelConfigRefusalTest, DefaultModelFilename) {
  EXPECT_REFUSED(R"(default_model_filename: "a/b.onnx")",
                 "default_model_filename 'a/b.onnx' must be a plain file name");
  EXPECT_REFUSED(R"(default_model_filename: "a\\b.onnx")", "default_model_filename");
  EXPECT_REFUSED(R"(default_model_filename: "..")", "default_model_filename '..'");
  EXPECT_REFUSED(R"(default_model_filename: ".")", "default_model_filename '.'");
}

TEST(ModelConfigRefusalTest, Parameters) {
  EXPECT_REFUSED(R"(parameters { key: "engine_primitive" value { string_value: "x" } })",
                 "parameters['engine_primitive'] 'x' must be auto, inner_product or matmul");
  EXPECT_REFUSED(R"(parameters { key: "weights_precision" value { string_value: "fp16" } })",
                 "parameters['weights_precision'] 'fp16' must be fp32 or bf16");
  EXPECT_REFUSED(R"(parameters { key: "batch_execution" value { string_value: "gpu" } })",
                 "parameters['batch_execution'] 'gpu' must be auto, caller or workers");
}

TEST(ModelConfigRefusalTest, DimsValues) {
  EXPECT_REFUSED(R"(input [ { name: "x" dims: [ 0 ] } ])", "input[0].dims[0] 0");
  EXPECT_REFUSED(R"(output [ { name: "y" dims: [ 10, -2 ] } ])", "output[0].dims[1] -2");
}

// CheckModelConfigAgainstModel: parses `text` and expects a refusal naming `part`.
void ExpectModelMismatch(const std::string& text, const std::string& part,
                         const ModelSpec& spec = TestSpec()) {
  Status status = CheckModelConfigAgainstModel(ParseOrDie(text), spec);
  EXPECT_EQ(status.code(), StatusCode::kInvalidArgument) << text;
  EXPECT_THAT(status.message(), HasSubstr(part));
}

TEST(ModelConfigAgainstModelTest, MatchingAndEmptyListsAreFine) {
  EXPECT_EQ(CheckModelConfigAgainstModel(ParseOrDie(""), TestSpec()), OkStatus());
  EXPECT_EQ(CheckModelConfigAgainstModel(
                ParseOrDie(R"(input [ { name: "x" data_type: TYPE_FP32 dims: [ -1 ] } ]
                              output [ { name: "y" data_type: TYPE_FP32 dims: [ 10 ] } ])"),
                TestSpec()),
            OkStatus());
}

TEST(ModelConfigAgainstModelTest, Mismatches) {
  ExpectModelMismatch(
      R"(input [ { name: "x" data_type: TYPE_FP32 dims: [ 64 ] },
                 { name: "z" data_type: TYPE_FP32 dims: [ 64 ] } ])",
      "input: the model has 1 input, the config lists 2");
  ExpectModelMismatch(R"(input [ { name: "images" data_type: TYPE_FP32 dims: [ 64 ] } ])",
                      "input[0].name 'images' is not the model's input 'x'");
  ExpectModelMismatch(R"(input [ { name: "x" data_type: TYPE_FP64 dims: [ 64 ] } ])",
                      "input[0].data_type TYPE_FP64 does not match the model's TYPE_FP32");
  ExpectModelMismatch(R"(input [ { name: "x" data_type: TYPE_FP32 dims: [ 63 ] } ])",
                      "input[0].dims [63] do not match the model's [64] (dims exclude the batch "
                      "dimension)");
  ExpectModelMismatch(R"(input [ { name: "x" data_type: TYPE_FP32 dims: [ -1, 64 ] } ])",
                      "input[0].dims [-1, 64] do not match the model's [64]");
  ExpectModelMismatch(
      R"(output [ { name: "y" data_type: TYPE_FP32 dims: [ 10 ] }, { name: "z" } ])",
      "output: the model has 1 output, the config lists 2");
  ExpectModelMismatch(R"(output [ { name: "probs" data_type: TYPE_FP32 dims: [ 10 ] } ])",
                      "output[0].name 'probs' is not the model's output 'y'");
  ExpectModelMismatch(R"(output [ { name: "y" data_type: TYPE_INT64 dims: [ 10 ] } ])",
                      "output[0].data_type TYPE_INT64");
  ExpectModelMismatch(R"(output [ { name: "y" data_type: TYPE_FP32 dims: [ 9 ] } ])",
                      "output[0].dims [9] do not match the model's [10]");
}

TEST(ModelConfigAgainstModelTest, FixedBatchSize) {
  ModelSpec spec = TestSpec();
  spec.input_shape = {1, 64};
  spec.fixed_batch_size = 1;
  ExpectModelMismatch("max_batch_size: 64",
                      "max_batch_size 64 exceeds the batch size 1 fixed by the model file", spec);
  ExpectModelMismatch("dynamic_batching { preferred_batch_size: [ 4 ] }",
                      "dynamic_batching.preferred_batch_size[0] 4 exceeds the batch size 1", spec);
  EXPECT_EQ(CheckModelConfigAgainstModel(ParseOrDie("max_batch_size: 1"), spec), OkStatus());
}

TEST(ModelConfigTest, CompleteModelConfigRoundTrip) {
  std::vector<std::string> warnings;
  StatusOr<inference::ModelConfig> given = ParseModelConfigText(kTritonConfig, "c", &warnings);
  ASSERT_TRUE(given.ok());
  EffectiveServing serving;
  serving.max_batch_size = 64;
  serving.preferred_batch_sizes = {8, 32};
  serving.max_queue_delay_us = 500;
  serving.max_queue_size = 128;
  serving.default_timeout_us = 20000;
  serving.instances = 3;
  const inference::ModelConfig complete =
      CompleteModelConfig(*given, "digits", TestSpec(), serving);

  // What the rpc returns is itself a valid config for the same model and
  // reads back to the same settings.
  std::string text;
  ASSERT_TRUE(google::protobuf::TextFormat::PrintToString(complete, &text));
  warnings.clear();
  StatusOr<inference::ModelConfig> reparsed = ParseModelConfigText(text, "complete", &warnings);
  ASSERT_TRUE(reparsed.ok()) << reparsed.status().ToString();
  EXPECT_THAT(warnings, IsEmpty());
  EXPECT_EQ(CheckModelConfigAgainstModel(*reparsed, TestSpec()), OkStatus());
  StatusOr<ModelConfigSettings> settings = ReadModelConfigSettings(*reparsed, "digits", &warnings);
  ASSERT_TRUE(settings.ok()) << settings.status().ToString();
  EXPECT_THAT(warnings, IsEmpty());
  EXPECT_EQ(settings->max_batch_size, 64);
  EXPECT_THAT(*settings->preferred_batch_sizes, ElementsAre(8, 32));
  EXPECT_EQ(settings->max_queue_delay_us, 500);
  EXPECT_EQ(settings->max_queue_size, 128);
  EXPECT_EQ(settings->default_timeout_us, 20000);
  EXPECT_EQ(settings->instances, 3);
  EXPECT_THAT(settings->version_policy.versions, ElementsAre(1, 3));
  EXPECT_EQ(settings->model_filename, "digits.onnx");
  EXPECT_EQ(settings->engine_primitive, "matmul");

  EXPECT_EQ(complete.name(), "digits");
  EXPECT_EQ(complete.platform(), "onnxruntime_onnx");
  EXPECT_EQ(complete.backend(), "onnxruntime");
  ASSERT_EQ(complete.instance_group_size(), 1);
  EXPECT_EQ(complete.instance_group(0).name(), "digits");
  EXPECT_EQ(complete.instance_group(0).kind(), inference::ModelInstanceGroup::KIND_CPU);
  EXPECT_EQ(complete.instance_group(0).count(), 3);
}

TEST(ModelConfigTest, CompleteModelConfigFillsDefaults) {
  ModelSpec spec = TestSpec();
  spec.input_shape = {-1, 8, 8};
  EffectiveServing serving;
  serving.max_batch_size = 32;
  serving.max_queue_delay_us = 1000;
  const inference::ModelConfig complete =
      CompleteModelConfig(inference::ModelConfig(), "m", spec, serving);
  EXPECT_EQ(complete.name(), "m");
  EXPECT_EQ(complete.max_batch_size(), 32);
  ASSERT_EQ(complete.input_size(), 1);
  EXPECT_EQ(complete.input(0).name(), "x");
  EXPECT_EQ(complete.input(0).data_type(), inference::TYPE_FP32);
  EXPECT_THAT(complete.input(0).dims(), ElementsAre(8, 8));
  ASSERT_EQ(complete.output_size(), 1);
  EXPECT_EQ(complete.output(0).name(), "y");
  EXPECT_THAT(complete.output(0).dims(), ElementsAre(10));
  EXPECT_EQ(complete.version_policy().latest().num_versions(), 1u);
  EXPECT_EQ(complete.dynamic_batching().max_queue_delay_microseconds(), 1000u);
  EXPECT_TRUE(complete.dynamic_batching().preferred_batch_size().empty());
  EXPECT_EQ(complete.instance_group(0).count(), 1);
  EXPECT_EQ(complete.default_model_filename(), "model.onnx");
}

}  // namespace
}  // namespace selu::core
