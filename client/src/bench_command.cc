#include "client/src/bench_command.h"

#include <google/protobuf/util/json_util.h>

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
#include "proto/grpc_service.grpc.pb.h"

namespace selu::client {

namespace {

using Clock = std::chrono::steady_clock;

std::atomic<bool> g_interrupted{false};
extern "C" void OnSigint(int) { g_interrupted.store(true); }

struct Record {
  uint64_t sequence;
  uint64_t latency_ns;
  grpc::StatusCode code;
};

class Slot;

// State shared by the slots and the thread that started them.
struct Run {
  const BenchOptions* options = nullptr;
  const ConnectionOptions* connection = nullptr;  // deadline and metadata of every call
  bool open_loop = false;
  uint64_t limit = 0;  // sequence numbers below this are sent (closed loop)
  std::optional<Clock::time_point> end;
  std::atomic<uint64_t> next_sequence{0};
  std::atomic<bool> stopped_by_time{false};

  std::mutex mu;
  std::condition_variable changed;
  int busy = 0;             // slots with a request outstanding
  std::vector<Slot*> idle;  // open loop: slots ready for the pacer
  std::map<std::string, uint64_t> errors;

  // Closed loop: the sequence number of the next request, or nothing when the
  // run is over.
  std::optional<uint64_t> Claim() {
    if (g_interrupted.load(std::memory_order_relaxed)) return std::nullopt;
    if (end && Clock::now() >= *end) {
      stopped_by_time.store(true, std::memory_order_relaxed);
      return std::nullopt;
    }
    const uint64_t sequence = next_sequence.fetch_add(1, std::memory_order_relaxed);
    if (sequence >= limit) return std::nullopt;
    return sequence;
  }
};

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
    response_.Clear();
    const auto& request = (*requests_)[sequence % requests_->size()];
    stub_->async()->ModelInfer(&*context_, &request, &response_,
                               [this](grpc::Status status) { OnDone(status); });
  }

  std::vector<Record>& records() { return records_; }

 private:
  void OnDone(const grpc::Status& status) {
    const Clock::time_point now = Clock::now();
    const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(now - intended_).count();
    records_.push_back(
        {sequence_, static_cast<uint64_t>(std::max<int64_t>(ns, 0)), status.error_code()});
    if (!status.ok()) {
      std::lock_guard lock(run_->mu);
      ++run_->errors["rpc error: code = " + std::string(GoCodeName(status.error_code())) +
                     " desc = " + status.error_message()];
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

std::vector<inference::ModelInferRequest> ParseRequests(const BenchOptions& options) {
  std::string text = options.data;
  if (!options.data_file.empty()) {
    text = ReadFileOrThrow(options.data_file);
  } else if (text == "@") {
    text.assign(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
  }
  if (text.empty()) throw UsageError("bench needs the request: -d JSON or -D FILE");
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

void CheckCall(const std::string& call) {
  if (call != "inference.GRPCInferenceService/ModelInfer" &&
      call != "inference.GRPCInferenceService.ModelInfer") {
    throw UsageError("--call " + call +
                     ": only inference.GRPCInferenceService/ModelInfer is supported");
  }
}

// Open loop: send request i at start + i/rps on the next idle slot.
void Pace(Run* run, Clock::time_point start) {
  const BenchOptions& o = *run->options;
  for (uint64_t i = 0;; ++i) {
    if (g_interrupted.load()) return;
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

int RunBench(const ConnectionOptions& connection, const BenchOptions& o) {
  CheckCall(o.call);
  if (o.concurrency < 1) throw UsageError("-c must be at least 1");
  if (o.connections < 1) throw UsageError("--connections must be at least 1");
  if (o.duration_s <= 0 && o.total < 1) throw UsageError("-n must be at least 1");
  if (o.rps < 0) throw UsageError("-r must not be negative");
  const std::vector<inference::ModelInferRequest> requests = ParseRequests(o);

  std::vector<std::unique_ptr<inference::GRPCInferenceService::Stub>> stubs;
  for (int k = 0; k < o.connections; ++k) {
    auto channel = MakeChannel(connection, k);
    if (!channel->WaitForConnected(std::chrono::system_clock::now() + std::chrono::seconds(10))) {
      std::fprintf(stderr, "selu-client: bench: cannot connect to %s\n",
                   connection.address.c_str());
      return kExitRpcError;
    }
    stubs.push_back(inference::GRPCInferenceService::NewStub(channel));
  }

  Run run;
  run.options = &o;
  run.connection = &connection;
  run.open_loop = o.rps > 0;
  run.limit = o.duration_s > 0 ? UINT64_MAX : static_cast<uint64_t>(o.total);
  std::vector<std::unique_ptr<Slot>> slots;
  for (int i = 0; i < o.concurrency; ++i) {
    slots.push_back(std::make_unique<Slot>(stubs[static_cast<size_t>(i % o.connections)].get(),
                                           &requests, &run));
  }

  g_interrupted.store(false);
  const auto previous_handler = std::signal(SIGINT, OnSigint);
  const auto date = std::chrono::system_clock::now();
  const Clock::time_point start = Clock::now();
  if (o.duration_s > 0) {
    run.end = start + std::chrono::duration_cast<Clock::duration>(
                          std::chrono::duration<double>(o.duration_s));
  }
  if (run.open_loop) {
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
  for (auto& slot : slots) {
    for (const Record& r : slot->records()) {
      if (r.sequence < skip) continue;
      result.latencies_ns.push_back(r.latency_ns);
      ++result.status_codes[GoCodeName(r.code)];
    }
  }
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
                    {"data", data.size() == 1 ? data[0] : data}};
  if (o.json) {
    std::printf("%s\n", BenchReportJson(std::move(result)).dump().c_str());
  } else {
    std::fputs(BenchReportSummary(std::move(result)).c_str(), stdout);
  }
  return kExitOk;
}

}  // namespace selu::client
