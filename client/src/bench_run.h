// What the load generators of `selu-client bench` share: the run's schedule
// (sequence numbers, the end time, interruption), its error tally, and how a
// completed request is recorded. The unary slots (bench_command.cc) and the
// stream workers (bench_stream.cc) both draw sequence numbers from one Run.
//
// Thread safety: Claim() and the atomics from any thread; `errors`, `busy`
// and `idle` under `mu`.
#pragma once

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "client/src/bench_command.h"
#include "proto/grpc_service.grpc.pb.h"

namespace selu::client {

using BenchClock = std::chrono::steady_clock;

// Set by SIGINT during a run.
bool BenchInterrupted();

struct Record {
  uint64_t sequence;
  uint64_t latency_ns;
  grpc::StatusCode code;
};

class Slot;

struct Run {
  const BenchOptions* options = nullptr;
  const ConnectionOptions* connection = nullptr;  // deadline and metadata of every call
  const std::vector<inference::ModelInferRequest>* requests = nullptr;
  bool open_loop = false;
  uint64_t limit = 0;  // sequence numbers below this are sent
  std::optional<BenchClock::time_point> end;
  std::atomic<uint64_t> next_sequence{0};
  std::atomic<bool> stopped_by_time{false};

  std::mutex mu;
  std::condition_variable changed;
  int busy = 0;             // slots (streams: workers) still running
  std::vector<Slot*> idle;  // open loop: slots ready for the pacer
  std::map<std::string, uint64_t> errors;

  // Closed loop: the sequence number of the next request, or nothing when the
  // run is over.
  std::optional<uint64_t> Claim() {
    if (BenchInterrupted()) return std::nullopt;
    if (end && BenchClock::now() >= *end) {
      stopped_by_time.store(true, std::memory_order_relaxed);
      return std::nullopt;
    }
    const uint64_t sequence = next_sequence.fetch_add(1, std::memory_order_relaxed);
    if (sequence >= limit) return std::nullopt;
    return sequence;
  }

  // Whether a request answered at `now` is left out of the report
  // (--duration-stop ignore: what was in flight when the time ran out).
  bool Ignored(BenchClock::time_point now) const {
    return options->duration_stop == DurationStop::kIgnore && end && now > *end;
  }

  void CountError(const std::string& text) {
    std::lock_guard lock(mu);
    ++errors[text];
  }

  // A slot or worker is done for good.
  void Retire() {
    std::lock_guard lock(mu);
    --busy;
    changed.notify_all();
  }
};

// "rpc error: code = <Go name> desc = <message>", as ghz tallies errors.
std::string GhzErrorText(const grpc::Status& status);

// Nanoseconds from `from` to `to`, never negative.
inline uint64_t ElapsedNs(BenchClock::time_point from, BenchClock::time_point to) {
  const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(to - from).count();
  return static_cast<uint64_t>(ns > 0 ? ns : 0);
}

// --stream: `run->options->concurrency` workers, each holding a stream and
// sending one message at a time on it (closed loop, as ghz's streaming
// mode), a new stream after --stream-call-count messages or
// --stream-call-duration. Blocks until every worker has finished; returns
// every worker's records. With --duration-stop close the streams still open
// at the end are cancelled.
std::vector<Record> RunStreams(Run* run,
                               const std::vector<inference::GRPCInferenceService::Stub*>& stubs);

}  // namespace selu::client
