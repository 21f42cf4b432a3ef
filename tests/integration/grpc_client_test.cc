// The real selu-serve process driven by the generated C++ stub: what a C++
// client of Triton/KServe would do. Results are compared with the numpy
// evaluator's outputs (models/onnx_mlp_eval.py, written by the ctest fixture
// grpc_client_reference into $SELU_REFERENCE_OUTPUTS): no code of the server
// computes what the server is checked against.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "proto/grpc_service.grpc.pb.h"

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

// The reference outputs: one line of 10 values per held-out row.
std::vector<double> ReferenceOutputs(int64_t* rows) {
  std::ifstream in(Env("SELU_REFERENCE_OUTPUTS"));
  std::vector<double> y;
  std::string line;
  *rows = 0;
  while (std::getline(in, line)) {
    std::stringstream ss(line);
    double v = 0;
    int n = 0;
    while (ss >> v) {
      y.push_back(v);
      ++n;
    }
    if (n != 10) return {};
    ++*rows;
  }
  return y;
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
      if (stub_->ServerReady(&ctx, {}, &ready).ok() && ready.ready()) {
        ready_ = true;
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    ADD_FAILURE() << "selu-serve did not become ready";
  }

  // Whether the server answered ServerReady with ready (tests ASSERT this
  // before using stub()).
  bool ready() const { return ready_; }

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
  bool ready_ = false;
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

// The one output of `resp`, which must be "probabilities" FP32 [rows, 10]
// holding exactly rows * 10 values (raw or typed, not both); empty and a
// description in *why otherwise.
std::vector<float> Outputs(const inference::ModelInferResponse& resp, int64_t rows,
                           std::string* why) {
  std::ostringstream bad;
  if (resp.outputs_size() != 1) {
    bad << resp.outputs_size() << " outputs";
  } else {
    const auto& out = resp.outputs(0);
    if (out.name() != "probabilities" || out.datatype() != "FP32" || out.shape_size() != 2 ||
        out.shape(0) != rows || out.shape(1) != 10) {
      bad << "output " << out.name() << " " << out.datatype() << " shape [";
      for (int i = 0; i < out.shape_size(); ++i) bad << (i ? "," : "") << out.shape(i);
      bad << "], wanted probabilities FP32 [" << rows << ",10]";
    }
  }
  const size_t want = static_cast<size_t>(rows) * 10;
  std::vector<float> values;
  if (bad.str().empty()) {
    const auto& typed = resp.outputs(0).contents().fp32_contents();
    if (resp.raw_output_contents_size() > 0) {
      const std::string& b = resp.raw_output_contents(0);
      if (resp.raw_output_contents_size() != 1 || !typed.empty() || b.size() != want * 4) {
        bad << resp.raw_output_contents_size() << " raw outputs of " << b.size() << " bytes and "
            << typed.size() << " typed values, wanted " << want * 4 << " bytes";
      } else {
        values.resize(want);
        std::memcpy(values.data(), b.data(), b.size());
      }
    } else if (static_cast<size_t>(typed.size()) != want) {
      bad << typed.size() << " typed values, wanted " << want;
    } else {
      values.assign(typed.begin(), typed.end());
    }
  }
  *why = bad.str();
  if (!why->empty()) values.clear();
  return values;
}

// Outputs whose shape and size were checked, or a failure.
std::vector<float> CheckedOutputs(const inference::ModelInferResponse& resp, int64_t rows) {
  std::string why;
  std::vector<float> out = Outputs(resp, rows, &why);
  EXPECT_EQ(why, "");
  return out;
}

class GrpcClientTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    ASSERT_FALSE(Env("SELU_SERVE_BIN").empty());
    ASSERT_FALSE(Env("SELU_REFERENCE_OUTPUTS").empty()) << "run through ctest";
    x_ = HeldoutRows(&rows_);
    ASSERT_EQ(rows_, 360);
    int64_t reference_rows = 0;
    expected_ = ReferenceOutputs(&reference_rows);
    ASSERT_EQ(reference_rows, rows_) << Env("SELU_REFERENCE_OUTPUTS");
    ASSERT_EQ(expected_.size(), size_t(rows_) * 10);
  }

  // The same tolerance as the Python tests (selu_server.TOLERANCE): fp32
  // kernels and numpy's fp32 matmul differ only in summation order.
  static void ExpectRows(const std::vector<float>& got, int64_t first_row, int64_t rows) {
    ASSERT_EQ(got.size(), size_t(rows) * 10);
    for (size_t i = 0; i < got.size(); ++i) {
      ASSERT_NEAR(got[i], expected_[first_row * 10 + i], 1e-5) << "row " << first_row + i / 10;
    }
  }

  static inline std::vector<float> x_;
  static inline std::vector<double> expected_;
  static inline int64_t rows_ = 0;
};

TEST_F(GrpcClientTest, MetadataRpcs) {
  ServerProcess server;
  ASSERT_TRUE(server.ready());
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

TEST_F(GrpcClientTest, InferRawAndTypedMatchTheReference) {
  ServerProcess server;
  ASSERT_TRUE(server.ready());
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
      ExpectRows(CheckedOutputs(resp, n), first, n);
      correct += n;
    }
  }
  EXPECT_EQ(correct, 2 * rows_);
  EXPECT_EQ(server.Terminate(), 0);
}

TEST_F(GrpcClientTest, ConcurrentAsyncCallsEachGetTheirRows) {
  ServerProcess server({"--max-queue-delay-us", "200"});
  ASSERT_TRUE(server.ready());
  constexpr int kCalls = 2000;
  std::atomic<int> done{0}, bad{0};
  struct Call {
    grpc::ClientContext ctx;
    inference::ModelInferRequest req;
    inference::ModelInferResponse resp;
    int64_t first = 0;
    int64_t rows = 0;
  };
  std::vector<std::unique_ptr<Call>> calls;
  uint64_t rows_sent = 0;
  for (int i = 0; i < kCalls; ++i) {
    auto c = std::make_unique<Call>();
    const int64_t n = 1 + i % 5;
    c->first = (i * 7) % (rows_ - n);
    c->rows = n;
    rows_sent += n;
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
            std::string why;
            const auto out = Outputs(call->resp, call->rows, &why);
            if (!why.empty()) bad++;
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
  // Every call ends (each has the channel's default: no deadline, so the
  // server answers it); the callbacks use `calls`, which must outlive them.
  while (done.load() < kCalls) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  EXPECT_EQ(bad.load(), 0);

  grpc::ClientContext ctx;
  inference::ModelStatisticsRequest sreq;
  sreq.set_name("digits_snn");
  inference::ModelStatisticsResponse stats;
  ASSERT_TRUE(server.stub().ModelStatistics(&ctx, sreq, &stats).ok());
  ASSERT_EQ(stats.model_stats_size(), 1);
  const auto& m = stats.model_stats(0);
  EXPECT_EQ(m.inference_stats().success().count(), uint64_t(kCalls));
  EXPECT_EQ(m.inference_stats().fail().count(), 0u);
  // However the calls were batched (that depends on timing): the engine
  // computed exactly the rows sent, each once, in execution_count calls, and
  // each call got its own rows back (checked above, by id and values).
  EXPECT_EQ(m.inference_count(), rows_sent);
  uint64_t rows = 0, batches = 0;
  for (const auto& b : m.batch_stats()) {
    rows += b.batch_size() * b.compute_infer().count();
    batches += b.compute_infer().count();
  }
  EXPECT_EQ(rows, rows_sent);
  EXPECT_EQ(batches, m.execution_count());
  EXPECT_EQ(server.Terminate(), 0);
}

TEST_F(GrpcClientTest, ErrorsCarryCodesAndMessages) {
  ServerProcess server({"--max-batch-size", "8"});
  ASSERT_TRUE(server.ready());
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
