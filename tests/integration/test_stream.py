"""ModelStreamInfer (Triton's bidirectional stream) against the real server,
with grpcio's streaming stub: answers matched by id (in and out of order),
typed and raw inputs, errors that answer one request and keep the stream open
with the unary texts, many streams beside unary traffic, stream messages
batched with unary requests, the per-stream bound of 1024 unanswered
messages, half-close, client cancel, SIGTERM drain and the restricted
inference group. Nothing here depends on how long anything takes: ordering
and batching are forced by batching delays no test waits out."""

import queue
import threading
import time
import unittest

import grpc
import numpy as np

import selu_server as s
from selu_server import pb
from test_metrics import parse_exposition

SHUTTING_DOWN_MESSAGE = "server is shutting down; send to another replica"
# A request read just before the gate closed can meet its model's batcher
# draining instead (server/core/serving/dynamic_batcher.h kDrainingMessage).
DRAINING_MESSAGE = ("draining: the model version is being unloaded or replaced, or the "
                    "server is shutting down")
STREAM_BOUND = 1024  # stream_infer.h kMaxUnansweredPerStream


class Stream:
    """One ModelStreamInfer call: send() queues a request, recv() returns the
    next answer (None once the stream ended OK; raises grpc.RpcError if it
    ended otherwise), close() half-closes."""

    def __init__(self, stub, metadata=None, timeout=120):
        self._requests = queue.Queue()
        self.call = stub.ModelStreamInfer(iter(self._requests.get, None), metadata=metadata,
                                          timeout=timeout)

    def send(self, request):
        self._requests.put(request)

    def close(self):
        self._requests.put(None)

    def recv(self):
        try:
            return next(self.call)
        except StopIteration:
            return None

    def drain(self):
        """Every remaining answer, until the stream ends OK."""
        out = []
        while True:
            resp = self.recv()
            if resp is None:
                return out
            out.append(resp)


def unary_error(stub, request):
    try:
        stub.ModelInfer(request, timeout=30)
    except grpc.RpcError as e:
        return e.code(), e.details()
    raise AssertionError("unary ModelInfer accepted %r" % request.id)


def exposition(server):
    return parse_exposition(server.scrape())


def stream_rpc_counts(server):
    exp = exposition(server)
    labels = dict(grpc_method="ModelStreamInfer", grpc_service="inference.GRPCInferenceService",
                  grpc_type="bidi_stream")
    started = exp.value("grpc_server_started_total", **labels)
    handled = {lab["grpc_code"]: v for lab, v in exp.select("grpc_server_handled_total", **labels)}
    return started, handled


def wait_for(predicate, what, timeout=30):
    """Polls a condition the server reaches on its own (no test outcome
    depends on how soon)."""
    deadline = time.monotonic() + timeout * s.SLOWDOWN
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for " + what)
        time.sleep(0.02)


class StreamAnswersTest(s.ServerTestCase):
    def setUp(self):
        self.x, _ = s.load_heldout()
        self.expected = s.bundled_reference()(self.x)

    def check_answer(self, resp, start, rows):
        self.assertEqual(resp.error_message, "", resp.infer_response.id)
        got = s.response_output(resp.infer_response, rows, 10)
        np.testing.assert_allclose(got, self.expected[start:start + rows], rtol=0,
                                   atol=s.TOLERANCE)

    def test_pipelined_typed_and_raw_answers_match_by_id(self):
        server = self.start_server()
        stream = Stream(server.inference())
        rng = np.random.default_rng(7)
        plan = {}
        for i in range(300):
            rows = int(rng.integers(1, 9))
            start = int(rng.integers(0, len(self.x) - rows))
            raw = i % 2 == 1
            plan["r%d" % i] = (start, rows, raw)
            stream.send(s.infer_request(self.x[start:start + rows], request_id="r%d" % i,
                                        raw=raw))
        stream.close()
        answers = stream.drain()
        self.assertEqual(sorted(a.infer_response.id for a in answers), sorted(plan))
        for resp in answers:
            start, rows, raw = plan[resp.infer_response.id]
            self.check_answer(resp, start, rows)
            self.assertEqual(resp.infer_response.model_name, s.BUNDLED_MODEL)
            # Raw in, raw out; typed in, typed out (as unary).
            self.assertEqual(len(resp.infer_response.raw_output_contents), 1 if raw else 0)
        stats = s.statistics(server.inference())
        self.assertEqual(stats.inference_stats.success.count, 300)
        self.assertEqual(stats.inference_count, sum(r for _, r, _ in plan.values()))
        started, handled = stream_rpc_counts(server)
        self.assertEqual((started, handled), (1, {"OK": 1}))

    def test_answers_come_in_completion_order(self):
        # A request waits in a batch that would wait 10 s for company; an
        # unknown-model request sent after it is answered first, then a
        # second good request completes the preferred batch of 2 and both
        # good ones are answered: the stream did not answer in send order.
        server = self.start_server("--max-batch-size", "8", "--preferred-batch-size", "2",
                                   "--max-queue-delay-us", "10000000")
        stream = Stream(server.inference())
        stream.send(s.infer_request(self.x[0:1], request_id="queued"))
        stream.send(s.infer_request(self.x[1:2], model="no_such_model", request_id="unknown"))
        first = stream.recv()
        self.assertEqual(first.infer_response.id, "unknown")
        self.assertIn("no_such_model", first.error_message)
        stream.send(s.infer_request(self.x[2:3], request_id="second"))
        stream.close()
        rest = {a.infer_response.id: a for a in stream.drain()}
        self.assertEqual(set(rest), {"queued", "second"})
        self.check_answer(rest["queued"], 0, 1)
        self.check_answer(rest["second"], 2, 1)
        batches = {b.batch_size: b.compute_infer.count
                   for b in s.statistics(server.inference()).batch_stats}
        self.assertEqual(batches, {2: 1})

    def test_errors_answer_one_request_and_keep_the_stream_open(self):
        server = self.start_server()
        stub = server.inference()
        bad = {
            "unknown": s.infer_request(self.x[:1], model="no_such_model", request_id="unknown"),
            "shape": s.infer_request(self.x[:2, :10], request_id="shape"),
            "nan": s.infer_request(np.full((1, 64), np.nan, np.float32), request_id="nan"),
            "version": s.infer_request(self.x[:1], version="99", request_id="version"),
        }
        stream = Stream(stub)
        stream.send(s.infer_request(self.x[:3], request_id="good-0"))
        for request in bad.values():
            stream.send(request)
        stream.send(s.infer_request(self.x[3:5], request_id="good-1", raw=False))
        # Still open after the errors: a request sent once they are answered.
        seen = {}
        while len(seen) < 6:
            resp = stream.recv()
            seen[resp.infer_response.id] = resp
        stream.send(s.infer_request(self.x[5:6], request_id="good-2"))
        stream.close()
        for resp in stream.drain():
            seen[resp.infer_response.id] = resp
        self.check_answer(seen["good-0"], 0, 3)
        self.check_answer(seen["good-1"], 3, 2)
        self.check_answer(seen["good-2"], 5, 1)
        for name, request in bad.items():
            with self.subTest(error=name):
                code, details = unary_error(stub, request)
                self.assertNotEqual(code, grpc.StatusCode.OK)
                self.assertEqual(seen[name].error_message, details)
                self.assertEqual(seen[name].infer_response.id, name)
                self.assertEqual(len(seen[name].infer_response.outputs), 0)
        # Counted as unary counts them: the model's refusals (the unknown
        # model and version have no model to count them), the stream's end.
        stats = s.statistics(stub)
        self.assertEqual(stats.inference_stats.success.count, 3)
        self.assertEqual(stats.inference_stats.fail.count, 4)  # shape and nan, twice each
        self.assertEqual(stream_rpc_counts(server), (1, {"OK": 1}))

    def test_stream_messages_batch_with_unary_requests(self):
        # Preferred batch of 6 rows, a 10 s queue delay: only the stream's
        # three requests and the three unary ones together dispatch.
        server = self.start_server("--max-batch-size", "16", "--preferred-batch-size", "6",
                                   "--max-queue-delay-us", "10000000")
        stub = server.inference()
        stream = Stream(stub)
        for i in range(3):
            stream.send(s.infer_request(self.x[i:i + 1], request_id="s%d" % i))
        wait_for(lambda: exposition(server).value(
            "selu_inference_queue_depth", model=s.BUNDLED_MODEL, version="1") == 3,
            "the stream's requests to be queued")
        futures = [stub.ModelInfer.future(s.infer_request(self.x[3 + i:4 + i], request_id="u%d" % i),
                                          timeout=60) for i in range(3)]
        for i, f in enumerate(futures):
            got = s.response_output(f.result(), 1, 10)
            np.testing.assert_allclose(got, self.expected[3 + i:4 + i], rtol=0, atol=s.TOLERANCE)
        stream.close()
        answers = {a.infer_response.id: a for a in stream.drain()}
        for i in range(3):
            self.check_answer(answers["s%d" % i], i, 1)
        stats = s.statistics(stub)
        self.assertEqual({b.batch_size: b.compute_infer.count for b in stats.batch_stats}, {6: 1})
        self.assertEqual(stats.execution_count, 1)

    def test_many_streams_beside_unary_callers(self):
        server = self.start_server("--max-batch-size", "64", "--max-queue-delay-us", "200")
        channels = [server.new_channel() for _ in range(4)]
        errors, counts = [], {"stream": 0, "unary": 0}
        lock = threading.Lock()

        def streamer(c):
            try:
                stream = Stream(server.inference(channels[c % 4]))
                sent, got = {}, []
                # Windows of 25: 16 streams stay under the model's queue of
                # 1024 (more would be answered "queue full", as unary is).
                for i in range(150):
                    start = (c * 37 + i) % (len(self.x) - 4)
                    sent["%d-%d" % (c, i)] = start
                    stream.send(s.infer_request(self.x[start:start + 4],
                                                request_id="%d-%d" % (c, i), raw=i % 3 != 0))
                    if i % 25 == 24:
                        got += [stream.recv() for _ in range(25)]
                stream.close()
                got += stream.drain()
                self.assertEqual(sorted(a.infer_response.id for a in got), sorted(sent))
                for resp in got:
                    self.check_answer(resp, sent[resp.infer_response.id], 4)
                with lock:
                    counts["stream"] += len(got)
            except Exception as e:  # the main thread fails the test
                errors.append(e)

        def unary(c):
            try:
                stub = server.inference(channels[c % 4])
                for i in range(100):
                    start = (c * 11 + i) % (len(self.x) - 2)
                    resp = stub.ModelInfer(s.infer_request(self.x[start:start + 2]), timeout=60)
                    np.testing.assert_allclose(s.response_output(resp, 2, 10),
                                               self.expected[start:start + 2], rtol=0,
                                               atol=s.TOLERANCE)
                    with lock:
                        counts["unary"] += 1
            except Exception as e:
                errors.append(e)

        threads = [threading.Thread(target=streamer, args=(c,)) for c in range(16)]
        threads += [threading.Thread(target=unary, args=(c,)) for c in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=200)
        self.assertFalse(any(t.is_alive() for t in threads))
        self.assertEqual(errors[:3], [])
        self.assertEqual(counts, {"stream": 16 * 150, "unary": 400})
        stats = s.statistics(server.inference())
        self.assertEqual(stats.inference_stats.success.count, 16 * 150 + 400)
        self.assertEqual(stats.inference_count, 16 * 150 * 4 + 400 * 2)
        self.assertEqual(stream_rpc_counts(server), (16, {"OK": 16}))
        self.assertEqual(exposition(server).value("selu_inference_in_flight"), 0)


class StreamBoundsTest(s.ServerTestCase):
    def test_at_most_1024_unanswered_then_reading_pauses(self):
        # The client reads no answer until the server reports a paused
        # stream: with BDP probing off its receive window stays small, so
        # the server's writes stall and its unanswered messages reach the
        # bound. Then every request is answered, none lost.
        server = self.start_server()
        x, _ = s.load_heldout()
        channel = grpc.insecure_channel("127.0.0.1:%d" % server.port, options=[
            ("grpc.http2.bdp_probe", 0), ("grpc.http2.lookahead_bytes", 16384)])
        self.addCleanup(channel.close)
        stream = Stream(server.inference(channel))
        total = 3 * STREAM_BOUND
        for i in range(total):
            stream.send(s.infer_request(x[i % 350:i % 350 + 4], request_id=str(i)))
        stream.close()
        wait_for(lambda: exposition(server).value("selu_stream_read_pauses_total") >= 1,
                 "the stream to pause reading", timeout=60)
        answers = stream.drain()
        self.assertEqual(sorted(int(a.infer_response.id) for a in answers), list(range(total)))
        self.assertEqual([a for a in answers if a.error_message][:3], [])
        exp = exposition(server)
        self.assertEqual(exp.value("selu_stream_unanswered_max"), STREAM_BOUND)
        self.assertGreaterEqual(exp.value("selu_stream_read_pauses_total"), 1)
        self.assertEqual(s.statistics(server.inference()).inference_stats.success.count, total)

    def test_half_close_without_requests_ends_ok(self):
        server = self.start_server()
        stream = Stream(server.inference())
        stream.close()
        self.assertEqual(stream.drain(), [])
        self.assertEqual(stream.call.code(), grpc.StatusCode.OK)
        self.assertEqual(stream_rpc_counts(server), (1, {"OK": 1}))

    def test_client_cancel_mid_stream(self):
        server = self.start_server("--max-batch-size", "8")
        x, _ = s.load_heldout()
        stub = server.inference()
        stream = Stream(stub)
        for i in range(400):
            stream.send(s.infer_request(x[i:i + 2], request_id=str(i)))
        for _ in range(5):
            self.assertEqual(stream.recv().error_message, "")
        stream.call.cancel()
        stream.close()  # ends grpcio's request-reading thread
        with self.assertRaises(grpc.RpcError) as caught:
            stream.drain()
        self.assertEqual(caught.exception.code(), grpc.StatusCode.CANCELLED)
        # The server ends the stream, its books balance, and it serves on.
        wait_for(lambda: sum(stream_rpc_counts(server)[1].values()) == 1, "the stream to end")
        wait_for(lambda: exposition(server).value("selu_inference_in_flight") == 0,
                 "in-flight to return to 0")
        stats = s.statistics(stub).inference_stats
        self.assertGreaterEqual(stats.success.count + stats.fail.count, 5)
        self.assertLessEqual(stats.success.count + stats.fail.count, 400)
        again = Stream(stub)
        again.send(s.infer_request(x[:1], request_id="after"))
        again.close()
        self.assertEqual([a.infer_response.id for a in again.drain()], ["after"])
        self.assertEqual(stub.ModelInfer(s.infer_request(x[:1]), timeout=30).model_name,
                         s.BUNDLED_MODEL)


class StreamShutdownTest(s.ServerTestCase):
    def test_sigterm_answers_what_was_read_then_ends_unavailable(self):
        server = self.start_server(grace_s=10.0)
        x, _ = s.load_heldout()
        expected = s.bundled_reference()(x)
        stream = Stream(server.inference())
        # Closed loop: one request in flight, as a streaming client runs.
        outcomes = []
        i = 0
        ended = None
        while True:
            stream.send(s.infer_request(x[i % 350:i % 350 + 1], request_id=str(i)))
            try:
                resp = stream.recv()
            except grpc.RpcError as e:
                ended = e
                break
            self.assertIsNotNone(resp, "the stream ended OK during shutdown")
            self.assertEqual(resp.infer_response.id, str(i))
            if resp.error_message:
                self.assertTrue(resp.error_message == SHUTTING_DOWN_MESSAGE or
                                resp.error_message.endswith(DRAINING_MESSAGE), resp.error_message)
                outcomes.append("refused")
            else:
                np.testing.assert_allclose(s.response_output(resp.infer_response, 1, 10),
                                           expected[i % 350:i % 350 + 1], rtol=0,
                                           atol=s.TOLERANCE)
                outcomes.append("ok")
            if i == 20:
                server.terminate()
            i += 1
            self.assertLess(i, 1000000)
        stream.close()
        self.assertEqual(ended.code(), grpc.StatusCode.UNAVAILABLE, ended.details())
        self.assertEqual(ended.details(), SHUTTING_DOWN_MESSAGE)
        # Every answer before SIGTERM succeeded; once refusing, no request
        # reached a model again; the server refused some itself (it lingers
        # 100 ms refusing before the streams end).
        self.assertEqual(outcomes[:21], ["ok"] * 21)
        first_refused = outcomes.index("refused")
        self.assertEqual(set(outcomes[first_refused:]), {"refused"})
        self.assertEqual(server.wait(15), 0)
        log = server.log_text()
        self.assertNotIn("streams still open", log)
        self.assertNotIn("still in flight", log)


class StreamRestrictedTest(s.ServerTestCase):
    def test_inference_group_covers_the_stream(self):
        server = self.start_server("--grpc-restricted-protocol", "inference:x-infer-key=k3y")
        x, _ = s.load_heldout()
        stub = server.inference()
        denied = Stream(stub)
        denied.send(s.infer_request(x[:1], request_id="0"))
        with self.assertRaises(grpc.RpcError) as caught:
            denied.recv()
        self.assertEqual(caught.exception.code(), grpc.StatusCode.PERMISSION_DENIED)
        self.assertIn("inference", caught.exception.details())
        self.assertIn("x-infer-key", caught.exception.details())
        allowed = Stream(stub, metadata=(("x-infer-key", "k3y"),))
        allowed.send(s.infer_request(x[:1], request_id="1"))
        allowed.close()
        self.assertEqual([a.error_message for a in allowed.drain()], [""])
        self.assertEqual(stream_rpc_counts(server), (2, {"OK": 1, "PermissionDenied": 1}))


if __name__ == "__main__":
    unittest.main()
