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
import time
import unittest

import grpc
import numpy as np

import selu_server as s
from selu_server import health_pb2, pb

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING

# Server bug (reported): after the drain, gRPC's Server::Shutdown answers some
# new calls CANCELLED instead of UNAVAILABLE. Set to False once fixed: the
# graceful-shutdown test then accepts UNAVAILABLE only, and the dedicated test
# below runs.
# After SIGTERM a request is refused UNAVAILABLE (retryable elsewhere), never
# CANCELLED: selu-serve drains and exits instead of calling
# grpc::Server::Shutdown, which cancels calls that arrive while it runs.
REFUSED_AFTER_SIGTERM = (grpc.StatusCode.UNAVAILABLE,)


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
        t0 = time.monotonic()
        server.terminate()
        # The drain may finish in milliseconds: once the server says it is
        # not ready (or is gone), a new request must be refused.
        self.wait_until_refusing(server)
        with self.assertRaises(grpc.RpcError) as cm:
            stub.ModelInfer(s.infer_request(x[:1]), timeout=5)
        self.assertIn(cm.exception.code(), REFUSED_AFTER_SIGTERM, cm.exception.details())

        for i, future in enumerate(futures):
            resp = future.result(timeout=grace)  # raises if the request was lost
            self.assertEqual(resp.id, str(i))
            np.testing.assert_allclose(s.response_output(resp, 2, 10), expected[i:i + 2],
                                       rtol=0, atol=s.TOLERANCE)
        self.assertEqual(server.wait(grace + 5), 0)
        self.assertLess(time.monotonic() - t0, grace, "shutdown took longer than the grace")
        log = server.log_text()
        self.assertIn("shutting down", log)

    def test_requests_after_sigterm_are_unavailable_never_cancelled(self):
        x, _ = s.load_heldout()
        request = s.infer_request(x[:1])
        codes = collections.Counter()
        for _ in range(5):  # the window is short: several shutdowns
            server = self.start_server()
            stub = server.inference()
            server.terminate()
            self.wait_until_refusing(server)
            while server.proc.poll() is None:
                try:
                    stub.ModelInfer(request, timeout=5)
                    codes["OK"] += 1
                except grpc.RpcError as e:
                    codes[e.code().name] += 1
            self.assertEqual(server.wait(15), 0)
            # The drain may end before the loop sends anything: once the
            # process is gone a request is refused UNAVAILABLE too.
            try:
                stub.ModelInfer(request, timeout=5)
                codes["OK"] += 1
            except grpc.RpcError as e:
                codes[e.code().name] += 1
        self.assertEqual(set(codes), {"UNAVAILABLE"}, dict(codes))

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
        server = self.start_server("--max-queue-delay-us", "3000000",
                                   "--preferred-batch-size", "4")
        stub = server.inference()
        x, _ = s.load_heldout()
        t0 = time.monotonic()
        resp = stub.ModelInfer(s.infer_request(x[:4]), timeout=10)
        self.assertLess(time.monotonic() - t0, 1.5, "a preferred-size batch waited for the delay")
        np.testing.assert_allclose(s.response_output(resp, 4, 10), s.bundled_reference()(x[:4]),
                                   rtol=0, atol=s.TOLERANCE)

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
