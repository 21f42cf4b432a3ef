// Answering a unary callback rpc on the handler's own thread, through gRPC's
// default reactor, with the call counted as handled (core::CallCounters).
#pragma once

#include <grpcpp/server_context.h>
#include <grpcpp/support/status.h>

#include <chrono>

#include "server/core/base/call_stats.h"

namespace selu::grpc_transport {

inline grpc::ServerUnaryReactor* FinishNow(core::CallCounters& counters,
                                           std::chrono::steady_clock::time_point start,
                                           grpc::CallbackServerContext* context,
                                           const grpc::Status& status) {
  counters.Finish(static_cast<int>(status.error_code()), start);
  auto* reactor = context->DefaultReactor();
  reactor->Finish(status);
  return reactor;
}

}  // namespace selu::grpc_transport
