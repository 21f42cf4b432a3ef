// The command line of `selu-client bench`: ghz's flags for a ModelInfer (or
// ModelStreamInfer) run. Those this client implements fill BenchOptions;
// those about .proto files are accepted and ignored (the client knows the
// protocol: no file, no reflection); those it does not implement are
// refused by name, with why, rather than silently changing the run.
//
// Thread safety: used once, on the main thread.
#pragma once

#include <CLI/CLI.hpp>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "client/src/bench_command.h"

namespace selu::client {

class BenchFlags {
 public:
  // Adds the flags to `bench` (CLI11 keeps pointers into this object: it
  // must outlive parsing).
  explicit BenchFlags(CLI::App* bench);
  BenchFlags(const BenchFlags&) = delete;
  BenchFlags& operator=(const BenchFlags&) = delete;
  ~BenchFlags();

  // After parsing: "ghz flag --X is not supported: why" for the first
  // refused flag given, if any.
  std::optional<std::string> Refused() const;

  // After parsing: the options (durations and formats checked; throws
  // UsageError), and the connection's address and metadata updated from the
  // host argument and -M.
  BenchOptions Finish(ConnectionOptions* connection);

 private:
  struct Refusal;
  CLI::App* bench_;
  BenchOptions options_;
  std::string host_, duration_, max_duration_, format_ = "summary", duration_stop_ = "wait",
                                               stream_call_duration_, connect_timeout_,
                                               metadata_file_;
  std::string ignored_text_;
  bool ignored_flag_ = false;
  int cpus_ = 0;
  std::unique_ptr<std::vector<Refusal>> refusals_;
};

}  // namespace selu::client
