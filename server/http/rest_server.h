// RestServer: the Open Inference Protocol v2 REST binding (KServe v2 / Triton
// HTTP) on cpp-httplib (Debian's libcpp-httplib, OpenSSL 3), over the same
// inference path as gRPC's ModelInfer.
//
// Routes (Triton's): GET /v2/health/live, /v2/health/ready, /v2,
// /v2/models/{m}[/versions/{v}], .../ready, .../config, .../stats,
// /v2/models/stats; POST .../infer (JSON, or Triton's binary tensor
// extension), /v2/repository/index, /v2/repository/models/{m}/load and
// .../unload. Inference bodies become an inference::ModelInferRequest
// (rest_codec.h) submitted through grpc_transport::SubmitInfer, so REST and
// gRPC give the same answers, messages and statistics and share batches;
// the other routes use the answers gRPC's rpcs use (protocol_answers.h).
// Errors are {"error": "..."} with the HTTP code of http_status.h.
//
// Threads: `threads` workers, each serving one connection at a time (an idle
// keep-alive connection keeps its worker for at most kKeepAliveSeconds). A
// worker that submitted an inference waits for the batcher on a condition
// variable. At the bound, up to `threads` more accepted connections wait for
// a free worker; beyond that the accepting thread waits too, and new
// connections wait in the kernel's listen backlog: none is refused, none
// takes memory without bound. A slow or half-sent body holds its worker for
// at most about 2 × `read_timeout` (the body's deadline plus the last read's
// timeout), then gets 408 and its connection is closed; each read of the
// headers waits at most `read_timeout`. Bodies over `max_body_bytes` get 413
// unread.
//
// Thread safety: every public method may be called from any thread.
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <thread>

#include "server/core/base/status.h"
#include "server/grpc/infer_job.h"
#include "server/grpc/restricted_protocols.h"
#include "server/http/rest_stats.h"

namespace httplib {
class Server;
struct Request;
struct Response;
class ContentReader;
}  // namespace httplib

namespace selu::http {

class TlsFiles;

struct RestServerOptions {
  std::string address = "0.0.0.0:8000";  // host:port, port 0 picks a free port
  int threads = 32;                      // civetweb worker threads (connections served at once)
  int64_t max_body_bytes = 64 << 20;     // larger bodies get 413
  std::chrono::milliseconds read_timeout{30000};  // a request's headers and body
  // TLS as on the gRPC port: cert and key set → HTTPS only; client CA too →
  // client certificates required. Re-read every tls_reload_seconds.
  std::string tls_cert;
  std::string tls_key;
  std::string tls_client_ca;
  int tls_reload_seconds = 10;
  // --http-restricted-api, the same groups and rule as the gRPC flag.
  grpc_transport::RestrictedProtocols restricted;
  std::string server_name = "selu-serve";
  std::string server_version;
};

class RestServer {
 public:
  // Listens on options.address. `path` (the gRPC service's inference path)
  // must outlive the server.
  static core::StatusOr<std::unique_ptr<RestServer>> Start(RestServerOptions options,
                                                           grpc_transport::InferPath* path);

  int port() const { return port_; }
  bool tls() const { return !options_.tls_cert.empty(); }
  // Inference requests accepted and not yet answered.
  int64_t in_flight() const { return in_flight_.load(std::memory_order_acquire); }
  const RestStats& stats() const { return stats_; }
  // Stops listening and waits for the requests being served. Idempotent.
  void Stop();

  ~RestServer();

 private:
  explicit RestServer(RestServerOptions options, grpc_transport::InferPath* path);
  void Handle(const httplib::Request& req, httplib::Response& res,
              const httplib::ContentReader* reader);
  void ReloadLoop();

  RestServerOptions options_;
  grpc_transport::InferPath* path_;
  std::unique_ptr<TlsFiles> tls_;  // null: plaintext
  std::unique_ptr<httplib::Server> server_;
  std::thread listener_;
  int port_ = 0;
  std::atomic<int64_t> in_flight_{0};
  RestStats stats_;
  std::thread reloader_;
  std::atomic<bool> stopping_{false};
};

}  // namespace selu::http
