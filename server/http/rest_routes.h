// The REST binding's routes: which endpoint a method and path name, and the
// handler of each, independent of civetweb (RestServer reads the request
// and writes the answer).
//
// Thread safety: Route() is stateless; handlers run concurrently.
#pragma once

#include <atomic>
#include <optional>
#include <string>
#include <string_view>

#include "server/grpc/infer_job.h"
#include "server/grpc/restricted_protocols.h"
#include "server/http/rest_stats.h"

namespace selu::http {

struct RestServerOptions;

struct Route {
  Endpoint endpoint = Endpoint::kUnknown;
  const char* method = "GET";  // the one the endpoint takes
  std::string model;
  std::string version;
  bool has_body = false;  // POST endpoints read a body
};

// The route of `path` (URL-decoded, without the query); kUnknown if none.
Route RouteOf(std::string_view path);

// The restricted-protocol group of an endpoint (Triton's categories).
grpc_transport::ProtocolGroup GroupOf(Endpoint endpoint);

struct RestAnswer {
  int code = 200;
  std::string body;  // empty: no body (health and readiness)
  const char* content_type = "application/json";
  std::optional<size_t> header_length;  // binary extension: Inference-Header-Content-Length
};

// Everything a handler needs.
struct RouteContext {
  grpc_transport::InferPath* path;
  const RestServerOptions* options;
  std::atomic<int64_t>* in_flight;
};

RestAnswer ErrorAnswer(const core::Status& status);

// Serves `route` with the request `body` (POST) and its
// Inference-Header-Content-Length header (null if absent).
RestAnswer Serve(const RouteContext& context, const Route& route, std::string_view body,
                 const char* header_length, core::Clock::time_point start);

}  // namespace selu::http
