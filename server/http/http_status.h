// The one table that turns selu::core statuses into the HTTP codes of the
// REST binding: Triton's (src/http_server.cc) where Triton has the code,
// and the nearest HTTP meaning for the codes Triton does not produce.
#pragma once

#include "server/core/base/status.h"

namespace selu::http {

inline int HttpCodeOf(core::StatusCode code) {
  using core::StatusCode;
  switch (code) {
    case StatusCode::kOk:
      return 200;
    case StatusCode::kNotFound:
      return 404;  // Triton: NOT_FOUND
    case StatusCode::kUnavailable:
    case StatusCode::kDeadlineExceeded:
      return 503;  // Triton: UNAVAILABLE (its queue timeouts are UNAVAILABLE too)
    case StatusCode::kResourceExhausted:
      // Queue full. Triton answers 503 ("Exceeds maximum queue size"); 429
      // lets a client and a load balancer tell overload (retry with backoff)
      // from a server that is down.
      return 429;
    case StatusCode::kPermissionDenied:
      return 403;  // Triton's restricted APIs
    case StatusCode::kUnauthenticated:
      return 401;
    case StatusCode::kUnimplemented:
      return 501;  // Triton: UNSUPPORTED
    case StatusCode::kInternal:
    case StatusCode::kDataLoss:
      return 500;  // Triton: INTERNAL
    default:
      return 400;  // Triton: INVALID_ARG, UNKNOWN, ALREADY_EXISTS, CANCELLED
  }
}

}  // namespace selu::http
