// DynamicBatcher behind a fake engine: every caller gets its own rows back
// under concurrency, batch forming (merging, size limit, preferred sizes, zero
// delay, FIFO), refusals, deadlines, cancellation, engine failures, draining
// and statistics. Ordering is driven by a gate that blocks the fake engine,
// never by sleeps; time limits are only safety nets against hangs.
#include "server/core/serving/dynamic_batcher.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <pthread.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <memory>
#include <mutex>
#include <numeric>
#include <ostream>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace selu::core {

void PrintTo(const Status& status, std::ostream* os) { *os << status.ToString(); }

namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::StartsWith;
using namespace std::chrono_literals;

constexpr auto kSafety = 60s;  // only reached when the batcher hangs
constexpr auto kLongDelay = std::chrono::microseconds(10min);
constexpr int64_t kIn = 3;
constexpr int64_t kOut = 5;

// out[r][j] = 2·in[r][j mod kIn] + Σ in[r] + j: depends on the row's own
// values and column, so any mix-up of rows or strides shows.
float Expected(const float* row, int64_t j) {
  float sum = 0;
  for (int64_t k = 0; k < kIn; ++k) sum += row[k];
  return 2 * row[j % kIn] + sum + static_cast<float>(j);
}

class FakeComputer final : public BatchComputer {
 public:
  struct Call {
    int64_t rows;
    const float* input;
    const Context* context;
    std::string thread_name;
  };

  int64_t input_features() const override { return kIn; }
  int64_t output_features() const override { return kOut; }
  std::unique_ptr<Context> CreateContext() const override {
    contexts_created_.fetch_add(1);
    if (fail_context_) return nullptr;
    return std::make_unique<Context>();
  }
  Status Warmup(const std::vector<int64_t>& batch_sizes) const override {
    std::lock_guard lock(mu_);
    warmups_.push_back(batch_sizes);
    return warmup_status_;
  }
  Status Compute(Context& context, const float* input, int64_t rows, float* output) const override {
    char name[16] = {};
    pthread_getname_np(pthread_self(), name, sizeof(name));
    size_t index;
    {
      std::unique_lock lock(mu_);
      index = calls_.size();
      calls_.push_back({rows, input, &context, name});
      ++in_compute_;
      cv_.notify_all();
      cv_.wait(lock, [&] { return !gate_closed_; });
      --in_compute_;
      if (static_cast<int64_t>(index) == fail_call_) return InternalError("injected failure");
    }
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t j = 0; j < kOut; ++j) output[r * kOut + j] = Expected(input + r * kIn, j);
    }
    return OkStatus();
  }

  void CloseGate() {
    std::lock_guard lock(mu_);
    gate_closed_ = true;
  }
  void OpenGate() {
    std::lock_guard lock(mu_);
    gate_closed_ = false;
    cv_.notify_all();
  }
  // Waits until `n` engine calls are blocked at the gate.
  bool WaitInCompute(int n) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, kSafety, [&] { return in_compute_ >= n; });
  }
  void FailCall(int64_t index) {
    std::lock_guard lock(mu_);
    fail_call_ = index;
  }
  void set_warmup_status(Status s) { warmup_status_ = std::move(s); }
  void set_fail_context(bool f) { fail_context_ = f; }

  std::vector<Call> calls() const {
    std::lock_guard lock(mu_);
    return calls_;
  }
  std::vector<int64_t> call_rows() const {
    std::vector<int64_t> rows;
    for (const Call& c : calls()) rows.push_back(c.rows);
    return rows;
  }
  std::vector<std::vector<int64_t>> warmups() const {
    std::lock_guard lock(mu_);
    return warmups_;
  }
  int contexts_created() const { return contexts_created_.load(); }

 private:
  mutable std::mutex mu_;
  mutable std::condition_variable cv_;
  mutable std::vector<Call> calls_;
  mutable std::vector<std::vector<int64_t>> warmups_;
  mutable int in_compute_ = 0;
  mutable std::atomic<int> contexts_created_{0};
  bool gate_closed_ = false;
  int64_t fail_call_ = -1;
  Status warmup_status_;
  bool fail_context_ = false;
};

// Counts the Done() calls it gets; records the order in which requests sharing
// a sequence counter were answered.
class TestRequest final : public InferenceRequest {
 public:
  explicit TestRequest(int64_t n, uint32_t seed = 1, std::atomic<int>* sequence = nullptr)
      : in(static_cast<size_t>(n * kIn)),
        out(static_cast<size_t>(n * kOut), -1.0f),
        sequence_(sequence) {
    std::mt19937 rng(seed);
    std::uniform_real_distribution<float> dist(-4.0f, 4.0f);
    for (float& v : in) v = dist(rng);
    input = in.data();
    output = out.data();
    rows = n;
  }

  bool IsCancelled() const override { return cancelled.load(); }
  void Done(Status s) override {
    std::lock_guard lock(mu_);
    status_ = std::move(s);
    if (sequence_ != nullptr) done_order_ = sequence_->fetch_add(1);
    ++done_count_;
    cv_.notify_all();
  }

  bool WaitDone() {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, kSafety, [&] { return done_count_ > 0; });
  }
  Status status() {
    std::lock_guard lock(mu_);
    return status_;
  }
  int done_count() {
    std::lock_guard lock(mu_);
    return done_count_;
  }
  int done_order() {
    std::lock_guard lock(mu_);
    return done_order_;
  }
  // True when every output row is the fake engine's answer for this request's row.
  bool OutputIsOwn() const {
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t j = 0; j < kOut; ++j) {
        if (out[r * kOut + j] != Expected(in.data() + r * kIn, j)) return false;
      }
    }
    return true;
  }

  std::vector<float> in, out;
  std::atomic<bool> cancelled{false};

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  Status status_;
  int done_count_ = 0;
  int done_order_ = -1;
  std::atomic<int>* sequence_;
};

class DynamicBatcherTest : public ::testing::Test {
 protected:
  std::unique_ptr<DynamicBatcher> Make(BatcherOptions options) {
    auto batcher = DynamicBatcher::Create(computer_, std::move(options));
    EXPECT_TRUE(batcher.ok()) << batcher.status().ToString();
    return batcher.ok() ? std::move(batcher).value() : nullptr;
  }
  TestRequest& NewRequest(int64_t rows) {
    requests_.push_back(std::make_unique<TestRequest>(rows, seed_++, &sequence_));
    return *requests_.back();
  }
  // Submits and expects acceptance.
  TestRequest& Queue(DynamicBatcher& b, int64_t rows) {
    TestRequest& r = NewRequest(rows);
    Status s = b.Submit(&r);
    EXPECT_TRUE(s.ok()) << s.ToString();
    return r;
  }
  // Submits throw-away requests until Submit() answers UNAVAILABLE, which
  // proves Drain() has started; returns the ones accepted before that.
  // Accepted probes join requests_ (they must be answered like the others).
  std::vector<TestRequest*> ProbeUntilDraining(DynamicBatcher& b) {
    std::vector<TestRequest*> accepted;
    const auto give_up = Clock::now() + kSafety;
    while (Clock::now() < give_up) {
      auto probe = std::make_unique<TestRequest>(1, seed_++, &sequence_);
      Status s = b.Submit(probe.get());
      if (s.code() == StatusCode::kUnavailable) return accepted;
      if (s.code() == StatusCode::kResourceExhausted) {
        // The queue filled up before the draining thread got a core: wait.
        std::this_thread::sleep_for(1ms);
        continue;
      }
      EXPECT_TRUE(s.ok()) << s.ToString();
      accepted.push_back(probe.get());
      std::lock_guard lock(requests_mu_);
      requests_.push_back(std::move(probe));
      std::this_thread::yield();
    }
    ADD_FAILURE() << "Drain() never refused a Submit()";
    return accepted;
  }

  std::shared_ptr<FakeComputer> computer_ = std::make_shared<FakeComputer>();
  std::mutex requests_mu_;  // probes may be added from another thread
  std::deque<std::unique_ptr<TestRequest>> requests_;
  std::atomic<int> sequence_{0};
  uint32_t seed_ = 1;
};

TEST_F(DynamicBatcherTest, CreateRefusesInconsistentOptions) {
  auto expect_invalid = [&](BatcherOptions o, const std::string& what) {
    auto b = DynamicBatcher::Create(computer_, o);
    ASSERT_FALSE(b.ok()) << what;
    EXPECT_EQ(b.status().code(), StatusCode::kInvalidArgument) << what;
  };
  BatcherOptions o;
  o.max_batch_size = 0;
  expect_invalid(o, "max_batch_size 0");
  o = {};
  o.instances = 0;
  expect_invalid(o, "instances 0");
  o.instances = 65;
  expect_invalid(o, "instances 65");
  o = {};
  o.max_queue_size = 0;
  expect_invalid(o, "max_queue_size 0");
  o = {};
  o.preferred_batch_sizes = {4, 65};
  expect_invalid(o, "preferred above max");
  o.preferred_batch_sizes = {0};
  expect_invalid(o, "preferred 0");
  o = {};
  o.max_queue_delay = std::chrono::microseconds(-1);
  expect_invalid(o, "negative delay");
  auto none = DynamicBatcher::Create(nullptr, BatcherOptions{});
  EXPECT_EQ(none.status().code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(computer_->warmups().empty()) << "warm-up ran for refused options";
  EXPECT_EQ(computer_->contexts_created(), 0);
}

TEST_F(DynamicBatcherTest, CreateWarmsUpEveryBatchSizeOrJustOne) {
  BatcherOptions o;
  o.max_batch_size = 5;
  o.instances = 3;
  auto all = Make(o);
  EXPECT_EQ(computer_->contexts_created(), 3);
  o.warmup_all_batch_sizes = false;
  auto one = Make(o);
  EXPECT_THAT(computer_->warmups(), ElementsAre(ElementsAre(1, 2, 3, 4, 5), ElementsAre(1)));
}

TEST_F(DynamicBatcherTest, CreateReturnsWarmupAndContextFailures) {
  computer_->set_warmup_status(InternalError("no primitives"));
  auto b = DynamicBatcher::Create(computer_, BatcherOptions{});
  ASSERT_FALSE(b.ok());
  EXPECT_EQ(b.status(), InternalError("no primitives"));

  computer_->set_warmup_status(OkStatus());
  computer_->set_fail_context(true);
  BatcherOptions o;
  o.instances = 2;
  b = DynamicBatcher::Create(computer_, o);
  ASSERT_FALSE(b.ok());
  EXPECT_EQ(b.status().code(), StatusCode::kInternal);
}

// Both executions: worker threads only, and callers computing at an idle
// batcher with workers taking the rest.
class ConcurrencyTest : public DynamicBatcherTest,
                        public ::testing::WithParamInterface<std::tuple<BatchExecution, int>> {};

TEST_P(ConcurrencyTest, EachCallerGetsExactlyItsOwnRows) {
  constexpr int kThreads = 16;
  constexpr int kPerThread = 500;
  const auto [execution, instances] = GetParam();
  const bool caller = execution == BatchExecution::kCaller;
  BatcherOptions o;
  o.max_batch_size = 16;
  o.instances = instances;
  o.execution = execution;
  o.max_queue_delay = std::chrono::microseconds(caller ? 0 : 200);
  auto b = Make(o);
  ASSERT_NE(b, nullptr);

  std::atomic<int64_t> total_rows{0}, wrong{0}, not_ok{0}, extra_done{0}, bad_times{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937 rng(1000 + t);
      std::uniform_int_distribution<int64_t> rows(1, 8);
      for (int i = 0; i < kPerThread; ++i) {
        TestRequest r(rows(rng), rng());
        if (!b->Submit(&r).ok()) {
          ++not_ok;
          continue;
        }
        if (!r.WaitDone()) {
          std::fprintf(stderr, "request never answered\n");
          std::abort();  // the batcher still holds &r
        }
        if (!r.status().ok()) {
          ++not_ok;
          continue;
        }
        total_rows += r.rows;
        if (!r.OutputIsOwn()) ++wrong;
        if (r.done_count() != 1) ++extra_done;
        if (r.batch_rows < r.rows || r.batch_rows > 16 || r.compute_start < r.enqueue_time ||
            r.compute_end < r.compute_start) {
          ++bad_times;
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  b->Drain(Clock::now() + kSafety);

  EXPECT_EQ(not_ok.load(), 0);
  EXPECT_EQ(wrong.load(), 0);
  EXPECT_EQ(extra_done.load(), 0);
  EXPECT_EQ(bad_times.load(), 0);
  const auto calls = computer_->calls();
  int64_t computed = 0;
  std::set<const BatchComputer::Context*> contexts;
  for (const auto& c : calls) {
    EXPECT_LE(c.rows, 16);
    if (!caller) {
      EXPECT_THAT(c.thread_name, StartsWith("selu-batch-"));
    }
    computed += c.rows;
    contexts.insert(c.context);
  }
  EXPECT_EQ(computed, total_rows.load());
  // One context per worker, and with kCaller one per caller slot too.
  const int context_count = caller ? 2 * instances : instances;
  EXPECT_EQ(computer_->contexts_created(), context_count);
  EXPECT_LE(contexts.size(), static_cast<size_t>(context_count));
  const BatcherStats s = b->stats();
  EXPECT_EQ(s.accepted, uint64_t{kThreads * kPerThread});
  EXPECT_EQ(s.succeeded, uint64_t{kThreads * kPerThread});
  EXPECT_EQ(s.failed, 0u);
  EXPECT_EQ(s.batches, calls.size());
  EXPECT_EQ(s.batched_rows, static_cast<uint64_t>(computed));
  EXPECT_EQ(s.queue_depth, 0);
}

INSTANTIATE_TEST_SUITE_P(ExecutionAndInstances, ConcurrencyTest,
                         ::testing::Combine(::testing::Values(BatchExecution::kWorkers,
                                                              BatchExecution::kCaller),
                                            ::testing::Values(1, 2)),
                         [](const auto& info) {
                           return std::string(std::get<0>(info.param) == BatchExecution::kCaller
                                                  ? "caller"
                                                  : "workers") +
                                  "_x" + std::to_string(std::get<1>(info.param));
                         });

TEST_F(DynamicBatcherTest, QueuedRequestsAreMergedIntoOneCall) {
  BatcherOptions o;
  o.max_batch_size = 64;
  o.max_queue_delay = std::chrono::microseconds(0);
  auto b = Make(o);
  computer_->CloseGate();
  TestRequest& first = Queue(*b, 2);
  ASSERT_TRUE(computer_->WaitInCompute(1));
  int64_t rows = 0;
  for (int i = 0; i < 20; ++i) rows += Queue(*b, 1 + i % 3).rows;
  EXPECT_EQ(b->stats().queue_depth, 20);
  computer_->OpenGate();
  for (auto& r : requests_) {
    ASSERT_TRUE(r->WaitDone());
    EXPECT_TRUE(r->status().ok()) << r->status().ToString();
    EXPECT_TRUE(r->OutputIsOwn());
  }
  // The first ran alone and in place; the 20 that queued behind it, one call.
  EXPECT_THAT(computer_->call_rows(), ElementsAre(2, rows));
  EXPECT_EQ(computer_->calls()[0].input, first.in.data());
  EXPECT_EQ(requests_.back()->batch_rows, rows);
}

TEST_F(DynamicBatcherTest, BatchesNeverExceedMaxBatchSizeAndKeepArrivalOrder) {
  BatcherOptions o;
  o.max_batch_size = 8;
  o.max_queue_delay = kLongDelay;
  auto b = Make(o);
  computer_->CloseGate();
  Queue(*b, 8);
  ASSERT_TRUE(computer_->WaitInCompute(1));
  std::mt19937 rng(7);
  std::uniform_int_distribution<int64_t> rows(1, 8);
  int64_t total = 8;
  for (int i = 0; i < 40; ++i) total += Queue(*b, rows(rng)).rows;
  computer_->OpenGate();
  // Whatever is left after the last closed batch would wait for the delay.
  b->Drain(Clock::now() + kSafety);

  int64_t computed = 0;
  for (int64_t r : computer_->call_rows()) {
    EXPECT_LE(r, 8);
    computed += r;
  }
  EXPECT_EQ(computed, total);
  for (size_t i = 0; i < requests_.size(); ++i) {
    EXPECT_EQ(requests_[i]->done_count(), 1);
    EXPECT_TRUE(requests_[i]->status().ok());
    EXPECT_EQ(requests_[i]->done_order(), static_cast<int>(i)) << "answered out of order";
  }
}

TEST_F(DynamicBatcherTest, PreferredBatchSizeDispatchesWithoutWaitingForTheDelay) {
  BatcherOptions o;
  o.max_batch_size = 64;
  o.preferred_batch_sizes = {4};
  o.max_queue_delay = kLongDelay;
  auto b = Make(o);
  for (int i = 0; i < 4; ++i) Queue(*b, 1);
  for (auto& r : requests_) {
    ASSERT_TRUE(r->WaitDone()) << "the batch waited for the 10 min delay";
    EXPECT_TRUE(r->status().ok());
    EXPECT_TRUE(r->OutputIsOwn());
  }
  EXPECT_THAT(computer_->call_rows(), ElementsAre(4));
}

TEST_F(DynamicBatcherTest, PreferredPrefixIsDispatchedAndTheRestWaits) {
  BatcherOptions o;
  o.max_batch_size = 64;
  o.preferred_batch_sizes = {4};
  o.max_queue_delay = kLongDelay;
  auto b = Make(o);
  computer_->CloseGate();
  Queue(*b, 4);  // a preferred size: dispatched at once
  ASSERT_TRUE(computer_->WaitInCompute(1));
  for (int i = 0; i < 6; ++i) Queue(*b, 1);
  computer_->OpenGate();
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(requests_[i]->WaitDone());
  // The last two are waiting for the (10 min) delay; Drain flushes them.
  EXPECT_EQ(requests_[5]->done_count(), 0);
  EXPECT_EQ(b->stats().queue_depth, 2);
  b->Drain(Clock::now() + kSafety);
  EXPECT_THAT(computer_->call_rows(), ElementsAre(4, 4, 2));
  for (auto& r : requests_) EXPECT_TRUE(r->status().ok()) << r->status().ToString();
}

TEST_F(DynamicBatcherTest, ZeroDelayDispatchesEachLoneRequestAtOnce) {
  BatcherOptions o;
  o.max_batch_size = 64;
  o.max_queue_delay = std::chrono::microseconds(0);
  auto b = Make(o);
  for (int i = 0; i < 3; ++i) {
    TestRequest& r = Queue(*b, 2);
    ASSERT_TRUE(r.WaitDone());
    EXPECT_TRUE(r.status().ok());
    EXPECT_TRUE(r.OutputIsOwn());
    EXPECT_EQ(r.batch_rows, 2);
  }
  EXPECT_THAT(computer_->call_rows(), ElementsAre(2, 2, 2));
}

TEST_F(DynamicBatcherTest, RequestThatDoesNotFitWaitsForTheNextBatchAndIsNotOvertaken) {
  BatcherOptions o;
  o.max_batch_size = 8;
  o.max_queue_delay = kLongDelay;
  auto b = Make(o);
  computer_->CloseGate();
  TestRequest& a = Queue(*b, 8);  // full: dispatched at once
  ASSERT_TRUE(computer_->WaitInCompute(1));
  TestRequest& r5 = Queue(*b, 5);
  TestRequest& r4 = Queue(*b, 4);  // 5 + 4 > 8: the next batch
  TestRequest& r3 = Queue(*b, 3);  // would fit beside the 5, but may not overtake the 4
  TestRequest& r1 = Queue(*b, 1);
  computer_->OpenGate();
  for (auto& r : requests_) ASSERT_TRUE(r->WaitDone());
  EXPECT_THAT(computer_->call_rows(), ElementsAre(8, 5, 8));
  EXPECT_EQ(r5.batch_rows, 5);
  EXPECT_EQ(r4.batch_rows, 8);
  EXPECT_EQ(r3.batch_rows, 8);
  std::vector<int> order = {a.done_order(), r5.done_order(), r4.done_order(), r3.done_order(),
                            r1.done_order()};
  EXPECT_THAT(order, ElementsAre(0, 1, 2, 3, 4));
  for (auto& r : requests_) EXPECT_TRUE(r->OutputIsOwn());
}

TEST_F(DynamicBatcherTest, SecondInstanceComputesWhileTheFirstIsBusy) {
  BatcherOptions o;
  o.instances = 2;
  o.max_queue_delay = std::chrono::microseconds(0);
  auto b = Make(o);
  computer_->CloseGate();
  Queue(*b, 1);
  ASSERT_TRUE(computer_->WaitInCompute(1));
  Queue(*b, 2);
  EXPECT_TRUE(computer_->WaitInCompute(2)) << "the second worker did not pick up the request";
  computer_->OpenGate();
  for (auto& r : requests_) ASSERT_TRUE(r->WaitDone());
  const auto calls = computer_->calls();
  ASSERT_EQ(calls.size(), 2u);
  EXPECT_NE(calls[0].context, calls[1].context);
  EXPECT_NE(calls[0].thread_name, calls[1].thread_name);
}

TEST_F(DynamicBatcherTest, FullQueueRefusesWithoutCallingDone) {
  BatcherOptions o;
  o.max_queue_size = 2;
  o.max_queue_delay = std::chrono::microseconds(0);
  auto b = Make(o);
  computer_->CloseGate();
  Queue(*b, 1);
  ASSERT_TRUE(computer_->WaitInCompute(1));
  Queue(*b, 1);
  Queue(*b, 1);
  TestRequest& refused = NewRequest(1);
  const Status s = b->Submit(&refused);
  EXPECT_EQ(s, ResourceExhaustedError("queue full: 2 requests waiting (max_queue_size 2)"));
  EXPECT_EQ(b->stats().rejected_full, 1u);
  EXPECT_EQ(b->stats().accepted, 3u);
  computer_->OpenGate();
  b->Drain(Clock::now() + kSafety);
  EXPECT_EQ(refused.done_count(), 0);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(requests_[i]->done_count(), 1);
    EXPECT_TRUE(requests_[i]->status().ok());
  }
}

TEST_F(DynamicBatcherTest, RefusesBadRowCountsAndMissingBuffers) {
  BatcherOptions o;
  o.max_batch_size = 8;
  auto b = Make(o);
  TestRequest& too_many = NewRequest(9);
  Status s = b->Submit(&too_many);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("9"));
  EXPECT_THAT(s.message(), HasSubstr("8"));
  TestRequest& none = NewRequest(1);
  none.rows = 0;
  EXPECT_EQ(b->Submit(&none).code(), StatusCode::kInvalidArgument);
  TestRequest& no_input = NewRequest(1);
  no_input.input = nullptr;
  EXPECT_EQ(b->Submit(&no_input).code(), StatusCode::kInvalidArgument);
  TestRequest& no_output = NewRequest(1);
  no_output.output = nullptr;
  EXPECT_EQ(b->Submit(&no_output).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(b->Submit(nullptr).code(), StatusCode::kInvalidArgument);
  b->Drain(Clock::now() + kSafety);
  for (auto& r : requests_) EXPECT_EQ(r->done_count(), 0);
  EXPECT_EQ(b->stats().accepted, 0u);
  EXPECT_TRUE(computer_->calls().empty());
}

TEST_F(DynamicBatcherTest, ExpiredRequestIsAnsweredWithoutComputing) {
  auto b = Make(BatcherOptions{});
  TestRequest& late = NewRequest(1);
  late.deadline = Clock::now();
  ASSERT_TRUE(b->Submit(&late).ok());
  ASSERT_TRUE(late.WaitDone());
  EXPECT_EQ(late.status().code(), StatusCode::kDeadlineExceeded);
  EXPECT_THAT(late.status().message(), StartsWith("deadline exceeded after "));
  EXPECT_THAT(late.status().message(), HasSubstr(" µs in queue"));
  EXPECT_TRUE(computer_->calls().empty());
  EXPECT_EQ(b->stats().expired, 1u);
}

TEST_F(DynamicBatcherTest, ExpiredRequestIsDroppedFromItsBatch) {
  BatcherOptions o;
  o.max_queue_delay = std::chrono::microseconds(0);
  auto b = Make(o);
  computer_->CloseGate();
  Queue(*b, 1);
  ASSERT_TRUE(computer_->WaitInCompute(1));
  TestRequest& late = NewRequest(3);
  late.deadline = Clock::now() - 1ms;
  ASSERT_TRUE(b->Submit(&late).ok());
  TestRequest& alive = Queue(*b, 2);
  computer_->OpenGate();
  ASSERT_TRUE(late.WaitDone());
  ASSERT_TRUE(alive.WaitDone());
  EXPECT_EQ(late.status().code(), StatusCode::kDeadlineExceeded);
  EXPECT_TRUE(alive.status().ok());
  EXPECT_TRUE(alive.OutputIsOwn());
  EXPECT_THAT(late.out, ::testing::Each(-1.0f)) << "an expired request was written";
  // The survivor ran alone, in place.
  const auto calls = computer_->calls();
  ASSERT_EQ(calls.size(), 2u);
  EXPECT_EQ(calls[1].rows, 2);
  EXPECT_EQ(calls[1].input, alive.in.data());
}

// The former does not sit out a long queue delay past a request's deadline:
// the expiring request is answered DEADLINE_EXCEEDED (never computed) and its
// batch mates are computed, although the batch never filled up.
TEST_F(DynamicBatcherTest, DeadlineEndsTheWaitForMoreRequests) {
  BatcherOptions o;
  o.max_batch_size = 64;
  o.max_queue_delay = std::chrono::minutes(10);
  auto b = Make(o);
  TestRequest& patient = Queue(*b, 2);
  TestRequest& hurried = NewRequest(3);
  hurried.deadline = Clock::now() + 50ms;
  ASSERT_TRUE(b->Submit(&hurried).ok());
  ASSERT_TRUE(hurried.WaitDone()) << "still waiting for the 10-minute delay";
  ASSERT_TRUE(patient.WaitDone());
  EXPECT_EQ(hurried.status().code(), StatusCode::kDeadlineExceeded);
  EXPECT_THAT(hurried.out, ::testing::Each(-1.0f));
  EXPECT_TRUE(patient.status().ok());
  EXPECT_TRUE(patient.OutputIsOwn());
  const auto calls = computer_->calls();
  ASSERT_EQ(calls.size(), 1u);
  EXPECT_EQ(calls[0].rows, 2);
}

TEST_F(DynamicBatcherTest, CancelledRequestIsAnsweredWithoutComputing) {
  BatcherOptions o;
  o.max_queue_delay = std::chrono::microseconds(0);
  auto b = Make(o);
  computer_->CloseGate();
  Queue(*b, 1);
  ASSERT_TRUE(computer_->WaitInCompute(1));
  TestRequest& gone = Queue(*b, 2);
  gone.cancelled = true;
  TestRequest& a = Queue(*b, 1);
  TestRequest& c = Queue(*b, 3);
  computer_->OpenGate();
  for (auto& r : requests_) ASSERT_TRUE(r->WaitDone());
  EXPECT_EQ(gone.status().code(), StatusCode::kCancelled);
  EXPECT_THAT(gone.out, ::testing::Each(-1.0f));
  EXPECT_TRUE(a.OutputIsOwn());
  EXPECT_TRUE(c.OutputIsOwn());
  EXPECT_THAT(computer_->call_rows(), ElementsAre(1, 4));
  EXPECT_EQ(b->stats().cancelled, 1u);
}

TEST_F(DynamicBatcherTest, EngineFailureReachesEveryRequestOfTheBatch) {
  BatcherOptions o;
  o.max_queue_delay = std::chrono::microseconds(0);
  auto b = Make(o);
  computer_->FailCall(1);
  computer_->CloseGate();
  TestRequest& first = Queue(*b, 1);
  ASSERT_TRUE(computer_->WaitInCompute(1));
  std::vector<TestRequest*> batch = {&Queue(*b, 1), &Queue(*b, 2), &Queue(*b, 3)};
  computer_->OpenGate();
  ASSERT_TRUE(first.WaitDone());
  EXPECT_TRUE(first.status().ok());
  for (TestRequest* r : batch) {
    ASSERT_TRUE(r->WaitDone());
    EXPECT_EQ(r->status(), InternalError("injected failure"));
  }
  // The worker survives the failure.
  TestRequest& after = Queue(*b, 1);
  ASSERT_TRUE(after.WaitDone());
  EXPECT_TRUE(after.status().ok());
  EXPECT_THAT(computer_->call_rows(), ElementsAre(1, 6, 1));
  EXPECT_EQ(b->stats().failed, 3u);
  EXPECT_EQ(b->stats().succeeded, 2u);
}

TEST_F(DynamicBatcherTest, DrainComputesWhatIsQueued) {
  BatcherOptions o;
  o.max_batch_size = 4;
  o.max_queue_delay = kLongDelay;  // draining must not wait for it
  auto b = Make(o);
  computer_->CloseGate();
  Queue(*b, 4);  // full: dispatched at once
  ASSERT_TRUE(computer_->WaitInCompute(1));
  Queue(*b, 2);
  Queue(*b, 3);
  std::thread drain([&] { b->Drain(Clock::now() + kSafety); });
  ProbeUntilDraining(*b);
  computer_->OpenGate();
  drain.join();
  for (auto& r : requests_) {
    EXPECT_EQ(r->done_count(), 1);
    EXPECT_TRUE(r->status().ok()) << r->status().ToString();
    EXPECT_TRUE(r->OutputIsOwn());
  }
  TestRequest& late = NewRequest(1);
  EXPECT_EQ(b->Submit(&late), UnavailableError(kDrainingMessage));
  b->Drain(Clock::now());  // idempotent
  EXPECT_EQ(late.done_count(), 0);
  EXPECT_EQ(b->stats().queue_depth, 0);
}

TEST_F(DynamicBatcherTest, DrainFlushesAFormingBatchWithoutWaitingForTheDelay) {
  BatcherOptions o;
  o.max_queue_delay = kLongDelay;
  auto b = Make(o);
  TestRequest& r = Queue(*b, 2);
  b->Drain(Clock::now() + kSafety);
  EXPECT_EQ(r.done_count(), 1);
  EXPECT_TRUE(r.status().ok());
  EXPECT_TRUE(r.OutputIsOwn());
}

TEST_F(DynamicBatcherTest, DrainPastDeadlineAnswersQueuedRequestsUnavailable) {
  BatcherOptions o;
  o.max_queue_delay = std::chrono::microseconds(0);
  auto b = Make(o);
  computer_->CloseGate();
  TestRequest& running = Queue(*b, 1);
  ASSERT_TRUE(computer_->WaitInCompute(1));
  Queue(*b, 2);
  Queue(*b, 3);
  std::thread drain([&] { b->Drain(Clock::now()); });
  const auto probes = ProbeUntilDraining(*b);
  computer_->OpenGate();
  drain.join();
  EXPECT_TRUE(running.status().ok());
  uint64_t unavailable = 0;
  for (auto& r : requests_) {
    if (r.get() == &running) continue;
    EXPECT_EQ(r->done_count(), 1);
    EXPECT_EQ(r->status(),
              UnavailableError(std::string("not computed before the drain deadline: ") +
                               kDrainingMessage));
    ++unavailable;
  }
  EXPECT_EQ(unavailable, 2 + probes.size());
  EXPECT_THAT(computer_->call_rows(), ElementsAre(1));
  TestRequest& late = NewRequest(1);
  EXPECT_EQ(b->Submit(&late).code(), StatusCode::kUnavailable);
  const BatcherStats s = b->stats();
  EXPECT_EQ(s.failed, unavailable);
  EXPECT_EQ(s.succeeded, 1u);
  EXPECT_EQ(s.queue_depth, 0);
}

TEST_F(DynamicBatcherTest, DestructorAnswersQueuedRequestsUnavailable) {
  BatcherOptions o;
  o.max_queue_delay = kLongDelay;  // the two requests stay queued
  auto b = Make(o);
  Queue(*b, 1);
  Queue(*b, 2);
  b.reset();
  for (auto& r : requests_) {
    EXPECT_EQ(r->done_count(), 1);
    EXPECT_EQ(r->status(),
              UnavailableError(std::string("not computed before the drain deadline: ") +
                               kDrainingMessage));
  }
  EXPECT_TRUE(computer_->calls().empty());
}

TEST_F(DynamicBatcherTest, StatsCountEveryOutcomeExactly) {
  BatcherOptions o;
  o.max_batch_size = 8;
  o.max_queue_size = 4;
  o.max_queue_delay = std::chrono::microseconds(0);
  auto b = Make(o);
  computer_->CloseGate();
  Queue(*b, 2);
  ASSERT_TRUE(computer_->WaitInCompute(1));
  Queue(*b, 1);
  Queue(*b, 3);
  TestRequest& late = NewRequest(1);
  late.deadline = Clock::now() - 1ms;
  ASSERT_TRUE(b->Submit(&late).ok());
  TestRequest& gone = Queue(*b, 1);
  gone.cancelled = true;
  TestRequest& refused = NewRequest(1);
  EXPECT_EQ(b->Submit(&refused).code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(b->stats().queue_depth, 4);
  computer_->OpenGate();
  b->Drain(Clock::now() + kSafety);

  const BatcherStats s = b->stats();
  EXPECT_EQ(s.accepted, 5u);
  EXPECT_EQ(s.rejected_full, 1u);
  EXPECT_EQ(s.succeeded, 3u);
  EXPECT_EQ(s.failed, 2u);
  EXPECT_EQ(s.expired, 1u);
  EXPECT_EQ(s.cancelled, 1u);
  EXPECT_EQ(s.batches, 2u);
  EXPECT_EQ(s.batched_rows, 6u);
  EXPECT_EQ(s.queue_depth, 0);
  EXPECT_GT(s.queue_ns, 0u);
  EXPECT_GT(s.compute_ns, 0u);
  EXPECT_THAT(computer_->call_rows(), ElementsAre(2, 4));
  EXPECT_EQ(refused.done_count(), 0);
}

TEST_F(DynamicBatcherTest, SubmitRacingDrainAnswersEveryAcceptedRequestOnce) {
  BatcherOptions o;
  o.instances = 2;
  o.max_batch_size = 8;
  o.max_queue_size = 64;
  auto b = Make(o);
  constexpr int kThreads = 4;
  std::vector<std::vector<std::unique_ptr<TestRequest>>> mine(kThreads);
  std::vector<std::vector<bool>> accepted(kThreads);
  std::atomic<bool> go{false};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      while (!go.load()) std::this_thread::yield();
      for (int i = 0; i < 2000; ++i) {
        mine[t].push_back(std::make_unique<TestRequest>(1 + i % 4, i));
        const Status s = b->Submit(mine[t].back().get());
        accepted[t].push_back(s.ok());
        if (s.code() == StatusCode::kUnavailable) break;
        EXPECT_TRUE(s.ok() || s.code() == StatusCode::kResourceExhausted) << s.ToString();
      }
    });
  }
  go = true;
  const auto give_up = Clock::now() + kSafety;
  while (b->stats().accepted < 500 && Clock::now() < give_up) std::this_thread::yield();
  b->Drain(Clock::now() + 1ms);
  for (auto& t : threads) t.join();
  b->Drain(Clock::now());
  uint64_t answered = 0;
  for (int t = 0; t < kThreads; ++t) {
    for (size_t i = 0; i < mine[t].size(); ++i) {
      TestRequest& r = *mine[t][i];
      EXPECT_EQ(r.done_count(), accepted[t][i] ? 1 : 0);
      if (r.done_count() == 1 && r.status().ok()) {
        EXPECT_TRUE(r.OutputIsOwn());
      }
      answered += static_cast<uint64_t>(r.done_count());
    }
  }
  const BatcherStats s = b->stats();
  EXPECT_EQ(s.accepted, answered);
  EXPECT_EQ(s.succeeded + s.failed, answered);
}

}  // namespace
}  // namespace selu::core

// ---- BatchExecution::kCaller: the submitting thread computes.

namespace selu::core {
namespace {

BatcherOptions CallerOptions(int instances = 1) {
  BatcherOptions o;
  o.execution = BatchExecution::kCaller;
  o.max_queue_delay = std::chrono::microseconds(0);
  o.max_batch_size = 16;
  o.instances = instances;
  return o;
}

// A lone request is computed by its caller, in place, before Submit returns.
TEST_F(DynamicBatcherTest, CallerComputesItsOwnRequestBeforeSubmitReturns) {
  auto b = Make(CallerOptions());
  TestRequest& r = NewRequest(3);
  ASSERT_TRUE(b->Submit(&r).ok());
  EXPECT_EQ(r.done_count(), 1);  // no waiting: already answered
  EXPECT_TRUE(r.status().ok());
  EXPECT_TRUE(r.OutputIsOwn());
  const auto calls = computer_->calls();
  ASSERT_EQ(calls.size(), 1u);
  EXPECT_EQ(calls[0].input, r.in.data());
  char name[16] = {};
  pthread_getname_np(pthread_self(), name, sizeof(name));
  EXPECT_EQ(calls[0].thread_name, name);
}

// Requests arriving while a caller computes are not computed by their
// submitters (Submit returns at once) but queue for the worker threads, so a
// busy server's gRPC threads go back to reading.
TEST_F(DynamicBatcherTest, RequestsQueuedWhileACallerComputesGoToTheWorkers) {
  auto b = Make(CallerOptions());
  computer_->CloseGate();
  TestRequest& first = NewRequest(1);
  std::thread leader([&] { EXPECT_TRUE(b->Submit(&first).ok()); });
  ASSERT_TRUE(computer_->WaitInCompute(1));
  std::vector<TestRequest*> queued;
  for (int i = 0; i < 10; ++i) queued.push_back(&Queue(*b, 1 + i % 2));  // 15 rows
  computer_->OpenGate();
  leader.join();
  for (TestRequest* r : queued) {
    ASSERT_TRUE(r->WaitDone());
    EXPECT_TRUE(r->status().ok());
    EXPECT_TRUE(r->OutputIsOwn());
  }
  const auto calls = computer_->calls();
  ASSERT_GE(calls.size(), 2u);
  EXPECT_THAT(calls[0].thread_name, Not(StartsWith("selu-batch-")));
  int64_t rows = 0;
  for (size_t i = 1; i < calls.size(); ++i) {
    EXPECT_THAT(calls[i].thread_name, StartsWith("selu-batch-"));
    rows += calls[i].rows;
  }
  EXPECT_EQ(rows, 15);
}

TEST_F(DynamicBatcherTest, CallerDrainFinishesQueuedThenRefuses) {
  auto b = Make(CallerOptions());
  computer_->CloseGate();
  TestRequest& first = NewRequest(1);
  std::thread leader([&] { EXPECT_TRUE(b->Submit(&first).ok()); });
  ASSERT_TRUE(computer_->WaitInCompute(1));
  TestRequest& queued = Queue(*b, 2);
  std::thread drain([&] { b->Drain(Clock::now() + kSafety); });
  const auto probes = ProbeUntilDraining(*b);
  computer_->OpenGate();
  leader.join();
  drain.join();
  ASSERT_TRUE(queued.WaitDone());
  EXPECT_TRUE(queued.status().ok());
  for (TestRequest* p : probes) {
    ASSERT_TRUE(p->WaitDone());
    EXPECT_TRUE(p->status().ok());
  }
  TestRequest& late = NewRequest(1);
  EXPECT_EQ(b->Submit(&late).code(), StatusCode::kUnavailable);
}

TEST_F(DynamicBatcherTest, CallerExecutionNeedsZeroDelay) {
  BatcherOptions o = CallerOptions();
  o.max_queue_delay = std::chrono::microseconds(100);
  auto b = DynamicBatcher::Create(computer_, o);
  EXPECT_EQ(b.status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace selu::core
