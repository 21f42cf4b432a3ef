#include "server/grpc/shutdown_gate.h"

#include <thread>

#include "server/grpc/finish_now.h"

namespace selu::grpc_transport {
namespace {

grpc::Status ShuttingDown() {
  return grpc::Status(grpc::StatusCode::UNAVAILABLE, kShuttingDownMessage);
}

}  // namespace

grpc::ServerUnaryReactor* ShutdownGate::Refuse(core::CallCounters& counters,
                                               Clock::time_point start,
                                               grpc::CallbackServerContext* context) {
  const int state = state_.load(std::memory_order_acquire);
  if (state == kOpen) return nullptr;
  last_arrival_.store(start.time_since_epoch().count(), std::memory_order_relaxed);
  if (state == kHolding) {
    std::lock_guard lock(mu_);
    if (!released_) {
      held_.push_back({&counters, start, context->DefaultReactor()});
      return held_.back().reactor;
    }
  }
  return FinishNow(counters, start, context, ShuttingDown());
}

void ShutdownGate::BeginRefusing() {
  int expected = kOpen;
  state_.compare_exchange_strong(expected, kRefusing, std::memory_order_acq_rel);
}

void ShutdownGate::BeginHolding() {
  int expected = kRefusing;
  state_.compare_exchange_strong(expected, kHolding, std::memory_order_acq_rel);
}

ShutdownGate::StreamAdmission ShutdownGate::RegisterStream(GatedStream* stream) {
  std::lock_guard lock(mu_);
  streams_.insert(stream);
  if (!ending_streams_) return StreamAdmission::kServe;
  if (state_.load(std::memory_order_acquire) == kHolding && !released_) {
    last_arrival_.store(Clock::now().time_since_epoch().count(), std::memory_order_relaxed);
    return StreamAdmission::kHold;
  }
  return StreamAdmission::kEnd;
}

void ShutdownGate::UnregisterStream(GatedStream* stream) {
  std::lock_guard lock(mu_);
  streams_.erase(stream);
}

size_t ShutdownGate::open_streams() const {
  std::lock_guard lock(mu_);
  return streams_.size();
}

void ShutdownGate::EndAllStreams() {
  std::vector<GatedStream*> streams;
  {
    std::lock_guard lock(mu_);
    ending_streams_ = true;
    streams.reserve(streams_.size());
    for (GatedStream* s : streams_) {
      s->Ref();
      streams.push_back(s);
    }
  }
  for (GatedStream* s : streams) {
    s->EndStream();
    s->Unref();
  }
}

size_t ShutdownGate::EndStreams(Clock::time_point deadline) {
  const size_t open = open_streams();
  EndAllStreams();
  // Streams end as their last answers leave; this runs once per shutdown.
  while (open_streams() > 0 && Clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return open;
}

size_t ShutdownGate::ReleaseHeld() {
  std::vector<Held> held;
  {
    std::lock_guard lock(mu_);
    released_ = true;
    held.swap(held_);
  }
  EndAllStreams();
  const grpc::Status status = ShuttingDown();
  for (const Held& h : held) {
    h.counters->Finish(static_cast<int>(status.error_code()), h.start);
    h.reactor->Finish(status);
  }
  return held.size();
}

}  // namespace selu::grpc_transport
