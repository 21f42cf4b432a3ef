// What metrics cost a request: the recording calls the request path makes
// (ModelStats::RecordRequest per request, ModelStats::OnBatch per batch,
// CallCounters Start/Finish per rpc), single-threaded and contended by two
// threads. Compare with the server's CPU per request from
// run_server_bench.sh (tens of µs) to get the fraction metrics cost.
#include <benchmark/benchmark.h>

#include "server/core/base/call_stats.h"
#include "server/core/serving/model_stats.h"

namespace {

using selu::core::Clock;

class FakeRequest final : public selu::core::InferenceRequest {
 public:
  void Done(selu::core::Status) override {}
};

selu::core::ModelStats& SharedStats() {
  static selu::core::ModelStats stats(64);
  return stats;
}
selu::core::CallCounters& SharedCallCounters() {
  static selu::core::CallCounters counters;
  return counters;
}

void BM_MetricsPerRequest(benchmark::State& state) {
  auto& stats = SharedStats();
  auto& counters = SharedCallCounters();
  FakeRequest r;
  r.rows = 1;
  const selu::core::Status ok;
  for (auto _ : state) {
    const auto arrival = Clock::now();
    counters.Start();
    r.enqueue_time = r.compute_start = r.compute_end = arrival;
    stats.OnBatch(1, std::chrono::microseconds(5));  // one batch per request: the worst case
    stats.RecordRequest(ok, arrival, r);
    counters.Finish(0, arrival);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_MetricsPerRequest)->Threads(1)->Threads(2)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
