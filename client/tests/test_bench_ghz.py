"""`selu-client bench --stream` (ModelStreamInfer workers) and the ghz flags
`bench` accepts, ignores or refuses by name, against a real server."""

import json
import os
import subprocess
import tempfile
import unittest

from test_clients import GHZ_REQUEST, ClientAssertions, address_of  # noqa: F401

from selu_server import SharedServerTestCase, pb  # noqa: E402
from test_metrics import parse_exposition  # noqa: E402

STREAM = dict(grpc_method="ModelStreamInfer", grpc_service="inference.GRPCInferenceService",
              grpc_type="bidi_stream")


class BenchStreamTest(ClientAssertions, SharedServerTestCase):
    """One server with metrics, so that the streams the client opened are
    counted by the server itself."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.address = address_of(cls.server)

    def bench(self, args, expect=0):
        return json.loads(self.client(["bench", "-D", GHZ_REQUEST, "-O", "json"] + args,
                                      expect=expect, timeout=240).stdout)

    def streams_started(self):
        exp = parse_exposition(self.server.scrape())
        return exp.value("grpc_server_started_total", **STREAM)

    def test_stream_run_reports_every_message(self):
        before = self.streams_started()
        report = self.bench(["--stream", "-n", "600", "-c", "8", "--connections", "2"])
        self.assertEqual(report["count"], 600)
        self.assertEqual(report["statusCodeDistribution"], {"OK": 600})
        self.assertEqual(report["errorDistribution"], {})
        self.assertEqual(report["options"]["call"],
                         "inference.GRPCInferenceService/ModelStreamInfer")
        self.assertTrue(report["options"]["stream"])
        # One stream per worker for the whole run.
        self.assertEqual(self.streams_started() - before, 8)
        self.assertLessEqual(report["fastest"], report["slowest"])

    def test_stream_call_count_opens_new_streams(self):
        before = self.streams_started()
        report = self.bench(["--stream", "-n", "100", "-c", "2", "--stream-call-count", "10"])
        self.assertEqual(report["statusCodeDistribution"], {"OK": 100})
        # Each worker's messages in streams of 10: 100 split between two
        # workers needs 10 streams, or 11 when neither share is a multiple.
        self.assertIn(self.streams_started() - before, (10, 11))

    def test_stream_call_duration_and_error_messages(self):
        report = json.loads(self.client(
            ["bench", "--stream", "-d", '{"model_name": "no_such_model", "id": "x"}', "-n", "30",
             "-c", "3", "--stream-call-duration", "10s", "-O", "json"]).stdout)
        # error_message answers: counted apart from successes, the stream
        # stays open (one stream per worker).
        self.assertEqual(report["statusCodeDistribution"], {"Unknown": 30})
        [(text, n)] = report["errorDistribution"].items()
        self.assertEqual(n, 30)
        self.assertTrue(text.startswith("stream error_message: "), text)
        self.assertIn("no_such_model", text)

    def test_stream_refuses_a_unary_call_name_and_rps(self):
        result = self.client(["bench", "-D", GHZ_REQUEST, "--stream", "--call",
                              "inference.GRPCInferenceService/ModelInfer"], expect=2)
        self.assertIn("ModelStreamInfer", result.stderr)
        result = self.client(["bench", "-D", GHZ_REQUEST, "--stream", "-r", "100"], expect=2)
        self.assertIn("closed loop", result.stderr)

    def test_duration_stop_modes(self):
        for mode in ("wait", "close", "ignore"):
            with self.subTest(mode=mode):
                report = self.bench(["-z", "1s", "-c", "4", "--duration-stop", mode])
                self.assertEqual(report["endReason"], "timeout")
                self.assertEqual(report["options"]["durationStop"], mode)
                self.assertGreater(report["count"], 0)
                codes = set(report["statusCodeDistribution"])
                # close: what was in flight at the end fails there.
                allowed = {"OK", "DeadlineExceeded"} if mode == "close" else {"OK"}
                self.assertLessEqual(codes, allowed, report["statusCodeDistribution"])
        result = self.client(["bench", "-D", GHZ_REQUEST, "--duration-stop", "later"], expect=2)
        self.assertIn("--duration-stop", result.stderr)

    def test_ghz_command_line_is_accepted(self):
        # The flags a ghz command line for ModelInfer carries.
        with tempfile.TemporaryDirectory() as tmp:
            out = os.path.join(tmp, "report.json")
            metadata = os.path.join(tmp, "metadata.json")
            with open(metadata, "w") as f:
                json.dump({"x-run": "ghz"}, f)
            self.client(["bench", "--insecure", "--proto", "grpc_service.proto", "--protoset",
                         "x.protoset", "-i", "proto,.", "--call",
                         "inference.GRPCInferenceService.ModelInfer", "-D", GHZ_REQUEST,
                         "-n", "120", "-c", "4", "--connections", "2", "-x", "60s",
                         "--connect-timeout", "5s", "--skipFirst", "20", "--cpus", "1",
                         "--name", "nightly", "--tags", '{"branch": "main"}', "-e",
                         "-M", metadata, "--load-schedule", "const",
                         "--concurrency-schedule", "const", "--disable-template-functions",
                         "--disable-template-data", "-O", "json", "-o", out, self.address])
            with open(out) as f:
                report = json.load(f)
        self.assertEqual(report["name"], "nightly")
        self.assertEqual(report["options"]["tags"], {"branch": "main"})
        self.assertEqual(report["count"], 100)
        self.assertEqual(report["statusCodeDistribution"], {"OK": 100})

    def test_binary_request_data(self):
        request = pb.ModelInferRequest(model_name="digits_snn", id="bin")
        tensor = request.inputs.add(name="input", datatype="FP32", shape=[1, 64])
        tensor.contents.fp32_contents.extend([0.5] * 64)
        single = request.SerializeToString()
        other = pb.ModelInferRequest()
        other.CopyFrom(request)
        other.id = "bin-2"
        two = b"".join(_varint(len(m)) + m for m in (single, other.SerializeToString()))
        with tempfile.TemporaryDirectory() as tmp:
            for name, data in (("one.bin", single), ("two.bin", two)):
                path = os.path.join(tmp, name)
                with open(path, "wb") as f:
                    f.write(data)
                with self.subTest(data=name):
                    report = json.loads(self.client(["bench", "-B", path, "-n", "10", "-c", "2",
                                                     "-O", "json"]).stdout)
                    self.assertEqual(report["statusCodeDistribution"], {"OK": 10})
            result = subprocess.run(
                [os.environ["SELU_CLIENT_BIN"], "--address", self.address, "bench", "-b", "-n",
                 "5", "-O", "json"], input=single, capture_output=True, timeout=120)
            self.assertEqual(result.returncode, 0, result.stderr)
            self.assertEqual(json.loads(result.stdout)["statusCodeDistribution"], {"OK": 5})
            garbage = os.path.join(tmp, "bad.bin")
            with open(garbage, "wb") as f:
                f.write(b"\xff\xff\xff")
            result = self.client(["bench", "-B", garbage, "-n", "1"], expect=2)
            self.assertIn("inference.ModelInferRequest", result.stderr)

    def test_unsupported_ghz_flags_are_refused_by_name(self):
        refused = [
            ["--count-errors"], ["--load-schedule", "step"], ["--load-start", "10"],
            ["--concurrency-schedule", "line"], ["--stream-interval", "10ms"],
            ["--stream-dynamic-messages"], ["--reflect-metadata", "{}"],
            ["--lb-strategy", "round_robin"], ["--async"], ["--keepalive", "10s"],
            ["--config", "ghz.json"], ["--max-recv-message-size", "1MB"],
        ]
        for args in refused:
            with self.subTest(flag=args[0]):
                result = self.client(["bench", "-D", GHZ_REQUEST] + args, expect=2)
                line = result.stderr.strip()
                self.assertTrue(line.startswith("selu-client bench: ghz flag %s is not "
                                                "supported: " % args[0]), line)
                self.assertEqual(len(line.splitlines()), 1, line)


def _varint(n):
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


if __name__ == "__main__":
    unittest.main()
