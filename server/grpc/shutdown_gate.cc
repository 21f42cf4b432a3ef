#include "server/grpc/shutdown_gate.h"

#include "server/grpc/finish_now.h"

namespace selu::grpc_transport {
namespace {

grpc::Status ShuttingDown() {
  return grpc::Status(grpc::StatusCode::UNAVAILABLE,
                      "server is shutting down; send to another replica");
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

size_t ShutdownGate::ReleaseHeld() {
  std::vector<Held> held;
  {
    std::lock_guard lock(mu_);
    released_ = true;
    held.swap(held_);
  }
  const grpc::Status status = ShuttingDown();
  for (const Held& h : held) {
    h.counters->Finish(static_cast<int>(status.error_code()), h.start);
    h.reactor->Finish(status);
  }
  return held.size();
}

}  // namespace selu::grpc_transport
