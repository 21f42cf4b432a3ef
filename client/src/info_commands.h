// The read-only subcommands of the core protocol: health, metadata. Each prints
// its answer to stdout and returns the process exit code. (models, config, load
// and unload are in repository_commands.h.)
#pragma once

#include <string>

#include "client/src/client_common.h"

namespace selu::client {

// grpc.health.v1 Check of `service` ("" = the whole server). Prints the status;
// kExitOk only when SERVING.
int RunHealth(const ConnectionOptions& connection, const std::string& service);

// ServerMetadata, or ModelMetadata of `model` (optionally a `version`), as JSON.
int RunMetadata(const ConnectionOptions& connection, const std::string& model,
                const std::string& version);

}  // namespace selu::client
