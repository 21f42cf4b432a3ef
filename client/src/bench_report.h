// The result of `selu-client bench`, in ghz's shape: the same JSON fields and
// units (integer nanoseconds; histogram marks in seconds), so scripts written
// for `ghz -O json` read it unchanged.
#pragma once

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace selu::client {

struct BenchResult {
  std::vector<uint64_t> latencies_ns;            // of every counted request
  std::map<std::string, uint64_t> status_codes;  // Go code name -> count
  std::map<std::string, uint64_t> errors;        // "rpc error: code = .. desc = .." -> count
  uint64_t total_ns = 0;                         // first send to last answer
  std::string end_reason;                        // "normal", "timeout" or "cancel"
  std::chrono::system_clock::time_point date;    // start
  nlohmann::json options;                        // echoed as "options"
  std::string name;                              // --name: ghz's report "name" (if set)
};

// ghz's JSON report (`-O json`).
nlohmann::json BenchReportJson(BenchResult result);

// ghz's human-readable summary (`-O summary`).
std::string BenchReportSummary(BenchResult result);

}  // namespace selu::client
