// The one table that turns selu::core statuses into gRPC statuses.
#pragma once

#include <grpcpp/support/status.h>

#include "server/core/base/status.h"

namespace selu::grpc_transport {

// Same numeric codes on both sides; the message is kept as it is.
inline ::grpc::Status ToGrpcStatus(const core::Status& status) {
  if (status.ok()) return ::grpc::Status::OK;
  return ::grpc::Status(static_cast<::grpc::StatusCode>(status.code()), status.message());
}

}  // namespace selu::grpc_transport
