// The subcommands of Triton's model repository extension: models
// (RepositoryIndex), config (ModelConfig), load (RepositoryModelLoad) and
// unload (RepositoryModelUnload). Each prints its answer to stdout and returns
// the process exit code; a failed RPC is reported with ReportRpcError.
#pragma once

#include <string>

#include "client/src/client_common.h"

namespace selu::client {

// The deadline of load and unload when --timeout is not given: the server
// answers a load only once the model is read, checked and warmed up, and an
// unload once its queued requests are done, which takes seconds for a large
// model.
inline constexpr double kRepositoryChangeTimeoutS = 300.0;

// Every model version in the repository with its state (READY, LOADING,
// UNLOADING, UNAVAILABLE) and the reason it is not ready, as a table or
// (json = true) a JSON array of {name, version, state, reason}; ready_only asks
// for the ready versions only.
int RunModels(const ConnectionOptions& connection, bool json, bool ready_only);

// The configuration `model` (optionally a `version`) is served with, as JSON
// with the .proto field names.
int RunConfig(const ConnectionOptions& connection, const std::string& model,
              const std::string& version);

// Loads (or reloads) `model`; a non-empty `config_json` (a JSON object, a model
// configuration) is sent as the "config" parameter and replaces config.pbtxt
// for this load. Throws UsageError if config_json is not a JSON object.
int RunLoad(const ConnectionOptions& connection, const std::string& model,
            const std::string& config_json);

// Unloads every version of `model`.
int RunUnload(const ConnectionOptions& connection, const std::string& model);

}  // namespace selu::client
