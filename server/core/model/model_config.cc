// Step 2 of model_config.h: ReadModelConfigSettings, the checks that need no
// model file and the settings a config sets over the server's flags. Every
// refusal names the field.
#include "server/core/model/model_config.h"

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <utility>

#include "server/core/base/client_text.h"
#include "server/core/model/model_config_warn.h"

namespace selu::core {
namespace {

using model_config_internal::Warn;

std::string KindName(int kind) {
  const std::string& name = inference::ModelInstanceGroup::Kind_Name(
      static_cast<inference::ModelInstanceGroup::Kind>(kind));
  return name.empty() ? std::to_string(kind) : name;
}

template <typename Dims>
Status CheckDimsValues(const Dims& dims, const std::string& field) {
  for (int i = 0; i < dims.size(); ++i) {
    if (dims[i] < 1 && dims[i] != -1) {
      return InvalidArgumentError(field + ".dims[" + std::to_string(i) + "] " +
                                  std::to_string(dims[i]) + " must be >= 1 (or -1 for any size)");
    }
  }
  return OkStatus();
}

bool IsPlainFileName(const std::string& name) {
  return !name.empty() && name != "." && name != ".." &&
         name.find_first_of(std::string_view("/\\\0", 3)) == std::string::npos;
}

// Triton reads label_filename relative to the model's folder; a path that
// leaves it (absolute, or through "..") is refused here, one that leaves it
// through a symlink when the labels load (classification.h).
Status CheckLabelFilename(const std::string& name, const std::string& field) {
  if (name.empty()) return OkStatus();
  bool escapes = name.front() == '/' || name.find('\0') != std::string::npos;
  for (size_t start = 0; !escapes && start <= name.size();) {
    const size_t end = std::min(name.find('/', start), name.size());
    if (name.compare(start, end - start, "..") == 0) escapes = true;
    start = end + 1;
  }
  if (escapes) {
    return InvalidArgumentError(field + ".label_filename '" + QuoteClientText(name) +
                                "' must be a path inside the model folder (relative, no '..')");
  }
  return OkStatus();
}

StatusOr<VersionPolicy> ReadVersionPolicy(const inference::ModelConfig& config) {
  VersionPolicy policy;
  if (!config.has_version_policy()) return policy;
  const inference::ModelVersionPolicy& given = config.version_policy();
  switch (given.policy_choice_case()) {
    case inference::ModelVersionPolicy::kLatest:
      if (given.latest().num_versions() < 1) {
        return InvalidArgumentError("version_policy.latest.num_versions must be >= 1");
      }
      policy.num_versions = given.latest().num_versions();
      break;
    case inference::ModelVersionPolicy::kAll:
      policy.kind = VersionPolicy::Kind::kAll;
      break;
    case inference::ModelVersionPolicy::kSpecific: {
      policy.kind = VersionPolicy::Kind::kSpecific;
      const auto& versions = given.specific().versions();
      if (versions.empty())
        return InvalidArgumentError("version_policy.specific lists no versions");
      for (int i = 0; i < versions.size(); ++i) {
        if (versions[i] <= 0) {
          return InvalidArgumentError("version_policy.specific.versions[" + std::to_string(i) +
                                      "] " + std::to_string(versions[i]) +
                                      " is not a positive integer");
        }
      }
      policy.versions.assign(versions.begin(), versions.end());
      std::sort(policy.versions.begin(), policy.versions.end());
      policy.versions.erase(std::unique(policy.versions.begin(), policy.versions.end()),
                            policy.versions.end());
      break;
    }
    case inference::ModelVersionPolicy::POLICY_CHOICE_NOT_SET:
      break;
  }
  return policy;
}

Status ReadInstanceGroups(const inference::ModelConfig& config, std::string_view model_name,
                          ModelConfigSettings* settings, std::vector<std::string>* warnings) {
  if (config.instance_group().empty()) return OkStatus();
  int64_t total = 0;
  for (int i = 0; i < config.instance_group_size(); ++i) {
    const inference::ModelInstanceGroup& group = config.instance_group(i);
    const std::string field = "instance_group[" + std::to_string(i) + "]";
    if (group.kind() != inference::ModelInstanceGroup::KIND_CPU &&
        group.kind() != inference::ModelInstanceGroup::KIND_AUTO) {
      return InvalidArgumentError(
          field + ".kind " + KindName(group.kind()) +
          ": selu-serve runs models on the CPU (use KIND_CPU or KIND_AUTO)");
    }
    if (group.count() < 0) {
      return InvalidArgumentError(field + ".count " + std::to_string(group.count()) +
                                  " must be >= 0");
    }
    total += std::max(group.count(), 1);
    if (!group.gpus().empty()) Warn(warnings, field + ".gpus is ignored: selu-serve uses no GPU");
    // The model's own name is what CompleteModelConfig reports, so a config
    // copied from the ModelConfig rpc reads back without warnings.
    if (!group.name().empty() && group.name() != model_name) {
      Warn(warnings, field + ".name '" + QuoteClientText(group.name()) +
                         "' is ignored: instances are not named");
    }
  }
  if (total > kMaxConfigInstances) {
    return InvalidArgumentError("instance_group: " + std::to_string(total) +
                                " instances in total exceed the limit of " +
                                std::to_string(kMaxConfigInstances));
  }
  settings->instances = static_cast<int>(total);
  return OkStatus();
}

Status ReadDynamicBatching(const inference::ModelConfig& config, ModelConfigSettings* settings,
                           std::vector<std::string>* warnings) {
  if (!config.has_dynamic_batching()) return OkStatus();
  const inference::ModelDynamicBatching& batching = config.dynamic_batching();
  std::vector<int64_t> preferred;
  for (int i = 0; i < batching.preferred_batch_size_size(); ++i) {
    const int64_t size = batching.preferred_batch_size(i);
    const std::string field = "dynamic_batching.preferred_batch_size[" + std::to_string(i) + "] ";
    if (size < 1) return InvalidArgumentError(field + std::to_string(size) + " must be >= 1");
    if (settings->max_batch_size.has_value() && size > *settings->max_batch_size) {
      return InvalidArgumentError(field + std::to_string(size) + " exceeds max_batch_size " +
                                  std::to_string(*settings->max_batch_size));
    }
    preferred.push_back(size);
  }
  if (!preferred.empty()) {
    std::sort(preferred.begin(), preferred.end());
    preferred.erase(std::unique(preferred.begin(), preferred.end()), preferred.end());
    settings->preferred_batch_sizes = std::move(preferred);
  }
  if (batching.max_queue_delay_microseconds() > static_cast<uint64_t>(kMaxConfigQueueDelayUs)) {
    return InvalidArgumentError("dynamic_batching.max_queue_delay_microseconds " +
                                std::to_string(batching.max_queue_delay_microseconds()) +
                                " exceeds 10 s");
  }
  settings->max_queue_delay_us = static_cast<int64_t>(batching.max_queue_delay_microseconds());
  if (batching.preserve_ordering()) {
    Warn(warnings,
         "dynamic_batching.preserve_ordering is ignored: each request gets its own response");
  }
  if (batching.has_default_queue_policy()) {
    const inference::ModelQueuePolicy& queue = batching.default_queue_policy();
    const std::string field = "dynamic_batching.default_queue_policy.";
    if (queue.timeout_action() == inference::ModelQueuePolicy::DELAY) {
      Warn(warnings, field + "timeout_action DELAY is ignored: timed-out requests are rejected");
    }
    if (queue.allow_timeout_override()) {
      Warn(warnings, field + "allow_timeout_override is ignored");
    }
    if (queue.default_timeout_microseconds() > static_cast<uint64_t>(kMaxConfigDefaultTimeoutUs)) {
      return InvalidArgumentError(field + "default_timeout_microseconds " +
                                  std::to_string(queue.default_timeout_microseconds()) +
                                  " exceeds 24 h");
    }
    if (queue.default_timeout_microseconds() > 0) {
      settings->default_timeout_us = static_cast<int64_t>(queue.default_timeout_microseconds());
    }
    if (queue.max_queue_size() > 0) settings->max_queue_size = queue.max_queue_size();
  }
  return OkStatus();
}

Status ReadParameters(const inference::ModelConfig& config, ModelConfigSettings* settings,
                      std::vector<std::string>* warnings) {
  // The proto map is unordered; sort so warnings come out the same every time.
  const std::map<std::string, std::string> parameters = [&] {
    std::map<std::string, std::string> sorted;
    for (const auto& [key, value] : config.parameters()) sorted.emplace(key, value.string_value());
    return sorted;
  }();
  for (const auto& [key, value] : parameters) {
    const std::string field =
        "parameters['" + QuoteClientText(key) + "'] '" + QuoteClientText(value) + "'";
    if (key == "engine_primitive") {
      if (value != "auto" && value != "inner_product" && value != "matmul") {
        return InvalidArgumentError(field + " must be auto, inner_product or matmul");
      }
      settings->engine_primitive = value;
    } else if (key == "weights_precision") {
      if (value != "fp32" && value != "bf16") {
        return InvalidArgumentError(field + " must be fp32 or bf16");
      }
      settings->weights_precision = value;
    } else if (key == "batch_execution") {
      if (value != "auto" && value != "caller" && value != "workers") {
        return InvalidArgumentError(field + " must be auto, caller or workers");
      }
      settings->batch_execution = value;
    } else if (key == "monitor_sample_rate") {
      char* end = nullptr;
      const double rate = std::strtod(value.c_str(), &end);
      if (value.empty() || *end != '\0' || !(rate >= 0 && rate <= 1)) {
        return InvalidArgumentError(field + " must be a number in [0, 1]");
      }
      settings->monitor_sample_rate = rate;
    } else if (key == "monitor_window_rows") {
      char* end = nullptr;
      const long long rows = std::strtoll(value.c_str(), &end, 10);
      if (value.empty() || *end != '\0' || rows < 16 || rows > (1 << 20)) {
        return InvalidArgumentError(field + " must be an integer in [16, 1048576]");
      }
      settings->monitor_window_rows = rows;
    } else {
      Warn(warnings,
           "parameters['" + QuoteClientText(key) +
               "'] is ignored: selu-serve reads only engine_primitive, "
               "weights_precision, batch_execution, monitor_sample_rate and monitor_window_rows");
    }
  }
  return OkStatus();
}

Status ReadTensors(const inference::ModelConfig& config, std::vector<std::string>* warnings) {
  for (int i = 0; i < config.input_size(); ++i) {
    const inference::ModelInput& input = config.input(i);
    const std::string field = "input[" + std::to_string(i) + "]";
    SELU_RETURN_IF_ERROR(CheckDimsValues(input.dims(), field));
    if (input.format() != inference::ModelInput::FORMAT_NONE) {
      Warn(warnings, field + ".format is ignored: inputs are flattened rows");
    }
    if (input.optional()) Warn(warnings, field + ".optional is ignored: the input is required");
  }
  for (int i = 0; i < config.output_size(); ++i) {
    const inference::ModelOutput& output = config.output(i);
    const std::string field = "output[" + std::to_string(i) + "]";
    SELU_RETURN_IF_ERROR(CheckDimsValues(output.dims(), field));
    SELU_RETURN_IF_ERROR(CheckLabelFilename(output.label_filename(), field));
  }
  return OkStatus();
}

}  // namespace

StatusOr<ModelConfigSettings> ReadModelConfigSettings(const inference::ModelConfig& config,
                                                      std::string_view model_name,
                                                      std::vector<std::string>* warnings) {
  ModelConfigSettings settings;
  if (!config.name().empty() && config.name() != model_name) {
    return InvalidArgumentError("name '" + QuoteClientText(config.name()) +
                                "' does not match the model folder '" +
                                QuoteClientText(model_name) + "'");
  }
  if (!config.platform().empty() && config.platform() != "onnxruntime_onnx") {
    return InvalidArgumentError("platform '" + QuoteClientText(config.platform()) +
                                "' is not served by selu-serve (ONNX models only: "
                                "onnxruntime_onnx)");
  }
  if (!config.backend().empty() && config.backend() != "onnxruntime" &&
      config.backend() != "selu") {
    return InvalidArgumentError("backend '" + QuoteClientText(config.backend()) +
                                "' is not served by selu-serve (ONNX models only: onnxruntime "
                                "or selu)");
  }
  if (config.max_batch_size() < 0) {
    return InvalidArgumentError("max_batch_size " + std::to_string(config.max_batch_size()) +
                                " must be >= 1 (or 0 for the server default)");
  }
  if (config.max_batch_size() > 0) settings.max_batch_size = config.max_batch_size();

  StatusOr<VersionPolicy> policy = ReadVersionPolicy(config);
  if (!policy.ok()) return policy.status();
  settings.version_policy = std::move(policy).value();

  if (!config.default_model_filename().empty()) {
    if (!IsPlainFileName(config.default_model_filename())) {
      return InvalidArgumentError("default_model_filename '" +
                                  QuoteClientText(config.default_model_filename()) +
                                  "' must be a plain file name");
    }
    settings.model_filename = config.default_model_filename();
  }

  SELU_RETURN_IF_ERROR(ReadInstanceGroups(config, model_name, &settings, warnings));
  SELU_RETURN_IF_ERROR(ReadDynamicBatching(config, &settings, warnings));
  SELU_RETURN_IF_ERROR(ReadParameters(config, &settings, warnings));
  SELU_RETURN_IF_ERROR(ReadTensors(config, warnings));
  return settings;
}

}  // namespace selu::core
