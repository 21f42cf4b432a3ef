#include "client/src/info_commands.h"

#include <cstdio>

#include "proto/grpc_service.grpc.pb.h"
#include "protos/grpc/health/v1/health.grpc.pb.h"

namespace selu::client {

int RunHealth(const ConnectionOptions& connection, const std::string& service) {
  auto stub = grpc::health::v1::Health::NewStub(MakeChannel(connection));
  grpc::ClientContext context;
  PrepareContext(&context, connection);
  grpc::health::v1::HealthCheckRequest request;
  request.set_service(service);
  grpc::health::v1::HealthCheckResponse response;
  const grpc::Status status = stub->Check(&context, request, &response);
  if (!status.ok()) return ReportRpcError("health", status);
  std::printf("%s\n",
              grpc::health::v1::HealthCheckResponse::ServingStatus_Name(response.status()).c_str());
  return response.status() == grpc::health::v1::HealthCheckResponse::SERVING ? kExitOk
                                                                             : kExitRpcError;
}

int RunMetadata(const ConnectionOptions& connection, const std::string& model,
                const std::string& version) {
  auto stub = inference::GRPCInferenceService::NewStub(MakeChannel(connection));
  grpc::ClientContext context;
  PrepareContext(&context, connection);
  if (model.empty()) {
    inference::ServerMetadataResponse response;
    const grpc::Status status =
        stub->ServerMetadata(&context, inference::ServerMetadataRequest(), &response);
    if (!status.ok()) return ReportRpcError("ServerMetadata", status);
    return PrintAsJson(response);
  }
  inference::ModelMetadataRequest request;
  request.set_name(model);
  request.set_version(version);
  inference::ModelMetadataResponse response;
  const grpc::Status status = stub->ModelMetadata(&context, request, &response);
  if (!status.ok()) return ReportRpcError("ModelMetadata " + model, status);
  return PrintAsJson(response);
}

}  // namespace selu::client
