// Step 1 of model_config.h: config.pbtxt (protobuf text format) and JSON
// parsed into an inference::ModelConfig, with the fields Triton has and
// selu-serve lacks skipped and named in one warning each.
#include <google/protobuf/descriptor.h>
#include <google/protobuf/io/tokenizer.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>
#include <google/protobuf/struct.pb.h>
#include <google/protobuf/text_format.h>
#include <google/protobuf/util/json_util.h>

#include <algorithm>
#include <map>
#include <optional>
#include <utility>

#include "server/core/base/client_text.h"
#include "server/core/model/model_config.h"
#include "server/core/model/model_config_warn.h"

namespace selu::core {
namespace {

namespace pb = google::protobuf;
using model_config_internal::Warn;

// Real configs are a few kilobytes; this only keeps a hostile one from
// costing much.
constexpr size_t kMaxConfigBytes = size_t{4} << 20;

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
    // protobuf's message may quote the JSON (a snippet around the error, a
    // bad enum name): it is the client's text.
    return InvalidArgumentError(
        "config JSON: " +
        QuoteClientText(std::string_view(message.data(), message.size()), 2 * kClientTextLimit));
  }
  // The JSON parser drops unknown fields silently; read the text again as a
  // generic object to name them.
  pb::Struct object;
  if (pb::util::JsonStringToMessage(input, &object).ok()) {
    std::vector<std::string> unknown;
    CollectUnknownJsonFields(object, inference::ModelConfig::descriptor(), "", &unknown);
    if (!unknown.empty()) {
      // The keys are the client's: each is quoted, and a long list is cut.
      constexpr size_t kMaxListed = 16;
      std::string list;
      for (size_t i = 0; i < unknown.size() && i < kMaxListed; ++i) {
        list += (i == 0 ? "" : ", ") + QuoteClientText(unknown[i]);
      }
      if (unknown.size() > kMaxListed) {
        list += " and " + std::to_string(unknown.size() - kMaxListed) + " more";
      }
      Warn(warnings, "config JSON: fields not used by selu-serve are ignored: " + list);
    }
  }
  return config;
}

}  // namespace selu::core
