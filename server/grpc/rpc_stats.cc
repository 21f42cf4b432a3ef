#include "server/grpc/rpc_stats.h"

namespace selu::grpc_transport {

std::string_view RpcName(Rpc rpc) {
  switch (rpc) {
    case Rpc::kServerLive:
      return "ServerLive";
    case Rpc::kServerReady:
      return "ServerReady";
    case Rpc::kModelReady:
      return "ModelReady";
    case Rpc::kServerMetadata:
      return "ServerMetadata";
    case Rpc::kModelMetadata:
      return "ModelMetadata";
    case Rpc::kModelInfer:
      return "ModelInfer";
    case Rpc::kModelStreamInfer:
      return "ModelStreamInfer";
    case Rpc::kModelStatistics:
      return "ModelStatistics";
    case Rpc::kModelConfig:
      return "ModelConfig";
    case Rpc::kRepositoryIndex:
      return "RepositoryIndex";
    case Rpc::kRepositoryModelLoad:
      return "RepositoryModelLoad";
    case Rpc::kRepositoryModelUnload:
      return "RepositoryModelUnload";
    case Rpc::kCount:
      break;
  }
  return "unknown";
}

std::string_view RpcType(Rpc rpc) {
  return rpc == Rpc::kModelStreamInfer ? "bidi_stream" : "unary";
}

RpcStats::RpcStats() {
  for (size_t i = 0; i < kRpcs; ++i) {
    sites_[i] = core::CallSite{.service = kInferenceServiceName,
                               .method = RpcName(static_cast<Rpc>(i)),
                               .type = RpcType(static_cast<Rpc>(i)),
                               .counters = &counters_[i]};
  }
}

}  // namespace selu::grpc_transport
