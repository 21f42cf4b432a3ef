// echo_server: the "bare gRPC server" baseline of run_server_bench.sh.
//
// Same service, same callback API and same ServerBuilder settings as
// selu-serve, but ModelInfer does no work: it answers in the reaction with a
// response of the right form (one FP32 output tensor `probabilities`, shape
// [rows,10], zeros; raw_output_contents when the input was raw). Its requests
// per second are what selu-serve is measured against on the same machine.
//
//   echo_server --address 127.0.0.1:0 --port-file /tmp/port
//
// SIGTERM or SIGINT stops it.
//
// Diagnostic modes (not the baseline): `--work-us N` burns N µs of CPU per
// engine call, either inline in the reaction (`--mode inline`) or on one
// worker thread that takes every queued call as one batch, burns N µs and
// finishes them (`--mode handoff`: selu-serve's threading with
// max_queue_delay 0, without its engine). They separate what the thread
// hand-off costs from what the engine costs.
#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>
#include <pthread.h>
#include <signal.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "proto/grpc_service.grpc.pb.h"
#include "server/process_lifecycle.h"

namespace {

constexpr int kOutputFeatures = 10;

void BurnCpu(std::chrono::microseconds work) {
  if (work.count() <= 0) return;
  const auto end = std::chrono::steady_clock::now() + work;
  while (std::chrono::steady_clock::now() < end) {
  }
}

// --mode handoff: one worker, a mutex + condition variable queue, batches of
// whatever is queued.
class HandoffWorker {
 public:
  explicit HandoffWorker(std::chrono::microseconds work)
      : work_(work), thread_([this] { Run(); }) {}
  ~HandoffWorker() {
    {
      std::lock_guard lock(mu_);
      stop_ = true;
    }
    cv_.notify_one();
    thread_.join();
  }
  void Submit(grpc::ServerUnaryReactor* reactor) {
    bool wake;
    {
      std::lock_guard lock(mu_);
      queue_.push_back(reactor);
      wake = idle_;
    }
    if (wake) cv_.notify_one();
  }

 private:
  void Run() {
    std::vector<grpc::ServerUnaryReactor*> batch;
    std::unique_lock lock(mu_);
    for (;;) {
      while (queue_.empty() && !stop_) {
        idle_ = true;
        cv_.wait(lock);
        idle_ = false;
      }
      if (stop_) return;
      batch.assign(queue_.begin(), queue_.end());
      queue_.clear();
      lock.unlock();
      BurnCpu(work_);
      for (auto* reactor : batch) reactor->Finish(grpc::Status::OK);
      lock.lock();
    }
  }

  std::chrono::microseconds work_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<grpc::ServerUnaryReactor*> queue_;
  bool idle_ = false;
  bool stop_ = false;
  std::thread thread_;
};

class EchoService final : public inference::GRPCInferenceService::CallbackService {
 public:
  EchoService(std::chrono::microseconds work, HandoffWorker* handoff)
      : work_(work), handoff_(handoff) {}

  grpc::ServerUnaryReactor* ModelInfer(grpc::CallbackServerContext* context,
                                       const inference::ModelInferRequest* request,
                                       inference::ModelInferResponse* response) override {
    int64_t rows = 1;
    if (request->inputs_size() > 0 && request->inputs(0).shape_size() > 0) {
      rows = std::max<int64_t>(1, request->inputs(0).shape(0));
    }
    const bool raw = request->raw_input_contents_size() > 0;
    response->set_model_name(request->model_name());
    response->set_model_version("1");
    response->set_id(request->id());
    auto* output = response->add_outputs();
    output->set_name("probabilities");
    output->set_datatype("FP32");
    output->add_shape(rows);
    output->add_shape(kOutputFeatures);
    const size_t count = static_cast<size_t>(rows) * kOutputFeatures;
    if (raw) {
      response->add_raw_output_contents()->assign(count * sizeof(float), '\0');
    } else {
      output->mutable_contents()->mutable_fp32_contents()->Resize(static_cast<int>(count), 0.0f);
    }
    auto* reactor = context->DefaultReactor();
    if (handoff_ != nullptr) {
      handoff_->Submit(reactor);
      return reactor;
    }
    BurnCpu(work_);
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }

 private:
  std::chrono::microseconds work_;
  HandoffWorker* handoff_;
};

}  // namespace

int main(int argc, char** argv) {
  sigset_t stop_signals = selu::BlockStopSignals();

  std::string address = "127.0.0.1:0";
  std::string port_file;
  CLI::App app{
      "echo_server: a bare ModelInfer server (no work), the baseline of "
      "run_server_bench.sh."};
  app.option_defaults()->always_capture_default();
  app.add_option("--address", address, "host:port to listen on (port 0: a free port)");
  app.add_option("--port-file", port_file, "Write the bound port here once listening");
  std::string mode = "inline";
  int64_t work_us = 0;
  app.add_option("--mode", mode,
                 "Diagnostics: inline (answer in the reaction) or handoff "
                 "(answer from one worker thread, in batches)")
      ->check(CLI::IsMember({"inline", "handoff"}));
  app.add_option("--work-us", work_us, "Diagnostics: CPU burnt per engine call, in µs")
      ->check(CLI::Range(int64_t{0}, int64_t{1'000'000}));
  bool with_reflection = false, with_health = false;
  app.add_flag("--with-reflection", with_reflection,
               "Diagnostics: also register gRPC server reflection (as selu-serve does)");
  app.add_flag("--with-health", with_health,
               "Diagnostics: also enable the default health service (as selu-serve does)");
  CLI11_PARSE(app, argc, argv);
  if (with_health) grpc::EnableDefaultHealthCheckService(true);
  if (with_reflection) grpc::reflection::InitProtoReflectionServerBuilderPlugin();

  std::unique_ptr<HandoffWorker> handoff;
  if (mode == "handoff") {
    handoff = std::make_unique<HandoffWorker>(std::chrono::microseconds(work_us));
  }
  EchoService service(std::chrono::microseconds(work_us), handoff.get());
  int port = 0;
  grpc::ServerBuilder builder;
  builder.AddListeningPort(address, grpc::InsecureServerCredentials(), &port);
  builder.SetMaxReceiveMessageSize(64 << 20);  // as selu-serve
  builder.SetMaxSendMessageSize(-1);
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (!server || port == 0) {
    std::fprintf(stderr, "echo_server: cannot listen on %s\n", address.c_str());
    return 1;
  }
  if (!port_file.empty() && !selu::WritePortFile(port_file, port)) {
    std::fprintf(stderr, "echo_server: cannot write %s\n", port_file.c_str());
    return 1;
  }
  std::fprintf(stderr, "echo_server: listening on port %d\n", port);

  int signal_number = 0;
  sigwait(&stop_signals, &signal_number);
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::milliseconds(200));
  server->Wait();
  return 0;
}
