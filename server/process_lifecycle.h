// The two process-level steps every server binary here takes: block the stop
// signals before any thread starts (so only sigwait() receives them), and
// publish the bound port for scripts and tests that listen on port 0.
// Shared by selu-serve and bench/echo_server, so the baseline starts exactly
// as the server does.
#pragma once

#include <pthread.h>
#include <signal.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <system_error>

namespace selu {

// Blocks SIGTERM and SIGINT in the calling thread (and every thread it starts
// later) and returns the set, for sigwait().
inline sigset_t BlockStopSignals() {
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  return stop_signals;
}

// Writes `port` to `path` atomically (temp file + rename), so a reader never
// sees a partial number. False if it cannot.
inline bool WritePortFile(const std::string& path, int port) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp);
    if (!(out << port << "\n")) return false;
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  return !ec;
}

}  // namespace selu
