#include "client/src/bench_flags.h"

#include <vector>

namespace selu::client {

struct BenchFlags::Refusal {
  std::string flag;  // as ghz spells it
  std::string why;
  CLI::Option* option = nullptr;
  std::string value;           // for flags that take one
  bool set = false;            // for flags that take none
  std::string accepted_value;  // a value that is what this client does anyway
};

namespace {

struct RefusedFlag {
  const char* name;  // CLI11 spelling
  bool takes_value;
  const char* why;
  const char* accepted_value;  // "" if every use is refused
};

// ghz's flags (ghz.sh/docs/options) that this client does not implement.
constexpr RefusedFlag kRefused[] = {
    {"--config", true, "give the settings as flags", ""},
    {"--authority", true, "the client sends the address as :authority", ""},
    {"--async", false, "use -r/--rps for an open loop", ""},
    {"--load-schedule", true, "only a constant rate (-r) is implemented", "const"},
    {"--load-start", true, "only a constant rate (-r) is implemented", ""},
    {"--load-step", true, "only a constant rate (-r) is implemented", ""},
    {"--load-end", true, "only a constant rate (-r) is implemented", ""},
    {"--load-step-duration", true, "only a constant rate (-r) is implemented", ""},
    {"--load-max-duration", true, "only a constant rate (-r) is implemented", ""},
    {"--concurrency-schedule", true, "only a constant -c is implemented", "const"},
    {"--concurrency-start", true, "only a constant -c is implemented", ""},
    {"--concurrency-end", true, "only a constant -c is implemented", ""},
    {"--concurrency-step", true, "only a constant -c is implemented", ""},
    {"--concurrency-step-duration", true, "only a constant -c is implemented", ""},
    {"--concurrency-max-duration", true, "only a constant -c is implemented", ""},
    {"--stream-interval", true, "stream messages are sent closed loop, one in flight", ""},
    {"--stream-dynamic-messages", false, "request data is not templated", ""},
    {"--reflect-metadata", true, "the client uses no server reflection", ""},
    {"--max-recv-message-size", true, "gRPC's default limits apply", ""},
    {"--max-send-message-size", true, "gRPC's default limits apply", ""},
    {"--keepalive", true, "channels use gRPC's default keepalive", ""},
    {"--debug", true, "no debug log is written", ""},
    {"--lb-strategy", true, "each --connections channel targets the address directly", ""},
    {"--count-errors", false,
     "errors are always reported in errorDistribution, not in the "
     "latency figures' count",
     ""},
};

}  // namespace

BenchFlags::BenchFlags(CLI::App* bench)
    : bench_(bench), refusals_(std::make_unique<std::vector<Refusal>>()) {
  BenchOptions& o = options_;
  bench->add_option("host", host_, "host:port (as ghz takes it; overrides --address)");
  bench->add_option("--call", o.call,
                    "Method: inference.GRPCInferenceService/ModelInfer, or ModelStreamInfer "
                    "(implied by --stream)");
  bench
      ->add_option("-c,--concurrency", o.concurrency,
                   "Requests outstanding at most (--stream: streams, one message in flight each)")
      ->capture_default_str();
  bench->add_option("-n,--total", o.total, "Requests to send (ignored with -z)")
      ->capture_default_str();
  bench->add_option("-z,--duration", duration_, "Run this long instead, e.g. 10s");
  bench->add_option("-x,--max-duration", max_duration_,
                    "Stop after this long even if -n requests are not all sent");
  bench
      ->add_option("--duration-stop", duration_stop_,
                   "When -z/-x ends: wait (in-flight requests complete and are reported), close "
                   "(they fail DEADLINE_EXCEEDED at the end, reported), ignore (they complete, "
                   "not reported)")
      ->check(CLI::IsMember({"close", "wait", "ignore"}))
      ->capture_default_str();
  bench->add_option("-r,--rps", o.rps,
                    "Open loop at this rate; latency from each request's due time");
  bench->add_option("--connections", o.connections, "TCP connections")->capture_default_str();
  bench->add_option("--connect-timeout", connect_timeout_,
                    "How long to wait for each connection, e.g. 10s (default 10s)");
  bench->add_option("-d,--data", o.data,
                    "ModelInferRequest as JSON (an array: round robin; @: from stdin)");
  bench->add_option("-D,--data-file", o.data_file, "The same, from a file");
  bench->add_flag("-b,--binary", o.binary_stdin,
                  "The request as a serialized ModelInferRequest (or count-prefixed ones) on "
                  "stdin");
  bench->add_option("-B,--binary-file", o.binary_file, "The same, from a file");
  bench->add_option("-M,--metadata-file", metadata_file_,
                    "Metadata of every call as ghz's JSON object, from a file");
  bench->add_option("--skipFirst,--skip-first", o.skip_first,
                    "Leave the first N out of the report");
  bench->add_option("-O,--format", format_, "summary or json")
      ->check(CLI::IsMember({"summary", "json"}));
  bench->add_option("-o,--output", o.output, "Write the report to this file instead of stdout");
  bench->add_option("--name", o.name, "A name for the run, echoed in the report");
  bench->add_option("--tags", o.tags_json, "JSON object of tags, echoed in the report's options");
  bench->add_option("--cpus", cpus_, "Run the client on this many of the CPUs it may use");
  bench->add_flag("-e,--enable-compression", o.compress, "gzip the requests");
  bench->add_flag("--stream", o.stream,
                  "ModelStreamInfer: each of -c workers holds a stream, one message in flight");
  bench->add_option("--stream-call-count", o.stream_call_count,
                    "--stream: open a new stream after this many messages (0: never)");
  bench->add_option("--stream-call-duration", stream_call_duration_,
                    "--stream: open a new stream after this long, e.g. 500ms");
  // The client knows the protocol; ghz needs these only without reflection.
  for (const char* name : {"--proto", "--protoset", "-i,--import-paths"}) {
    bench->add_option(name, ignored_text_, "Accepted for ghz compatibility (not needed)");
  }
  for (const char* name : {"--disable-template-functions", "--disable-template-data"}) {
    bench->add_flag(name, ignored_flag_,
                    "Accepted for ghz compatibility (data is never templated)");
  }
  refusals_->reserve(std::size(kRefused));
  for (const RefusedFlag& r : kRefused) {
    refusals_->push_back({r.name, r.why, nullptr, "", false, r.accepted_value});
    Refusal& refusal = refusals_->back();
    const std::string help = "ghz flag, not supported: " + refusal.why;
    refusal.option = r.takes_value ? bench->add_option(r.name, refusal.value, help)
                                   : bench->add_flag(r.name, refusal.set, help);
  }
}

BenchFlags::~BenchFlags() = default;

std::optional<std::string> BenchFlags::Refused() const {
  for (const Refusal& r : *refusals_) {
    if (r.option->count() == 0) continue;
    if (!r.accepted_value.empty() && r.value == r.accepted_value) continue;
    return "ghz flag " + r.flag + " is not supported: " + r.why;
  }
  return std::nullopt;
}

BenchOptions BenchFlags::Finish(ConnectionOptions* connection) {
  BenchOptions o = options_;
  if (!host_.empty()) connection->address = host_;
  if (!metadata_file_.empty()) {
    for (auto& entry : ParseMetadataJson(ReadFileOrThrow(metadata_file_))) {
      connection->metadata.push_back(entry);
    }
  }
  if (!duration_.empty()) o.duration_s = ParseDurationSeconds(duration_);
  if (!max_duration_.empty()) o.max_duration_s = ParseDurationSeconds(max_duration_);
  if (!stream_call_duration_.empty()) {
    o.stream_call_duration_s = ParseDurationSeconds(stream_call_duration_);
  }
  if (!connect_timeout_.empty()) {
    o.connect_timeout_s = ParseDurationSeconds(connect_timeout_);
    if (o.connect_timeout_s <= 0) throw UsageError("--connect-timeout must be positive");
  }
  o.duration_stop = duration_stop_ == "close"    ? DurationStop::kClose
                    : duration_stop_ == "ignore" ? DurationStop::kIgnore
                                                 : DurationStop::kWait;
  o.json = format_ == "json";
  if (o.stream && bench_->get_option("--call")->count() == 0) {
    o.call = "inference.GRPCInferenceService/ModelStreamInfer";
  }
  if (cpus_ < 0) throw UsageError("--cpus must not be negative");
  o.cpus = cpus_;
  const int sources = (o.data.empty() ? 0 : 1) + (o.data_file.empty() ? 0 : 1) +
                      (o.binary_file.empty() ? 0 : 1) + (o.binary_stdin ? 1 : 0);
  if (sources > 1) throw UsageError("give the request once: -d, -D, -b or -B");
  return o;
}

}  // namespace selu::client
