#include "server/grpc/stream_infer.h"

#include <atomic>
#include <mutex>
#include <string>

namespace selu::grpc_transport {
namespace {

using core::Clock;

class StreamCall;

// One message of a stream, from its read until its answer is written. Pooled
// per stream, so a busy stream allocates no messages.
class StreamMessage final : public InferJob {
 public:
  explicit StreamMessage(StreamCall* stream) : stream_(stream) {}

  bool IsCancelled() const override;
  void Done(core::Status status) override;

  // The answer to a request that failed: the text unary ModelInfer's status
  // would carry, and the request's id so that the client can match it.
  void SetError(const std::string& message) {
    response.Clear();
    response.set_error_message(message);
    response.mutable_infer_response()->set_id(request.id());
  }

  inference::ModelInferRequest request;
  inference::ModelStreamInferResponse response;
  StreamMessage* next = nullptr;  // in one of the stream's lists, under its lock
  bool in_flight = false;         // counted in InferPath::in_flight until answered

 private:
  StreamCall* stream_;
};

// A singly linked FIFO of messages (intrusive: queuing allocates nothing).
struct MessageList {
  StreamMessage* head = nullptr;
  StreamMessage* tail = nullptr;
  int64_t size = 0;

  void Push(StreamMessage* m) {
    m->next = nullptr;
    if (tail) {
      tail->next = m;
    } else {
      head = m;
    }
    tail = m;
    ++size;
  }
  StreamMessage* Pop() {
    StreamMessage* m = head;
    if (m == nullptr) return nullptr;
    head = m->next;
    if (head == nullptr) tail = nullptr;
    m->next = nullptr;
    --size;
    return m;
  }
  void Append(MessageList& other) {
    while (StreamMessage* m = other.Pop()) Push(m);
  }
  void DeleteAll() {
    while (StreamMessage* m = Pop()) delete m;
  }
};

class StreamCall final : public StreamInferReactor, public GatedStream {
 public:
  StreamCall(grpc::CallbackServerContext* context, InferPath* path, RpcCounters* counters,
             Clock::time_point start)
      : path_(path), counters_(counters), start_(start), deadline_(SteadyDeadline(*context)) {
    const ShutdownGate::StreamAdmission admission = path_->gate.RegisterStream(this);
    std::unique_lock lock(mu_);
    held_ = admission == ShutdownGate::StreamAdmission::kHold;
    ending_ = admission == ShutdownGate::StreamAdmission::kEnd;
    Advance(lock);
  }

  ~StreamCall() {
    free_.DeleteAll();
    dropped_.DeleteAll();
    answers_.DeleteAll();
  }

  void OnReadDone(bool ok) override {
    std::unique_lock lock(mu_);
    StreamMessage* m = reading_;
    reading_ = nullptr;
    if (!ok || finished_) {
      // !ok: the client half-closed (or the stream is gone). finished_: the
      // stream ended (shutdown) while this read was on its way.
      if (!ok) reads_done_ = true;
      Recycle(m);
      Advance(lock);
      return;
    }
    ++unanswered_;
    if (unanswered_ > most_unanswered_) {
      most_unanswered_ = unanswered_;
      path_->NoteStreamUnanswered(unanswered_);
    }
    const bool refuse = ending_ || !path_->gate.open();
    // As unary: a refusal at the gate is not in flight (the drain does not
    // wait for it), anything else is until its answer is written.
    m->in_flight = !refuse;
    if (m->in_flight) path_->in_flight.fetch_add(1, std::memory_order_relaxed);
    // The next read starts before this message is processed (with kCaller
    // batching, processing may compute it on this thread): a pipelining
    // client's next message does not wait for this one.
    Advance(lock);
    const Clock::time_point arrival = Clock::now();
    if (refuse) {
      m->SetError(kShuttingDownMessage);
      Answer(m);
      return;
    }
    Ref();  // the batcher's, returned by Done()
    const core::Status status = SubmitInfer(*path_, m->request, arrival, deadline_, m,
                                            m->response.mutable_infer_response());
    if (status.ok()) return;
    // Not the last reference: gRPC's is held until OnDone, which cannot run
    // during this reaction.
    Unref();
    m->SetError(status.message());
    Answer(m);
  }

  void OnWriteDone(bool ok) override {
    std::unique_lock lock(mu_);
    StreamMessage* m = written_;
    written_ = nullptr;
    lock.unlock();
    m->Release();  // on a gRPC thread, outside the lock: may drop a retired version
    lock.lock();
    AnsweredLocked(m);
    Recycle(m);
    if (!ok) {
      // The client is gone: the answers queued behind this one are dropped.
      broken_ = true;
      for (StreamMessage* q = answers_.head; q != nullptr; q = q->next) AnsweredLocked(q);
      dropped_.Append(answers_);
    }
    Advance(lock);
  }

  void OnCancel() override { cancelled_.store(true, std::memory_order_relaxed); }

  void OnDone() override {
    path_->gate.UnregisterStream(this);
    {
      // Every message has been answered (Finish waits for that), so none is
      // in a batcher: their model references may go, here on a gRPC thread
      // rather than in whichever batcher callback drops the last reference.
      std::lock_guard lock(mu_);
      for (StreamMessage* m = dropped_.head; m != nullptr; m = m->next) m->Release();
    }
    Unref();
  }

  // From StreamMessage::Done (a batcher thread, or inline in Submit) or
  // OnReadDone: queues `m`'s answer.
  void Answer(StreamMessage* m) {
    std::unique_lock lock(mu_);
    if (broken_) {
      AnsweredLocked(m);
      dropped_.Push(m);
    } else {
      answers_.Push(m);
    }
    Advance(lock);
  }

  bool cancelled() const { return cancelled_.load(std::memory_order_relaxed); }

  void EndStream() override {
    std::unique_lock lock(mu_);
    ending_ = true;
    Advance(lock);
  }
  void Ref() override { refs_.fetch_add(1, std::memory_order_relaxed); }
  void Unref() override {
    if (refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
  }

 private:
  // Pooled messages kept per stream; beyond it, written messages are freed.
  static constexpr int64_t kPooledMessages = 64;

  // Decides, under the lock, what the stream does next (the next read, the
  // next write, the end), then does it without the lock: gRPC may run a
  // reaction inline, and the batcher may answer inline.
  void Advance(std::unique_lock<std::mutex>& lock) {
    StreamMessage* read_into = nullptr;
    StreamMessage* write = nullptr;
    bool finish = false;
    grpc::Status status;
    if (written_ == nullptr && !broken_ && !finished_ && answers_.head != nullptr) {
      write = written_ = answers_.Pop();
    }
    const bool stop_reading = reads_done_ || ending_ || held_ || broken_ || finished_;
    if (reading_ == nullptr && !stop_reading) {
      if (unanswered_ < kMaxUnansweredPerStream) {
        read_into = reading_ = Take();
        paused_ = false;
      } else if (!paused_) {
        paused_ = true;
        path_->stream_read_pauses.fetch_add(1, std::memory_order_relaxed);
      }
    }
    if (!finished_ && written_ == nullptr && answers_.head == nullptr && unanswered_ == 0 &&
        (reads_done_ || ending_ || broken_)) {
      finished_ = finish = true;
      status = FinalStatus();
    }
    lock.unlock();
    if (read_into != nullptr) StartRead(&read_into->request);
    if (write != nullptr) StartWrite(&write->response);
    if (finish) {
      counters_->Finish(static_cast<int>(status.error_code()), start_);
      Finish(status);
    }
  }

  grpc::Status FinalStatus() const {
    if (broken_ || cancelled()) {
      return grpc::Status(grpc::StatusCode::CANCELLED, "the stream was cancelled");
    }
    if (reads_done_) return grpc::Status::OK;
    return grpc::Status(grpc::StatusCode::UNAVAILABLE, kShuttingDownMessage);
  }

  // `m` answered (written or dropped).
  void AnsweredLocked(StreamMessage* m) {
    --unanswered_;
    if (m->in_flight) path_->in_flight.fetch_sub(1, std::memory_order_release);
    m->in_flight = false;
  }

  StreamMessage* Take() {
    StreamMessage* m = free_.Pop();
    if (m == nullptr) return new StreamMessage(this);
    m->response.Clear();
    return m;
  }
  // `m` holds no model reference.
  void Recycle(StreamMessage* m) {
    if (free_.size < kPooledMessages) {
      free_.Push(m);
    } else {
      delete m;
    }
  }

  InferPath* const path_;
  RpcCounters* const counters_;
  const Clock::time_point start_;
  const Clock::time_point deadline_;
  std::atomic<int> refs_{1};  // gRPC's (until OnDone) + one per message in a batcher
  std::atomic<bool> cancelled_{false};

  std::mutex mu_;
  StreamMessage* reading_ = nullptr;  // the read outstanding, if any
  StreamMessage* written_ = nullptr;  // the write outstanding, if any
  MessageList answers_;               // answers waiting for the write
  MessageList free_;                  // pooled, no model reference
  MessageList dropped_;               // answered into a broken stream; released in OnDone
  int64_t unanswered_ = 0;            // read, answer not yet written or dropped
  int64_t most_unanswered_ = 0;
  bool paused_ = false;      // reading stopped at kMaxUnansweredPerStream
  bool reads_done_ = false;  // the client half-closed (or the stream broke)
  bool ending_ = false;      // shutdown: read no more, end once answered
  bool held_ = false;        // opened while the gate holds: read nothing
  bool broken_ = false;      // a write failed: the client is gone
  bool finished_ = false;    // Finish() called
};

bool StreamMessage::IsCancelled() const { return stream_->cancelled(); }

void StreamMessage::Done(core::Status status) {
  status = Complete(status, response.mutable_infer_response());
  if (!status.ok()) SetError(status.message());
  StreamCall* stream = stream_;  // `this` may be written and reused once answered
  stream->Answer(this);
  stream->Unref();
}

// A stream answered before anything is read.
class RefusedStream final : public StreamInferReactor {
 public:
  RefusedStream(RpcCounters* counters, Clock::time_point start, const grpc::Status& status) {
    counters->Finish(static_cast<int>(status.error_code()), start);
    Finish(status);
  }
  void OnDone() override { delete this; }
};

}  // namespace

StreamInferReactor* StartStreamInfer(grpc::CallbackServerContext* context, InferPath* path,
                                     RpcCounters* counters, Clock::time_point start) {
  return new StreamCall(context, path, counters, start);
}

StreamInferReactor* RefuseStream(RpcCounters* counters, Clock::time_point start,
                                 const grpc::Status& status) {
  return new RefusedStream(counters, start, status);
}

}  // namespace selu::grpc_transport
