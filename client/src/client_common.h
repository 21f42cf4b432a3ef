// Shared pieces of the selu-client subcommands: connection options, deadlines,
// exit codes and how an RPC error is reported.
#pragma once

#include <google/protobuf/message.h>
#include <grpcpp/grpcpp.h>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace selu::client {

// Exit codes: 0 success, 1 an RPC failed (or the answer says "not ready"),
// 2 the command line or its input files are wrong.
inline constexpr int kExitOk = 0;
inline constexpr int kExitRpcError = 1;
inline constexpr int kExitUsage = 2;

// How the channel is secured, with ghz's flag names. TLS is on when any of
// cacert, cert, key, cname or skip_verify is set; otherwise plaintext.
struct TlsOptions {
  std::string cacert;        // --cacert: PEM CA(s) that verify the server (default: system's)
  std::string cert;          // --cert: PEM client certificate, for mutual TLS (with key)
  std::string key;           // --key: its PEM private key
  std::string cname;         // --cname: name checked in the server certificate
  bool skip_verify = false;  // --skipTLS: TLS without verifying the server
  bool plaintext = false;    // --insecure: plaintext (the default; conflicts with the above)

  bool enabled() const {
    return !cacert.empty() || !cert.empty() || !key.empty() || !cname.empty() || skip_verify;
  }
};

// Options every subcommand takes.
struct ConnectionOptions {
  std::string address = "localhost:8001";  // host:port; env SELU_ADDRESS
  double timeout_s = 10.0;                 // deadline of each RPC
  TlsOptions tls;
  // -H 'key: value' and --metadata JSON: sent with every RPC (a server's
  // --grpc-restricted-protocol headers, for one). Keys lowercase.
  std::vector<std::pair<std::string, std::string>> metadata;
};

// A usage error (bad flag value, unreadable input): printed, exit code 2.
class UsageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// The one channel factory of every subcommand (client/src/channel.cc):
// plaintext or TLS per `connection.tls`. `channel_id` > 0 makes a channel its
// own TCP connection (bench --connections). Throws UsageError for conflicting
// TLS flags or unreadable certificate files.
std::shared_ptr<grpc::Channel> MakeChannel(const ConnectionOptions& connection, int channel_id = 0);

// Sets the deadline `timeout_s` from now on a fresh context.
void SetDeadline(grpc::ClientContext* context, double timeout_s);
// What every RPC of every subcommand gets on its fresh context: the deadline
// `connection.timeout_s` from now and `connection.metadata`.
void PrepareContext(grpc::ClientContext* context, const ConnectionOptions& connection);

// One -H value, "key: value" (spaces around either trimmed, key lowercased,
// the value may hold ':'). Throws UsageError for a missing ':' or a key or
// value gRPC cannot send.
std::pair<std::string, std::string> ParseHeader(const std::string& text);
// --metadata as ghz takes it: a JSON object of strings, '{"key": "value"}'.
// Throws UsageError.
std::vector<std::pair<std::string, std::string>> ParseMetadataJson(const std::string& json);

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
