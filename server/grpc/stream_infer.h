// ModelStreamInfer: Triton's bidirectional inference stream on gRPC's
// callback API.
//
// Each message read goes down the same path as a unary ModelInfer
// (infer_job.h: lookup, validation, the model's batcher), so stream messages
// batch with every other request. Answers are written one at a time, in the
// order they complete, each carrying its request's id. A request that fails
// is answered with error_message = the text unary ModelInfer's status would
// carry (and infer_response.id = the request's id); the stream stays open.
//
// Bounds and endings:
//  - at most kMaxUnansweredPerStream messages read and not yet answered on
//    the wire; at the bound the stream stops reading until answers drain
//    (back-pressure through HTTP/2 flow control);
//  - client half-close: OK once the last answer is written;
//  - shutdown (shutdown_gate.h): while refusing, new messages are answered
//    kShuttingDownMessage; on EndStream the stream reads no more and ends
//    UNAVAILABLE once every message read is answered;
//  - client cancel: pending work is dropped; the reactor lives until gRPC's
//    OnDone and every batcher callback have come back (a reference count).
//
// Counted like unary: the model's statistics per message, the rpc counters
// per stream (grpc_type "bidi_stream"), InferPath::in_flight per message.
//
// Thread safety: gRPC reactions, batcher callbacks (any thread, possibly
// inline in Submit) and the gate's EndStream run concurrently; each stream
// has its own lock, never held while calling into gRPC or the batcher.
#pragma once

#include <grpcpp/server_context.h>
#include <grpcpp/support/server_callback.h>

#include <cstdint>

#include "proto/grpc_service.pb.h"
#include "server/grpc/infer_job.h"
#include "server/grpc/rpc_stats.h"

namespace selu::grpc_transport {

inline constexpr int64_t kMaxUnansweredPerStream = 1024;

using StreamInferReactor =
    grpc::ServerBidiReactor<inference::ModelInferRequest, inference::ModelStreamInferResponse>;

// A new stream's reactor (deletes itself). `path` and `counters` must
// outlive it (they belong to the service, which outlives the server).
StreamInferReactor* StartStreamInfer(grpc::CallbackServerContext* context, InferPath* path,
                                     RpcCounters* counters, core::Clock::time_point start);

// A stream refused before reading anything (restricted protocol), answered
// with `status` at once and counted.
StreamInferReactor* RefuseStream(RpcCounters* counters, core::Clock::time_point start,
                                 const grpc::Status& status);

}  // namespace selu::grpc_transport
