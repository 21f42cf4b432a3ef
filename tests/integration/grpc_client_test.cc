// The real selu-serve process driven by the generated C++ stub: what a C++
// client of Triton/KServe would do. Results are compared with the engine run
// in-process on the same model file.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "proto/grpc_service.grpc.pb.h"
#include "server/core/engine/mlp_engine.h"
#include "server/core/model/onnx_model_loader.h"

namespace {

namespace fs = std::filesystem;
using inference::GRPCInferenceService;

std::string Env(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
}

// Held-out rows of the bundled model.
std::vector<float> HeldoutRows(int64_t* rows) {
  std::ifstream in(Env("SELU_SOURCE_DIR") + "/models/digits_snn/heldout.csv");
  std::string line;
  std::getline(in, line);  // header
  std::vector<float> x;
  *rows = 0;
  while (std::getline(in, line)) {
    std::stringstream ss(line);
    std::string cell;
    for (int i = 0; i < 64 && std::getline(ss, cell, ','); ++i) x.push_back(std::stof(cell));
    ++*rows;
  }
  return x;
}

class ServerProcess {
 public:
  explicit ServerProcess(std::vector<std::string> extra = {}) {
    dir_ = fs::temp_directory_path() / ("selu-cc-" + std::to_string(getpid()));
    fs::create_directories(dir_);
    port_file_ = (dir_ / "port").string();
    fs::remove(port_file_);
    std::vector<std::string> args = {Env("SELU_SERVE_BIN"),
                                     "--model-repository",
                                     Env("SELU_SOURCE_DIR") + "/models",
                                     "--grpc-address",
                                     "127.0.0.1:0",
                                     "--metrics-address",
                                     "127.0.0.1:0",
                                     "--port-file",
                                     port_file_,
                                     "--log-level",
                                     "warn"};
    args.insert(args.end(), extra.begin(), extra.end());
    pid_ = fork();
    if (pid_ == 0) {
      std::vector<char*> argv;
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      execv(argv[0], argv.data());
      _exit(127);
    }
    const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (std::chrono::steady_clock::now() < give_up) {
      std::ifstream in(port_file_);
      int port = 0;
      if (in >> port && port > 0) {
        channel_ = grpc::CreateChannel("127.0.0.1:" + std::to_string(port),
                                       grpc::InsecureChannelCredentials());
        stub_ = GRPCInferenceService::NewStub(channel_);
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    while (stub_ && std::chrono::steady_clock::now() < give_up) {
      grpc::ClientContext ctx;
      inference::ServerReadyResponse ready;
      if (stub_->ServerReady(&ctx, {}, &ready).ok() && ready.ready()) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    ADD_FAILURE() << "selu-serve did not become ready";
  }

  ~ServerProcess() {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
    fs::remove_all(dir_);
  }

  // SIGTERM and the exit status.
  int Terminate() {
    kill(pid_, SIGTERM);
    int status = 0;
    waitpid(pid_, &status, 0);
    pid_ = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }

  GRPCInferenceService::Stub& stub() { return *stub_; }
  std::shared_ptr<grpc::Channel> channel() { return channel_; }

 private:
  fs::path dir_;
  std::string port_file_;
  pid_t pid_ = -1;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<GRPCInferenceService::Stub> stub_;
};

inference::ModelInferRequest InferRequest(const float* rows, int64_t n, bool raw,
                                          const std::string& id = "") {
  inference::ModelInferRequest r;
  r.set_model_name("digits_snn");
  r.set_id(id);
  auto* in = r.add_inputs();
  in->set_name("input");
  in->set_datatype("FP32");
  in->add_shape(n);
  in->add_shape(64);
  if (raw) {
    r.add_raw_input_contents(std::string(reinterpret_cast<const char*>(rows), n * 64 * 4));
  } else {
    for (int64_t i = 0; i < n * 64; ++i) in->mutable_contents()->add_fp32_contents(rows[i]);
  }
  return r;
}

std::vector<float> Outputs(const inference::ModelInferResponse& resp) {
  if (resp.raw_output_contents_size() > 0) {
    const std::string& b = resp.raw_output_contents(0);
    std::vector<float> out(b.size() / 4);
    std::memcpy(out.data(), b.data(), b.size());
    return out;
  }
  const auto& c = resp.outputs(0).contents().fp32_contents();
  return {c.begin(), c.end()};
}

class GrpcClientTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    ASSERT_FALSE(Env("SELU_SERVE_BIN").empty());
    x_ = HeldoutRows(&rows_);
    ASSERT_EQ(rows_, 360);
    auto spec = selu::core::LoadOnnxModelFromFile(Env("SELU_SOURCE_DIR") +
                                                  "/models/digits_snn/1/model.onnx");
    ASSERT_TRUE(spec.ok()) << spec.status().ToString();
    auto engine = selu::core::MlpEngine::Create(std::move(spec).value());
    ASSERT_TRUE(engine.ok());
    expected_.resize(rows_ * 10);
    ASSERT_TRUE((*engine)->Run(x_.data(), rows_, expected_.data()).ok());
  }

  static void ExpectRows(const std::vector<float>& got, int64_t first_row) {
    for (size_t i = 0; i < got.size(); ++i) {
      ASSERT_NEAR(got[i], expected_[first_row * 10 + i], 1e-5) << "row " << first_row + i / 10;
    }
  }

  static inline std::vector<float> x_, expected_;
  static inline int64_t rows_ = 0;
};

TEST_F(GrpcClientTest, MetadataRpcs) {
  ServerProcess server;
  grpc::ClientContext c1, c2, c3;
  inference::ServerLiveResponse live;
  ASSERT_TRUE(server.stub().ServerLive(&c1, {}, &live).ok());
  EXPECT_TRUE(live.live());
  inference::ServerMetadataResponse meta;
  ASSERT_TRUE(server.stub().ServerMetadata(&c2, {}, &meta).ok());
  EXPECT_EQ(meta.name(), "selu-serve");
  inference::ModelMetadataRequest mreq;
  mreq.set_name("digits_snn");
  inference::ModelMetadataResponse model;
  ASSERT_TRUE(server.stub().ModelMetadata(&c3, mreq, &model).ok());
  EXPECT_EQ(model.inputs(0).name(), "input");
  EXPECT_EQ(model.outputs(0).name(), "probabilities");
  EXPECT_EQ(model.outputs(0).shape(1), 10);
  EXPECT_EQ(server.Terminate(), 0);
}

TEST_F(GrpcClientTest, InferRawAndTypedMatchTheEngine) {
  ServerProcess server;
  int64_t correct = 0;
  for (bool raw : {true, false}) {
    for (int64_t first = 0; first < rows_; first += 45) {
      const int64_t n = std::min<int64_t>(45, rows_ - first);
      grpc::ClientContext ctx;
      inference::ModelInferResponse resp;
      grpc::Status s =
          server.stub().ModelInfer(&ctx, InferRequest(&x_[first * 64], n, raw, "b"), &resp);
      ASSERT_TRUE(s.ok()) << s.error_message();
      EXPECT_EQ(resp.id(), "b");
      EXPECT_EQ(resp.model_version(), "1");
      EXPECT_EQ(resp.raw_output_contents_size(), raw ? 1 : 0);
      ExpectRows(Outputs(resp), first);
      correct += n;
    }
  }
  EXPECT_EQ(correct, 2 * rows_);
  EXPECT_EQ(server.Terminate(), 0);
}

TEST_F(GrpcClientTest, ConcurrentAsyncCallsEachGetTheirRows) {
  ServerProcess server({"--max-queue-delay-us", "200"});
  constexpr int kCalls = 2000;
  std::atomic<int> done{0}, bad{0};
  struct Call {
    grpc::ClientContext ctx;
    inference::ModelInferRequest req;
    inference::ModelInferResponse resp;
    int64_t first = 0;
  };
  std::vector<std::unique_ptr<Call>> calls;
  for (int i = 0; i < kCalls; ++i) {
    auto c = std::make_unique<Call>();
    const int64_t n = 1 + i % 5;
    c->first = (i * 7) % (rows_ - n);
    c->req = InferRequest(&x_[c->first * 64], n, i % 2 == 0, std::to_string(i));
    calls.push_back(std::move(c));
  }
  for (auto& c : calls) {
    Call* call = c.get();
    server.stub().async()->ModelInfer(
        &call->ctx, &call->req, &call->resp, [&, call](grpc::Status s) {
          if (!s.ok() || call->resp.id() != call->req.id()) {
            bad++;
          } else {
            const auto out = Outputs(call->resp);
            for (size_t i = 0; i < out.size(); ++i) {
              if (std::abs(out[i] - expected_[call->first * 10 + i]) > 1e-5) {
                bad++;
                break;
              }
            }
          }
          done++;
        });
  }
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (done.load() < kCalls && std::chrono::steady_clock::now() < give_up) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  ASSERT_EQ(done.load(), kCalls);
  EXPECT_EQ(bad.load(), 0);

  grpc::ClientContext ctx;
  inference::ModelStatisticsRequest sreq;
  sreq.set_name("digits_snn");
  inference::ModelStatisticsResponse stats;
  ASSERT_TRUE(server.stub().ModelStatistics(&ctx, sreq, &stats).ok());
  ASSERT_EQ(stats.model_stats_size(), 1);
  const auto& m = stats.model_stats(0);
  EXPECT_EQ(m.inference_stats().success().count(), uint64_t(kCalls));
  EXPECT_LT(m.execution_count(), uint64_t(kCalls)) << "no batching happened";
  uint64_t rows = 0;
  for (const auto& b : m.batch_stats()) rows += b.batch_size() * b.compute_infer().count();
  EXPECT_EQ(rows, m.inference_count());
  EXPECT_EQ(server.Terminate(), 0);
}

TEST_F(GrpcClientTest, ErrorsCarryCodesAndMessages) {
  ServerProcess server({"--max-batch-size", "8"});
  {
    grpc::ClientContext ctx;
    auto req = InferRequest(x_.data(), 1, true);
    req.set_model_name("no_such_model");
    inference::ModelInferResponse resp;
    auto s = server.stub().ModelInfer(&ctx, req, &resp);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND);
    EXPECT_NE(s.error_message().find("no_such_model"), std::string::npos);
  }
  {
    grpc::ClientContext ctx;
    std::vector<float> rows(x_.begin(), x_.begin() + 128);
    rows[70] = std::nanf("");
    inference::ModelInferResponse resp;
    auto s = server.stub().ModelInfer(&ctx, InferRequest(rows.data(), 2, false), &resp);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_NE(s.error_message().find("index 70"), std::string::npos) << s.error_message();
  }
  {
    grpc::ClientContext ctx;
    inference::ModelInferResponse resp;
    auto s = server.stub().ModelInfer(&ctx, InferRequest(x_.data(), 9, true), &resp);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_NE(s.error_message().find("max_batch_size of 8"), std::string::npos)
        << s.error_message();
  }
  EXPECT_EQ(server.Terminate(), 0);
}

}  // namespace
