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
#include <grpcpp/grpcpp.h>
#include <pthread.h>
#include <signal.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>

#include "proto/grpc_service.grpc.pb.h"

namespace {

constexpr int kOutputFeatures = 10;

class EchoService final : public inference::GRPCInferenceService::CallbackService {
 public:
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
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }
};

bool WritePortFile(const std::string& path, int port) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp);
    if (!(out << port << "\n")) return false;
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  return !ec;
}

}  // namespace

int main(int argc, char** argv) {
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  std::string address = "127.0.0.1:0";
  std::string port_file;
  CLI::App app{"echo_server: a bare ModelInfer server (no work), the baseline of "
               "run_server_bench.sh."};
  app.option_defaults()->always_capture_default();
  app.add_option("--address", address, "host:port to listen on (port 0: a free port)");
  app.add_option("--port-file", port_file, "Write the bound port here once listening");
  CLI11_PARSE(app, argc, argv);

  EchoService service;
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
  if (!port_file.empty() && !WritePortFile(port_file, port)) {
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
