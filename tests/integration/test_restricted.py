"""--grpc-restricted-protocol: protocol groups that answer only calls carrying a
metadata header with the configured value (Triton's flag), and selu-client's
-H / --metadata that send it.

A refused call gets PERMISSION_DENIED naming the group and the header, never
the value; it is counted in grpc_server_handled_total like any other answer;
the other groups (inference, health) are unaffected. Bad flag values stop
the start-up with a message naming the flag and the bad part.
"""

import json
import os
import re
import shutil
import subprocess
import tempfile
import unittest

import grpc
import numpy as np

import selu_server as s
from selu_server import pb

CLIENT_BIN = s._require_env("SELU_CLIENT_BIN")
GHZ_REQUEST = os.path.join(s.SOURCE_DIR, "deploy", "ghz", "digits_request.json")
ADMIN = ("x-admin-token", "s3cret")
OPS = ("x-ops-token", "0ps-t0ken")
SECOND_MODEL = "digits_b"

HANDLED_RE = re.compile(r"^grpc_server_handled_total\{([^}]*)\}\s+(\S+)$", re.M)
LABEL_RE = re.compile(r'(\w+)="([^"]*)"')


def handled(server, method, code):
    """grpc_server_handled_total of `method` answered with `code`, spelled as
    go-grpc-prometheus does (PERMISSION_DENIED is "PermissionDenied")."""
    total = 0.0
    for labels, value in HANDLED_RE.findall(server.scrape()):
        lab = dict(LABEL_RE.findall(labels))
        if lab.get("grpc_method") == method and lab.get("grpc_code") == code:
            total += float(value)
    return total


def run_client(server, *args, timeout=60):
    return subprocess.run([CLIENT_BIN, "--address", "127.0.0.1:%d" % server.port] + list(args),
                          capture_output=True, text=True, timeout=timeout)


def digits(rows=2):
    x = np.zeros((rows, 64), np.float32)
    x[:, 27:29] = 16
    return x


class RestrictedProtocolTest(s.SharedRepositoryTestCase):
    SERVER_ARGS = ("--model-control-mode", "explicit", "--load-model", s.BUNDLED_MODEL,
                   "--grpc-restricted-protocol", "model-repository:%s=%s" % ADMIN,
                   "--grpc-restricted-protocol", "statistics,monitor:%s=%s" % OPS)

    @classmethod
    def fill_repository(cls, repo):
        s.link_bundled_model(repo)
        os.makedirs(os.path.join(repo, SECOND_MODEL, "1"))
        shutil.copyfile(s.BUNDLED_ONNX, os.path.join(repo, SECOND_MODEL, "1", "model.onnx"))

    def assert_denied(self, call, group, header):
        with self.assertRaises(grpc.RpcError) as caught:
            call()
        error = caught.exception
        self.assertEqual(error.code(), grpc.StatusCode.PERMISSION_DENIED, error.details())
        self.assertIn(group, error.details())
        self.assertIn(header, error.details())
        for _, secret in (ADMIN, OPS):
            self.assertNotIn(secret, error.details())

    def repository_calls(self, metadata):
        stub = self.stub
        return {
            "RepositoryIndex": lambda: stub.RepositoryIndex(
                pb.RepositoryIndexRequest(), metadata=metadata, timeout=10),
            "RepositoryModelLoad": lambda: stub.RepositoryModelLoad(
                pb.RepositoryModelLoadRequest(model_name=SECOND_MODEL), metadata=metadata,
                timeout=60),
            "RepositoryModelUnload": lambda: stub.RepositoryModelUnload(
                pb.RepositoryModelUnloadRequest(model_name=SECOND_MODEL), metadata=metadata,
                timeout=60),
        }

    def test_repository_rpcs_denied_without_header(self):
        for name, call in self.repository_calls(()).items():
            with self.subTest(rpc=name):
                self.assert_denied(call, "model-repository", ADMIN[0])

    def test_repository_rpcs_denied_with_wrong_value(self):
        wrong_values = ["s3creT", "s3cre", "s3cret2", "", "S3CRET"]
        for value in wrong_values:
            for name, call in self.repository_calls(((ADMIN[0], value),)).items():
                with self.subTest(rpc=name, value=value):
                    self.assert_denied(call, "model-repository", ADMIN[0])
        # Another group's header does not open this one.
        for name, call in self.repository_calls((OPS,)).items():
            with self.subTest(rpc=name, header=OPS[0]):
                self.assert_denied(call, "model-repository", ADMIN[0])

    def test_repository_rpcs_work_with_header(self):
        calls = self.repository_calls((ADMIN, ("x-other", "1")))
        names = [m.name for m in calls["RepositoryIndex"]().models]
        self.assertIn(s.BUNDLED_MODEL, names)
        calls["RepositoryModelLoad"]()
        ready = self.stub.ModelReady(pb.ModelReadyRequest(name=SECOND_MODEL), timeout=10)
        self.assertTrue(ready.ready)
        calls["RepositoryModelUnload"]()
        s.wait_until(lambda: not self.stub.ModelReady(
            pb.ModelReadyRequest(name=SECOND_MODEL), timeout=10).ready, 30, "unloaded")

    def test_other_groups_unaffected(self):
        resp = self.stub.ModelInfer(s.infer_request(digits()), timeout=10)
        self.assertEqual(resp.model_name, s.BUNDLED_MODEL)
        self.assertTrue(self.stub.ServerLive(pb.ServerLiveRequest(), timeout=10).live)
        self.assertTrue(self.stub.ServerReady(pb.ServerReadyRequest(), timeout=10).ready)
        self.assertTrue(self.stub.ModelReady(
            pb.ModelReadyRequest(name=s.BUNDLED_MODEL), timeout=10).ready)
        meta = self.stub.ModelMetadata(pb.ModelMetadataRequest(name=s.BUNDLED_MODEL), timeout=10)
        self.assertEqual(meta.name, s.BUNDLED_MODEL)
        self.stub.ModelConfig(pb.ModelConfigRequest(name=s.BUNDLED_MODEL), timeout=10)
        health = self.server.health().Check(s.health_pb2.HealthCheckRequest(service=""),
                                            timeout=10)
        self.assertEqual(health.status, s.health_pb2.HealthCheckResponse.SERVING)

    def test_two_groups_with_different_headers(self):
        stats = lambda md: self.stub.ModelStatistics(  # noqa: E731
            pb.ModelStatisticsRequest(name=s.BUNDLED_MODEL), metadata=md, timeout=10)
        check = lambda md: self.server.monitor().Check(  # noqa: E731
            s.monitor_pb2.ModelMonitorRequest(name=s.BUNDLED_MODEL), metadata=md, timeout=10)
        for call, group in ((stats, "statistics"), (check, "monitor")):
            with self.subTest(group=group):
                self.assert_denied(lambda: call(()), group, OPS[0])
                self.assert_denied(lambda: call((ADMIN,)), group, OPS[0])
                self.assert_denied(lambda: call(((OPS[0], ADMIN[1]),)), group, OPS[0])
                call((OPS,))
        self.assertEqual(len(stats((OPS,)).model_stats), 1)
        self.assertEqual(check((OPS,)).model, s.BUNDLED_MODEL)

    def test_denials_counted_in_metrics(self):
        before = handled(self.server, "RepositoryIndex", "PermissionDenied")
        check_before = handled(self.server, "Check", "PermissionDenied")
        ok_before = handled(self.server, "RepositoryIndex", "OK")
        index = self.repository_calls(())["RepositoryIndex"]
        for _ in range(3):
            self.assert_denied(index, "model-repository", ADMIN[0])
        self.assert_denied(lambda: self.server.monitor().Check(
            s.monitor_pb2.ModelMonitorRequest(name=s.BUNDLED_MODEL), timeout=10),
            "monitor", OPS[0])
        self.repository_calls((ADMIN,))["RepositoryIndex"]()
        self.assertEqual(handled(self.server, "RepositoryIndex", "PermissionDenied"), before + 3)
        self.assertEqual(handled(self.server, "Check", "PermissionDenied"), check_before + 1)
        self.assertEqual(handled(self.server, "RepositoryIndex", "OK"), ok_before + 1)

    def test_client_sends_headers(self):
        ok = run_client(self.server, "-H", "%s:%s" % ADMIN, "models")
        self.assertEqual(ok.returncode, 0, ok.stderr)
        self.assertIn(s.BUNDLED_MODEL, ok.stdout)
        # After the subcommand, with spaces, and ghz's JSON form.
        for args in (["models", "-H", "%s: %s" % ADMIN],
                     ["--metadata", json.dumps({ADMIN[0]: ADMIN[1]}), "models"],
                     ["-H", "X-Admin-Token: %s" % ADMIN[1], "models", "--json"],
                     ["-H", "%s:%s" % OPS, "-H", "%s:%s" % ADMIN, "stats", s.BUNDLED_MODEL]):
            with self.subTest(args=args):
                result = run_client(self.server, *args)
                self.assertEqual(result.returncode, 0, result.stderr)
        denied = run_client(self.server, "models")
        self.assertEqual(denied.returncode, 1, denied.stderr)
        self.assertIn("PERMISSION_DENIED", denied.stderr)
        self.assertIn(ADMIN[0], denied.stderr)
        self.assertNotIn(ADMIN[1], denied.stderr)
        wrong = run_client(self.server, "-H", "%s:nope" % ADMIN[0], "models")
        self.assertEqual(wrong.returncode, 1, wrong.stderr)
        self.assertIn("PERMISSION_DENIED", wrong.stderr)

    def test_client_bad_metadata_is_usage_error(self):
        for args in (["-H", "no-colon", "models"], ["-H", "bad key:v", "models"],
                     ["--metadata", "{not json", "models"],
                     ["--metadata", '{"k": 1}', "models"], ["--metadata", '["k"]', "models"]):
            with self.subTest(args=args):
                result = run_client(self.server, *args)
                self.assertEqual(result.returncode, 2, result.stdout + result.stderr)


class RestrictedInferenceTest(s.ServerTestCase):
    """The inference group restricted (from the environment, two specs
    separated by ';'): bench sends its -H header on every call."""

    def test_bench_sends_header_on_every_call(self):
        server = self.start_server(env={
            "SELU_GRPC_RESTRICTED_PROTOCOL": "inference:x-infer=k3y;metadata:x-meta=m"})
        with self.assertRaises(grpc.RpcError) as caught:
            server.inference().ModelInfer(s.infer_request(digits()), timeout=10)
        self.assertEqual(caught.exception.code(), grpc.StatusCode.PERMISSION_DENIED)
        self.assertIn("x-infer", caught.exception.details())
        with self.assertRaises(grpc.RpcError) as caught:
            server.inference().ServerMetadata(pb.ServerMetadataRequest(),
                                              metadata=(("x-infer", "k3y"),), timeout=10)
        self.assertEqual(caught.exception.code(), grpc.StatusCode.PERMISSION_DENIED)
        self.assertIn("x-meta", caught.exception.details())
        self.assertTrue(server.inference().ServerLive(pb.ServerLiveRequest(), timeout=10).live)

        bench = ["bench", "-D", GHZ_REQUEST, "-O", "json", "-n", "200", "-c", "4",
                 "--connections", "2"]
        ok = run_client(server, "-H", "x-infer: k3y", *bench)
        self.assertEqual(ok.returncode, 0, ok.stderr)
        self.assertEqual(json.loads(ok.stdout)["statusCodeDistribution"], {"OK": 200})
        denied = run_client(server, *bench)
        self.assertEqual(denied.returncode, 0, denied.stderr)
        self.assertEqual(json.loads(denied.stdout)["statusCodeDistribution"],
                         {"PermissionDenied": 200})
        self.assertEqual(handled(server, "ModelInfer", "OK"), 200)
        self.assertEqual(handled(server, "ModelInfer", "PermissionDenied"), 201)


class StartupCheckTest(unittest.TestCase):
    """Bad --grpc-restricted-protocol values stop the start-up, naming the
    flag and the bad part (never the value)."""

    def start(self, *args, env=None):
        return subprocess.run([s.SERVE_BIN, "--model-repository", s.BUNDLED_REPOSITORY,
                               "--grpc-address", "127.0.0.1:0", "--metrics-address", ""]
                              + list(args), capture_output=True, text=True, timeout=30,
                              env=dict(os.environ, **(env or {})))

    def test_bad_values_fail_start_up(self):
        flag = "--grpc-restricted-protocol"
        cases = [
            (["nonsense:x-token=topsecret"], "unknown protocol group 'nonsense'"),
            (["model-repository=topsecret"], "no ':'"),
            (["model-repository:x-token"], "no '='"),
            (["model-repository:=topsecret"], "empty header"),
            (["model-repository: =topsecret"], "empty header"),
            (["model-repository:x-token="], "empty value"),
            (["model-repository,:x-token=topsecret"], "empty protocol group"),
            (["model-repository:bad header=topsecret"], "'bad header'"),
            (["model-repository:x-a=topsecret", "model-repository:x-b=topsecret"],
             "'model-repository' is already restricted with header 'x-a'"),
            (["health:x-a=topsecret", "health,inference:x-a=othersecret"],
             "'health' is already restricted"),
        ]
        for specs, message in cases:
            args = []
            for spec in specs:
                args += [flag, spec]
            with self.subTest(specs=specs):
                result = self.start(*args)
                output = result.stdout + result.stderr
                self.assertNotEqual(result.returncode, 0, output)
                self.assertIn(flag, output)
                self.assertIn(message, output)
                self.assertNotIn("topsecret", output)
                self.assertNotIn("othersecret", output)

    def test_bad_environment_value_fails_start_up(self):
        result = self.start(env={
            "SELU_GRPC_RESTRICTED_PROTOCOL": "health:x-a=topsecret;bogus:x-b=topsecret"})
        output = result.stdout + result.stderr
        self.assertNotEqual(result.returncode, 0, output)
        self.assertIn("SELU_GRPC_RESTRICTED_PROTOCOL", output)
        self.assertIn("'bogus'", output)
        self.assertNotIn("topsecret", output)

    def test_same_restriction_twice_is_accepted(self):
        # Only the parse is checked: the server starts and is killed.
        repo = tempfile.mkdtemp(prefix="selu-it-restricted-")
        self.addCleanup(shutil.rmtree, repo, True)
        s.link_bundled_model(repo)
        server = s.SeluServer("--grpc-restricted-protocol", "health:x-a=v",
                              "--grpc-restricted-protocol", "health,metadata:x-a=v",
                              repository=repo, metrics=False, ready_service=None)
        server.start()
        self.addCleanup(server.cleanup_files)
        self.addCleanup(server.kill)
        self.assertIn("protocol 'health' restricted to calls with header 'x-a'", server.log_text())
        self.assertEqual(server.stop(), 0)


if __name__ == "__main__":
    unittest.main()
