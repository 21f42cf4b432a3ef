#include "client/src/bench_command.h"

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/util/json_util.h>
#include <sched.h>

#include <atomic>
#include <condition_variable>
#include <csignal>
#include <cstdio>
#include <iostream>
#include <iterator>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <thread>
#include <vector>

#include "client/src/bench_report.h"
#include "client/src/bench_run.h"
#include "proto/grpc_service.grpc.pb.h"

namespace selu::client {

namespace {

using Clock = BenchClock;

std::atomic<bool> g_interrupted{false};
extern "C" void OnSigint(int) { g_interrupted.store(true); }

}  // namespace

// One outstanding request at a time; in the closed loop it reissues itself
// from its completion callback.
class Slot {
 public:
  Slot(inference::GRPCInferenceService::Stub* stub,
       const std::vector<inference::ModelInferRequest>* requests, Run* run)
      : stub_(stub), requests_(requests), run_(run) {}

  // `intended` is when the request was due: now (closed loop) or its slot in
  // the schedule (open loop).
  void Issue(uint64_t sequence, Clock::time_point intended) {
    sequence_ = sequence;
    intended_ = intended;
    context_.emplace();
    PrepareContext(&*context_, *run_->connection);
    // --duration-stop close: what is in flight when the time is up fails then.
    if (run_->options->duration_stop == DurationStop::kClose && run_->end) {
      const auto left = *run_->end - Clock::now();
      const auto at_end = std::chrono::system_clock::now() +
                          std::chrono::duration_cast<std::chrono::system_clock::duration>(left);
      if (at_end < context_->deadline()) context_->set_deadline(at_end);
    }
    if (run_->options->compress) context_->set_compression_algorithm(GRPC_COMPRESS_GZIP);
    response_.Clear();
    const auto& request = (*requests_)[sequence % requests_->size()];
    stub_->async()->ModelInfer(&*context_, &request, &response_,
                               [this](grpc::Status status) { OnDone(status); });
  }

  std::vector<Record>& records() { return records_; }

 private:
  void OnDone(const grpc::Status& status) {
    const Clock::time_point now = Clock::now();
    if (!run_->Ignored(now)) {
      records_.push_back({sequence_, ElapsedNs(intended_, now), status.error_code()});
      if (!status.ok()) run_->CountError(GhzErrorText(status));
    }
    if (!run_->open_loop) {
      if (const auto next = run_->Claim()) {
        Issue(*next, Clock::now());
        return;
      }
    }
    std::lock_guard lock(run_->mu);
    --run_->busy;
    if (run_->open_loop) run_->idle.push_back(this);
    run_->changed.notify_all();
  }

  inference::GRPCInferenceService::Stub* stub_;
  const std::vector<inference::ModelInferRequest>* requests_;
  Run* run_;
  uint64_t sequence_ = 0;
  Clock::time_point intended_;
  std::optional<grpc::ClientContext> context_;
  inference::ModelInferResponse response_;
  std::vector<Record> records_;
};

namespace {

// ghz's -b/-B: one serialized message, or several each prefixed with its
// length as a varint (ghz tries the single message first, as here).
std::vector<inference::ModelInferRequest> ParseBinaryRequests(const std::string& bytes) {
  std::vector<inference::ModelInferRequest> requests(1);
  if (requests[0].ParseFromString(bytes)) return requests;
  requests.clear();
  google::protobuf::io::CodedInputStream in(reinterpret_cast<const uint8_t*>(bytes.data()),
                                            static_cast<int>(bytes.size()));
  while (in.BytesUntilLimit() != 0 && !in.ExpectAtEnd()) {
    uint32_t size = 0;
    if (!in.ReadVarint32(&size)) break;
    const auto limit = in.PushLimit(static_cast<int>(size));
    inference::ModelInferRequest request;
    if (!request.ParseFromCodedStream(&in) || !in.ConsumedEntireMessage()) {
      throw UsageError(
          "binary request data is neither one inference.ModelInferRequest nor "
          "count-prefixed ones");
    }
    in.PopLimit(limit);
    requests.push_back(std::move(request));
  }
  if (requests.empty() || !in.ExpectAtEnd()) {
    throw UsageError(
        "binary request data is neither one inference.ModelInferRequest nor "
        "count-prefixed ones");
  }
  return requests;
}

std::vector<inference::ModelInferRequest> ParseRequests(const BenchOptions& options) {
  if (!options.binary_file.empty())
    return ParseBinaryRequests(ReadFileOrThrow(options.binary_file));
  if (options.binary_stdin) {
    return ParseBinaryRequests(
        std::string(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>()));
  }
  std::string text = options.data;
  if (!options.data_file.empty()) {
    text = ReadFileOrThrow(options.data_file);
  } else if (text == "@") {
    text.assign(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
  }
  if (text.empty()) throw UsageError("bench needs the request: -d JSON, -D FILE, -B FILE or -b");
  nlohmann::json doc;
  try {
    doc = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    throw UsageError(std::string("request data is not valid JSON: ") + e.what());
  }
  if (!doc.is_array()) doc = nlohmann::json::array({doc});
  if (doc.empty()) throw UsageError("request data is an empty array");
  std::vector<inference::ModelInferRequest> requests;
  for (const auto& element : doc) {
    inference::ModelInferRequest request;
    const auto status = google::protobuf::util::JsonStringToMessage(element.dump(), &request);
    if (!status.ok()) {
      throw UsageError("request data is not an inference.ModelInferRequest: " + status.ToString());
    }
    requests.push_back(std::move(request));
  }
  return requests;
}

// --call must name the method the mode sends.
void CheckCall(const std::string& call, bool stream) {
  const std::string method = stream ? "ModelStreamInfer" : "ModelInfer";
  if (call == "inference.GRPCInferenceService/" + method ||
      call == "inference.GRPCInferenceService." + method) {
    return;
  }
  if (stream) {
    throw UsageError("--call " + call +
                     ": --stream sends inference.GRPCInferenceService/ModelStreamInfer");
  }
  throw UsageError("--call " + call +
                   ": only inference.GRPCInferenceService/ModelInfer (or ModelStreamInfer with "
                   "--stream) is supported");
}

// Open loop: send request i at start + i/rps on the next idle slot.
void Pace(Run* run, Clock::time_point start) {
  const BenchOptions& o = *run->options;
  for (uint64_t i = 0;; ++i) {
    if (BenchInterrupted()) return;
    const auto due = start + std::chrono::duration_cast<Clock::duration>(
                                 std::chrono::duration<double>(static_cast<double>(i) / o.rps));
    if (run->end && due >= *run->end) {
      run->stopped_by_time.store(true);
      return;
    }
    if (i >= run->limit) return;
    std::this_thread::sleep_until(due);
    Slot* slot = nullptr;
    {
      std::unique_lock lock(run->mu);
      run->changed.wait(lock, [&] { return !run->idle.empty(); });
      slot = run->idle.back();
      run->idle.pop_back();
      ++run->busy;
    }
    run->next_sequence.store(i + 1);
    slot->Issue(i, due);
  }
}

}  // namespace

bool BenchInterrupted() { return g_interrupted.load(std::memory_order_relaxed); }

std::string GhzErrorText(const grpc::Status& status) {
  return "rpc error: code = " + std::string(GoCodeName(status.error_code())) +
         " desc = " + status.error_message();
}

namespace {

// --cpus, as GOMAXPROCS bounds ghz: the first `n` CPUs this process may use
// (gRPC's threads are created later and inherit the mask).
void RestrictToCpus(int n) {
  cpu_set_t allowed;
  CPU_ZERO(&allowed);
  if (sched_getaffinity(0, sizeof(allowed), &allowed) != 0) {
    throw std::runtime_error("--cpus: cannot read the CPU affinity");
  }
  cpu_set_t chosen;
  CPU_ZERO(&chosen);
  int taken = 0;
  for (int cpu = 0; cpu < CPU_SETSIZE && taken < n; ++cpu) {
    if (CPU_ISSET(cpu, &allowed)) {
      CPU_SET(cpu, &chosen);
      ++taken;
    }
  }
  if (sched_setaffinity(0, sizeof(chosen), &chosen) != 0) {
    throw std::runtime_error("--cpus: cannot set the CPU affinity");
  }
}

// The report to stdout, or to -o's file.
int WriteReport(const BenchOptions& o, const std::string& text) {
  if (o.output.empty()) {
    std::fputs(text.c_str(), stdout);
    return kExitOk;
  }
  std::FILE* f = std::fopen(o.output.c_str(), "w");
  if (f == nullptr || std::fputs(text.c_str(), f) < 0 || std::fclose(f) != 0) {
    std::fprintf(stderr, "selu-client: bench: cannot write the report to '%s'\n", o.output.c_str());
    return kExitRpcError;
  }
  return kExitOk;
}

}  // namespace

int RunBench(const ConnectionOptions& connection, const BenchOptions& o) {
  CheckCall(o.call, o.stream);
  if (o.concurrency < 1) throw UsageError("-c must be at least 1");
  if (o.connections < 1) throw UsageError("--connections must be at least 1");
  if (o.duration_s <= 0 && o.total < 1) throw UsageError("-n must be at least 1");
  if (o.rps < 0) throw UsageError("-r must not be negative");
  if (o.stream && o.rps > 0) {
    throw UsageError("--stream runs a closed loop (one message in flight per stream); no -r");
  }
  if (o.stream_call_count < 0) throw UsageError("--stream-call-count must not be negative");
  nlohmann::json tags = nlohmann::json::object();
  if (!o.tags_json.empty()) {
    try {
      tags = nlohmann::json::parse(o.tags_json);
    } catch (const nlohmann::json::exception&) {
      tags = nullptr;
    }
    if (!tags.is_object())
      throw UsageError("--tags must be a JSON object, e.g. '{\"env\": \"ci\"}'");
  }
  const std::vector<inference::ModelInferRequest> requests = ParseRequests(o);
  if (o.cpus > 0) RestrictToCpus(o.cpus);

  std::vector<std::unique_ptr<inference::GRPCInferenceService::Stub>> stubs;
  std::vector<inference::GRPCInferenceService::Stub*> stub_pointers;
  for (int k = 0; k < o.connections; ++k) {
    auto channel = MakeChannel(connection, k);
    const auto connect_by = std::chrono::system_clock::now() +
                            std::chrono::duration_cast<std::chrono::system_clock::duration>(
                                std::chrono::duration<double>(o.connect_timeout_s));
    if (!channel->WaitForConnected(connect_by)) {
      std::fprintf(stderr, "selu-client: bench: cannot connect to %s\n",
                   connection.address.c_str());
      return kExitRpcError;
    }
    stubs.push_back(inference::GRPCInferenceService::NewStub(channel));
    stub_pointers.push_back(stubs.back().get());
  }

  Run run;
  run.options = &o;
  run.connection = &connection;
  run.requests = &requests;
  run.open_loop = o.rps > 0;
  run.limit = o.duration_s > 0 ? UINT64_MAX : static_cast<uint64_t>(o.total);
  std::vector<std::unique_ptr<Slot>> slots;
  if (!o.stream) {
    for (int i = 0; i < o.concurrency; ++i) {
      slots.push_back(std::make_unique<Slot>(stubs[static_cast<size_t>(i % o.connections)].get(),
                                             &requests, &run));
    }
  }

  g_interrupted.store(false);
  const auto previous_handler = std::signal(SIGINT, OnSigint);
  const auto date = std::chrono::system_clock::now();
  const Clock::time_point start = Clock::now();
  // -z ends the run; -x only bounds one that -n ends.
  const double run_for_s = o.duration_s > 0 ? o.duration_s : o.max_duration_s;
  if (run_for_s > 0) {
    run.end = start +
              std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(run_for_s));
  }
  std::vector<Record> stream_records;
  if (o.stream) {
    stream_records = RunStreams(&run, stub_pointers);
  } else if (run.open_loop) {
    for (auto it = slots.rbegin(); it != slots.rend(); ++it) run.idle.push_back(it->get());
    Pace(&run, start);
  } else {
    std::vector<std::pair<Slot*, uint64_t>> first;
    for (auto& slot : slots) {
      const auto sequence = run.Claim();
      if (!sequence) break;
      first.emplace_back(slot.get(), *sequence);
    }
    {
      std::lock_guard lock(run.mu);
      run.busy = static_cast<int>(first.size());
    }
    for (auto& [slot, sequence] : first) slot->Issue(sequence, Clock::now());
  }
  {
    std::unique_lock lock(run.mu);
    run.changed.wait(lock, [&] { return run.busy == 0; });
  }
  const Clock::time_point finish = Clock::now();
  std::signal(SIGINT, previous_handler);

  BenchResult result;
  result.date = date;
  result.total_ns = static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(finish - start).count());
  result.end_reason = g_interrupted.load()         ? "cancel"
                      : run.stopped_by_time.load() ? "timeout"
                                                   : "normal";
  const auto skip = static_cast<uint64_t>(std::max(0LL, o.skip_first));
  auto count = [&](const Record& r) {
    if (r.sequence < skip) return;
    result.latencies_ns.push_back(r.latency_ns);
    ++result.status_codes[GoCodeName(r.code)];
  };
  for (auto& slot : slots) {
    for (const Record& r : slot->records()) count(r);
  }
  for (const Record& r : stream_records) count(r);
  result.errors = std::move(run.errors);
  nlohmann::json data = nlohmann::json::array();
  google::protobuf::util::JsonPrintOptions print_options;
  print_options.preserve_proto_field_names = true;
  for (const auto& request : requests) {
    std::string json;
    (void)google::protobuf::util::MessageToJsonString(request, &json, print_options);
    data.push_back(nlohmann::json::parse(json));
  }
  result.options = {{"call", o.call},
                    {"host", connection.address},
                    {"insecure", !connection.tls.enabled()},
                    {"skipTLS", connection.tls.skip_verify},
                    {"total", o.duration_s > 0 ? 0 : o.total},
                    {"concurrency", o.concurrency},
                    {"connections", o.connections},
                    {"rps", o.rps},
                    {"duration", static_cast<uint64_t>(o.duration_s * 1e9)},
                    {"timeout", static_cast<uint64_t>(connection.timeout_s * 1e9)},
                    {"skipFirst", o.skip_first},
                    {"stream", o.stream},
                    {"streamCallCount", o.stream_call_count},
                    {"streamCallDuration", static_cast<uint64_t>(o.stream_call_duration_s * 1e9)},
                    {"durationStop", o.duration_stop == DurationStop::kClose    ? "close"
                                     : o.duration_stop == DurationStop::kIgnore ? "ignore"
                                                                                : "wait"},
                    {"name", o.name},
                    {"tags", tags},
                    {"data", data.size() == 1 ? data[0] : data}};
  result.name = o.name;
  if (o.json) return WriteReport(o, BenchReportJson(std::move(result)).dump() + "\n");
  return WriteReport(o, BenchReportSummary(std::move(result)));
}

}  // namespace selu::client
