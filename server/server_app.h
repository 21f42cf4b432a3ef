// ServerApp: selu-serve's objects wired together — model registry, inference
// and monitor services, health and reflection on one gRPC server, metrics —
// with the start-up and graceful-shutdown sequences.
//
// Start(): gRPC listens first with health NOT_SERVING, then the models load,
// then health turns SERVING for "" and for each ready model. The REST
// binding listens just after gRPC, answering not-ready until the models are. Drain(): health
// NOT_SERVING, new inference calls UNAVAILABLE, queued and in-flight calls
// finish within the grace period. Stop(): grpc::Server::Shutdown.
#pragma once

#include <grpcpp/server.h>
#include <prometheus/exposer.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <set>
#include <string>

#include "server/allocator_trim.h"
#include "server/core/base/status.h"
#include "server/core/repository/model_registry.h"
#include "server/grpc/inference_service.h"
#include "server/grpc/monitor_service.h"
#include "server/http/rest_server.h"
#include "server/metrics/grpc_metrics.h"
#include "server/metrics/http_metrics.h"
#include "server/metrics/inference_collector.h"
#include "server/metrics/monitor_collector.h"
#include "server/options.h"

namespace selu {

class ServerApp {
 public:
  static core::StatusOr<std::unique_ptr<ServerApp>> Start(const ServerOptions& options);
  ~ServerApp();

  int grpc_port() const { return port_; }
  int metrics_port() const { return metrics_port_; }
  int http_port() const { return rest_ ? rest_->port() : 0; }
  // Refuses new inference (UNAVAILABLE), turns health NOT_SERVING and waits
  // up to the shutdown grace for queued and running requests. Idempotent.
  void Drain();
  // Drain(), then stops the gRPC server without losing a call: new calls are
  // held unanswered until arrivals stop, grpc::Server::Shutdown sends GOAWAY,
  // then the held calls are answered UNAVAILABLE (server/grpc/shutdown_gate.h).
  // Returns once every connection is closed.
  void Stop();

 private:
  ServerApp() = default;
  core::Status LoadModels();
  // Health of "", the service and every model; also called by the registry
  // after each change of what is served.
  void SetHealth(bool serving);
  core::Status StartMetrics();
  // The REST binding on --http-address (none if empty), over the gRPC
  // service's inference path.
  core::Status StartRest();

  ServerOptions options_;
  std::unique_ptr<core::ModelRegistry> registry_;
  std::unique_ptr<grpc_transport::InferenceService> service_;
  std::unique_ptr<grpc_transport::MonitorService> monitor_service_;
  std::shared_ptr<metrics::GrpcServerMetrics> grpc_metrics_;
  std::shared_ptr<metrics::HttpServerMetrics> http_metrics_;
  std::shared_ptr<metrics::InferenceCollector> inference_metrics_;
  std::shared_ptr<metrics::MonitorCollector> monitor_metrics_;
  std::shared_ptr<metrics::ProcessCollector> process_metrics_;
  std::unique_ptr<prometheus::Exposer> exposer_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<http::RestServer> rest_;
  std::unique_ptr<AllocatorTrimmer> trimmer_;
  int port_ = 0;
  int metrics_port_ = 0;
  std::mutex health_mu_;  // SetHealth; also guards setting registry_
  std::atomic<bool> serving_{false};
  std::set<std::string> health_names_;  // guarded by health_mu_
  bool drained_ = false;
  std::chrono::steady_clock::time_point drain_deadline_{};
  bool stopped_ = false;
};

}  // namespace selu
