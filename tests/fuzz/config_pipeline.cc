#include "tests/fuzz/config_pipeline.h"

#include <google/protobuf/stubs/common.h>
#include <google/protobuf/text_format.h>
#include <google/protobuf/util/json_util.h>
#include <google/protobuf/util/message_differencer.h>

#include <algorithm>
#include <string>
#include <vector>

#include "server/core/model/model_config.h"
#include "tests/fuzz/fuzz_support.h"

namespace selu::fuzz {
namespace {

namespace pb = google::protobuf;
using core::ModelConfigSettings;
using core::StatusCode;
using core::VersionPolicy;

// The server's defaults (server/options.h) where a config sets nothing.
constexpr int64_t kDefaultMaxBatch = 64;
constexpr int64_t kDefaultQueueDelayUs = 0;

std::string Short(const std::string& s) { return s.substr(0, 1500); }

// True when every string in `m` (map keys included) is UTF-8. Text format
// takes any bytes; protobuf's JSON printer silently cuts a string that is
// not UTF-8, so only such configs must read back equal from JSON.
bool AllStringsUtf8(const pb::Message& m) {
  const pb::Reflection* r = m.GetReflection();
  std::vector<const pb::FieldDescriptor*> fields;
  r->ListFields(m, &fields);
  for (const pb::FieldDescriptor* f : fields) {
    const int n = f->is_repeated() ? r->FieldSize(m, f) : 1;
    for (int i = 0; i < n; ++i) {
      if (f->cpp_type() == pb::FieldDescriptor::CPPTYPE_STRING) {
        const std::string s = f->is_repeated() ? r->GetRepeatedString(m, f, i) : r->GetString(m, f);
        if (!pb::internal::IsStructurallyValidUTF8(s.data(), static_cast<int>(s.size()))) {
          return false;
        }
      } else if (f->cpp_type() == pb::FieldDescriptor::CPPTYPE_MESSAGE) {
        if (!AllStringsUtf8(f->is_repeated() ? r->GetRepeatedMessage(m, f, i)
                                             : r->GetMessage(m, f)))
          return false;
      }
    }
  }
  return true;
}

void CheckRoundTrips(const inference::ModelConfig& config, const char* what) {
  std::string text;
  FUZZ_CHECK(pb::TextFormat::PrintToString(config, &text), "text printing failed");
  std::vector<std::string> warnings;
  auto from_text = core::ParseModelConfigText(text, "printed.pbtxt", &warnings);
  FUZZ_CHECK(from_text.ok(), std::string(what) + ": its text form does not parse: " +
                                 from_text.status().ToString() + "\n" + Short(text));
  FUZZ_CHECK(pb::util::MessageDifferencer::Equals(config, *from_text),
             std::string(what) + ": its text form reads back different:\n" + Short(text));
  FUZZ_CHECK(warnings.empty(), std::string(what) + ": its text form warns: " + warnings[0]);

  if (!AllStringsUtf8(config)) return;
  for (bool proto_names : {false, true}) {
    pb::util::JsonPrintOptions options;
    options.preserve_proto_field_names = proto_names;
    std::string json;
    FUZZ_CHECK(pb::util::MessageToJsonString(config, &json, options).ok(), "JSON printing failed");
    warnings.clear();
    auto from_json = core::ParseModelConfigJson(json, &warnings);
    FUZZ_CHECK(from_json.ok(), std::string(what) + ": its JSON does not parse: " +
                                   from_json.status().ToString() + "\n" + Short(json));
    FUZZ_CHECK(pb::util::MessageDifferencer::Equals(config, *from_json),
               std::string(what) + ": its JSON reads back different:\n" + Short(json));
    FUZZ_CHECK(warnings.empty(),
               std::string(what) + ": its JSON warns: " + Short(warnings[0]) + "\n" + Short(json));
  }
}

template <typename T>
bool SortedUniquePositive(const std::vector<T>& v) {
  for (size_t i = 0; i < v.size(); ++i) {
    if (v[i] <= 0 || (i > 0 && v[i - 1] >= v[i])) return false;
  }
  return true;
}

void CheckSettingsInvariants(const ModelConfigSettings& s) {
  const VersionPolicy& p = s.version_policy;
  if (p.kind == VersionPolicy::Kind::kLatest) FUZZ_CHECK(p.num_versions >= 1, "num_versions 0");
  if (p.kind == VersionPolicy::Kind::kSpecific) {
    FUZZ_CHECK(!p.versions.empty() && SortedUniquePositive(p.versions),
               "specific versions not sorted, unique and positive");
  }
  FUZZ_CHECK(!s.model_filename.empty() && s.model_filename.find('/') == std::string::npos &&
                 s.model_filename != "." && s.model_filename != ".." &&
                 s.model_filename.find('\0') == std::string::npos,
             "model_filename is not a plain file name: " + Short(s.model_filename));
  if (s.max_batch_size) FUZZ_CHECK(*s.max_batch_size >= 1, "max_batch_size < 1");
  if (s.preferred_batch_sizes) {
    FUZZ_CHECK(!s.preferred_batch_sizes->empty() && SortedUniquePositive(*s.preferred_batch_sizes),
               "preferred batch sizes not sorted, unique and positive");
    if (s.max_batch_size) {
      FUZZ_CHECK(s.preferred_batch_sizes->back() <= *s.max_batch_size,
                 "a preferred batch size exceeds max_batch_size");
    }
  }
  if (s.max_queue_delay_us) {
    FUZZ_CHECK(*s.max_queue_delay_us >= 0 && *s.max_queue_delay_us <= core::kMaxConfigQueueDelayUs,
               "max_queue_delay_us out of bounds: " + std::to_string(*s.max_queue_delay_us));
  }
  if (s.max_queue_size) FUZZ_CHECK(*s.max_queue_size > 0, "max_queue_size <= 0");
  if (s.default_timeout_us) {
    FUZZ_CHECK(
        *s.default_timeout_us > 0 && *s.default_timeout_us <= core::kMaxConfigDefaultTimeoutUs,
        "default_timeout_us out of bounds");
  }
  if (s.instances) {
    FUZZ_CHECK(*s.instances >= 1 && *s.instances <= core::kMaxConfigInstances,
               "instances out of bounds: " + std::to_string(*s.instances));
  }
  if (s.engine_primitive) {
    FUZZ_CHECK(*s.engine_primitive == "auto" || *s.engine_primitive == "inner_product" ||
                   *s.engine_primitive == "matmul",
               "engine_primitive " + Short(*s.engine_primitive));
  }
  if (s.weights_precision) {
    FUZZ_CHECK(*s.weights_precision == "fp32" || *s.weights_precision == "bf16",
               "weights_precision " + Short(*s.weights_precision));
  }
  if (s.batch_execution) {
    FUZZ_CHECK(*s.batch_execution == "auto" || *s.batch_execution == "caller" ||
                   *s.batch_execution == "workers",
               "batch_execution " + Short(*s.batch_execution));
  }
  if (s.monitor_sample_rate) {
    FUZZ_CHECK(*s.monitor_sample_rate >= 0 && *s.monitor_sample_rate <= 1, "monitor_sample_rate");
  }
  if (s.monitor_window_rows) {
    FUZZ_CHECK(*s.monitor_window_rows >= 16 && *s.monitor_window_rows <= (1 << 20),
               "monitor_window_rows");
  }
}

bool SamePolicy(const VersionPolicy& a, const VersionPolicy& b) {
  return a.kind == b.kind && a.versions == b.versions &&
         (a.kind != VersionPolicy::Kind::kLatest || a.num_versions == b.num_versions);
}

// What the repository does with the settings (model_registry_reconcile.cc
// ApplySettings, over the server's defaults), then what ModelConfig reports,
// read back.
void CheckCompletion(const inference::ModelConfig& config, const std::string& name,
                     const core::ModelSpec& spec, const ModelConfigSettings& settings) {
  core::EffectiveServing serving;
  serving.max_batch_size = settings.max_batch_size.value_or(
      spec.fixed_batch_size > 0 ? std::min(kDefaultMaxBatch, spec.fixed_batch_size)
                                : kDefaultMaxBatch);
  if (settings.preferred_batch_sizes)
    serving.preferred_batch_sizes = *settings.preferred_batch_sizes;
  // The batcher refuses preferred sizes over max_batch_size: no model loads.
  for (int64_t size : serving.preferred_batch_sizes) {
    if (size > serving.max_batch_size) return;
  }
  serving.max_queue_delay_us = settings.max_queue_delay_us.value_or(kDefaultQueueDelayUs);
  serving.max_queue_size = settings.max_queue_size.value_or(0);
  serving.default_timeout_us = settings.default_timeout_us.value_or(0);
  serving.instances = settings.instances.value_or(1);

  const inference::ModelConfig completed = core::CompleteModelConfig(config, name, spec, serving);
  CheckRoundTrips(completed, "the completed config");
  std::vector<std::string> warnings;
  auto again = core::ReadModelConfigSettings(completed, name, &warnings);
  FUZZ_CHECK(again.ok(), "the completed config is refused: " + again.status().ToString());
  const core::Status checked = core::CheckModelConfigAgainstModel(completed, spec);
  FUZZ_CHECK(checked.ok(), "the completed config does not match its model: " + checked.ToString());
  const ModelConfigSettings& s = *again;
  FUZZ_CHECK(s.max_batch_size == serving.max_batch_size, "completed max_batch_size");
  FUZZ_CHECK(
      s.preferred_batch_sizes.value_or(std::vector<int64_t>{}) == serving.preferred_batch_sizes,
      "completed preferred_batch_size");
  FUZZ_CHECK(s.max_queue_delay_us == serving.max_queue_delay_us, "completed queue delay");
  FUZZ_CHECK(s.max_queue_size.value_or(0) == serving.max_queue_size, "completed queue size");
  FUZZ_CHECK(s.default_timeout_us.value_or(0) == serving.default_timeout_us, "completed timeout");
  FUZZ_CHECK(s.instances == serving.instances, "completed instances");
  FUZZ_CHECK(s.model_filename == settings.model_filename, "completed default_model_filename");
  FUZZ_CHECK(SamePolicy(s.version_policy, settings.version_policy), "completed version_policy");
  FUZZ_CHECK(s.engine_primitive == settings.engine_primitive &&
                 s.weights_precision == settings.weights_precision &&
                 s.batch_execution == settings.batch_execution &&
                 s.monitor_sample_rate == settings.monitor_sample_rate &&
                 s.monitor_window_rows == settings.monitor_window_rows,
             "completed parameters");
}

}  // namespace

void CheckParsedConfig(const inference::ModelConfig& config) {
  CheckRoundTrips(config, "the config");

  const std::string name = config.name().empty() ? "digits_snn" : config.name();
  std::vector<std::string> warnings;
  auto settings = core::ReadModelConfigSettings(config, name, &warnings);
  if (settings.ok()) {
    CheckSettingsInvariants(*settings);
  } else {
    CheckRefusal(settings.status(), {StatusCode::kInvalidArgument}, kMaxClientMessageBytes,
                 "ReadModelConfigSettings");
  }
  if (!config.name().empty()) {
    auto other = core::ReadModelConfigSettings(config, name + "_other", nullptr);
    FUZZ_CHECK(!other.ok() && other.status().code() == StatusCode::kInvalidArgument,
               "a config naming another model was not refused");
  }

  for (const core::ModelSpec* spec : {&DigitsSpec(), &Rank3Spec(), &TwoPortSpec()}) {
    const core::Status checked = core::CheckModelConfigAgainstModel(config, *spec);
    if (!checked.ok()) {
      CheckRefusal(checked, {StatusCode::kInvalidArgument}, kMaxClientMessageBytes,
                   "CheckModelConfigAgainstModel");
      continue;
    }
    if (settings.ok()) CheckCompletion(config, name, *spec, *settings);
  }
}

}  // namespace selu::fuzz
