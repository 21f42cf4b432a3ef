#include "client/src/client_common.h"

#include <google/protobuf/util/json_util.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

namespace selu::client {

void SetDeadline(grpc::ClientContext* context, double timeout_s) {
  context->set_deadline(std::chrono::system_clock::now() +
                        std::chrono::duration_cast<std::chrono::system_clock::duration>(
                            std::chrono::duration<double>(timeout_s)));
}

void PrepareContext(grpc::ClientContext* context, const ConnectionOptions& connection) {
  SetDeadline(context, connection.timeout_s);
  for (const auto& [key, value] : connection.metadata) context->AddMetadata(key, value);
}

namespace {

std::string Trimmed(const std::string& text) {
  const size_t begin = text.find_first_not_of(" \t");
  if (begin == std::string::npos) return "";
  return text.substr(begin, text.find_last_not_of(" \t") - begin + 1);
}

// gRPC refuses to send other keys (lowercase: HTTP/2 header names), and
// values outside printable ASCII unless the key ends in "-bin".
std::pair<std::string, std::string> CheckedMetadata(std::string key, std::string value) {
  for (char& c : key) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  const bool key_ok =
      !key.empty() && key.rfind("grpc-", 0) != 0 && std::all_of(key.begin(), key.end(), [](char c) {
        return std::islower(static_cast<unsigned char>(c)) ||
               std::isdigit(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.';
      });
  if (!key_ok) {
    throw UsageError("metadata key '" + key +
                     "': use letters, digits, '-', '_' and '.' (not starting with 'grpc-')");
  }
  const bool binary = key.size() > 4 && key.compare(key.size() - 4, 4, "-bin") == 0;
  if (!binary &&
      !std::all_of(value.begin(), value.end(), [](char c) { return c >= 0x20 && c < 0x7f; })) {
    throw UsageError("metadata '" + key + "': the value must be printable ASCII");
  }
  return {std::move(key), std::move(value)};
}

}  // namespace

std::pair<std::string, std::string> ParseHeader(const std::string& text) {
  const size_t colon = text.find(':');
  if (colon == std::string::npos) {
    throw UsageError("-H '" + text.substr(0, text.find_first_of(" \t")) +
                     "...': expected 'key: value'");
  }
  return CheckedMetadata(Trimmed(text.substr(0, colon)), Trimmed(text.substr(colon + 1)));
}

std::vector<std::pair<std::string, std::string>> ParseMetadataJson(const std::string& json) {
  nlohmann::json parsed;
  try {
    parsed = nlohmann::json::parse(json);
  } catch (const nlohmann::json::exception& e) {
    throw UsageError(std::string("--metadata is not JSON: ") + e.what());
  }
  if (!parsed.is_object())
    throw UsageError("--metadata must be a JSON object: '{\"key\": \"value\"}'");
  std::vector<std::pair<std::string, std::string>> metadata;
  for (const auto& [key, value] : parsed.items()) {
    if (!value.is_string())
      throw UsageError("--metadata '" + key + "': the value must be a string");
    metadata.push_back(CheckedMetadata(key, value.get<std::string>()));
  }
  return metadata;
}

namespace {
constexpr int kCodes = 17;
constexpr const char* kCodeNames[kCodes] = {
    "OK",        "CANCELLED",      "UNKNOWN",           "INVALID_ARGUMENT",   "DEADLINE_EXCEEDED",
    "NOT_FOUND", "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
    "ABORTED",   "OUT_OF_RANGE",   "UNIMPLEMENTED",     "INTERNAL",           "UNAVAILABLE",
    "DATA_LOSS", "UNAUTHENTICATED"};
constexpr const char* kGoCodeNames[kCodes] = {
    "OK",       "Canceled",       "Unknown",          "InvalidArgument",   "DeadlineExceeded",
    "NotFound", "AlreadyExists",  "PermissionDenied", "ResourceExhausted", "FailedPrecondition",
    "Aborted",  "OutOfRange",     "Unimplemented",    "Internal",          "Unavailable",
    "DataLoss", "Unauthenticated"};
}  // namespace

const char* CodeName(grpc::StatusCode code) {
  const int c = static_cast<int>(code);
  return c >= 0 && c < kCodes ? kCodeNames[c] : "UNKNOWN";
}

const char* GoCodeName(grpc::StatusCode code) {
  const int c = static_cast<int>(code);
  return c >= 0 && c < kCodes ? kGoCodeNames[c] : "Unknown";
}

int ReportRpcError(const std::string& what, const grpc::Status& status) {
  std::fprintf(stderr, "selu-client: %s: %s: %s\n", what.c_str(), CodeName(status.error_code()),
               status.error_message().c_str());
  return kExitRpcError;
}

double ParseDurationSeconds(const std::string& text) {
  size_t used = 0;
  double value = 0;
  try {
    value = std::stod(text, &used);
  } catch (const std::exception&) {
    throw UsageError("not a duration: '" + text + "' (use e.g. 10s, 250ms, 1m)");
  }
  const std::string unit = text.substr(used);
  double scale = 0;
  if (unit.empty() || unit == "s")
    scale = 1;
  else if (unit == "ms")
    scale = 1e-3;
  else if (unit == "us" || unit == "µs")
    scale = 1e-6;
  else if (unit == "ns")
    scale = 1e-9;
  else if (unit == "m")
    scale = 60;
  else if (unit == "h")
    scale = 3600;
  if (scale == 0 || !std::isfinite(value) || value < 0) {
    throw UsageError("not a duration: '" + text + "' (use e.g. 10s, 250ms, 1m)");
  }
  return value * scale;
}

std::string ReadFileOrThrow(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw UsageError("cannot read " + path);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

int PrintAsJson(const google::protobuf::Message& message, bool all_fields) {
  std::string json;
  google::protobuf::util::JsonPrintOptions options;
  options.add_whitespace = true;
  options.preserve_proto_field_names = true;
  options.always_print_primitive_fields = all_fields;
  const auto status = google::protobuf::util::MessageToJsonString(message, &json, options);
  if (!status.ok()) {
    std::fprintf(stderr, "selu-client: cannot print the answer as JSON: %s\n",
                 status.ToString().c_str());
    return kExitRpcError;
  }
  std::fputs(json.c_str(), stdout);
  return kExitOk;
}

void PrintTable(const std::vector<std::vector<std::string>>& rows,
                const std::vector<size_t>& right_aligned) {
  std::vector<size_t> widths;
  for (const auto& row : rows) {
    if (widths.size() < row.size()) widths.resize(row.size(), 0);
    for (size_t c = 0; c < row.size(); ++c) widths[c] = std::max(widths[c], row[c].size());
  }
  for (const auto& row : rows) {
    std::string text;
    for (size_t c = 0; c < row.size(); ++c) {
      const std::string pad(widths[c] - row[c].size(), ' ');
      const bool right =
          std::find(right_aligned.begin(), right_aligned.end(), c) != right_aligned.end();
      text += right ? pad + row[c] : row[c] + pad;
      text += "  ";
    }
    text.erase(text.find_last_not_of(' ') + 1);
    std::printf("%s\n", text.c_str());
  }
}

}  // namespace selu::client
