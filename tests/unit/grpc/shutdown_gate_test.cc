// ShutdownGate's stream registry: which streams it ends, when, and that it
// waits for them (a fake GatedStream that unregisters when told to end, as a
// stream whose answers are all written does).
#include "server/grpc/shutdown_gate.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>

namespace selu::grpc_transport {
namespace {

using Admission = ShutdownGate::StreamAdmission;

class FakeStream final : public GatedStream {
 public:
  explicit FakeStream(ShutdownGate* gate, bool end_at_once = true)
      : gate_(gate), end_at_once_(end_at_once) {}
  void EndStream() override {
    ++ends;
    if (end_at_once_) gate_->UnregisterStream(this);
  }
  void Ref() override { ++refs; }
  void Unref() override { --refs; }

  std::atomic<int> ends{0};
  std::atomic<int> refs{0};

 private:
  ShutdownGate* gate_;
  bool end_at_once_;
};

TEST(ShutdownGateStreamsTest, StreamsServeWhileOpenAndRefusing) {
  ShutdownGate gate;
  FakeStream a(&gate), b(&gate);
  EXPECT_EQ(gate.RegisterStream(&a), Admission::kServe);
  gate.BeginRefusing();
  EXPECT_EQ(gate.RegisterStream(&b), Admission::kServe);
  EXPECT_EQ(gate.open_streams(), 2u);
  EXPECT_EQ(a.ends.load() + b.ends.load(), 0);
}

TEST(ShutdownGateStreamsTest, EndStreamsEndsEveryStreamAndWaitsForThem) {
  ShutdownGate gate;
  FakeStream a(&gate), b(&gate);
  gate.RegisterStream(&a);
  gate.RegisterStream(&b);
  gate.BeginRefusing();
  EXPECT_EQ(gate.EndStreams(ShutdownGate::Clock::now() + std::chrono::seconds(10)), 2u);
  EXPECT_EQ(a.ends.load(), 1);
  EXPECT_EQ(b.ends.load(), 1);
  EXPECT_EQ(a.refs.load(), 0);  // the gate's reference is returned
  EXPECT_EQ(gate.open_streams(), 0u);
}

TEST(ShutdownGateStreamsTest, EndStreamsGivesUpAtTheDeadline) {
  ShutdownGate gate;
  FakeStream stuck(&gate, /*end_at_once=*/false);
  gate.RegisterStream(&stuck);
  gate.BeginRefusing();
  EXPECT_EQ(gate.EndStreams(ShutdownGate::Clock::now() + std::chrono::milliseconds(20)), 1u);
  EXPECT_EQ(stuck.ends.load(), 1);
  EXPECT_EQ(gate.open_streams(), 1u);
}

TEST(ShutdownGateStreamsTest, StreamsEndingLaterWakeTheWait) {
  ShutdownGate gate;
  FakeStream late(&gate, /*end_at_once=*/false);
  gate.RegisterStream(&late);
  gate.BeginRefusing();
  std::thread finisher([&] {
    while (late.ends == 0) std::this_thread::yield();
    gate.UnregisterStream(&late);
  });
  // Ended by the other thread well before this deadline.
  gate.EndStreams(ShutdownGate::Clock::now() + std::chrono::seconds(30));
  finisher.join();
  EXPECT_EQ(gate.open_streams(), 0u);
}

TEST(ShutdownGateStreamsTest, LateStreamsEndAtOnceOrAreHeldUntilRelease) {
  ShutdownGate gate;
  gate.BeginRefusing();
  gate.EndStreams(ShutdownGate::Clock::now());
  FakeStream after_end(&gate);
  EXPECT_EQ(gate.RegisterStream(&after_end), Admission::kEnd);
  gate.UnregisterStream(&after_end);

  gate.BeginHolding();
  FakeStream held(&gate);
  EXPECT_EQ(gate.RegisterStream(&held), Admission::kHold);
  EXPECT_EQ(held.ends.load(), 0);
  gate.ReleaseHeld();
  EXPECT_EQ(held.ends.load(), 1);
  EXPECT_EQ(held.refs.load(), 0);

  FakeStream after_release(&gate);
  EXPECT_EQ(gate.RegisterStream(&after_release), Admission::kEnd);
}

}  // namespace
}  // namespace selu::grpc_transport
