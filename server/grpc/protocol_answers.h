// The answers of GRPCInferenceService's non-inference rpcs as functions of
// the registry and the protocol messages, so that the gRPC handlers and the
// REST binding (server/http) give the same answers and the same refusals.
//
// Each returns the status the rpc answers with; on failure the response is
// left as it is (the caller does not send it).
//
// Thread safety: as the registry's (any thread).
#pragma once

#include <optional>
#include <string>

#include "proto/grpc_service.pb.h"
#include "server/core/base/status.h"
#include "server/core/repository/model_registry.h"

namespace selu::grpc_transport {

core::Status AnswerModelMetadata(const core::ModelRegistry& registry,
                                 const inference::ModelMetadataRequest& request,
                                 inference::ModelMetadataResponse* response);
core::Status AnswerModelStatistics(const core::ModelRegistry& registry,
                                   const inference::ModelStatisticsRequest& request,
                                   inference::ModelStatisticsResponse* response);
core::Status AnswerModelConfig(const core::ModelRegistry& registry,
                               const inference::ModelConfigRequest& request,
                               inference::ModelConfigResponse* response);
core::Status AnswerRepositoryIndex(const core::ModelRegistry& registry,
                                   const inference::RepositoryIndexRequest& request,
                                   inference::RepositoryIndexResponse* response);

// Triton's repository_name: "" (or this repository's path) is the one
// repository selu-serve serves; NOT_FOUND otherwise.
core::Status CheckRepositoryName(const std::string& name, const core::ModelRegistry& registry);

// The checks of RepositoryModelLoad before it goes to the control thread:
// the repository name and the parameters; returns the 'config' parameter
// (Triton's JSON model configuration) if given.
core::StatusOr<std::optional<std::string>> CheckModelLoad(
    const core::ModelRegistry& registry, const inference::RepositoryModelLoadRequest& request);

}  // namespace selu::grpc_transport
