// The read-only subcommands: health, metadata, models. Each prints its answer
// to stdout and returns the process exit code.
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

// The loaded models (ModelStatistics) with their versions and ModelReady state,
// as a table or (json = true) a JSON array.
int RunModels(const ConnectionOptions& connection, bool json);

}  // namespace selu::client
