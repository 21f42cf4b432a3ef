// Helpers shared by infer_codec.cc and infer_response.cc.
#pragma once

#include <string>
#include <vector>

#include "server/core/model/model_spec.h"

namespace selu::grpc_transport::internal {

// "'a', 'b', 'c'": the ports' names as a message quotes them, the first
// eight only (then ", ... (N in all)"), each bounded by QuoteClientText.
std::string PortNames(const std::vector<core::TensorPort>& ports);

}  // namespace selu::grpc_transport::internal
