#include "client/src/info_commands.h"

#include <google/protobuf/util/json_util.h>

#include <cstdio>
#include <map>
#include <nlohmann/json.hpp>
#include <vector>

#include "proto/grpc_service.grpc.pb.h"
#include "protos/grpc/health/v1/health.grpc.pb.h"

namespace selu::client {

int RunHealth(const ConnectionOptions& connection, const std::string& service) {
  auto stub = grpc::health::v1::Health::NewStub(MakeChannel(connection.address));
  grpc::ClientContext context;
  SetDeadline(&context, connection.timeout_s);
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

namespace {

int PrintAsJson(const google::protobuf::Message& message) {
  std::string json;
  google::protobuf::util::JsonPrintOptions options;
  options.add_whitespace = true;
  options.preserve_proto_field_names = true;
  const auto status = google::protobuf::util::MessageToJsonString(message, &json, options);
  if (!status.ok()) {
    std::fprintf(stderr, "selu-client: cannot print the answer as JSON: %s\n",
                 status.ToString().c_str());
    return kExitRpcError;
  }
  std::fputs(json.c_str(), stdout);
  return kExitOk;
}

}  // namespace

int RunMetadata(const ConnectionOptions& connection, const std::string& model,
                const std::string& version) {
  auto stub = inference::GRPCInferenceService::NewStub(MakeChannel(connection.address));
  grpc::ClientContext context;
  SetDeadline(&context, connection.timeout_s);
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

int RunModels(const ConnectionOptions& connection, bool json) {
  auto stub = inference::GRPCInferenceService::NewStub(MakeChannel(connection.address));
  inference::ModelStatisticsResponse statistics;
  {
    grpc::ClientContext context;
    SetDeadline(&context, connection.timeout_s);
    const grpc::Status status =
        stub->ModelStatistics(&context, inference::ModelStatisticsRequest(), &statistics);
    if (!status.ok()) return ReportRpcError("ModelStatistics", status);
  }
  // ModelStatistics lists one entry per loaded version; group them by model.
  std::map<std::string, std::vector<std::string>> versions;
  for (const auto& entry : statistics.model_stats())
    versions[entry.name()].push_back(entry.version());

  nlohmann::json models = nlohmann::json::array();
  for (const auto& [name, model_versions] : versions) {
    grpc::ClientContext context;
    SetDeadline(&context, connection.timeout_s);
    inference::ModelReadyRequest request;
    request.set_name(name);
    inference::ModelReadyResponse ready;
    const grpc::Status status = stub->ModelReady(&context, request, &ready);
    if (!status.ok()) return ReportRpcError("ModelReady " + name, status);
    models.push_back({{"name", name}, {"versions", model_versions}, {"ready", ready.ready()}});
  }
  if (json) {
    std::printf("%s\n", models.dump(2).c_str());
    return kExitOk;
  }
  std::printf("%-32s %-6s %s\n", "MODEL", "READY", "VERSIONS");
  for (const auto& model : models) {
    std::string joined;
    for (const auto& v : model["versions"])
      joined += (joined.empty() ? "" : ",") + v.get<std::string>();
    std::printf("%-32s %-6s %s\n", model["name"].get<std::string>().c_str(),
                model["ready"].get<bool>() ? "yes" : "no", joined.c_str());
  }
  return kExitOk;
}

}  // namespace selu::client
