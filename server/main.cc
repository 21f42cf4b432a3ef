// selu-serve: parse options, start the server, wait for SIGTERM/SIGINT, drain.
// `selu-serve calibrate ...` runs the calibrate subcommand instead.
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <string_view>

#include "absl/synchronization/mutex.h"
#include "server/allocator_trim.h"
#include "server/calibrate_command.h"
#include "server/logging.h"
#include "server/options.h"
#include "server/process_lifecycle.h"
#include "server/server_app.h"

int main(int argc, char** argv) {
  // Debian builds Abseil without NDEBUG, so every absl::Mutex (gRPC's locks
  // are) runs deadlock detection: a global graph under a global lock, updated
  // on each acquisition. It cost ~3 % of the server's CPU per request and
  // serialised gRPC's threads on that one lock (bench/UNARY_OVERHEAD.md).
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  // Large transient blocks (model files, weights at a reload) stay out of the
  // heap arenas, which would otherwise fragment (server/allocator_trim.h).
  selu::KeepMmapThreshold();
  if (argc > 1 && std::string_view(argv[1]) == "calibrate") {
    return selu::RunCalibrate(argc - 1, argv + 1);
  }
  // Before any thread exists (gRPC's included), so only sigwait() below
  // receives the stop signals.
  sigset_t stop_signals = selu::BlockStopSignals();

  selu::ServerOptions options;
  if (auto exit_code = selu::ParseServerOptions(argc, argv, &options)) return *exit_code;
  selu::SetUpLogging(options.log_level, options.log_format);

  auto app = selu::ServerApp::Start(options);
  if (!app.ok()) {
    spdlog::critical(selu::LogText("cannot start: " + app.status().ToString()));
    return 1;
  }
  int signal_number = 0;
  sigwait(&stop_signals, &signal_number);
  spdlog::info(selu::LogText(std::string("received ") + strsignal(signal_number)));
  // Drain, then GOAWAY on every connection after the last answer: no call a
  // client sent is lost and no connection is reset.
  (*app)->Stop();
  spdlog::shutdown();
  std::fflush(nullptr);
  _exit(0);
}
