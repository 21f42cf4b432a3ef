#include "client/src/repository_commands.h"

#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "proto/grpc_service.grpc.pb.h"

namespace selu::client {

namespace {

std::unique_ptr<inference::GRPCInferenceService::Stub> NewStub(
    const ConnectionOptions& connection) {
  return inference::GRPCInferenceService::NewStub(MakeChannel(connection));
}

}  // namespace

int RunModels(const ConnectionOptions& connection, bool json, bool ready_only) {
  auto stub = NewStub(connection);
  grpc::ClientContext context;
  PrepareContext(&context, connection);
  inference::RepositoryIndexRequest request;
  request.set_ready(ready_only);
  inference::RepositoryIndexResponse index;
  const grpc::Status status = stub->RepositoryIndex(&context, request, &index);
  if (!status.ok()) return ReportRpcError("RepositoryIndex", status);

  if (json) {
    nlohmann::ordered_json models = nlohmann::ordered_json::array();
    for (const auto& m : index.models()) {
      models.push_back({{"name", m.name()},
                        {"version", m.version()},
                        {"state", m.state()},
                        {"reason", m.reason()}});
    }
    std::printf("%s\n", models.dump(2).c_str());
    return kExitOk;
  }
  // A model folder without any version folder has no version: "-" keeps the
  // columns splittable.
  const auto shown = [](const std::string& text) { return text.empty() ? std::string("-") : text; };
  std::vector<std::vector<std::string>> rows = {{"MODEL", "VERSION", "STATE", "REASON"}};
  for (const auto& m : index.models())
    rows.push_back({m.name(), shown(m.version()), shown(m.state()), m.reason()});
  PrintTable(rows);
  return kExitOk;
}

int RunConfig(const ConnectionOptions& connection, const std::string& model,
              const std::string& version) {
  auto stub = NewStub(connection);
  grpc::ClientContext context;
  PrepareContext(&context, connection);
  inference::ModelConfigRequest request;
  request.set_name(model);
  request.set_version(version);
  inference::ModelConfigResponse response;
  const grpc::Status status = stub->ModelConfig(&context, request, &response);
  if (!status.ok()) return ReportRpcError("ModelConfig " + model, status);
  return PrintAsJson(response.config());
}

int RunLoad(const ConnectionOptions& connection, const std::string& model,
            const std::string& config_json) {
  inference::RepositoryModelLoadRequest request;
  request.set_model_name(model);
  if (!config_json.empty()) {
    // Checked here, a typo is a usage error that names where it is, not a failed load.
    nlohmann::json parsed;
    try {
      parsed = nlohmann::json::parse(config_json);
    } catch (const nlohmann::json::parse_error& e) {
      throw UsageError(std::string("the load config is not JSON: ") + e.what());
    }
    if (!parsed.is_object()) {
      throw UsageError("the load config must be a JSON object (a model configuration)");
    }
    (*request.mutable_parameters())["config"].set_string_param(config_json);
  }
  auto stub = NewStub(connection);
  grpc::ClientContext context;
  PrepareContext(&context, connection);
  inference::RepositoryModelLoadResponse response;
  const grpc::Status status = stub->RepositoryModelLoad(&context, request, &response);
  if (!status.ok()) return ReportRpcError("RepositoryModelLoad " + model, status);
  std::printf("loaded %s\n", model.c_str());
  return kExitOk;
}

int RunUnload(const ConnectionOptions& connection, const std::string& model) {
  auto stub = NewStub(connection);
  grpc::ClientContext context;
  PrepareContext(&context, connection);
  inference::RepositoryModelUnloadRequest request;
  request.set_model_name(model);
  inference::RepositoryModelUnloadResponse response;
  const grpc::Status status = stub->RepositoryModelUnload(&context, request, &response);
  if (!status.ok()) return ReportRpcError("RepositoryModelUnload " + model, status);
  std::printf("unloaded %s\n", model.c_str());
  return kExitOk;
}

}  // namespace selu::client
