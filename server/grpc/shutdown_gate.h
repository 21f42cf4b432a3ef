// ShutdownGate: how ModelInfer answers while the server shuts down, so that
// every call a client sent is answered and no connection is reset.
//
// The trouble it solves: grpc::Server::Shutdown sets a flag, then sends
// GOAWAY on every connection. A call that reaches the server between the two
// is dropped by gRPC itself (the client sees CANCELLED), and exiting without
// Shutdown resets connections that still carry calls. A client sends its next
// call as soon as it has an answer, so there is always a call on the way.
//
// The gate's three states:
//   open     - calls go to the models;
//   refusing - calls are answered UNAVAILABLE "server is shutting down" at
//              once (health is NOT_SERVING: well-behaved clients move away);
//   holding  - calls are parked unanswered. A client waiting for its answer
//              sends nothing more, so once arrivals stop, nothing is on the
//              way: Shutdown's GOAWAY then reaches every client before its
//              next call, and ReleaseHeld() answers the parked calls
//              UNAVAILABLE. Their clients' next calls go to a new connection
//              (refused at connect: they reached no server).
//
// Streams (ModelStreamInfer) register with the gate for their lifetime.
// While refusing, their new requests are answered "server is shutting down"
// and the stream stays open; EndStreams() then asks each to end (UNAVAILABLE,
// once every request it read is answered) and waits for them, so that no
// stream is left for Shutdown to cancel. A stream opened while holding is
// held too (nothing read) and ended by ReleaseHeld(); one opened later ends
// at once.
//
// Thread safety: every member may be called from any thread.
#pragma once

#include <grpcpp/server_context.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <string>
#include <unordered_set>
#include <vector>

#include "server/core/base/call_stats.h"

namespace selu::grpc_transport {

// The message of every refusal the gate makes (unary status and stream
// error_message alike).
inline constexpr char kShuttingDownMessage[] = "server is shutting down; send to another replica";

// What the gate needs of an open stream.
class GatedStream {
 public:
  // Finish with UNAVAILABLE once every request read is answered; read no
  // more. Idempotent, called from any thread, never under the stream's own
  // lock, and must not call back into the gate.
  virtual void EndStream() = 0;
  // Keep the stream alive across an EndStream() call made outside the gate's
  // lock (the stream may reach OnDone meanwhile).
  virtual void Ref() = 0;
  virtual void Unref() = 0;

 protected:
  ~GatedStream() = default;
};

class ShutdownGate {
 public:
  using Clock = std::chrono::steady_clock;

  // Null while open (the caller serves the call); otherwise the call's
  // reactor, answered UNAVAILABLE now (refusing) or later (holding).
  grpc::ServerUnaryReactor* Refuse(core::CallCounters& counters, Clock::time_point start,
                                   grpc::CallbackServerContext* context);

  // open -> refusing.
  void BeginRefusing();
  // refusing -> holding.
  void BeginHolding();
  // Answers every held call UNAVAILABLE; later calls are refused at once.
  // Returns how many calls were held.
  size_t ReleaseHeld();

  // What a newly opened stream must do.
  enum class StreamAdmission {
    kServe,  // read and answer (requests are refused while not open)
    kHold,   // read nothing; EndStream() comes with ReleaseHeld()
    kEnd,    // end now: call EndStream() yourself
  };
  StreamAdmission RegisterStream(GatedStream* stream);
  // From the stream's OnDone; after it the gate never touches `stream`.
  void UnregisterStream(GatedStream* stream);
  // Asks every open stream to end and waits until all have reached OnDone
  // or `deadline` passes. Returns how many streams were open.
  size_t EndStreams(Clock::time_point deadline);
  size_t open_streams() const;

  bool open() const { return state_.load(std::memory_order_relaxed) == kOpen; }
  // When the last call was refused or held (Clock's epoch if none yet).
  Clock::time_point last_arrival() const {
    return Clock::time_point(Clock::duration(last_arrival_.load(std::memory_order_relaxed)));
  }

 private:
  enum State : int { kOpen, kRefusing, kHolding };
  // EndStream() on every registered stream, outside mu_.
  void EndAllStreams();
  struct Held {
    core::CallCounters* counters;
    Clock::time_point start;
    grpc::ServerUnaryReactor* reactor;
  };

  std::atomic<int> state_{kOpen};
  std::atomic<Clock::rep> last_arrival_{0};
  mutable std::mutex mu_;
  std::vector<Held> held_;                    // guarded by mu_
  bool released_ = false;                     // guarded by mu_
  std::unordered_set<GatedStream*> streams_;  // guarded by mu_
  bool ending_streams_ = false;               // guarded by mu_
};

}  // namespace selu::grpc_transport
