#include "server/options.h"

#include <CLI/CLI.hpp>

namespace selu {

core::Status ValidateMonitorFlags(const core::MonitorOptions& monitor) {
  // One option at a time, so the error names the flag (or variable) to fix.
  core::MonitorOptions rate;
  rate.sample_rate = monitor.sample_rate;
  SELU_RETURN_IF_ERROR(core::ValidateMonitorOptions(rate).WithPrefix(
      "--monitor-sample-rate (SELU_MONITOR_SAMPLE_RATE)"));
  core::MonitorOptions window;
  window.window_rows = monitor.window_rows;
  return core::ValidateMonitorOptions(window).WithPrefix(
      "--monitor-window-rows (SELU_MONITOR_WINDOW_ROWS)");
}

core::StatusOr<grpc_transport::RestrictedProtocols> ParseRestrictedProtocolFlags(
    const std::vector<std::string>& specs) {
  auto parsed = grpc_transport::RestrictedProtocols::Parse(specs);
  if (!parsed.ok()) {
    return parsed.status().WithPrefix("--grpc-restricted-protocol (SELU_GRPC_RESTRICTED_PROTOCOL)");
  }
  return parsed;
}

std::optional<int> ParseServerOptions(int argc, char** argv, ServerOptions* o) {
  CLI::App app{
      "selu-serve: a gRPC inference server (Open Inference Protocol v2) for self-normalizing "
      "neural networks.\nEvery option can also be set with the environment variable shown "
      "(the flag wins)."};
  app.option_defaults()->always_capture_default();
  app.get_formatter()->column_width(44);
  app.footer(
      "Also: selu-serve calibrate --model M --data CSV  writes a model's reference statistics "
      "for the drift monitor (selu-serve calibrate --help).");

  app.add_option("--model-repository", o->model_repository,
                 "Folder of models: <repository>/<model>/config.pbtxt (optional) and "
                 "<repository>/<model>/<version>/model.onnx")
      ->envname("SELU_MODEL_REPOSITORY");
  app.add_option("--model-control-mode", o->model_control_mode,
                 "'none': load the repository at start-up; 'poll': also rescan it every "
                 "--repository-poll-seconds and apply new, changed and removed versions; "
                 "'explicit': load only --load-model models and what the "
                 "RepositoryModelLoad/Unload rpcs ask for")
      ->envname("SELU_MODEL_CONTROL_MODE")
      ->check(CLI::IsMember({"none", "poll", "explicit"}));
  app.add_option("--repository-poll-seconds", o->repository_poll_seconds,
                 "With --model-control-mode=poll: seconds between repository scans")
      ->envname("SELU_REPOSITORY_POLL_SECONDS")
      ->check(CLI::Range(0.05, 86400.0));
  app.add_option("--load-model", o->load_models,
                 "With --model-control-mode=explicit: a model to load at start-up (repeatable; "
                 "'*' loads every model)")
      ->envname("SELU_LOAD_MODEL")
      ->delimiter(',');
  app.add_option("--model-load-nice", o->model_load_nice,
                 "Nice value (0-19) of the thread that loads and warms up models after "
                 "start-up: higher makes loads yield the CPU to inference")
      ->envname("SELU_MODEL_LOAD_NICE")
      ->check(CLI::Range(0, 19));
  app.add_option("--grpc-address", o->grpc_address,
                 "host:port the gRPC service listens on (port 0 picks a free port)")
      ->envname("SELU_GRPC_ADDRESS");
  app.add_option("--metrics-address", o->metrics_address,
                 "host:port of the Prometheus /metrics endpoint (empty: none)")
      ->envname("SELU_METRICS_ADDRESS");
  app.add_option("--port-file", o->port_file,
                 "Write the bound gRPC port to this file once listening")
      ->envname("SELU_PORT_FILE");
  app.add_option("--metrics-port-file", o->metrics_port_file,
                 "Write the bound metrics port to this file once listening")
      ->envname("SELU_METRICS_PORT_FILE");
  app.add_option("--max-receive-message-bytes", o->max_receive_message_bytes,
                 "Largest request accepted; larger ones get RESOURCE_EXHAUSTED")
      ->envname("SELU_MAX_RECEIVE_MESSAGE_BYTES")
      ->check(CLI::Range(int64_t{1024}, int64_t{2047} << 20));
  app.add_option("--http-address", o->http_address,
                 "host:port of the KServe v2 REST (Triton HTTP) endpoint (port 0 picks a free "
                 "port; empty: none). Speaks TLS with the --tls-* files when they are given")
      ->envname("SELU_HTTP_ADDRESS");
  app.add_option("--http-port-file", o->http_port_file,
                 "Write the bound REST port to this file once listening")
      ->envname("SELU_HTTP_PORT_FILE");
  app.add_option("--http-max-body-bytes", o->http_max_body_bytes,
                 "Largest REST request body accepted; larger ones get 413")
      ->envname("SELU_HTTP_MAX_BODY_BYTES")
      ->check(CLI::Range(int64_t{1024}, int64_t{2047} << 20));
  app.add_option("--http-read-timeout-ms", o->http_read_timeout_ms,
                 "Time a REST request's headers and body may take to arrive; a slower or "
                 "half-sent one gets 408 and its connection is closed")
      ->envname("SELU_HTTP_READ_TIMEOUT_MS")
      ->check(CLI::Range(int64_t{50}, int64_t{3'600'000}));
  app.add_option("--http-threads", o->http_threads,
                 "REST worker threads: connections served at once (more wait in a queue)")
      ->envname("SELU_HTTP_THREADS")
      ->check(CLI::Range(1, 1024));
  app.add_option("--http-restricted-api", o->http_restricted_apis,
                 "As --grpc-restricted-protocol, for the REST endpoints (Triton's "
                 "--http-restricted-api): '<group>[,<group>...]:<header>=<value>'; others get 403")
      ->envname("SELU_HTTP_RESTRICTED_API")
      ->delimiter(';');
  app.add_option("--grpc-restricted-protocol", o->grpc_restricted_protocols,
                 "Restrict protocol groups to calls whose metadata has <header> with exactly "
                 "<value>: '<group>[,<group>...]:<header>=<value>' (repeatable; the variable "
                 "separates several with ';'). Groups: health, metadata, inference, "
                 "model-config, model-repository, statistics, monitor. Others get "
                 "PERMISSION_DENIED")
      ->envname("SELU_GRPC_RESTRICTED_PROTOCOL")
      ->delimiter(';');
  app.add_option("--tls-cert", o->tls_cert,
                 "PEM certificate (chain) of the gRPC port; with --tls-key, the port speaks "
                 "TLS only (the metrics endpoint stays plaintext)")
      ->envname("SELU_TLS_CERT");
  app.add_option("--tls-key", o->tls_key, "PEM private key of --tls-cert")->envname("SELU_TLS_KEY");
  app.add_option("--tls-client-ca", o->tls_client_ca,
                 "PEM CA bundle: require client certificates signed by it (mutual TLS)")
      ->envname("SELU_TLS_CLIENT_CA");
  app.add_option("--tls-reload-seconds", o->tls_reload_seconds,
                 "Seconds between re-reads of the TLS files: replaced files take effect for new "
                 "connections without a restart")
      ->envname("SELU_TLS_RELOAD_SECONDS")
      ->check(CLI::Range(1, 86400));
  app.add_option("--max-batch-size", o->max_batch_size,
                 "Most rows per engine call (and per request), per model")
      ->envname("SELU_MAX_BATCH_SIZE")
      ->check(CLI::Range(int64_t{1}, int64_t{65536}));
  app.add_option("--max-queue-delay-us", o->max_queue_delay_us,
                 "How long a queued request may wait for others to batch with (0: never wait)")
      ->envname("SELU_MAX_QUEUE_DELAY_US")
      ->check(CLI::Range(int64_t{0}, int64_t{10'000'000}));
  app.add_option("--max-queue-size", o->max_queue_size,
                 "Requests waiting per model before RESOURCE_EXHAUSTED")
      ->envname("SELU_MAX_QUEUE_SIZE")
      ->check(CLI::Range(int64_t{1}, int64_t{1'000'000}));
  app.add_option("--preferred-batch-size", o->preferred_batch_sizes,
                 "Batch sizes dispatched as soon as reached (repeatable)")
      ->envname("SELU_PREFERRED_BATCH_SIZE")
      ->delimiter(',');
  app.add_option("--instances", o->instances,
                 "Batch worker threads per model (each runs oneDNN single-threaded)")
      ->envname("SELU_INSTANCES")
      ->check(CLI::Range(1, 64));
  app.add_option("--batch-execution", o->batch_execution,
                 "Who runs the engine: 'caller' (the gRPC thread that brought a request computes "
                 "its batch, no thread hop), 'workers' (dedicated threads) or 'auto' (caller when "
                 "--max-queue-delay-us is 0 and a full batch computes within "
                 "--caller-execution-limit-us, measured at load)")
      ->envname("SELU_BATCH_EXECUTION")
      ->check(CLI::IsMember({"auto", "caller", "workers"}));
  app.add_option("--caller-execution-limit-us", o->caller_execution_limit_us,
                 "With --batch-execution auto: longest full-batch compute run on gRPC threads")
      ->envname("SELU_CALLER_EXECUTION_LIMIT_US")
      ->check(CLI::Range(int64_t{0}, int64_t{1'000'000}));
  app.add_option("--engine-primitive", o->engine_primitive,
                 "oneDNN primitive per layer: 'auto' (per layer and batch size, by a rule measured "
                 "with bench/engine_bench), 'inner_product' or 'matmul' (config.pbtxt parameter "
                 "engine_primitive overrides per model)")
      ->envname("SELU_ENGINE_PRIMITIVE")
      ->check(CLI::IsMember({"auto", "inner_product", "matmul"}));
  app.add_option("--weights-precision", o->weights_precision,
                 "How dense layers store their weights: 'fp32' or 'bf16' (half the memory "
                 "traffic, fp32 accumulation, fp32 in and out; needs AVX512-BF16 or AMX; "
                 "config.pbtxt parameter weights_precision overrides per model)")
      ->envname("SELU_WEIGHTS_PRECISION")
      ->check(CLI::IsMember({"fp32", "bf16"}));
  app.add_option("--monitor-sample-rate", o->monitor.sample_rate,
                 "Self-normalization monitor: fraction of batches whose per-layer activation "
                 "statistics are sampled, in [0, 1] (0: off; config.pbtxt parameter "
                 "monitor_sample_rate overrides per model)")
      ->envname("SELU_MONITOR_SAMPLE_RATE");
  app.add_option("--monitor-window-rows", o->monitor.window_rows,
                 "Self-normalization monitor: sampled rows per window, each window compared "
                 "with the model's reference statistics into a drift score, in [16, 1048576] "
                 "(config.pbtxt parameter monitor_window_rows overrides per model)")
      ->envname("SELU_MONITOR_WINDOW_ROWS");
  app.add_option("--shutdown-grace", o->shutdown_grace_seconds,
                 "Seconds queued and in-flight requests get to finish after SIGTERM/SIGINT")
      ->envname("SELU_SHUTDOWN_GRACE")
      ->check(CLI::Range(0.0, 3600.0));
  app.add_option("--malloc-trim-seconds", o->malloc_trim_seconds,
                 "Give the allocator's free pages back to the system this often, so that the "
                 "resident size follows the memory in use (0: never)")
      ->envname("SELU_MALLOC_TRIM_SECONDS")
      ->check(CLI::Range(0.0, 3600.0));
  app.add_option("--log-level", o->log_level, "trace, debug, info, warn, error or off")
      ->envname("SELU_LOG_LEVEL")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "off"}));
  app.add_option("--log-format", o->log_format, "text or json (one JSON object per line)")
      ->envname("SELU_LOG_FORMAT")
      ->check(CLI::IsMember({"text", "json"}));

  try {
    app.parse(argc, argv);
    if (const core::Status monitor = ValidateMonitorFlags(o->monitor); !monitor.ok()) {
      throw CLI::ValidationError(monitor.message());
    }
    if (auto restricted = ParseRestrictedProtocolFlags(o->grpc_restricted_protocols);
        !restricted.ok()) {
      throw CLI::ValidationError(restricted.status().message());
    }
    if (auto restricted = grpc_transport::RestrictedProtocols::Parse(o->http_restricted_apis);
        !restricted.ok()) {
      throw CLI::ValidationError(restricted.status()
                                     .WithPrefix("--http-restricted-api (SELU_HTTP_RESTRICTED_API)")
                                     .message());
    }
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  return std::nullopt;
}

}  // namespace selu
