#include "server/grpc/infer_messages.h"

#include <google/protobuf/arena.h>

#include <cstddef>
#include <vector>

namespace selu::grpc_transport {
namespace {

using Request = inference::ModelInferRequest;
using Response = inference::ModelInferResponse;

// A one-row request of a few hundred features and its answer fit in it.
constexpr size_t kFirstBlockBytes = 8 << 10;
// Holders kept per thread; beyond it a released holder is deleted.
constexpr size_t kCachedPerThread = 64;

google::protobuf::ArenaOptions FirstBlock(char* block) {
  google::protobuf::ArenaOptions options;
  options.initial_block = block;
  options.initial_block_size = kFirstBlockBytes;
  return options;
}

class ArenaHolder final : public grpc::MessageHolder<Request, Response> {
 public:
  ArenaHolder() : arena_(FirstBlock(block_)) { CreateMessages(); }

  void Release() override;

 private:
  void CreateMessages() {
    set_request(google::protobuf::Arena::CreateMessage<Request>(&arena_));
    set_response(google::protobuf::Arena::CreateMessage<Response>(&arena_));
  }

  alignas(std::max_align_t) char block_[kFirstBlockBytes];
  google::protobuf::Arena arena_;  // after block_: it is built on it
};

struct HolderCache {
  std::vector<ArenaHolder*> free;
  HolderCache() { free.reserve(kCachedPerThread); }
  ~HolderCache() {
    for (ArenaHolder* holder : free) delete holder;
  }
};

thread_local HolderCache cache;

void ArenaHolder::Release() {
  arena_.Reset();  // destroys both messages, frees every block but the first
  if (cache.free.size() >= kCachedPerThread) {
    delete this;
    return;
  }
  CreateMessages();
  cache.free.push_back(this);
}

}  // namespace

grpc::MessageHolder<Request, Response>* InferMessageAllocator::AllocateMessages() {
  if (!cache.free.empty()) {
    ArenaHolder* holder = cache.free.back();
    cache.free.pop_back();
    return holder;
  }
  return new ArenaHolder();
}

}  // namespace selu::grpc_transport
