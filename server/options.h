// Command-line options of selu-serve. Every flag has a SELU_* environment
// variable equivalent (flag wins); `selu-serve --help` lists them with their
// defaults.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "server/core/monitor/model_monitor.h"
#include "server/grpc/restricted_protocols.h"

namespace selu {

struct ServerOptions {
  std::string model_repository = "models";
  std::string model_control_mode = "none";  // none, poll or explicit
  double repository_poll_seconds = 15.0;
  std::vector<std::string> load_models;  // explicit mode: loaded at start-up ("*": all)
  int model_load_nice = 10;              // nice value of the thread that loads models
  std::string grpc_address = "0.0.0.0:8001";
  std::string metrics_address = "0.0.0.0:8002";  // empty: no metrics endpoint
  // Written with the bound gRPC port once listening (for tests and scripts
  // that use port 0).
  std::string port_file;
  // Same for the metrics port.
  std::string metrics_port_file;
  int64_t max_receive_message_bytes = 64 << 20;
  // The REST binding (server/http/rest_server.h): empty address = off. TLS
  // and mTLS with the --tls-* files of the gRPC port.
  std::string http_address = "0.0.0.0:8000";
  std::string http_port_file;
  int64_t http_max_body_bytes = 64 << 20;
  int64_t http_read_timeout_ms = 30000;
  int http_threads = 32;
  // --http-restricted-api, as Triton's: the syntax of --grpc-restricted-protocol.
  std::vector<std::string> http_restricted_apis;
  // --grpc-restricted-protocol, as Triton's: "<group>[,<group>...]:<header>=<value>"
  // each (server/grpc/restricted_protocols.h); empty: every group open.
  std::vector<std::string> grpc_restricted_protocols;

  // TLS of the gRPC port (server/tls_credentials.h). Empty cert and key:
  // plaintext. Both set: TLS only, plaintext connections are refused.
  // A client CA as well: mutual TLS, every client must present a certificate
  // signed by it. The metrics endpoint stays plaintext (bind it to localhost
  // or a private interface).
  std::string tls_cert;         // PEM certificate chain, the server's first
  std::string tls_key;          // PEM private key of that certificate
  std::string tls_client_ca;    // PEM CA bundle that client certificates must chain to
  int tls_reload_seconds = 10;  // how often the three files are re-read

  // Batching defaults for every model (config.pbtxt will override per model).
  int64_t max_batch_size = 64;
  // 0: dispatch as soon as a worker is free; batches still form from what
  // queues up while the worker computes (measured best on 2 cores: bench/).
  int64_t max_queue_delay_us = 0;
  int64_t max_queue_size = 1024;
  std::vector<int64_t> preferred_batch_sizes;
  int instances = 1;                     // batch worker threads (or computing callers) per model
  std::string batch_execution = "auto";  // auto, caller or workers
  int64_t caller_execution_limit_us = 250;
  std::string engine_primitive = "auto";   // or "inner_product", "matmul"
  std::string weights_precision = "fp32";  // or "bf16"
  // The self-normalization monitor of every model (config.pbtxt parameters
  // monitor_sample_rate / monitor_window_rows override per model):
  // fraction of batches sampled (0: off) and sampled rows per window.
  core::MonitorOptions monitor{.sample_rate = core::kDefaultMonitorSampleRate,
                               .window_rows = core::kDefaultMonitorWindowRows};

  double shutdown_grace_seconds = 10.0;
  // Free allocator pages given back every this many seconds (0: never);
  // server/allocator_trim.h.
  double malloc_trim_seconds = 10.0;
  std::string log_level = "info";
  std::string log_format = "text";  // or "json"
};

// The monitor flags checked with the core's own rule
// (core::ValidateMonitorOptions); INVALID_ARGUMENT naming the flag.
core::Status ValidateMonitorFlags(const core::MonitorOptions& monitor);

// --grpc-restricted-protocol parsed; INVALID_ARGUMENT naming the flag and the
// bad part.
core::StatusOr<grpc_transport::RestrictedProtocols> ParseRestrictedProtocolFlags(
    const std::vector<std::string>& specs);

// Parses argv. On --help or an error, prints and returns the exit code to use
// (0 for --help); otherwise returns nullopt and fills `options`.
std::optional<int> ParseServerOptions(int argc, char** argv, ServerOptions* options);

}  // namespace selu
