// selu-client: health checks, metadata, the model repository (index, config,
// load, unload), inference, the self-normalization monitor (stats) and
// ghz-compatible load against a selu-serve (or any Open Inference Protocol v2
// gRPC server with Triton's repository extension).
#include <CLI/CLI.hpp>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>
#include <vector>

#include "client/src/bench_command.h"
#include "client/src/bench_flags.h"
#include "client/src/client_common.h"
#include "client/src/infer_command.h"
#include "client/src/info_commands.h"
#include "client/src/repository_commands.h"
#include "client/src/rows.h"
#include "client/src/stats_command.h"

namespace {

using namespace selu::client;

selu::client::Rows ReadRows(const std::string& json, const std::string& json_file,
                            const std::string& csv_file) {
  const int sources = !json.empty() + !json_file.empty() + !csv_file.empty();
  if (sources != 1) throw UsageError("infer needs exactly one of --json, --json-file, --csv");
  if (!json.empty()) return RowsFromJson(json);
  if (!json_file.empty()) return RowsFromJson(ReadFileOrThrow(json_file));
  return RowsFromCsv(ReadFileOrThrow(csv_file));
}

std::string ReadLoadConfig(const std::string& json, const std::string& json_file) {
  return json_file.empty() ? json : ReadFileOrThrow(json_file);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"selu-client: talk to a selu-serve over gRPC (Open Inference Protocol v2)"};
  app.fallthrough();  // common flags are accepted after the subcommand too
  app.require_subcommand(1);

  ConnectionOptions connection;
  std::string timeout_text = "10s";
  app.add_option("--address", connection.address, "host:port of the server")
      ->envname("SELU_ADDRESS")
      ->capture_default_str();
  auto* timeout_option =
      app.add_option("-t,--timeout", timeout_text,
                     "Deadline of each RPC: seconds, or a duration like 500ms, 10s, 1m "
                     "(load and unload: 5m unless given, as a large model takes seconds)")
          ->capture_default_str();
  // ghz's TLS flags, for every subcommand (before or after it).
  TlsOptions& tls = connection.tls;
  app.add_option("--cacert", tls.cacert,
                 "TLS: PEM CA certificate(s) that verify the server (default: the system's)")
      ->envname("SELU_CACERT");
  app.add_option("--cert", tls.cert, "Mutual TLS: PEM client certificate (with --key)")
      ->envname("SELU_CERT");
  app.add_option("--key", tls.key, "Mutual TLS: PEM private key of --cert")->envname("SELU_KEY");
  app.add_option("--cname", tls.cname,
                 "TLS: server name to check in its certificate instead of the address's host")
      ->envname("SELU_CNAME");
  app.add_flag("--skipTLS", tls.skip_verify,
               "TLS without verifying the server's certificate chain and name (as ghz: "
               "testing only)");
  app.add_flag("--insecure", tls.plaintext,
               "Plaintext (the default unless a TLS flag is given; as ghz)");

  // Metadata of every RPC: curl's -H and ghz's -m/--metadata.
  std::vector<std::string> headers;
  std::string metadata_json;
  app.add_option("-H,--header", headers,
                 "Metadata sent with every RPC: 'key: value' (repeatable), e.g. a server's "
                 "--grpc-restricted-protocol header")
      ->allow_extra_args(false);
  app.add_option("-m,--metadata", metadata_json,
                 "Metadata sent with every RPC as ghz takes it: JSON '{\"key\": \"value\"}'");

  std::string service;
  auto* health = app.add_subcommand(
      "health", "grpc.health.v1 Check; exit 0 only when SERVING (a container health check)");
  health->add_option("--service", service, "Service to ask about: \"\" (server) or a model name");

  std::string metadata_model, metadata_version;
  auto* metadata =
      app.add_subcommand("metadata", "ServerMetadata, or ModelMetadata of MODEL, as JSON");
  metadata->add_option("model", metadata_model, "Model name");
  metadata->add_option("--model-version", metadata_version, "Model version (default newest)");

  bool models_json = false, models_ready = false;
  auto* models = app.add_subcommand(
      "models", "Every model version in the repository, its state and why it is not ready");
  models->add_flag("--json", models_json, "Print JSON instead of a table");
  models->add_flag("--ready", models_ready, "Only the versions that are ready");

  std::string config_model, config_version;
  auto* config = app.add_subcommand("config", "The configuration MODEL is served with, as JSON");
  config->add_option("model", config_model, "Model name")->required();
  config->add_option("--model-version", config_version, "Model version (default newest)");

  std::string load_model, load_config, load_config_file;
  auto* load =
      app.add_subcommand("load",
                         "Load or reload MODEL from the repository; answers once it serves "
                         "(the server needs --model-control-mode explicit)");
  load->add_option("model", load_model, "Model name")->required();
  auto* load_config_option = load->add_option(
      "--config", load_config, "Model configuration as JSON; replaces config.pbtxt for this load");
  load->add_option("--config-file", load_config_file, "The same, from a file")
      ->excludes(load_config_option);

  std::string unload_model;
  auto* unload = app.add_subcommand("unload",
                                    "Unload MODEL; answers once its queued requests are done "
                                    "(the server needs --model-control-mode explicit)");
  unload->add_option("model", unload_model, "Model name")->required();

  InferOptions infer_options;
  std::string json_rows, json_file, csv_file, output_format = "json";
  auto* infer = app.add_subcommand("infer", "Infer rows of FP32 features with MODEL");
  infer->add_option("model", infer_options.model, "Model name")->required();
  infer->add_option("--model-version", infer_options.version, "Model version (default newest)");
  infer
      ->add_option("--input", infer_options.input_names,
                   "Input tensor the rows' columns feed; repeat it for several inputs, whose "
                   "columns follow one another in each row (default: every input of the "
                   "model, in ModelMetadata order)")
      ->allow_extra_args(false);
  infer->add_option("--json", json_rows, "Rows as JSON: '[[...],[...]]'");
  infer->add_option("--json-file", json_file, "Rows as JSON, from a file");
  infer->add_option("--csv", csv_file,
                    "Rows as CSV (optional header row; a column named label is ignored)");
  infer->add_flag("--typed", infer_options.typed,
                  "Send contents.fp32_contents instead of raw_input_contents");
  infer->add_option("--batch", infer_options.batch, "Rows per request (default: all in one)")
      ->check(CLI::NonNegativeNumber);
  infer->add_option("-o,--output", output_format, "json or table")
      ->check(CLI::IsMember({"json", "table"}));
  infer->add_flag("--argmax", infer_options.argmax,
                  "Also print the largest output's index per row");
  infer
      ->add_option("--classification", infer_options.classification,
                   "Ask every output for its top K classes (Triton's classification "
                   "extension): \"score:index[:label]\" strings, labels from the model's "
                   "label_filename")
      ->check(CLI::Validator(
          [](std::string& value) {
            return value.find_first_not_of("0123456789") == std::string::npos &&
                           value.find_first_not_of('0') != std::string::npos
                       ? std::string()
                       : "K must be a whole number >= 1, not " + value;
          },
          "K >= 1"));

  std::string stats_model, stats_version;
  bool stats_json = false;
  auto* stats = app.add_subcommand(
      "stats",
      "The self-normalization monitor of MODEL: drift score, windows, and per layer the live "
      "activation mean and variance against the reference");
  stats->add_option("model", stats_model, "Model name")->required();
  stats->add_option("--model-version", stats_version, "Model version (default newest)");
  stats->add_flag("--json", stats_json, "Print the response as JSON instead");

  auto* bench = app.add_subcommand(
      "bench",
      "ghz-compatible ModelInfer / ModelStreamInfer load: -d/-D take the request as ghz's JSON");
  BenchFlags bench_flags(bench);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    return code == 0 ? 0 : kExitUsage;
  }

  try {
    for (const std::string& header : headers) connection.metadata.push_back(ParseHeader(header));
    if (!metadata_json.empty()) {
      for (auto& entry : ParseMetadataJson(metadata_json)) connection.metadata.push_back(entry);
    }
    connection.timeout_s = ParseDurationSeconds(timeout_text);
    if (connection.timeout_s <= 0) throw UsageError("--timeout must be positive");
    if ((*load || *unload) && timeout_option->count() == 0)
      connection.timeout_s = kRepositoryChangeTimeoutS;
    if (*health) return RunHealth(connection, service);
    if (*metadata) return RunMetadata(connection, metadata_model, metadata_version);
    if (*models) return RunModels(connection, models_json, models_ready);
    if (*config) return RunConfig(connection, config_model, config_version);
    if (*load) {
      return RunLoad(connection, load_model, ReadLoadConfig(load_config, load_config_file));
    }
    if (*unload) return RunUnload(connection, unload_model);
    if (*infer) {
      infer_options.table = output_format == "table";
      return RunInfer(connection, infer_options, ReadRows(json_rows, json_file, csv_file));
    }
    if (*stats) return RunStats(connection, stats_model, stats_version, stats_json);
    if (*bench) {
      if (const auto refused = bench_flags.Refused()) {
        std::fprintf(stderr, "selu-client bench: %s\n", refused->c_str());
        return kExitUsage;
      }
      return RunBench(connection, bench_flags.Finish(&connection));
    }
  } catch (const UsageError& e) {
    std::fprintf(stderr, "selu-client: %s\n", e.what());
    return kExitUsage;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "selu-client: %s\n", e.what());
    return kExitRpcError;
  }
  return kExitUsage;
}
