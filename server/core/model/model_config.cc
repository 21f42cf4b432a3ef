#include "server/core/model/model_config.h"

#include <google/protobuf/descriptor.h>
#include <google/protobuf/io/tokenizer.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>
#include <google/protobuf/struct.pb.h>
#include <google/protobuf/text_format.h>
#include <google/protobuf/util/json_util.h>

#include <algorithm>
#include <cstdint>
#include <map>
#include <utility>

namespace selu::core {
namespace {

namespace pb = google::protobuf;

// Real configs are a few kilobytes; this only keeps a hostile one from
// costing much.
constexpr size_t kMaxConfigBytes = size_t{4} << 20;

void Warn(std::vector<std::string>* warnings, std::string message) {
  if (warnings != nullptr) warnings->push_back(std::move(message));
}

// Maps each message type reachable from ModelConfig to the field path that
// leads to it ("inference.ModelInput" -> "input"), so a skipped field can be
// named the way a config author wrote it.
std::map<std::string, std::string> MessagePaths() {
  std::map<std::string, std::string> paths;
  std::vector<std::pair<const pb::Descriptor*, std::string>> todo = {
      {inference::ModelConfig::descriptor(), ""}};
  while (!todo.empty()) {
    auto [d, path] = todo.back();
    todo.pop_back();
    if (!paths.emplace(d->full_name(), path).second) continue;
    for (int i = 0; i < d->field_count(); ++i) {
      const pb::FieldDescriptor* f = d->field(i);
      if (f->message_type() == nullptr) continue;
      const std::string child = path.empty() ? f->name() : path + "." + f->name();
      if (f->is_map()) {
        const pb::FieldDescriptor* value = f->message_type()->map_value();
        if (value->message_type() != nullptr) todo.emplace_back(value->message_type(), child);
      } else {
        todo.emplace_back(f->message_type(), child);
      }
    }
  }
  return paths;
}

std::string FieldPath(const std::string& message_type, const std::string& field) {
  static const std::map<std::string, std::string> paths = MessagePaths();
  auto it = paths.find(message_type);
  if (it == paths.end()) return message_type + "." + field;
  return it->second.empty() ? field : it->second + "." + field;
}

// Returns the text between `prefix` and the next '"' in `s`, or "".
std::string QuotedAfter(const std::string& s, std::string_view prefix) {
  size_t start = s.find(prefix);
  if (start == std::string::npos) return "";
  start += prefix.size();
  const size_t end = s.find('"', start);
  if (end == std::string::npos) return "";
  return s.substr(start, end - start);
}

class ConfigErrorCollector : public pb::io::ErrorCollector {
 public:
  ConfigErrorCollector(std::string_view source, std::vector<std::string>* warnings)
      : source_(source), warnings_(warnings) {}

  void AddError(int line, pb::io::ColumnNumber column, const std::string& message) override {
    if (!error_.has_value()) error_ = Where(line, column) + ": " + message;
  }

  void AddWarning(int line, pb::io::ColumnNumber column, const std::string& message) override {
    // protobuf's wording is `Message type "inference.ModelInput" has no field
    // named "reshape".`; say instead which config field is skipped and why.
    const std::string type = QuotedAfter(message, "Message type \"");
    const std::string field = QuotedAfter(message, "has no field named \"");
    if (!type.empty() && !field.empty()) {
      Warn(warnings_, Where(line, -1) + ": field '" + FieldPath(type, field) +
                          "' is not used by selu-serve; skipped");
    } else {
      Warn(warnings_, Where(line, column) + ": " + message);
    }
  }

  const std::optional<std::string>& error() const { return error_; }

 private:
  // protobuf counts lines and columns from 0; editors count from 1.
  std::string Where(int line, int column) const {
    std::string where(source_);
    if (line >= 0) where += ":" + std::to_string(line + 1);
    if (line >= 0 && column >= 0) where += ":" + std::to_string(column + 1);
    return where;
  }

  std::string source_;
  std::vector<std::string>* warnings_;
  std::optional<std::string> error_;
};

bool IsIdentifierStart(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}
bool IsIdentifierChar(char c) { return IsIdentifierStart(c) || (c >= '0' && c <= '9'); }

// protobuf 3.21 skips an unknown field written as a list without a colon
// (`model_warmup [ { ... } ]`, the way Triton's docs write it) by expecting a
// message, and fails with `Expected "{", found "["`. The colon form
// (`model_warmup: [ ... ]`) is the same field and skips fine, so this adds the
// colon after every field name followed by '['. The blank before '[' becomes
// the ':' so that lines and columns in messages stay those of the file.
std::string ColonBeforeLists(std::string_view text) {
  std::string out;
  out.reserve(text.size() + 16);
  std::vector<char> open;  // '{', '<' or '[' enclosing the current position
  char previous = '{';     // last symbol seen, or 'v' for a value, 'f' for a field name
  size_t i = 0;
  while (i < text.size()) {
    const char c = text[i];
    if (c == '#') {
      const size_t end = text.find('\n', i);
      const size_t stop = end == std::string_view::npos ? text.size() : end;
      out.append(text.substr(i, stop - i));
      i = stop;
    } else if (c == '"' || c == '\'') {
      size_t j = i + 1;
      while (j < text.size() && text[j] != c && text[j] != '\n') j += text[j] == '\\' ? 2 : 1;
      j = std::min(j + 1, text.size());
      out.append(text.substr(i, j - i));
      i = j;
      previous = 'v';
    } else if (IsIdentifierStart(c)) {
      size_t j = i;
      while (j < text.size() && (IsIdentifierChar(text[j]) || text[j] == '.')) ++j;
      out.append(text.substr(i, j - i));
      const bool in_list = !open.empty() && open.back() == '[';
      const bool is_field_name = !in_list && previous != ':' && previous != '-';
      previous = is_field_name ? 'f' : 'v';
      i = j;
      if (!is_field_name) continue;
      size_t k = j;
      while (k < text.size() && (text[k] == ' ' || text[k] == '\t')) ++k;
      if (k < text.size() && text[k] == '[') {
        if (k > j) {
          out += ':';
          out.append(text.substr(j + 1, k - j - 1));
        } else {
          out += ':';
        }
        i = k;
        previous = ':';
      }
    } else if ((c >= '0' && c <= '9') ||
               (c == '.' && i + 1 < text.size() && text[i + 1] >= '0' && text[i + 1] <= '9')) {
      size_t j = i + 1;
      while (j < text.size() &&
             (IsIdentifierChar(text[j]) || text[j] == '.' ||
              ((text[j] == '-' || text[j] == '+') && (text[j - 1] == 'e' || text[j - 1] == 'E')))) {
        ++j;
      }
      out.append(text.substr(i, j - i));
      i = j;
      previous = 'v';
    } else {
      if (c == '{' || c == '<' || c == '[') {
        open.push_back(c);
      } else if ((c == '}' || c == '>' || c == ']') && !open.empty()) {
        open.pop_back();
      }
      if (c != ' ' && c != '\t' && c != '\n' && c != '\r') previous = c;
      out += c;
      ++i;
    }
  }
  return out;
}

const pb::FieldDescriptor* FindJsonField(const pb::Descriptor* d, const std::string& key) {
  for (int i = 0; i < d->field_count(); ++i) {
    const pb::FieldDescriptor* f = d->field(i);
    if (f->name() == key || f->json_name() == key) return f;
  }
  return nullptr;
}

void CollectUnknownJsonFields(const pb::Struct& object, const pb::Descriptor* d,
                              const std::string& path, std::vector<std::string>* unknown);

void CollectUnknownJsonFieldsInValue(const pb::Value& value, const pb::Descriptor* d,
                                     const std::string& path, std::vector<std::string>* unknown) {
  if (value.kind_case() == pb::Value::kStructValue) {
    CollectUnknownJsonFields(value.struct_value(), d, path, unknown);
  } else if (value.kind_case() == pb::Value::kListValue) {
    for (const pb::Value& element : value.list_value().values()) {
      CollectUnknownJsonFieldsInValue(element, d, path, unknown);
    }
  }
}

void CollectUnknownJsonFields(const pb::Struct& object, const pb::Descriptor* d,
                              const std::string& path, std::vector<std::string>* unknown) {
  // Struct's map is unordered; sort so the warning reads the same every time.
  std::map<std::string, const pb::Value*> fields;
  for (const auto& [key, value] : object.fields()) fields.emplace(key, &value);
  for (const auto& [key, value] : fields) {
    const std::string child = path.empty() ? key : path + "." + key;
    const pb::FieldDescriptor* f = FindJsonField(d, key);
    if (f == nullptr) {
      if (std::find(unknown->begin(), unknown->end(), child) == unknown->end()) {
        unknown->push_back(child);
      }
      continue;
    }
    if (f->message_type() == nullptr) continue;
    const std::string field_path = path.empty() ? f->name() : path + "." + f->name();
    if (f->is_map()) {
      const pb::Descriptor* value_type = f->message_type()->map_value()->message_type();
      if (value_type == nullptr || value->kind_case() != pb::Value::kStructValue) continue;
      for (const auto& [map_key, map_value] : value->struct_value().fields()) {
        CollectUnknownJsonFieldsInValue(map_value, value_type, field_path, unknown);
      }
    } else {
      CollectUnknownJsonFieldsInValue(*value, f->message_type(), field_path, unknown);
    }
  }
}

std::string DataTypeName(int type) {
  const std::string& name = inference::DataType_Name(static_cast<inference::DataType>(type));
  return name.empty() ? std::to_string(type) : name;
}

std::string KindName(int kind) {
  const std::string& name = inference::ModelInstanceGroup::Kind_Name(
      static_cast<inference::ModelInstanceGroup::Kind>(kind));
  return name.empty() ? std::to_string(kind) : name;
}

template <typename Dims>
std::string DimsString(const Dims& dims) {
  std::string s = "[";
  bool first = true;
  for (int64_t d : dims) {
    if (!first) s += ", ";
    s += std::to_string(d);
    first = false;
  }
  return s + "]";
}

template <typename Dims>
bool DimsMatch(const Dims& config_dims, const std::vector<int64_t>& model_dims) {
  if (static_cast<size_t>(config_dims.size()) != model_dims.size()) return false;
  for (size_t i = 0; i < model_dims.size(); ++i) {
    const int64_t c = config_dims[static_cast<int>(i)];
    const int64_t m = model_dims[i];
    if (c != -1 && m != -1 && c != m) return false;
  }
  return true;
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

std::vector<int64_t> ModelInputDims(const ModelSpec& spec) {
  if (spec.input_shape.empty()) return {spec.input_features};
  return std::vector<int64_t>(spec.input_shape.begin() + 1, spec.input_shape.end());
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
      Warn(warnings, field + ".name '" + group.name() + "' is ignored: instances are not named");
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
    const std::string field = "parameters['" + key + "'] '" + value + "'";
    if (key == "engine_primitive") {
      if (value != "inner_product" && value != "matmul") {
        return InvalidArgumentError(field + " must be inner_product or matmul");
      }
      settings->engine_primitive = value;
    } else if (key == "batch_execution") {
      if (value != "auto" && value != "caller" && value != "workers") {
        return InvalidArgumentError(field + " must be auto, caller or workers");
      }
      settings->batch_execution = value;
    } else {
      Warn(warnings, "parameters['" + key +
                         "'] is ignored: selu-serve reads only engine_primitive and "
                         "batch_execution");
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
    if (!output.label_filename().empty()) {
      Warn(warnings, field + ".label_filename is ignored: classification output is not supported");
    }
  }
  return OkStatus();
}

template <typename Tensors>
Status CheckTensors(const Tensors& tensors, const std::string& kind, const std::string& model_name,
                    const std::vector<int64_t>& model_dims) {
  if (tensors.empty()) return OkStatus();
  if (tensors.size() != 1) {
    return InvalidArgumentError(kind + ": the model has 1 " + kind + ", the config lists " +
                                std::to_string(tensors.size()));
  }
  const auto& tensor = tensors[0];
  const std::string field = kind + "[0]";
  if (tensor.name() != model_name) {
    return InvalidArgumentError(field + ".name '" + tensor.name() + "' is not the model's " + kind +
                                " '" + model_name + "'");
  }
  if (tensor.data_type() != inference::TYPE_FP32) {
    return InvalidArgumentError(field + ".data_type " + DataTypeName(tensor.data_type()) +
                                " does not match the model's TYPE_FP32");
  }
  if (!DimsMatch(tensor.dims(), model_dims)) {
    return InvalidArgumentError(field + ".dims " + DimsString(tensor.dims()) +
                                " do not match the model's " + DimsString(model_dims) +
                                " (dims exclude the batch dimension)");
  }
  return OkStatus();
}

}  // namespace

StatusOr<inference::ModelConfig> ParseModelConfigText(std::string_view text,
                                                      std::string_view source,
                                                      std::vector<std::string>* warnings) {
  if (text.size() > kMaxConfigBytes) {
    return InvalidArgumentError(std::string(source) + ": " + std::to_string(text.size()) +
                                " bytes exceed the config size limit of " +
                                std::to_string(kMaxConfigBytes));
  }
  inference::ModelConfig config;
  ConfigErrorCollector collector(source, warnings);
  pb::TextFormat::Parser parser;
  parser.AllowUnknownField(true);
  parser.RecordErrorsTo(&collector);
  const std::string rewritten = ColonBeforeLists(text);
  pb::io::ArrayInputStream input(rewritten.data(), static_cast<int>(rewritten.size()));
  if (!parser.Parse(&input, &config) || collector.error().has_value()) {
    return InvalidArgumentError(
        collector.error().value_or(std::string(source) + ": could not parse the config"));
  }
  return config;
}

StatusOr<inference::ModelConfig> ParseModelConfigJson(std::string_view json,
                                                      std::vector<std::string>* warnings) {
  if (json.size() > kMaxConfigBytes) {
    return InvalidArgumentError("config JSON: " + std::to_string(json.size()) +
                                " bytes exceed the config size limit of " +
                                std::to_string(kMaxConfigBytes));
  }
  const pb::StringPiece input(json.data(), json.size());
  inference::ModelConfig config;
  pb::util::JsonParseOptions options;
  options.ignore_unknown_fields = true;
  const auto status = pb::util::JsonStringToMessage(input, &config, options);
  if (!status.ok()) {
    const auto message = status.message();
    return InvalidArgumentError("config JSON: " + std::string(message.data(), message.size()));
  }
  // The JSON parser drops unknown fields silently; read the text again as a
  // generic object to name them.
  pb::Struct object;
  if (pb::util::JsonStringToMessage(input, &object).ok()) {
    std::vector<std::string> unknown;
    CollectUnknownJsonFields(object, inference::ModelConfig::descriptor(), "", &unknown);
    if (!unknown.empty()) {
      std::string list;
      for (const std::string& name : unknown) list += (list.empty() ? "" : ", ") + name;
      Warn(warnings, "config JSON: fields not used by selu-serve are ignored: " + list);
    }
  }
  return config;
}

StatusOr<ModelConfigSettings> ReadModelConfigSettings(const inference::ModelConfig& config,
                                                      std::string_view model_name,
                                                      std::vector<std::string>* warnings) {
  ModelConfigSettings settings;
  if (!config.name().empty() && config.name() != model_name) {
    return InvalidArgumentError("name '" + config.name() + "' does not match the model folder '" +
                                std::string(model_name) + "'");
  }
  if (!config.platform().empty() && config.platform() != "onnxruntime_onnx") {
    return InvalidArgumentError("platform '" + config.platform() +
                                "' is not served by selu-serve (ONNX models only: "
                                "onnxruntime_onnx)");
  }
  if (!config.backend().empty() && config.backend() != "onnxruntime" &&
      config.backend() != "selu") {
    return InvalidArgumentError("backend '" + config.backend() +
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
      return InvalidArgumentError("default_model_filename '" + config.default_model_filename() +
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

Status CheckModelConfigAgainstModel(const inference::ModelConfig& config, const ModelSpec& spec) {
  SELU_RETURN_IF_ERROR(
      CheckTensors(config.input(), "input", spec.input_name, ModelInputDims(spec)));
  SELU_RETURN_IF_ERROR(
      CheckTensors(config.output(), "output", spec.output_name, {spec.output_features}));
  if (spec.fixed_batch_size > 0) {
    const std::string fixed = " exceeds the batch size " + std::to_string(spec.fixed_batch_size) +
                              " fixed by the model file";
    if (config.max_batch_size() > spec.fixed_batch_size) {
      return InvalidArgumentError("max_batch_size " + std::to_string(config.max_batch_size()) +
                                  fixed);
    }
    if (config.has_dynamic_batching()) {
      const auto& preferred = config.dynamic_batching().preferred_batch_size();
      for (int i = 0; i < preferred.size(); ++i) {
        if (preferred[i] > spec.fixed_batch_size) {
          return InvalidArgumentError("dynamic_batching.preferred_batch_size[" + std::to_string(i) +
                                      "] " + std::to_string(preferred[i]) + fixed);
        }
      }
    }
  }
  return OkStatus();
}

inference::ModelConfig CompleteModelConfig(const inference::ModelConfig& given,
                                           std::string_view model_name, const ModelSpec& spec,
                                           const EffectiveServing& serving) {
  inference::ModelConfig config = given;
  config.set_name(std::string(model_name));
  if (config.platform().empty()) config.set_platform("onnxruntime_onnx");
  if (config.backend().empty()) config.set_backend("onnxruntime");
  config.set_max_batch_size(
      static_cast<int32_t>(std::clamp<int64_t>(serving.max_batch_size, 0, INT32_MAX)));

  config.clear_input();
  inference::ModelInput* input = config.add_input();
  input->set_name(spec.input_name);
  input->set_data_type(inference::TYPE_FP32);
  for (int64_t d : ModelInputDims(spec)) input->add_dims(d);

  config.clear_output();
  inference::ModelOutput* output = config.add_output();
  output->set_name(spec.output_name);
  output->set_data_type(inference::TYPE_FP32);
  output->add_dims(spec.output_features);

  if (!config.has_version_policy() || config.version_policy().policy_choice_case() ==
                                          inference::ModelVersionPolicy::POLICY_CHOICE_NOT_SET) {
    config.mutable_version_policy()->mutable_latest()->set_num_versions(1);
  }

  inference::ModelDynamicBatching* batching = config.mutable_dynamic_batching();
  batching->Clear();
  for (int64_t size : serving.preferred_batch_sizes) {
    batching->add_preferred_batch_size(
        static_cast<int32_t>(std::clamp<int64_t>(size, 0, INT32_MAX)));
  }
  batching->set_max_queue_delay_microseconds(
      static_cast<uint64_t>(std::max<int64_t>(serving.max_queue_delay_us, 0)));
  inference::ModelQueuePolicy* queue = batching->mutable_default_queue_policy();
  queue->set_max_queue_size(
      static_cast<uint32_t>(std::clamp<int64_t>(serving.max_queue_size, 0, UINT32_MAX)));
  queue->set_default_timeout_microseconds(
      static_cast<uint64_t>(std::max<int64_t>(serving.default_timeout_us, 0)));

  config.clear_instance_group();
  inference::ModelInstanceGroup* group = config.add_instance_group();
  group->set_name(std::string(model_name));
  group->set_kind(inference::ModelInstanceGroup::KIND_CPU);
  group->set_count(serving.instances);

  if (config.default_model_filename().empty()) config.set_default_model_filename("model.onnx");
  return config;
}

}  // namespace selu::core
