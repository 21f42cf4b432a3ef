// Triton-compatible model configuration (config.pbtxt) for selu-serve.
//
// A model folder may hold a config.pbtxt written for Triton. It is read in
// three steps:
//   1. ParseModelConfigText / ParseModelConfigJson turn the text into an
//      inference::ModelConfig (proto/model_config.proto, a subset of Triton's
//      schema). Fields Triton has and selu-serve does not use are skipped with
//      one warning each, so a Triton config works unchanged.
//   2. ReadModelConfigSettings checks everything that needs no model file and
//      extracts the settings that override the server's flags.
//   3. CheckModelConfigAgainstModel, once the ONNX file is loaded, checks the
//      listed inputs and outputs against the model.
// CompleteModelConfig builds what the ModelConfig rpc reports: the given
// config completed with the values the server really uses.
//
// Every refusal is INVALID_ARGUMENT with a message that names the field
// (e.g. "instance_group[0].kind KIND_GPU: ..."). Warnings are appended to the
// caller's vector as human-readable lines; a null vector drops them.
//
// Thread safety: stateless functions, safe from any thread.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "proto/model_config.pb.h"
#include "server/core/base/status.h"
#include "server/core/model/model_spec.h"

namespace selu::core {

// Which versions of a model are served (Triton's version_policy).
struct VersionPolicy {
  enum class Kind { kLatest, kAll, kSpecific };
  Kind kind = Kind::kLatest;
  uint32_t num_versions = 1;      // kLatest (>= 1)
  std::vector<int64_t> versions;  // kSpecific: sorted ascending, unique, each > 0
};

// What a config asks for; unset optionals fall back to the server's flags.
struct ModelConfigSettings {
  VersionPolicy version_policy;
  std::string model_filename = "model.onnx";  // default_model_filename (a plain file name)
  std::optional<int64_t> max_batch_size;      // set when max_batch_size > 0
  // dynamic_batching.preferred_batch_size when non-empty: sorted ascending, unique.
  std::optional<std::vector<int64_t>> preferred_batch_sizes;
  std::optional<int64_t> max_queue_delay_us;  // set when dynamic_batching is present
  std::optional<int64_t> max_queue_size;      // default_queue_policy.max_queue_size > 0
  std::optional<int64_t>
      default_timeout_us;        // default_queue_policy.default_timeout_microseconds > 0
  std::optional<int> instances;  // sum of instance_group[*].count (count 0 counts as 1)
  std::optional<std::string>
      engine_primitive;  // parameters["engine_primitive"]: "auto" | "inner_product" | "matmul"
  std::optional<std::string> weights_precision;  // parameters["weights_precision"]: "fp32" | "bf16"
  std::optional<std::string>
      batch_execution;  // parameters["batch_execution"]: "auto" | "caller" | "workers"
  std::optional<double> monitor_sample_rate;   // parameters["monitor_sample_rate"]: [0, 1]
  std::optional<int64_t> monitor_window_rows;  // parameters["monitor_window_rows"]: ≥ 16
};

// Upper bounds ReadModelConfigSettings enforces.
inline constexpr int kMaxConfigInstances = 64;
inline constexpr int64_t kMaxConfigQueueDelayUs = 10'000'000;          // 10 s
inline constexpr int64_t kMaxConfigDefaultTimeoutUs = 86'400'000'000;  // 24 h

// Parses protobuf text format (config.pbtxt). `source` names the text in
// messages (usually the file path). A syntax error is INVALID_ARGUMENT
// "<source>:<line>:<column>: <parser message>" with 1-based line and column.
// Fields Triton has but proto/model_config.proto lacks (optimization,
// model_warmup, response_cache, sequence_batching, input.reshape,
// dynamic_batching.priority_levels, ...) are skipped, not an error: one
// warning per skipped field is appended to *warnings, naming the field (as a
// path such as "input.reshape") and its line.
StatusOr<inference::ModelConfig> ParseModelConfigText(std::string_view text,
                                                      std::string_view source,
                                                      std::vector<std::string>* warnings);

// The same from JSON (Triton's RepositoryModelLoad "config" parameter).
// Unknown fields are ignored with one warning that lists them all. Invalid
// JSON, or a value of the wrong type, is INVALID_ARGUMENT.
StatusOr<inference::ModelConfig> ParseModelConfigJson(std::string_view json,
                                                      std::vector<std::string>* warnings);

// Checks what needs no model file and extracts the settings. `model_name` is
// the model's folder name; an empty config name is fine, another one is
// refused. max_batch_size 0 means "not set" (protobuf3 cannot tell it from
// absent): the server's default applies; a negative value is refused.
// output[].label_filename must be a path inside the model folder (relative,
// no ".." component); the file is read when a version loads
// (classification.h). Known-but-unused values produce warnings, not errors:
// dynamic_batching.preserve_ordering, default_queue_policy.timeout_action
// DELAY and allow_timeout_override, input[].format, input[].optional,
// instance_group[].gpus, instance_group[].name (other than the model name,
// which CompleteModelConfig reports), and parameters with keys other than
// engine_primitive and batch_execution.
StatusOr<ModelConfigSettings> ReadModelConfigSettings(const inference::ModelConfig& config,
                                                      std::string_view model_name,
                                                      std::vector<std::string>* warnings);

// Checks the config's input/output lists against the loaded model's ports
// (spec.inputs / spec.outputs; the chain view's one input and output for a
// spec without them): every listed tensor names a port of the model, once,
// with data type TYPE_FP32 (the model is fp32) and the port's dims, which
// exclude the batch dimension (-1 in the config matches any size). A list may
// leave ports out (an empty one all of them): they are derived from the
// model; it may not list more than the model has. Also refuses a
// max_batch_size (or preferred batch size) larger than a batch size fixed by
// the model file.
Status CheckModelConfigAgainstModel(const inference::ModelConfig& config, const ModelSpec& spec);

// What the server really uses for a model, after flags and config are merged.
struct EffectiveServing {
  int64_t max_batch_size = 0;
  std::vector<int64_t> preferred_batch_sizes;
  int64_t max_queue_delay_us = 0;
  int64_t max_queue_size = 0;
  int64_t default_timeout_us = 0;
  int instances = 1;
};

// What the ModelConfig rpc returns: `given` completed with what the server
// really uses. name = model_name; platform "onnxruntime_onnx" and backend
// "onnxruntime" when empty; max_batch_size from `serving`; every input and
// output of `spec` in model order, TYPE_FP32, dims = the port's declared
// shape without its first (batch) dimension (an output of a chain: [its
// features]);
// version_policy as given or latest {num_versions: 1}; dynamic_batching with
// the effective values (and default_queue_policy max_queue_size /
// default_timeout_microseconds); one instance group {name: model_name, kind:
// KIND_CPU, count: instances}; parameters kept; default_model_filename kept
// ("model.onnx" when empty); an output's label_filename kept.
inference::ModelConfig CompleteModelConfig(const inference::ModelConfig& given,
                                           std::string_view model_name, const ModelSpec& spec,
                                           const EffectiveServing& serving);

}  // namespace selu::core
