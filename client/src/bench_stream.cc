// `selu-client bench --stream`: ModelStreamInfer workers (bench_run.h).
#include <memory>
#include <optional>
#include <vector>

#include "client/src/bench_run.h"

namespace selu::client {
namespace {

class StreamWorker;

// One stream of a worker, from StartCall to OnDone (where it deletes itself
// and hands over to the worker). One message in flight: the next is written
// when the answer to the last has been read.
class StreamCall final : public grpc::ClientBidiReactor<inference::ModelInferRequest,
                                                        inference::ModelStreamInferResponse> {
 public:
  StreamCall(StreamWorker* worker, Run* run, inference::GRPCInferenceService::Stub* stub)
      : worker_(worker), run_(run), stub_(stub) {}

  void Begin(uint64_t first);

  void OnWriteDone(bool ok) override {
    if (ok) StartRead(&response_);  // otherwise the stream failed: OnDone says how
  }
  void OnReadDone(bool ok) override;
  void OnDone(const grpc::Status& status) override;

 private:
  void Send(uint64_t sequence) {
    sequence_ = sequence;
    in_flight_ = true;
    sent_at_ = BenchClock::now();
    const auto& requests = *run_->requests;
    StartWrite(&requests[sequence % requests.size()]);
  }

  // Whether this stream has carried its share (--stream-call-count,
  // --stream-call-duration) and the next message goes on a new one.
  bool Full(BenchClock::time_point now) const {
    const BenchOptions& o = *run_->options;
    if (o.stream_call_count > 0 && sent_on_stream_ >= o.stream_call_count) return true;
    return o.stream_call_duration_s > 0 &&
           now - opened_ >= std::chrono::duration<double>(o.stream_call_duration_s);
  }

  StreamWorker* const worker_;
  Run* const run_;
  inference::GRPCInferenceService::Stub* const stub_;
  grpc::ClientContext context_;
  inference::ModelStreamInferResponse response_;
  BenchClock::time_point opened_;
  BenchClock::time_point sent_at_;
  uint64_t sequence_ = 0;
  long long sent_on_stream_ = 0;
  bool in_flight_ = false;
  std::optional<uint64_t> next_;  // claimed, to be sent on the next stream
};

// One unit of concurrency: a stream at a time, until the run is over.
class StreamWorker {
 public:
  StreamWorker(Run* run, inference::GRPCInferenceService::Stub* stub) : run_(run), stub_(stub) {}

  void Open(uint64_t first) { (new StreamCall(this, run_, stub_))->Begin(first); }

  // From a stream's OnDone, after which the stream is gone.
  void StreamEnded(std::optional<uint64_t> next) {
    if (next) {
      Open(*next);
    } else {
      run_->Retire();
    }
  }

  // Streams follow one another, so records are never added concurrently.
  void Add(uint64_t sequence, uint64_t latency_ns, grpc::StatusCode code,
           BenchClock::time_point now) {
    if (run_->Ignored(now)) return;
    records_.push_back({sequence, latency_ns, code});
  }
  std::vector<Record>& records() { return records_; }

 private:
  Run* const run_;
  inference::GRPCInferenceService::Stub* const stub_;
  std::vector<Record> records_;
};

void StreamCall::Begin(uint64_t first) {
  const BenchOptions& o = *run_->options;
  PrepareContext(&context_, *run_->connection);
  // -t bounds a stream's wait beyond its planned life (one stream may carry
  // the whole run); with --duration-stop close, nothing outlives the run.
  opened_ = BenchClock::now();
  double planned_s = o.stream_call_duration_s;
  if (planned_s <= 0) planned_s = o.duration_s > 0 ? o.duration_s : o.max_duration_s;
  auto deadline = std::chrono::system_clock::now() +
                  std::chrono::duration_cast<std::chrono::system_clock::duration>(
                      std::chrono::duration<double>(planned_s + run_->connection->timeout_s));
  if (o.duration_stop == DurationStop::kClose && run_->end) {
    deadline = std::min(
        deadline,
        std::chrono::system_clock::now() +
            std::chrono::duration_cast<std::chrono::system_clock::duration>(*run_->end - opened_));
  }
  context_.set_deadline(deadline);
  if (o.compress) context_.set_compression_algorithm(GRPC_COMPRESS_GZIP);
  stub_->async()->ModelStreamInfer(&context_, this);
  Send(first);
  StartCall();
}

void StreamCall::OnReadDone(bool ok) {
  if (!ok) return;  // the stream ended: OnDone
  const BenchClock::time_point now = BenchClock::now();
  in_flight_ = false;
  ++sent_on_stream_;
  const bool failed = !response_.error_message().empty();
  // An error_message answers one request; ghz has no code for it, UNKNOWN
  // keeps it apart from the successes.
  worker_->Add(sequence_, ElapsedNs(sent_at_, now),
               failed ? grpc::StatusCode::UNKNOWN : grpc::StatusCode::OK, now);
  if (failed && !run_->Ignored(now)) {
    run_->CountError("stream error_message: " + response_.error_message());
  }
  const std::optional<uint64_t> next = run_->Claim();
  if (next && !Full(now)) {
    Send(*next);
    return;
  }
  next_ = next;
  StartWritesDone();
}

void StreamCall::OnDone(const grpc::Status& status) {
  const BenchClock::time_point now = BenchClock::now();
  std::optional<uint64_t> next = next_;
  if (in_flight_) {
    // The stream failed under a message: it counts as that message's
    // answer, and the worker goes on with a new stream.
    worker_->Add(sequence_, ElapsedNs(sent_at_, now),
                 status.ok() ? grpc::StatusCode::UNKNOWN : status.error_code(), now);
    if (!run_->Ignored(now)) run_->CountError(GhzErrorText(status));
    next = run_->Claim();
  } else if (!status.ok() && !run_->Ignored(now)) {
    run_->CountError(GhzErrorText(status));
  }
  StreamWorker* worker = worker_;
  delete this;
  worker->StreamEnded(next);
}

}  // namespace

std::vector<Record> RunStreams(Run* run,
                               const std::vector<inference::GRPCInferenceService::Stub*>& stubs) {
  std::vector<std::unique_ptr<StreamWorker>> workers;
  std::vector<std::pair<StreamWorker*, uint64_t>> first;
  for (int i = 0; i < run->options->concurrency; ++i) {
    const auto sequence = run->Claim();
    if (!sequence) break;
    workers.push_back(
        std::make_unique<StreamWorker>(run, stubs[static_cast<size_t>(i) % stubs.size()]));
    first.emplace_back(workers.back().get(), *sequence);
  }
  {
    std::lock_guard lock(run->mu);
    run->busy = static_cast<int>(first.size());
  }
  for (auto& [worker, sequence] : first) worker->Open(sequence);
  {
    std::unique_lock lock(run->mu);
    run->changed.wait(lock, [&] { return run->busy == 0; });
  }
  std::vector<Record> records;
  for (auto& worker : workers) {
    records.insert(records.end(), worker->records().begin(), worker->records().end());
  }
  return records;
}

}  // namespace selu::client
