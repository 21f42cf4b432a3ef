#include "client/src/client_common.h"

#include <google/protobuf/util/json_util.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>

namespace selu::client {

void SetDeadline(grpc::ClientContext* context, double timeout_s) {
  context->set_deadline(std::chrono::system_clock::now() +
                        std::chrono::duration_cast<std::chrono::system_clock::duration>(
                            std::chrono::duration<double>(timeout_s)));
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
