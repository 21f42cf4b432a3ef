#include "client/src/repository_commands.h"

#include <algorithm>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>

#include "proto/grpc_service.grpc.pb.h"

namespace selu::client {

namespace {

std::unique_ptr<inference::GRPCInferenceService::Stub> NewStub(
    const ConnectionOptions& connection) {
  return inference::GRPCInferenceService::NewStub(MakeChannel(connection.address));
}

}  // namespace

int RunModels(const ConnectionOptions& connection, bool json, bool ready_only) {
  auto stub = NewStub(connection);
  grpc::ClientContext context;
  SetDeadline(&context, connection.timeout_s);
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
  size_t name_width = 5, version_width = 7, state_width = 5;
  for (const auto& m : index.models()) {
    name_width = std::max(name_width, m.name().size());
    version_width = std::max(version_width, shown(m.version()).size());
    state_width = std::max(state_width, shown(m.state()).size());
  }
  const auto print_row = [&](const std::string& name, const std::string& version,
                             const std::string& state, const std::string& reason) {
    const auto padded = [](const std::string& cell, size_t width) {
      return cell + std::string(width + 2 - cell.size(), ' ');  // width >= every cell
    };
    std::string text = padded(name, name_width) + padded(version, version_width) +
                       padded(state, state_width) + reason;
    text.erase(text.find_last_not_of(' ') + 1);  // a ready version has no reason
    std::printf("%s\n", text.c_str());
  };
  print_row("MODEL", "VERSION", "STATE", "REASON");
  for (const auto& m : index.models())
    print_row(m.name(), shown(m.version()), shown(m.state()), m.reason());
  return kExitOk;
}

int RunConfig(const ConnectionOptions& connection, const std::string& model,
              const std::string& version) {
  auto stub = NewStub(connection);
  grpc::ClientContext context;
  SetDeadline(&context, connection.timeout_s);
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
  SetDeadline(&context, connection.timeout_s);
  inference::RepositoryModelLoadResponse response;
  const grpc::Status status = stub->RepositoryModelLoad(&context, request, &response);
  if (!status.ok()) return ReportRpcError("RepositoryModelLoad " + model, status);
  std::printf("loaded %s\n", model.c_str());
  return kExitOk;
}

int RunUnload(const ConnectionOptions& connection, const std::string& model) {
  auto stub = NewStub(connection);
  grpc::ClientContext context;
  SetDeadline(&context, connection.timeout_s);
  inference::RepositoryModelUnloadRequest request;
  request.set_model_name(model);
  inference::RepositoryModelUnloadResponse response;
  const grpc::Status status = stub->RepositoryModelUnload(&context, request, &response);
  if (!status.ok()) return ReportRpcError("RepositoryModelUnload " + model, status);
  std::printf("unloaded %s\n", model.c_str());
  return kExitOk;
}

}  // namespace selu::client
