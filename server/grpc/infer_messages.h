// ModelInfer's request and response on a protobuf arena, the arenas reused.
//
// gRPC's default allocator news a ModelInferRequest and a
// ModelInferResponse for every call and deletes them afterwards, and every
// sub-message, repeated field and string in them is a heap allocation of its
// own (a one-row request and its answer: ~20). With this allocator both
// messages live on an arena whose first block is part of a pooled holder,
// so a call's messages cost bump allocations, and a released holder goes
// back to a per-thread cache (bounded; the arena is reset, which frees any
// block beyond the first, so a large request does not keep its memory).
//
// Thread safety: AllocateMessages() and Release() may run on any threads;
// the caches are thread-local, so no lock is shared between calls.
#pragma once

#include <grpcpp/support/message_allocator.h>

#include "proto/grpc_service.pb.h"

namespace selu::grpc_transport {

class InferMessageAllocator final
    : public grpc::MessageAllocator<inference::ModelInferRequest, inference::ModelInferResponse> {
 public:
  grpc::MessageHolder<inference::ModelInferRequest, inference::ModelInferResponse>*
  AllocateMessages() override;
};

}  // namespace selu::grpc_transport
