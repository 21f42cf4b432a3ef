// Restricted protocols, as Triton's --grpc-restricted-protocol: each rpc
// belongs to one protocol group, and a restricted group answers only calls
// whose metadata carries its header with exactly the configured value.
//
//   RestrictedProtocols::Parse({"model-repository,statistics:x-admin-token=s3cret"})
//
// Groups (Triton's): health (ServerLive, ServerReady, ModelReady), metadata
// (ServerMetadata, ModelMetadata), inference (ModelInfer,
// ModelStreamInfer), model-config
// (ModelConfig), model-repository (RepositoryIndex, RepositoryModelLoad,
// RepositoryModelUnload), statistics (ModelStatistics) and monitor
// (selu.monitor.v1.ModelMonitor/Check). grpc.health.v1 and server reflection
// are answered by gRPC itself, before any handler of ours, and stay open.
//
// The handlers check at their start (no interceptor: in gRPC 1.51 one costs
// every call a completion-queue round trip). An unrestricted group costs one
// flag test; a restricted one a metadata lookup and a constant-time compare.
//
// Thread safety: immutable after Parse; Allowed runs concurrently.
#pragma once

#include <grpcpp/server_context.h>
#include <grpcpp/support/status.h>

#include <array>
#include <string>
#include <string_view>
#include <vector>

#include "server/core/base/status.h"
#include "server/grpc/rpc_stats.h"

namespace selu::grpc_transport {

enum class ProtocolGroup : int {
  kHealth,
  kMetadata,
  kInference,
  kModelConfig,
  kModelRepository,
  kStatistics,
  kMonitor,
  kCount,
};

std::string_view ProtocolGroupName(ProtocolGroup group);  // "model-repository", ...

// The group of each GRPCInferenceService rpc (Check is kMonitor).
ProtocolGroup ProtocolGroupOf(Rpc rpc);

// Whether `received` equals `expected`, in a time that depends only on their
// lengths (not on where they first differ).
bool ConstantTimeEquals(std::string_view received, std::string_view expected);

class RestrictedProtocols {
 public:
  // Nothing restricted.
  RestrictedProtocols() = default;

  // Each spec is "<group>[,<group>...]:<header>=<value>" (the value may hold
  // '=' and ':'; the header is matched case-insensitively, as gRPC metadata
  // keys are lowercase). INVALID_ARGUMENT naming the bad part (never the
  // value) for an unknown or empty group, a missing ':' or '=', an empty or
  // invalid header, an empty value, or a group given twice with a different
  // header or value.
  static core::StatusOr<RestrictedProtocols> Parse(const std::vector<std::string>& specs);

  bool restricted(ProtocolGroup group) const { return at(group).active; }
  // The header `group` requires ("" if unrestricted).
  const std::string& header(ProtocolGroup group) const { return at(group).header; }

  // Whether a call of `group` may proceed: unrestricted, or its metadata has
  // the group's header with exactly the group's value.
  bool Allowed(ProtocolGroup group, const grpc::CallbackServerContext& context) const {
    const Restriction& r = at(group);
    return !r.active || HasCredential(r, context);
  }

  // The same check for a transport without gRPC metadata (the REST
  // binding): `value` is the request's value of header(group), null if the
  // request has none.
  bool AllowedValue(ProtocolGroup group, const char* value) const {
    const Restriction& r = at(group);
    return !r.active || (value != nullptr && ConstantTimeEquals(value, r.value));
  }

  // The answer to a call Allowed refused: PERMISSION_DENIED naming the group
  // and the header, not the value. Built once by Parse.
  const grpc::Status& Denial(ProtocolGroup group) const { return at(group).denial; }

 private:
  struct Restriction {
    bool active = false;
    std::string header;
    std::string value;
    grpc::Status denial;
  };

  static bool HasCredential(const Restriction& r, const grpc::CallbackServerContext& context);
  const Restriction& at(ProtocolGroup group) const {
    return restrictions_[static_cast<size_t>(group)];
  }

  std::array<Restriction, static_cast<size_t>(ProtocolGroup::kCount)> restrictions_;
};

}  // namespace selu::grpc_transport
