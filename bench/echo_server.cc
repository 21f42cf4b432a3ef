// echo_server: the "bare gRPC server" baseline of run_server_bench.sh.
//
// Same service, same callback API and same ServerBuilder settings as
// selu-serve, but ModelInfer does no work: it answers in the reaction with a
// response of the right form (one FP32 output tensor, by default
// `probabilities` of shape [rows,10], zeros; raw_output_contents when the
// input was raw). Its requests per second are what selu-serve is measured
// against on the same machine.
//
//   echo_server --address 127.0.0.1:0 --port-file /tmp/port
//               [--model-output big_snn=output:1024 ...]
//
// `--model-output MODEL=NAME:FEATURES` gives the output a model's requests
// get (others get the default), so the echo answers carry as many bytes as
// the real model's.
//
// ModelStreamInfer (Triton's bidirectional stream) is the bare-gRPC ceiling
// for streams: each request read is answered with the same zero response
// inside a ModelStreamInferResponse, in order, with one write outstanding at
// a time and the next read started as soon as one completes.
//
// SIGTERM or SIGINT stops it.
//
// Diagnostic modes (not the baseline): `--work-us N` burns N µs of CPU per
// engine call, either inline in the reaction (`--mode inline`) or on one
// worker thread that takes every queued call as one batch, burns N µs and
// finishes them (`--mode handoff`: selu-serve's threading with
// max_queue_delay 0, without its engine). They separate what the thread
// hand-off costs from what the engine costs.
//
// `--mode burst` (diagnostics, issue 14's "batches without waiting"):
// the service on gRPC's async API instead (every method async, only
// ModelInfer requested: nothing else is answered in this mode), polled by
// `--burst-threads` threads of our own (default 1), one completion queue
// each, and no thread of gRPC's polling. A thread takes every call its queue
// already holds (AsyncNext with a zero deadline), and when the queue is empty
// burns `--work-us` + `--work-row-us` × (calls − 1) µs once for the lot (an
// engine call of that many rows) and finishes them: a batch formed from what
// gRPC has already read, with no wait. At SIGTERM it prints how many calls
// each such batch held. It answers whether such bursts are big enough to pay
// for moving selu-serve's ModelInfer off the callback API
// (bench/UNARY_OVERHEAD.md).
#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>
#include <pthread.h>
#include <signal.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "proto/grpc_service.grpc.pb.h"
#include "server/process_lifecycle.h"

namespace {

struct OutputForm {
  std::string name = "probabilities";
  int64_t features = 10;
};

// The output each model's answers carry: per model name, else the default.
class OutputForms {
 public:
  // "MODEL=NAME:FEATURES"; false if it is not of that form.
  bool Add(const std::string& text) {
    const size_t eq = text.find('=');
    const size_t colon = text.rfind(':');
    if (eq == std::string::npos || colon == std::string::npos || colon < eq) return false;
    OutputForm form;
    form.name = text.substr(eq + 1, colon - eq - 1);
    try {
      form.features = std::stoll(text.substr(colon + 1));
    } catch (const std::exception&) {
      return false;
    }
    if (eq == 0 || form.name.empty() || form.features < 1) return false;
    by_model_[text.substr(0, eq)] = form;
    return true;
  }
  const OutputForm& For(const std::string& model) const {
    auto it = by_model_.find(model);
    return it == by_model_.end() ? default_ : it->second;
  }

 private:
  OutputForm default_;
  std::map<std::string, OutputForm, std::less<>> by_model_;
};

// The zero answer to `request`: the model's output form, [rows, features],
// raw when the input was raw, the request's id.
void FillEchoResponse(const OutputForms& forms, const inference::ModelInferRequest& request,
                      inference::ModelInferResponse* response) {
  int64_t rows = 1;
  if (request.inputs_size() > 0 && request.inputs(0).shape_size() > 0) {
    rows = std::max<int64_t>(1, request.inputs(0).shape(0));
  }
  const OutputForm& form = forms.For(request.model_name());
  const bool raw = request.raw_input_contents_size() > 0;
  response->set_model_name(request.model_name());
  response->set_model_version("1");
  response->set_id(request.id());
  auto* output = response->add_outputs();
  output->set_name(form.name);
  output->set_datatype("FP32");
  output->add_shape(rows);
  output->add_shape(form.features);
  const size_t count = static_cast<size_t>(rows * form.features);
  if (raw) {
    response->add_raw_output_contents()->assign(count * sizeof(float), '\0');
  } else {
    output->mutable_contents()->mutable_fp32_contents()->Resize(static_cast<int>(count), 0.0f);
  }
}

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

// One ModelStreamInfer stream. Reads are pipelined: the next read starts
// as soon as one completes, its answer is queued, and the queue is written
// one message at a time (gRPC allows one outstanding write). Finishes once
// the client has half-closed and every answer is written; deletes itself in
// OnDone. OnReadDone and OnWriteDone may run at the same time on different
// threads, hence the mutex around the queue.
class EchoStream final : public grpc::ServerBidiReactor<inference::ModelInferRequest,
                                                        inference::ModelStreamInferResponse> {
 public:
  explicit EchoStream(const OutputForms& forms) : forms_(forms) { StartRead(&request_); }

  void OnReadDone(bool ok) override {
    if (!ok) {
      std::unique_lock lock(mu_);
      reads_done_ = true;
      FinishIfDone(lock);
      return;
    }
    auto answer = std::make_unique<inference::ModelStreamInferResponse>();
    FillEchoResponse(forms_, request_, answer->mutable_infer_response());
    inference::ModelStreamInferResponse* to_write = nullptr;
    {
      // Queued before the next read starts, so answers keep the requests' order.
      std::lock_guard lock(mu_);
      if (finished_) return;  // a write failed: the stream is being torn down
      pending_.push_back(std::move(answer));
      if (!writing_) {
        writing_ = true;
        to_write = pending_.front().get();
      }
    }
    // The request is consumed, so its buffer takes the next one. gRPC calls
    // are made outside the lock: a reaction may run before they return.
    StartRead(&request_);
    if (to_write != nullptr) StartWrite(to_write);
  }

  void OnWriteDone(bool ok) override {
    std::unique_lock lock(mu_);
    writing_ = false;
    pending_.pop_front();
    if (!ok) {  // the client is gone: stop writing, drop what is queued
      pending_.clear();
      reads_done_ = true;
      FinishIfDone(lock, grpc::Status::CANCELLED);
      return;
    }
    if (pending_.empty()) {
      FinishIfDone(lock);
      return;
    }
    writing_ = true;
    inference::ModelStreamInferResponse* to_write = pending_.front().get();
    lock.unlock();
    StartWrite(to_write);
  }

  void OnDone() override { delete this; }

 private:
  // Finishes once reads are over and nothing is left to write; unlocks first
  // (OnDone may delete this as soon as Finish is called).
  void FinishIfDone(std::unique_lock<std::mutex>& lock, grpc::Status status = grpc::Status::OK) {
    if (!reads_done_ || writing_ || !pending_.empty() || finished_) return;
    finished_ = true;
    lock.unlock();
    Finish(status);
  }

  const OutputForms& forms_;
  inference::ModelInferRequest request_;
  std::mutex mu_;
  // The front is being written while writing_; answers stay alive until
  // their write completes.
  std::deque<std::unique_ptr<inference::ModelStreamInferResponse>> pending_;
  bool writing_ = false;
  bool reads_done_ = false;
  bool finished_ = false;
};

// --mode burst: one async ModelInfer call, from RequestModelInfer to the end
// of Finish. The low bit of the tag says which of the two it is.
struct BurstCall {
  grpc::ServerContext context;
  inference::ModelInferRequest request;
  inference::ModelInferResponse response;
  grpc::ServerAsyncResponseWriter<inference::ModelInferResponse> writer{&context};
};

// Every method on the async API, so that no gRPC thread of its own polls
// (the callback API's two "nexting" threads would read the sockets and wake
// the poller for every call); only ModelInfer is ever requested, so in this
// mode the server answers nothing else.
using BurstService = inference::GRPCInferenceService::AsyncService;

class BurstPoller {
 public:
  BurstPoller(BurstService* service, grpc::ServerCompletionQueue* cq, const OutputForms& forms,
              std::chrono::microseconds work, std::chrono::microseconds work_row)
      : service_(service), cq_(cq), forms_(forms), work_(work), work_row_(work_row) {}

  void Run() {
    for (int i = 0; i < kPosted; ++i) Post();
    std::vector<BurstCall*> pending;
    for (;;) {
      void* tag = nullptr;
      bool ok = false;
      grpc::CompletionQueue::NextStatus status;
      if (pending.empty()) {
        status = cq_->Next(&tag, &ok) ? grpc::CompletionQueue::GOT_EVENT
                                      : grpc::CompletionQueue::SHUTDOWN;
      } else {
        status = cq_->AsyncNext(&tag, &ok, gpr_time_0(GPR_CLOCK_MONOTONIC));
      }
      if (status == grpc::CompletionQueue::SHUTDOWN) {
        // Calls read but not yet answered when the queue shut down cannot be
        // finished any more; the server has cancelled them.
        for (BurstCall* call : pending) delete call;
        return;
      }
      if (status == grpc::CompletionQueue::TIMEOUT) {
        Flush(pending);
        continue;
      }
      const auto bits = reinterpret_cast<uintptr_t>(tag);
      auto* call = reinterpret_cast<BurstCall*>(bits & ~uintptr_t{1});
      if (bits & 1) {  // Finish done
        delete call;
        continue;
      }
      if (!ok) {  // shutting down: the posted call will not come
        delete call;
        continue;
      }
      if (!stopping.load(std::memory_order_acquire)) Post();
      FillEchoResponse(forms_, call->request, &call->response);
      pending.push_back(call);
      if (pending.size() >= kMaxBatch) Flush(pending);
    }
  }
  // "N calls in B batches (mean M): size:count ...", over every poller.
  static void PrintBatches(const std::vector<std::unique_ptr<BurstPoller>>& pollers) {
    std::vector<uint64_t> total;
    for (const auto& p : pollers) {
      if (total.size() < p->histogram_.size()) total.resize(p->histogram_.size());
      for (size_t i = 0; i < p->histogram_.size(); ++i) total[i] += p->histogram_[i];
    }
    uint64_t batches = 0, calls = 0;
    for (size_t i = 0; i < total.size(); ++i) {
      batches += total[i];
      calls += total[i] * i;
    }
    std::fprintf(stderr, "echo_server: %llu calls in %llu batches (mean %.2f):",
                 static_cast<unsigned long long>(calls), static_cast<unsigned long long>(batches),
                 batches ? static_cast<double>(calls) / static_cast<double>(batches) : 0.0);
    for (size_t i = 1; i < total.size(); ++i) {
      if (total[i] > 0) {
        std::fprintf(stderr, " %zu:%llu", i, static_cast<unsigned long long>(total[i]));
      }
    }
    std::fprintf(stderr, "\n");
  }
  // Set before the server shuts down: no new call is requested after it.
  static inline std::atomic<bool> stopping{false};

 private:
  static constexpr int kPosted = 64;
  static constexpr size_t kMaxBatch = 64;

  void Post() {
    auto* call = new BurstCall;
    service_->RequestModelInfer(&call->context, &call->request, &call->writer, cq_, cq_, call);
  }
  void Flush(std::vector<BurstCall*>& pending) {
    const auto n = static_cast<int64_t>(pending.size());
    BurnCpu(work_ + work_row_ * (n - 1));
    for (BurstCall* call : pending) {
      call->writer.Finish(call->response, grpc::Status::OK,
                          reinterpret_cast<void*>(reinterpret_cast<uintptr_t>(call) | 1));
    }
    if (histogram_.size() <= pending.size()) histogram_.resize(pending.size() + 1);
    ++histogram_[pending.size()];
    pending.clear();
  }

  BurstService* service_;
  grpc::ServerCompletionQueue* cq_;
  const OutputForms& forms_;
  std::chrono::microseconds work_, work_row_;
  std::vector<uint64_t> histogram_;
};

class EchoService final : public inference::GRPCInferenceService::CallbackService {
 public:
  EchoService(const OutputForms& forms, std::chrono::microseconds work, HandoffWorker* handoff)
      : forms_(forms), work_(work), handoff_(handoff) {}

  grpc::ServerUnaryReactor* ModelInfer(grpc::CallbackServerContext* context,
                                       const inference::ModelInferRequest* request,
                                       inference::ModelInferResponse* response) override {
    FillEchoResponse(forms_, *request, response);
    auto* reactor = context->DefaultReactor();
    if (handoff_ != nullptr) {
      handoff_->Submit(reactor);
      return reactor;
    }
    BurnCpu(work_);
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }

  grpc::ServerBidiReactor<inference::ModelInferRequest, inference::ModelStreamInferResponse>*
  ModelStreamInfer(grpc::CallbackServerContext* /*context*/) override {
    return new EchoStream(forms_);
  }

 private:
  const OutputForms& forms_;
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
      ->check(CLI::IsMember({"inline", "handoff", "burst"}));
  int64_t work_row_us = 0;
  int burst_threads = 1;
  app.add_option("--work-row-us", work_row_us,
                 "Diagnostics, --mode burst: CPU burnt per row beyond the first, in µs")
      ->check(CLI::Range(int64_t{0}, int64_t{1'000'000}));
  app.add_option("--burst-threads", burst_threads,
                 "Diagnostics, --mode burst: polling threads (one completion queue each)")
      ->check(CLI::Range(1, 64));
  app.add_option("--work-us", work_us, "Diagnostics: CPU burnt per engine call, in µs")
      ->check(CLI::Range(int64_t{0}, int64_t{1'000'000}));
  std::vector<std::string> model_outputs;
  app.add_option("--model-output", model_outputs,
                 "MODEL=NAME:FEATURES: the output that model's answers carry "
                 "(default for any model: probabilities:10)");
  bool with_reflection = false, with_health = false;
  app.add_flag("--with-reflection", with_reflection,
               "Diagnostics: also register gRPC server reflection (as selu-serve does)");
  app.add_flag("--with-health", with_health,
               "Diagnostics: also enable the default health service (as selu-serve does)");
  CLI11_PARSE(app, argc, argv);
  OutputForms forms;
  for (const std::string& text : model_outputs) {
    if (!forms.Add(text)) {
      std::fprintf(stderr, "echo_server: --model-output wants MODEL=NAME:FEATURES, got '%s'\n",
                   text.c_str());
      return 2;
    }
  }
  if (with_health) grpc::EnableDefaultHealthCheckService(true);
  if (with_reflection) grpc::reflection::InitProtoReflectionServerBuilderPlugin();

  std::unique_ptr<HandoffWorker> handoff;
  if (mode == "handoff") {
    handoff = std::make_unique<HandoffWorker>(std::chrono::microseconds(work_us));
  }
  EchoService service(forms, std::chrono::microseconds(work_us), handoff.get());
  BurstService burst_service;
  const bool burst = mode == "burst";
  int port = 0;
  grpc::ServerBuilder builder;
  builder.AddListeningPort(address, grpc::InsecureServerCredentials(), &port);
  builder.SetMaxReceiveMessageSize(64 << 20);  // as selu-serve
  builder.SetMaxSendMessageSize(-1);
  if (burst) {
    builder.RegisterService(&burst_service);
  } else {
    builder.RegisterService(&service);
  }
  std::vector<std::unique_ptr<grpc::ServerCompletionQueue>> cqs;
  if (burst) {
    for (int i = 0; i < burst_threads; ++i) cqs.push_back(builder.AddCompletionQueue());
  }
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
  std::vector<std::unique_ptr<BurstPoller>> pollers;
  std::vector<std::thread> poller_threads;
  for (auto& cq : cqs) {
    pollers.push_back(std::make_unique<BurstPoller>(&burst_service, cq.get(), forms,
                                                    std::chrono::microseconds(work_us),
                                                    std::chrono::microseconds(work_row_us)));
    poller_threads.emplace_back([p = pollers.back().get()] { p->Run(); });
  }

  int signal_number = 0;
  sigwait(&stop_signals, &signal_number);
  BurstPoller::stopping.store(true, std::memory_order_release);
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::milliseconds(200));
  for (auto& cq : cqs) cq->Shutdown();
  for (std::thread& t : poller_threads) t.join();
  server->Wait();
  if (burst) BurstPoller::PrintBatches(pollers);
  return 0;
}
