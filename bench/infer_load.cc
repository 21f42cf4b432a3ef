// infer_load: a closed-loop ModelInfer load generator on the gRPC callback
// client API, for run_server_bench.sh.
//
// `--concurrency` requests are outstanding at all times: each completion
// callback records the latency and issues the next request from the callback
// itself, so the client adds no thread hop of its own beyond gRPC's. The
// requests are spread over `--connections` channels, each a separate TCP
// connection (distinct channel args and a local subchannel pool).
//
// After `--warmup` seconds it measures for `--duration` seconds and prints one
// JSON line:
//   requests    completions in the window (ok + errors)
//   rps         requests / window seconds
//   p50_us ...  latency percentiles of the window's requests, in µs
//   client_cpu_s, client_cpu_ms_per_1k   this process's user+sys CPU (getrusage)
//   server_cpu_s, server_cpu_ms_per_1k   with --server-pid: /proc/<pid>/stat utime+stime
//   machine_busy_cores, machine_steal_cores   from /proc/stat: how busy the whole
//                                            machine was (other tenants included)
#include <grpcpp/grpcpp.h>
#include <sys/resource.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "proto/grpc_service.grpc.pb.h"

namespace {

using Clock = std::chrono::steady_clock;
constexpr int kFeatures = 64;
constexpr int kDistinctRequests = 16;
constexpr int kStatusCodes = 17;

struct Options {
  std::string address = "127.0.0.1:8001";
  int concurrency = 1;
  int connections = 1;
  double duration_s = 5.0;
  double warmup_s = 1.0;
  int rows = 1;
  std::string model = "digits_snn";
  std::string input_name = "input";
  std::string data = "models/digits_snn/heldout.csv";
  int timeout_ms = 10000;
  int server_pid = 0;
  std::string label;
};

// Rows of 64 features: the held-out CSV (label column dropped) or, when it
// cannot be read, random pixel values 0..16.
std::vector<std::array<float, kFeatures>> LoadRows(const std::string& path, bool* from_file) {
  std::vector<std::array<float, kFeatures>> rows;
  std::ifstream in(path);
  std::string line;
  if (in && std::getline(in, line)) {  // header
    while (std::getline(in, line)) {
      std::array<float, kFeatures> row{};
      std::stringstream ss(line);
      std::string cell;
      int i = 0;
      while (i < kFeatures && std::getline(ss, cell, ',')) row[i++] = std::stof(cell);
      if (i == kFeatures) rows.push_back(row);
    }
  }
  *from_file = !rows.empty();
  if (rows.empty()) {
    std::mt19937 rng(42);
    std::uniform_int_distribution<int> pixel(0, 16);
    rows.resize(360);
    for (auto& row : rows) {
      for (float& v : row) v = static_cast<float>(pixel(rng));
    }
  }
  return rows;
}

inference::ModelInferRequest MakeRequest(const Options& o,
                                         const std::vector<std::array<float, kFeatures>>& data,
                                         size_t first_row) {
  inference::ModelInferRequest request;
  request.set_model_name(o.model);
  auto* input = request.add_inputs();
  input->set_name(o.input_name);
  input->set_datatype("FP32");
  input->add_shape(o.rows);
  input->add_shape(kFeatures);
  std::string* raw = request.add_raw_input_contents();
  raw->resize(static_cast<size_t>(o.rows) * kFeatures * sizeof(float));
  for (int r = 0; r < o.rows; ++r) {
    const auto& row = data[(first_row + static_cast<size_t>(r)) % data.size()];
    std::memcpy(raw->data() + static_cast<size_t>(r) * sizeof row, row.data(), sizeof row);
  }
  return request;
}

double CpuSeconds(const rusage& u) {
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) * 1e-6;
}

double SelfCpuSeconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return CpuSeconds(u);
}

// utime + stime of a process (all its threads), in seconds; -1 if unreadable.
double ProcessCpuSeconds(int pid) {
  if (pid <= 0) return -1;
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string stat;
  if (!std::getline(in, stat)) return -1;
  const size_t close = stat.rfind(')');  // comm may contain spaces
  if (close == std::string::npos) return -1;
  std::istringstream fields(stat.substr(close + 2));
  std::string field;
  unsigned long long utime = 0, stime = 0;
  // Fields after comm start at 3 (state); utime is 14, stime 15.
  for (int i = 3; i <= 15 && fields >> field; ++i) {
    if (i == 14) utime = std::stoull(field);
    if (i == 15) stime = std::stoull(field);
  }
  return static_cast<double>(utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

// Machine-wide busy and steal time (seconds summed over CPUs) from /proc/stat.
struct MachineCpu {
  double busy = 0;
  double steal = 0;
};
MachineCpu ReadMachineCpu() {
  std::ifstream in("/proc/stat");
  std::string cpu;
  unsigned long long user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0,
                     steal = 0;
  in >> cpu >> user >> nice >> system >> idle >> iowait >> irq >> softirq >> steal;
  const double tick = static_cast<double>(sysconf(_SC_CLK_TCK));
  return {static_cast<double>(user + nice + system + irq + softirq) / tick,
          static_cast<double>(steal) / tick};
}

enum Phase : int { kWarmup = 0, kMeasure = 1, kStop = 2 };

struct Shared {
  std::atomic<int> phase{kWarmup};
  std::array<std::atomic<uint64_t>, kStatusCodes> codes{};
  std::atomic<uint64_t> warmup_errors{0};
  std::mutex mu;
  std::condition_variable all_idle;
  int active = 0;
  std::string first_error;
};

// One outstanding request, reissued from its own completion callback.
class Slot {
 public:
  Slot(inference::GRPCInferenceService::Stub* stub,
       const std::vector<inference::ModelInferRequest>* requests, size_t first, int timeout_ms,
       Shared* shared, size_t expected_latencies)
      : stub_(stub),
        requests_(requests),
        next_(first),
        timeout_(std::chrono::milliseconds(timeout_ms)),
        shared_(shared) {
    latencies_ns_.reserve(expected_latencies);
  }

  void Issue() {
    context_.emplace();
    context_->set_deadline(std::chrono::system_clock::now() + timeout_);
    const auto& request = (*requests_)[next_++ % requests_->size()];
    start_ = Clock::now();
    stub_->async()->ModelInfer(&*context_, &request, &response_,
                               [this](grpc::Status status) { OnDone(status); });
  }

  const std::vector<uint32_t>& latencies_ns() const { return latencies_ns_; }

 private:
  void OnDone(const grpc::Status& status) {
    const Clock::time_point end = Clock::now();
    const int phase = shared_->phase.load(std::memory_order_relaxed);
    if (phase == kMeasure) {
      const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(end - start_).count();
      latencies_ns_.push_back(static_cast<uint32_t>(std::min<int64_t>(ns, UINT32_MAX)));
      const int code = std::clamp(static_cast<int>(status.error_code()), 0, kStatusCodes - 1);
      shared_->codes[static_cast<size_t>(code)].fetch_add(1, std::memory_order_relaxed);
    } else if (!status.ok()) {
      shared_->warmup_errors.fetch_add(1, std::memory_order_relaxed);
    }
    if (!status.ok()) {
      std::lock_guard lock(shared_->mu);
      if (shared_->first_error.empty()) {
        shared_->first_error = std::to_string(status.error_code()) + ": " + status.error_message();
      }
    }
    response_.Clear();
    if (phase != kStop) {
      Issue();
      return;
    }
    std::lock_guard lock(shared_->mu);
    if (--shared_->active == 0) shared_->all_idle.notify_all();
  }

  inference::GRPCInferenceService::Stub* stub_;
  const std::vector<inference::ModelInferRequest>* requests_;
  size_t next_;
  std::chrono::milliseconds timeout_;
  Shared* shared_;
  std::optional<grpc::ClientContext> context_;
  inference::ModelInferResponse response_;
  Clock::time_point start_;
  std::vector<uint32_t> latencies_ns_;
};

const char* CodeName(int code) {
  static const char* const kNames[kStatusCodes] = {"OK",
                                                   "CANCELLED",
                                                   "UNKNOWN",
                                                   "INVALID_ARGUMENT",
                                                   "DEADLINE_EXCEEDED",
                                                   "NOT_FOUND",
                                                   "ALREADY_EXISTS",
                                                   "PERMISSION_DENIED",
                                                   "RESOURCE_EXHAUSTED",
                                                   "FAILED_PRECONDITION",
                                                   "ABORTED",
                                                   "OUT_OF_RANGE",
                                                   "UNIMPLEMENTED",
                                                   "INTERNAL",
                                                   "UNAVAILABLE",
                                                   "DATA_LOSS",
                                                   "UNAUTHENTICATED"};
  return kNames[code];
}

double Percentile(const std::vector<uint32_t>& sorted, double q) {
  if (sorted.empty()) return 0;
  const size_t i =
      std::min(sorted.size() - 1, static_cast<size_t>(q * static_cast<double>(sorted.size())));
  return static_cast<double>(sorted[i]) / 1000.0;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  CLI::App app{
      "infer_load: closed-loop ModelInfer load over the gRPC callback client API; "
      "prints one JSON line."};
  app.option_defaults()->always_capture_default();
  app.add_option("--address", o.address, "host:port of the server");
  app.add_option("--concurrency", o.concurrency, "Requests outstanding at all times")
      ->check(CLI::Range(1, 100000));
  app.add_option("--connections", o.connections, "Channels (separate TCP connections)")
      ->check(CLI::Range(1, 1024));
  app.add_option("--duration", o.duration_s, "Seconds measured")->check(CLI::Range(0.1, 3600.0));
  app.add_option("--warmup", o.warmup_s, "Seconds of load before measuring")
      ->check(CLI::Range(0.0, 3600.0));
  app.add_option("--rows", o.rows, "Rows per request")->check(CLI::Range(1, 65536));
  app.add_option("--model", o.model, "Model name");
  app.add_option("--input-name", o.input_name, "Input tensor name");
  app.add_option("--data", o.data,
                 "CSV of rows (header, 64 features, then anything); random 0..16 if unreadable");
  app.add_option("--timeout-ms", o.timeout_ms, "Deadline of each request")
      ->check(CLI::Range(1, 3600000));
  app.add_option("--server-pid", o.server_pid, "Also report this process's CPU over the window");
  app.add_option("--label", o.label, "Copied into the JSON line");
  CLI11_PARSE(app, argc, argv);

  bool from_file = false;
  const auto data = LoadRows(o.data, &from_file);
  std::vector<inference::ModelInferRequest> requests;
  for (int i = 0; i < kDistinctRequests; ++i) {
    requests.push_back(MakeRequest(o, data, static_cast<size_t>(i) * static_cast<size_t>(o.rows)));
  }

  std::vector<std::shared_ptr<grpc::Channel>> channels;
  std::vector<std::unique_ptr<inference::GRPCInferenceService::Stub>> stubs;
  for (int k = 0; k < o.connections; ++k) {
    grpc::ChannelArguments args;
    args.SetInt("grpc.channel_id", k);  // distinct args: no subchannel sharing
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    args.SetMaxReceiveMessageSize(-1);
    auto channel = grpc::CreateCustomChannel(o.address, grpc::InsecureChannelCredentials(), args);
    if (!channel->WaitForConnected(std::chrono::system_clock::now() + std::chrono::seconds(10))) {
      std::fprintf(stderr, "infer_load: cannot connect to %s\n", o.address.c_str());
      return 1;
    }
    stubs.push_back(inference::GRPCInferenceService::NewStub(channel));
    channels.push_back(std::move(channel));
  }
  {  // One synchronous request: fail fast on a wrong model, input or server.
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    inference::ModelInferResponse response;
    const grpc::Status status = stubs[0]->ModelInfer(&context, requests[0], &response);
    if (!status.ok()) {
      std::fprintf(stderr, "infer_load: probe request failed: %d %s\n",
                   static_cast<int>(status.error_code()), status.error_message().c_str());
      return 1;
    }
  }

  Shared shared;
  const size_t expected =
      static_cast<size_t>(std::min(4e6, 60000.0 * o.duration_s / o.concurrency + 1024));
  std::vector<std::unique_ptr<Slot>> slots;
  for (int i = 0; i < o.concurrency; ++i) {
    slots.push_back(std::make_unique<Slot>(stubs[static_cast<size_t>(i % o.connections)].get(),
                                           &requests, static_cast<size_t>(i), o.timeout_ms, &shared,
                                           expected));
  }
  shared.active = o.concurrency;
  for (auto& slot : slots) slot->Issue();

  std::this_thread::sleep_for(std::chrono::duration<double>(o.warmup_s));
  const double server0 = ProcessCpuSeconds(o.server_pid);
  const MachineCpu machine0 = ReadMachineCpu();
  const double client0 = SelfCpuSeconds();
  const Clock::time_point t0 = Clock::now();
  shared.phase.store(kMeasure, std::memory_order_relaxed);
  std::this_thread::sleep_for(std::chrono::duration<double>(o.duration_s));
  shared.phase.store(kStop, std::memory_order_relaxed);
  const Clock::time_point t1 = Clock::now();
  const double client1 = SelfCpuSeconds();
  const MachineCpu machine1 = ReadMachineCpu();
  const double server1 = ProcessCpuSeconds(o.server_pid);

  bool drained;
  {
    std::unique_lock lock(shared.mu);
    drained = shared.all_idle.wait_for(lock, std::chrono::milliseconds(o.timeout_ms + 5000),
                                       [&] { return shared.active == 0; });
  }
  if (!drained) {
    std::fprintf(stderr, "infer_load: %d requests still outstanding after the deadline\n",
                 shared.active);
    std::fflush(stderr);
    _exit(3);  // slots are still referenced by gRPC: do not destroy them
  }

  std::vector<uint32_t> all;
  for (const auto& slot : slots) {
    all.insert(all.end(), slot->latencies_ns().begin(), slot->latencies_ns().end());
  }
  std::sort(all.begin(), all.end());
  const double seconds = std::chrono::duration<double>(t1 - t0).count();
  const uint64_t requests_done = all.size();
  const uint64_t ok = shared.codes[0].load();
  const double per_1k = requests_done > 0 ? 1e6 / static_cast<double>(requests_done) : 0;

  std::string errors = "{";
  for (int c = 1; c < kStatusCodes; ++c) {
    const uint64_t n = shared.codes[static_cast<size_t>(c)].load();
    if (n == 0) continue;
    if (errors.size() > 1) errors += ",";
    errors += "\"" + std::string(CodeName(c)) + "\":" + std::to_string(n);
  }
  errors += "}";

  std::printf(
      "{\"label\":\"%s\",\"address\":\"%s\",\"concurrency\":%d,\"connections\":%d,\"rows\":%d,"
      "\"input\":\"%s\",\"seconds\":%.3f,\"requests\":%llu,\"ok\":%llu,\"errors\":%s,"
      "\"warmup_errors\":%llu,\"rps\":%.1f,\"mean_us\":%.1f,\"p50_us\":%.1f,\"p90_us\":%.1f,"
      "\"p99_us\":%.1f,\"p999_us\":%.1f,\"max_us\":%.1f,"
      "\"client_cpu_s\":%.3f,\"client_cpu_ms_per_1k\":%.2f",
      o.label.c_str(), o.address.c_str(), o.concurrency, o.connections, o.rows,
      from_file ? "heldout" : "random", seconds, static_cast<unsigned long long>(requests_done),
      static_cast<unsigned long long>(ok), errors.c_str(),
      static_cast<unsigned long long>(shared.warmup_errors.load()),
      static_cast<double>(requests_done) / seconds,
      all.empty() ? 0.0
                  : [&] {
                      double sum = 0;
                      for (uint32_t v : all) sum += v;
                      return sum / static_cast<double>(all.size()) / 1000.0;
                    }(),
      Percentile(all, 0.50), Percentile(all, 0.90), Percentile(all, 0.99),
      Percentile(all, 0.999), all.empty() ? 0.0 : all.back() / 1000.0, client1 - client0,
      (client1 - client0) * per_1k);
  if (server0 >= 0 && server1 >= 0) {
    std::printf(",\"server_pid\":%d,\"server_cpu_s\":%.2f,\"server_cpu_ms_per_1k\":%.2f",
                o.server_pid, server1 - server0, (server1 - server0) * per_1k);
  }
  std::printf(",\"machine_busy_cores\":%.2f,\"machine_steal_cores\":%.2f",
              (machine1.busy - machine0.busy) / seconds,
              (machine1.steal - machine0.steal) / seconds);
  if (!shared.first_error.empty()) {
    std::string e;
    for (char ch : shared.first_error) {
      if (ch == '"' || ch == '\\') e += '\\';
      if (static_cast<unsigned char>(ch) >= 0x20) e += ch;
    }
    std::printf(",\"first_error\":\"%s\"", e.c_str());
  }
  std::printf("}\n");
  std::fflush(stdout);
  return 0;
}
