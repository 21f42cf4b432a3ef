// `selu-client stats MODEL`: the self-normalization monitor of a model version
// (selu.monitor.v1.ModelMonitor Check): a header with the monitor's state, the
// drift score against its threshold, windows, alarms, sampled rows and the
// load-time probe's verdict, then one row per monitored tensor (the input and
// every dense layer) with its live and reference mean and variance.
#pragma once

#include <string>

#include "client/src/client_common.h"

namespace selu::client {

// Prints the table, or (json = true) the response as JSON with every field.
// kExitOk whenever the rpc succeeds, drift or not.
int RunStats(const ConnectionOptions& connection, const std::string& model,
             const std::string& version, bool json);

}  // namespace selu::client
