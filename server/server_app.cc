#include "server/server_app.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>
#include <grpcpp/server_builder.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <oneapi/dnnl/dnnl.hpp>
#include <thread>

#include "server/logging.h"
#include "server/process_lifecycle.h"
#include "server/tls_credentials.h"

namespace selu {

core::StatusOr<std::unique_ptr<ServerApp>> ServerApp::Start(const ServerOptions& options) {
  std::unique_ptr<ServerApp> app(new ServerApp());
  app->options_ = options;
  const auto* v = dnnl::version();
  // SELU_TEST_SUBMIT_DELAY_US: for tests of model swaps only (no flag).
  const char* test_delay = std::getenv("SELU_TEST_SUBMIT_DELAY_US");
  SELU_ASSIGN_OR_RETURN(grpc_transport::RestrictedProtocols restricted,
                        ParseRestrictedProtocolFlags(options.grpc_restricted_protocols));
  app->service_ =
      std::make_unique<grpc_transport::InferenceService>(grpc_transport::InferenceServiceOptions{
          .server_name = "selu-serve",
          .server_version = SELU_VERSION,
          .restricted_protocols = restricted,
          .test_submit_delay =
              std::chrono::microseconds(test_delay ? std::strtoll(test_delay, nullptr, 10) : 0)});
  app->monitor_service_ = std::make_unique<grpc_transport::MonitorService>(restricted);

  SELU_ASSIGN_OR_RETURN(const std::shared_ptr<grpc::ServerCredentials> credentials,
                        MakeServerCredentials(options));

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  builder.AddListeningPort(options.grpc_address, credentials, &app->port_);
  // No SO_REUSEPORT: a second server on this port fails at start-up, naming
  // the address, instead of silently sharing the first one's connections.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  builder.SetMaxReceiveMessageSize(static_cast<int>(options.max_receive_message_bytes));
  builder.SetMaxSendMessageSize(-1);
  builder.RegisterService(app->service_.get());
  builder.RegisterService(app->monitor_service_.get());
  app->server_ = builder.BuildAndStart();
  if (!app->server_ || app->port_ == 0) {
    return core::UnavailableError("cannot listen on " + options.grpc_address +
                                  " (address in use or not permitted?)");
  }
  app->SetHealth(false);
  const std::string security = options.tls_cert.empty()        ? "plaintext"
                               : options.tls_client_ca.empty() ? "TLS"
                                                               : "mutual TLS";
  spdlog::info(LogText("listening on " + options.grpc_address + " (port " +
                       std::to_string(app->port_) + ", " + security +
                       "), selu-serve " SELU_VERSION ", oneDNN " + std::to_string(v->major) + "." +
                       std::to_string(v->minor) + "." + std::to_string(v->patch)));
  for (int g = 0; g < static_cast<int>(grpc_transport::ProtocolGroup::kCount); ++g) {
    const auto group = static_cast<grpc_transport::ProtocolGroup>(g);
    if (!restricted.restricted(group)) continue;
    spdlog::info(LogText("protocol '" + std::string(grpc_transport::ProtocolGroupName(group)) +
                         "' restricted to calls with header '" + restricted.header(group) + "'"));
  }
  if (!options.port_file.empty() && !WritePortFile(options.port_file, app->port_)) {
    return core::FailedPreconditionError("cannot write port file '" + options.port_file + "'");
  }
  SELU_RETURN_IF_ERROR(app->StartRest());
  SELU_RETURN_IF_ERROR(app->StartMetrics());
  SELU_RETURN_IF_ERROR(app->LoadModels());
  app->SetHealth(true);
  return app;
}

ServerApp::~ServerApp() { Stop(); }

core::Status ServerApp::LoadModels() {
  core::ModelRegistryOptions registry_options;
  core::ModelServingOptions& serving = registry_options.serving;
  serving.engine.primitive = core::EnginePrimitiveFromName(options_.engine_primitive).value();
  serving.engine.weights = core::WeightsPrecisionFromName(options_.weights_precision).value();
  serving.batcher.max_batch_size = options_.max_batch_size;
  serving.batcher.max_queue_delay = std::chrono::microseconds(options_.max_queue_delay_us);
  serving.batcher.max_queue_size = options_.max_queue_size;
  serving.batcher.preferred_batch_sizes = options_.preferred_batch_sizes;
  serving.batcher.instances = options_.instances;
  serving.auto_execution = options_.batch_execution == "auto";
  serving.batcher.execution = options_.batch_execution == "caller" ? core::BatchExecution::kCaller
                                                                   : core::BatchExecution::kWorkers;
  serving.caller_execution_limit = std::chrono::microseconds(options_.caller_execution_limit_us);
  serving.monitor = options_.monitor;
  registry_options.root = options_.model_repository;
  registry_options.mode = options_.model_control_mode == "poll" ? core::ModelControlMode::kPoll
                          : options_.model_control_mode == "explicit"
                              ? core::ModelControlMode::kExplicit
                              : core::ModelControlMode::kNone;
  registry_options.poll_period =
      std::chrono::milliseconds(static_cast<int64_t>(options_.repository_poll_seconds * 1000.0));
  registry_options.startup_models = options_.load_models;
  registry_options.control_thread_nice = options_.model_load_nice;
  registry_options.drain_timeout = std::chrono::milliseconds(
      static_cast<int64_t>(std::max(1.0, options_.shutdown_grace_seconds) * 1000.0));
  registry_options.on_change = [this] { SetHealth(serving_.load()); };
  registry_options.log = [](std::string_view level, const std::string& message) {
    if (level == "error") {
      spdlog::error(LogText(message));
    } else if (level == "warn") {
      spdlog::warn(LogText(message));
    } else {
      spdlog::info(LogText(message));
    }
  };
  const auto start = std::chrono::steady_clock::now();
  auto registry = core::ModelRegistry::Open(std::move(registry_options));
  if (!registry.ok()) return registry.status();
  {
    std::lock_guard lock(health_mu_);
    registry_ = std::move(registry).value();
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  spdlog::info(LogText("models loaded in " + std::to_string(seconds) + " s from '" +
                       options_.model_repository + "' (model control mode " +
                       options_.model_control_mode + ")"));
  service_->SetRegistry(registry_.get());
  monitor_service_->SetRegistry(registry_.get());
  if (inference_metrics_) inference_metrics_->SetRegistry(registry_.get());
  if (monitor_metrics_) monitor_metrics_->SetRegistry(registry_.get());
  return core::OkStatus();
}

core::Status ServerApp::StartRest() {
  if (options_.http_address.empty()) return core::OkStatus();
  SELU_ASSIGN_OR_RETURN(grpc_transport::RestrictedProtocols restricted,
                        grpc_transport::RestrictedProtocols::Parse(options_.http_restricted_apis));
  auto rest = http::RestServer::Start(
      http::RestServerOptions{
          .address = options_.http_address,
          .threads = options_.http_threads,
          .max_body_bytes = options_.http_max_body_bytes,
          .read_timeout = std::chrono::milliseconds(options_.http_read_timeout_ms),
          .tls_cert = options_.tls_cert,
          .tls_key = options_.tls_key,
          .tls_client_ca = options_.tls_client_ca,
          .tls_reload_seconds = options_.tls_reload_seconds,
          .restricted = std::move(restricted),
          .server_name = service_->options().server_name,
          .server_version = service_->options().server_version},
      &service_->infer_path());
  if (!rest.ok()) return rest.status();
  rest_ = std::move(rest).value();
  const std::string security = options_.tls_cert.empty()        ? "plaintext"
                               : options_.tls_client_ca.empty() ? "TLS"
                                                                : "mutual TLS";
  spdlog::info(LogText("REST (KServe v2) on " + options_.http_address + " (port " +
                       std::to_string(rest_->port()) + ", " + security + ", " +
                       std::to_string(options_.http_threads) + " threads)"));
  if (!options_.http_port_file.empty() && !WritePortFile(options_.http_port_file, rest_->port())) {
    return core::FailedPreconditionError("cannot write port file '" + options_.http_port_file +
                                         "'");
  }
  return core::OkStatus();
}

core::Status ServerApp::StartMetrics() {
  if (options_.metrics_address.empty()) return core::OkStatus();
  const auto* v = dnnl::version();
  metrics::BuildInfo build{
      .version = SELU_VERSION,
      .onednn = std::to_string(v->major) + "." + std::to_string(v->minor) + "." +
                std::to_string(v->patch),
      .grpc = grpc::Version(),
      .isa = core::CpuIsaName(),
  };
  inference_metrics_ = std::make_shared<metrics::InferenceCollector>(
      std::move(build),
      metrics::InferenceCollector::TransportReadings{
          .in_flight = [service = service_.get()] { return service->in_flight(); },
          .swap_resends = [service = service_.get()] { return service->swap_resends(); },
          .stream_unanswered_max =
              [service = service_.get()] { return service->stream_unanswered_max(); },
          .stream_read_pauses = [service =
                                     service_.get()] { return service->stream_read_pauses(); }});
  monitor_metrics_ = std::make_shared<metrics::MonitorCollector>();
  process_metrics_ = std::make_shared<metrics::ProcessCollector>();
  if (options_.malloc_trim_seconds > 0) {
    trimmer_ = std::make_unique<AllocatorTrimmer>(
        std::chrono::milliseconds(static_cast<int64_t>(options_.malloc_trim_seconds * 1000)));
  }
  grpc_metrics_ =
      std::make_shared<metrics::GrpcServerMetrics>(std::vector<const core::CallStatsSource*>{
          &service_->rpc_stats(), &monitor_service_->call_stats()});
  try {
    exposer_ = std::make_unique<prometheus::Exposer>(options_.metrics_address);
  } catch (const std::exception& e) {
    return core::UnavailableError("cannot serve metrics on " + options_.metrics_address + ": " +
                                  e.what());
  }
  exposer_->RegisterCollectable(inference_metrics_);
  exposer_->RegisterCollectable(monitor_metrics_);
  exposer_->RegisterCollectable(grpc_metrics_);
  exposer_->RegisterCollectable(process_metrics_);
  if (rest_) {
    http_metrics_ = std::make_shared<metrics::HttpServerMetrics>([rest = rest_.get()] {
      metrics::HttpReadings readings;
      readings.in_flight = rest->in_flight();
      for (int e = 0; e < static_cast<int>(http::Endpoint::kCount); ++e) {
        const auto endpoint = static_cast<http::Endpoint>(e);
        const http::EndpointCounters& c = rest->stats()[endpoint];
        metrics::HttpEndpointReading reading{.endpoint = std::string(http::EndpointName(endpoint)),
                                             .requests_by_code = {},
                                             .duration_ns = c.duration_ns.Read()};
        for (size_t i = 0; i <= http::kHttpCodes.size(); ++i) {
          reading.requests_by_code.emplace_back(
              i < http::kHttpCodes.size() ? http::kHttpCodes[i] : 0,
              c.by_code[i].load(std::memory_order_relaxed));
        }
        readings.endpoints.push_back(std::move(reading));
      }
      return readings;
    });
    exposer_->RegisterCollectable(http_metrics_);
  }
  const auto ports = exposer_->GetListeningPorts();
  metrics_port_ = ports.empty() ? 0 : ports.front();
  spdlog::info(LogText("metrics on http://" + options_.metrics_address + "/metrics (port " +
                       std::to_string(metrics_port_) + ")"));
  if (!options_.metrics_port_file.empty() &&
      !WritePortFile(options_.metrics_port_file, metrics_port_)) {
    return core::FailedPreconditionError("cannot write port file '" + options_.metrics_port_file +
                                         "'");
  }
  return core::OkStatus();
}

void ServerApp::SetHealth(bool serving) {
  std::lock_guard lock(health_mu_);
  serving_.store(serving);
  auto* health = server_->GetHealthCheckService();
  if (health == nullptr) return;
  const bool all_ready = serving && registry_ && registry_->AllReady();
  health->SetServingStatus("", all_ready);
  health->SetServingStatus("inference.GRPCInferenceService", serving);
  health->SetServingStatus(std::string(grpc_transport::kMonitorServiceName), serving);
  if (!registry_) return;
  // Per model: SERVING while a version serves. Models that left the
  // repository stay known to health, as NOT_SERVING.
  for (const auto& e : registry_->Index()) health_names_.insert(e.name);
  for (const std::string& name : health_names_) {
    health->SetServingStatus(name, serving && registry_->ModelReady(name));
  }
}

void ServerApp::Drain() {
  if (drained_ || !server_) return;
  drained_ = true;
  const auto grace = std::chrono::duration_cast<std::chrono::steady_clock::duration>(
      std::chrono::duration<double>(options_.shutdown_grace_seconds));
  const auto deadline = std::chrono::steady_clock::now() + grace;
  drain_deadline_ = deadline;
  spdlog::info(LogText("shutting down: draining for at most " +
                       std::to_string(options_.shutdown_grace_seconds) + " s"));
  SetHealth(false);
  service_->BeginShutdown();
  if (registry_) registry_->DrainAll(deadline);
  // Every request is answered; wait until the answers are on the wire.
  auto in_flight = [this] { return service_->in_flight() + (rest_ ? rest_->in_flight() : 0); };
  while (in_flight() > 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  // Let health watchers receive NOT_SERVING and refused calls their
  // UNAVAILABLE, so that clients that heed them move away (bounded by the
  // grace).
  std::this_thread::sleep_until(
      std::min(deadline, std::chrono::steady_clock::now() + std::chrono::milliseconds(100)));
  if (in_flight() > 0) {
    spdlog::warn(LogText(std::to_string(in_flight()) +
                         " inference calls still in flight at the end of the grace period"));
  }
  spdlog::info("drained");
}

void ServerApp::Stop() {
  if (stopped_ || !server_) return;
  Drain();
  stopped_ = true;
  // REST first: requests being served are answered (new inference got 503
  // since Drain), then civetweb closes its connections.
  if (rest_) rest_->Stop();
  using std::chrono::milliseconds;
  using SteadyClock = std::chrono::steady_clock;
  // Streams end (UNAVAILABLE) once the answers to what they read are
  // written; Shutdown would cancel any still open.
  auto& gate = service_->shutdown_gate();
  const size_t streams = gate.EndStreams(drain_deadline_);
  if (gate.open_streams() > 0) {
    spdlog::warn(LogText(std::to_string(gate.open_streams()) + " of " + std::to_string(streams) +
                         " inference streams still open at the end of the grace period"));
  }
  // Hold new calls unanswered until none has arrived for a while: their
  // clients are then all waiting, and nothing is on the way (shutdown_gate.h).
  gate.BeginHolding();
  const auto hold_until = std::min(drain_deadline_, SteadyClock::now() + milliseconds(500));
  while (SteadyClock::now() < hold_until &&
         SteadyClock::now() - gate.last_arrival() < milliseconds(30)) {
    std::this_thread::sleep_for(milliseconds(2));
  }
  // GOAWAY on every connection, then the held calls' answers after it. What
  // is still open at the deadline (a health watch, say) is cancelled.
  const auto shutdown_deadline =
      std::chrono::system_clock::now() +
      std::max<SteadyClock::duration>(milliseconds(500), drain_deadline_ - SteadyClock::now());
  std::thread shutdown([this, shutdown_deadline] { server_->Shutdown(shutdown_deadline); });
  // The held answers must leave after the GOAWAY: a client answered before it
  // would send its next call into Shutdown's window, where gRPC drops it
  // (CANCELLED). Shutdown gives no sign that GOAWAY is out; 100 ms is ample
  // even for a sanitizer build (20 ms was not, under TSan).
  std::this_thread::sleep_for(milliseconds(100));
  const size_t held = gate.ReleaseHeld();
  shutdown.join();
  server_->Wait();
  spdlog::info(LogText("stopped (" + std::to_string(held) +
                       " calls held during GOAWAY, answered UNAVAILABLE)"));
}

}  // namespace selu
