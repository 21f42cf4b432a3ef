"""Start-up, options, shutdown: graceful drain on SIGTERM, health Watch across
shutdown, options from flags and SELU_* environment variables, --help, and a
repository in which one model is broken."""

import collections
import json
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import unittest

import grpc
import numpy as np

import selu_server as s
from selu_server import health_pb2, pb

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING

# After SIGTERM a request is refused UNAVAILABLE (retryable elsewhere) by the
# server itself, with one of these messages: inference_service.cc's while the
# server shuts down, or the batcher's kDrainingMessage
# (server/core/serving/dynamic_batcher.h) for a request that reached a
# draining queue. Any other UNAVAILABLE is the client's own: "failed to
# connect", "Connection reset by peer", "Socket closed" -- what a server that
# simply exited would also give.
SHUTTING_DOWN_MESSAGE = "server is shutting down; send to another replica"
DRAINING_MESSAGE = ("draining: the model version is being unloaded or replaced, or the "
                    "server is shutting down")


def outcome(error):
    """How a ModelInfer ended: "OK" (error None), "REFUSED" (the server's
    UNAVAILABLE), "CONNECTION" (the client's UNAVAILABLE: no server answered),
    or the code's name."""
    if error is None:
        return "OK"
    details = error.details() or ""
    if error.code() == grpc.StatusCode.UNAVAILABLE:
        if details == SHUTTING_DOWN_MESSAGE or details.endswith(DRAINING_MESSAGE):
            return "REFUSED"
        return "CONNECTION"
    return error.code().name


def infer_outcome(stub, request, timeout=5):
    try:
        stub.ModelInfer(request, timeout=timeout)
        return "OK", ""
    except grpc.RpcError as e:
        return outcome(e), e.details() or ""


class GracefulShutdownTest(s.ServerTestCase):
    def wait_until_refusing(self, server, timeout=5.0):
        """Until ServerReady says false (the server refuses new inference) or
        the server no longer answers."""
        deadline = time.monotonic() + timeout
        stub = server.inference()
        while time.monotonic() < deadline and server.proc.poll() is None:
            try:
                if not stub.ServerReady(pb.ServerReadyRequest(), timeout=1).ready:
                    return
            except grpc.RpcError:
                return
            time.sleep(0.005)
        if server.proc.poll() is None:
            self.fail("still ready %.0f s after SIGTERM" % timeout)

    def test_sigterm_drains_queued_requests_and_refuses_new_ones(self):
        grace = 10.0
        server = self.start_server("--max-queue-delay-us", "300000", "--max-batch-size", "64",
                                   grace_s=grace)
        stub = server.inference()
        x, _ = s.load_heldout()
        expected = s.bundled_reference()(x)
        futures = [stub.ModelInfer.future(s.infer_request(x[i:i + 2], request_id=str(i)),
                                          timeout=30) for i in range(20)]
        time.sleep(0.1)  # queued: the batch waits 300 ms for more requests
        self.assertFalse(any(f.done() for f in futures),
                         "requests finished before SIGTERM: nothing left to drain")
        server.terminate()
        # Once the server says it is not ready, a new request is refused by
        # the server itself (it lingers 100 ms after the drain for exactly
        # this), not by a connection that went away.
        self.wait_until_refusing(server)
        with self.assertRaises(grpc.RpcError) as cm:
            stub.ModelInfer(s.infer_request(x[:1]), timeout=5)
        self.assertEqual(cm.exception.code(), grpc.StatusCode.UNAVAILABLE,
                         cm.exception.details())
        self.assertEqual(cm.exception.details(), SHUTTING_DOWN_MESSAGE)

        for i, future in enumerate(futures):
            resp = future.result(timeout=grace)  # raises if the request was lost
            self.assertEqual(resp.id, str(i))
            np.testing.assert_allclose(s.response_output(resp, 2, 10), expected[i:i + 2],
                                       rtol=0, atol=s.TOLERANCE)
        self.assertEqual(server.wait(grace + 5), 0)
        # Finished within the grace: the server says so, and did not give up
        # on calls still in flight.
        log = server.log_text()
        self.assertIn("shutting down: draining for at most", log)
        self.assertIn("drained", log)
        self.assertNotIn("still in flight at the end of the grace period", log)

    def test_requests_after_sigterm_are_refused_by_the_server(self):
        x, _ = s.load_heldout()
        request = s.infer_request(x[:1])
        while_running, after_exit = collections.Counter(), collections.Counter()
        examples, connection_errors = {}, []
        for _ in range(5):  # the window is short: several shutdowns
            server = self.start_server()
            stub = server.inference()
            server.terminate()
            self.wait_until_refusing(server)
            while server.proc.poll() is None:
                kind, details = infer_outcome(stub, request)
                while_running[kind] += 1
                examples.setdefault(kind, details)
                if kind == "CONNECTION":
                    connection_errors.append(details)
            self.assertEqual(server.wait(15), 0)
            # Once the process is gone no server answers: the client's own
            # connection error, which the classification must tell apart.
            kind, details = infer_outcome(stub, request)
            after_exit[kind] += 1
            examples.setdefault("after exit " + kind, details)
        self.assertEqual(set(after_exit), {"CONNECTION"}, (dict(after_exit), examples))
        # While the process ran the server refused requests itself, never
        # CANCELLED them; a call after its GOAWAY found no server to connect
        # to, and none was lost to a reset connection.
        self.assertGreater(while_running["REFUSED"], 0, (dict(while_running), examples))
        self.assertLessEqual(set(while_running), {"REFUSED", "CONNECTION"},
                             (dict(while_running), examples))
        self.assertEqual([e for e in connection_errors if not e.startswith("failed to connect")],
                         [], dict(while_running))

    def drain_under_load(self, callers=64, connections=4):
        """`callers` clients over `connections` channels send without pause;
        SIGTERM once each had answers. Returns ({outcome: count} of the
        requests sent while the process ran, an example message of each, the
        messages of the CONNECTION ones)."""
        server = self.start_server("--max-batch-size", "16")
        x, _ = s.load_heldout()
        request = s.infer_request(x[:2])
        counts, examples, lock = collections.Counter(), {}, threading.Lock()
        lost = []
        answered = threading.Semaphore(0)
        channels = [server.new_channel() for _ in range(connections)]

        def client(channel):
            stub = server.inference(channel)
            while server.proc.poll() is None:
                kind, details = infer_outcome(stub, request, timeout=30)
                with lock:
                    counts[kind] += 1
                    examples.setdefault(kind, details)
                    if kind == "CONNECTION":
                        lost.append(details)
                if kind == "OK":
                    answered.release()

        threads = [threading.Thread(target=client, args=(channels[i % connections],))
                   for i in range(callers)]
        for t in threads:
            t.start()
        try:
            for _ in range(callers * 5):
                self.assertTrue(answered.acquire(timeout=30), "no answers under load")
            server.terminate()
            self.assertEqual(server.wait(30), 0)
        finally:
            for t in threads:
                t.join(timeout=60)
            for channel in channels:
                channel.close()
        self.assertFalse(any(t.is_alive() for t in threads), "clients still running")
        return counts, examples, lost

    def test_drain_under_load_answers_every_request(self):
        # The bar: 64 callers over 4 connections, SIGTERM under load.
        # Every request the server read is answered OK or refused UNAVAILABLE
        # by the server; none CANCELLED, none lost to a reset connection. A
        # call sent after the server's GOAWAY goes to a new connection, which
        # the exited server refuses: "failed to connect" reached no server.
        counts, examples, lost = self.drain_under_load()
        self.assertGreater(counts["OK"], 0, dict(counts))
        self.assertGreater(counts["REFUSED"], 0, dict(counts))
        self.assertLessEqual(set(counts), {"OK", "REFUSED", "CONNECTION"},
                             (dict(counts), examples))
        in_flight = [d for d in lost if not d.startswith("failed to connect")]
        self.assertEqual(in_flight, [], "accepted calls ended with a connection error; counts %s"
                         % dict(counts))

    def test_sigint_also_exits_cleanly(self):
        server = self.start_server()
        server.proc.send_signal(signal.SIGINT)
        self.assertEqual(server.wait(15), 0)

    def test_health_watch_sees_serving_then_not_serving(self):
        server = self.start_server("--max-queue-delay-us", "0")
        streams = {service: server.health().Watch(
            health_pb2.HealthCheckRequest(service=service), timeout=30)
            for service in ("", s.BUNDLED_MODEL)}
        for stream in streams.values():
            self.assertEqual(next(stream).status, SERVING)
        server.terminate()
        for service, stream in streams.items():
            statuses = []
            try:
                for update in stream:
                    statuses.append(update.status)
                    if update.status != SERVING:
                        break
            except grpc.RpcError as e:
                # The stream may end once the server stops, but only after
                # it told us NOT_SERVING.
                if e.code() not in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED):
                    raise
            self.assertEqual(statuses[-1:], [NOT_SERVING], "service %r: %s" % (service, statuses))
        self.assertEqual(server.wait(15), 0)


class OptionsTest(s.ServerTestCase):
    def test_max_batch_size_from_environment(self):
        server = self.start_server(env={"SELU_MAX_BATCH_SIZE": "4"})
        stub = server.inference()
        x, _ = s.load_heldout()
        self.assertEqual(list(stub.ModelInfer(s.infer_request(x[:4]), timeout=10)
                              .outputs[0].shape), [4, 10])
        with self.assertRaises(grpc.RpcError) as cm:
            stub.ModelInfer(s.infer_request(x[:5]), timeout=10)
        self.assertEqual(cm.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)
        self.assertIn("5", cm.exception.details())
        self.assertIn("max_batch_size of 4", cm.exception.details())

    def test_flag_wins_over_environment(self):
        server = self.start_server("--max-batch-size", "8", env={"SELU_MAX_BATCH_SIZE": "4"})
        x, _ = s.load_heldout()
        resp = server.inference().ModelInfer(s.infer_request(x[:8]), timeout=10)
        self.assertEqual(list(resp.outputs[0].shape), [8, 10])

    def test_preferred_batch_size_dispatches_without_waiting(self):
        # The batcher would wait 10 s for company; two 2-row requests make the
        # preferred size 4 and go at once, as one engine call of 4 rows. The
        # answers come within a 5 s deadline, so neither waited for the delay.
        server = self.start_server("--max-queue-delay-us", "10000000",
                                   "--preferred-batch-size", "4")
        stub = server.inference()
        x, _ = s.load_heldout()
        first = stub.ModelInfer.future(s.infer_request(x[:2]), timeout=5)
        s.wait_until(lambda: s.statistics(stub).inference_stats.success.count == 0 and
                     "selu_inference_queue_depth{model=\"digits_snn\",version=\"1\"} 1"
                     in server.scrape(), 10, "the first request to be queued")
        self.assertFalse(first.done(), "2 rows (not a preferred size) did not wait")
        second = stub.ModelInfer.future(s.infer_request(x[2:4]), timeout=5)
        ref = s.bundled_reference()
        for i, future in ((0, first), (2, second)):
            np.testing.assert_allclose(s.response_output(future.result(), 2, 10),
                                       ref(x[i:i + 2]), rtol=0, atol=s.TOLERANCE)
        st = s.statistics(stub)
        self.assertEqual({b.batch_size: b.compute_infer.count for b in st.batch_stats
                          if b.compute_infer.count}, {4: 1})
        self.assertEqual(st.execution_count, 1)

    def test_several_instances_serve_correctly(self):
        server = self.start_server("--instances", "2", "--engine-primitive", "matmul")
        stub = server.inference()
        x, _ = s.load_heldout()
        futures = [stub.ModelInfer.future(s.infer_request(x[i:i + 8]), timeout=30)
                   for i in range(0, 360, 8)]
        got = np.concatenate([s.response_output(f.result(), 8, 10) for f in futures])
        np.testing.assert_allclose(got, s.bundled_reference()(x[:len(got)]), rtol=0,
                                   atol=s.TOLERANCE)

    def test_json_logs(self):
        server = self.start_server("--log-format", "json")
        self.assertEqual(server.stop(), 0)
        lines = [l for l in server.log_text().splitlines() if l.strip()]
        self.assertGreater(len(lines), 2)
        for line in lines:
            record = json.loads(line)  # every line is one JSON object
            self.assertIsInstance(record, dict)
        self.assertTrue(any("listening" in line for line in lines))

    def test_help_lists_every_option(self):
        out = subprocess.run([s.SERVE_BIN, "--help"], capture_output=True, text=True,
                             timeout=30)
        self.assertEqual(out.returncode, 0, out.stderr)
        for option in ("model-repository", "grpc-address", "metrics-address", "port-file",
                       "max-receive-message-bytes", "max-batch-size", "max-queue-delay-us",
                       "max-queue-size", "preferred-batch-size", "instances",
                       "engine-primitive", "shutdown-grace", "log-level", "log-format"):
            with self.subTest(option=option):
                self.assertIn("--" + option, out.stdout)
                self.assertIn("SELU_" + option.upper().replace("-", "_"), out.stdout)

    def test_invalid_option_value_is_refused(self):
        for args in (["--max-batch-size", "0"], ["--log-format", "xml"], ["--no-such-flag"]):
            with self.subTest(args=args):
                out = subprocess.run([s.SERVE_BIN] + args, capture_output=True, text=True,
                                     timeout=30)
                self.assertNotEqual(out.returncode, 0)
                self.assertIn(args[0], out.stdout + out.stderr)

    def test_missing_repository_fails_to_start(self):
        missing = os.path.join(tempfile.gettempdir(), "selu-it-no-such-repository")
        out = subprocess.run([s.SERVE_BIN, "--model-repository", missing, "--grpc-address",
                              "127.0.0.1:0", "--metrics-address", "127.0.0.1:0"],
                             capture_output=True, text=True, timeout=30)
        self.assertNotEqual(out.returncode, 0)
        self.assertIn(missing, out.stdout + out.stderr)


class BrokenModelRepositoryTest(s.ServerTestCase):
    def setUp(self):
        self.repo = tempfile.mkdtemp(prefix="selu-it-repo-")
        self.addCleanup(shutil.rmtree, self.repo, True)
        s.link_bundled_model(self.repo)
        os.makedirs(os.path.join(self.repo, "broken", "1"))
        with open(os.path.join(self.repo, "broken", "1", "model.onnx"), "wb") as f:
            f.write(b"\x08\x07this is not an onnx model" * 10)

    def test_good_model_serves_and_broken_one_is_reported(self):
        server = self.start_server(repository=self.repo, ready_service=s.BUNDLED_MODEL)
        stub = server.inference()
        x, _ = s.load_heldout()
        resp = stub.ModelInfer(s.infer_request(x[:3]), timeout=10)
        np.testing.assert_allclose(s.response_output(resp, 3, 10), s.bundled_reference()(x[:3]),
                                   rtol=0, atol=s.TOLERANCE)

        self.assertFalse(stub.ServerReady(pb.ServerReadyRequest(), timeout=5).ready)
        self.assertTrue(stub.ModelReady(pb.ModelReadyRequest(name=s.BUNDLED_MODEL),
                                        timeout=5).ready)
        self.assertFalse(stub.ModelReady(pb.ModelReadyRequest(name="broken"), timeout=5).ready)
        with self.assertRaises(grpc.RpcError) as cm:
            stub.ModelInfer(s.infer_request(x[:1], model="broken"), timeout=10)
        self.assertEqual(cm.exception.code(), grpc.StatusCode.UNAVAILABLE)
        self.assertIn("broken", cm.exception.details())
        self.assertIn("ONNX", cm.exception.details())  # the reason, not just "not ready"

        health = server.health()
        check = lambda name: health.Check(health_pb2.HealthCheckRequest(service=name),
                                          timeout=5).status
        self.assertEqual(check(""), NOT_SERVING)
        self.assertEqual(check("broken"), NOT_SERVING)
        self.assertEqual(check(s.BUNDLED_MODEL), SERVING)
        self.assertIn("broken", server.log_text())


if __name__ == "__main__":
    unittest.main()
