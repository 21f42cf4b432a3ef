// `selu-client bench`: a ghz-compatible ModelInfer load generator on the gRPC
// callback client API.
//
// Closed loop (no --rps): `concurrency` requests are outstanding at all times,
// each reissued from its own completion callback; latency runs from the send.
// Open loop (--rps R): request i is due at start + i/R whether or not earlier
// ones have answered (at most `concurrency` outstanding); its latency runs from
// that intended time, so a stalled server shows up in the percentiles instead
// of silently slowing the client (no coordinated omission).
// Streaming (--stream): ModelStreamInfer, each of `concurrency` workers one
// message in flight on its own stream (bench_run.h RunStreams).
//
// The flags are ghz's where ghz has one (bench_flags.h lists those refused).
#pragma once

#include <string>

#include "client/src/client_common.h"

namespace selu::client {

// ghz's --duration-stop: what happens to requests in flight when -z ends.
enum class DurationStop {
  kWait,    // they complete and are reported
  kClose,   // they are cancelled and reported (as CANCELLED)
  kIgnore,  // they complete and are not reported
};

struct BenchOptions {
  std::string call = "inference.GRPCInferenceService/ModelInfer";
  std::string data;       // JSON ModelInferRequest, or an array of them (round robin)
  std::string data_file;  // the same, from a file
  int concurrency = 50;
  long long total = 200;      // requests; ignored when duration_s > 0
  double duration_s = 0;      // run this long instead of `total` requests
  double rps = 0;             // 0 = closed loop
  int connections = 1;        // channels, each its own TCP connection
  long long skip_first = 0;   // requests left out of the report
  bool json = false;          // -O json instead of the summary
  std::string binary_file;    // -B: a serialized ModelInferRequest (or count-prefixed ones)
  bool binary_stdin = false;  // -b: the same, from stdin
  double max_duration_s = 0;  // -x: stop after this long even if -n is not reached
  DurationStop duration_stop = DurationStop::kWait;
  double connect_timeout_s = 10;  // --connect-timeout
  bool compress = false;          // -e: gzip the requests
  std::string output;             // -o: the report goes to this file instead of stdout
  std::string name;               // --name, echoed in the report
  std::string tags_json;          // --tags, a JSON object echoed in the report's options
  int cpus = 0;                   // --cpus: the client runs on this many CPUs (0: all)
  // --stream: ModelStreamInfer instead of ModelInfer.
  bool stream = false;
  long long stream_call_count = 0;    // messages per stream; 0: one stream per worker
  double stream_call_duration_s = 0;  // a stream's lifetime; 0: unbounded
};

// Runs the load and prints the report; returns the process exit code (0 even
// when requests failed: the report counts them, as ghz does).
int RunBench(const ConnectionOptions& connection, const BenchOptions& options);

}  // namespace selu::client
