// Shared pieces of the selu-client subcommands: connection options, deadlines,
// exit codes and how an RPC error is reported.
#pragma once

#include <google/protobuf/message.h>
#include <grpcpp/grpcpp.h>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace selu::client {

// Exit codes: 0 success, 1 an RPC failed (or the answer says "not ready"),
// 2 the command line or its input files are wrong.
inline constexpr int kExitOk = 0;
inline constexpr int kExitRpcError = 1;
inline constexpr int kExitUsage = 2;

// Options every subcommand takes.
struct ConnectionOptions {
  std::string address = "localhost:8001";  // host:port; env SELU_ADDRESS
  double timeout_s = 10.0;                 // deadline of each RPC
};

// A usage error (bad flag value, unreadable input): printed, exit code 2.
class UsageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

std::shared_ptr<grpc::Channel> MakeChannel(const std::string& address, int channel_id = 0);

// Sets the deadline `timeout_s` from now on a fresh context.
void SetDeadline(grpc::ClientContext* context, double timeout_s);

// "UNAVAILABLE", "NOT_FOUND", ... (the names grpc::StatusCode uses).
const char* CodeName(grpc::StatusCode code);
// "Unavailable", "NotFound", ...: Go's codes.Code names, which ghz reports.
const char* GoCodeName(grpc::StatusCode code);

// Prints "selu-client: <what>: <CODE>: <message>" to stderr; returns kExitRpcError.
int ReportRpcError(const std::string& what, const grpc::Status& status);

// "10s", "250ms", "1.5m", "2h", "500us", "100ns" or a bare number of seconds.
// Throws UsageError.
double ParseDurationSeconds(const std::string& text);

std::string ReadFileOrThrow(const std::string& path);

// Prints `message` as indented JSON with the .proto field names (as Triton's
// clients show them) to stdout; kExitOk, or kExitRpcError if it cannot.
// `all_fields` prints fields at their default value (0, false, "") too.
int PrintAsJson(const google::protobuf::Message& message, bool all_fields = false);

// Prints `rows` (the first one the header) as columns two spaces apart, with
// trailing spaces trimmed; the columns whose index is in `right_aligned`
// (numbers) are aligned right.
void PrintTable(const std::vector<std::vector<std::string>>& rows,
                const std::vector<size_t>& right_aligned = {});

}  // namespace selu::client
