// `selu-client bench`: a ghz-compatible ModelInfer load generator on the gRPC
// callback client API.
//
// Closed loop (no --rps): `concurrency` requests are outstanding at all times,
// each reissued from its own completion callback; latency runs from the send.
// Open loop (--rps R): request i is due at start + i/R whether or not earlier
// ones have answered (at most `concurrency` outstanding); its latency runs from
// that intended time, so a stalled server shows up in the percentiles instead
// of silently slowing the client (no coordinated omission).
#pragma once

#include <string>

#include "client/src/client_common.h"

namespace selu::client {

struct BenchOptions {
  std::string call = "inference.GRPCInferenceService/ModelInfer";
  std::string data;       // JSON ModelInferRequest, or an array of them (round robin)
  std::string data_file;  // the same, from a file
  int concurrency = 50;
  long long total = 200;     // requests; ignored when duration_s > 0
  double duration_s = 0;     // run this long instead of `total` requests
  double rps = 0;            // 0 = closed loop
  int connections = 1;       // channels, each its own TCP connection
  long long skip_first = 0;  // requests left out of the report
  bool json = false;         // -O json instead of the summary
};

// Runs the load and prints the report; returns the process exit code (0 even
// when requests failed: the report counts them, as ghz does).
int RunBench(const ConnectionOptions& connection, const BenchOptions& options);

}  // namespace selu::client
