"""selu-client, the Python example and the ghz request file against the real selu-serve.

Environment (set by ctest, see client/CMakeLists.txt): SELU_SERVE_BIN,
SELU_CLIENT_BIN, SELU_PY_STUBS, SELU_SOURCE_DIR.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

SERVE_BIN = os.environ["SELU_SERVE_BIN"]
CLIENT_BIN = os.environ["SELU_CLIENT_BIN"]
PY_STUBS = os.environ["SELU_PY_STUBS"]
SOURCE_DIR = os.environ["SELU_SOURCE_DIR"]
MODELS = os.path.join(SOURCE_DIR, "models")
HELDOUT_CSV = os.path.join(MODELS, "digits_snn", "heldout.csv")
GHZ_REQUEST = os.path.join(SOURCE_DIR, "deploy", "ghz", "digits_request.json")
DIGIT_ZERO = [0, 0, 5, 13, 9, 1, 0, 0, 0, 0, 13, 15, 10, 15, 5, 0, 0, 3, 15, 2, 0, 11, 8, 0,
              0, 4, 12, 0, 0, 8, 8, 0, 0, 5, 8, 0, 0, 9, 8, 0, 0, 4, 11, 0, 1, 12, 7, 0,
              0, 2, 14, 5, 10, 12, 0, 0, 0, 0, 6, 13, 10, 0, 0, 0]


def heldout():
    with open(HELDOUT_CSV) as f:
        lines = f.read().split()[1:]
    rows = [[float(v) for v in line.split(",")] for line in lines]
    return [r[:64] for r in rows], [int(r[64]) for r in rows]


def run_client(address, args, timeout=120):
    return subprocess.run([CLIENT_BIN, "--address", address] + args,
                          capture_output=True, text=True, timeout=timeout)


def start_server(workdir):
    """Starts selu-serve on a free port; returns (process, log file, address) once SERVING."""
    port_file = os.path.join(workdir, "port")
    log = open(os.path.join(workdir, "server.log"), "w")
    server = subprocess.Popen(
        [SERVE_BIN, "--model-repository", MODELS, "--grpc-address", "127.0.0.1:0",
         "--port-file", port_file, "--metrics-address", ""],
        stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    address = None
    while address is None or run_client(address, ["health"]).returncode != 0:
        if server.poll() is not None:
            raise AssertionError("selu-serve exited with %d" % server.returncode)
        if time.monotonic() > deadline:
            server.kill()
            raise AssertionError("selu-serve did not become SERVING")
        if address is None and os.path.exists(port_file):
            with open(port_file) as f:
                port = f.read().strip()
            if port:
                address = "127.0.0.1:" + port
        time.sleep(0.05)
    return server, log, address


class ClientTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.workdir = tempfile.mkdtemp(prefix="selu-client-test-")
        cls.server, cls.log, cls.address = start_server(cls.workdir)

    @classmethod
    def tearDownClass(cls):
        cls.server.send_signal(signal.SIGTERM)
        cls.server.wait(timeout=30)
        cls.log.close()
        shutil.rmtree(cls.workdir, ignore_errors=True)

    def client(self, args, expect=0, timeout=120):
        result = run_client(self.address, args, timeout)
        self.assertEqual(result.returncode, expect,
                         "selu-client %s: exit %d\nstdout: %s\nstderr: %s"
                         % (" ".join(args), result.returncode, result.stdout[-2000:],
                            result.stderr[-2000:]))
        return result

    # ---- health, metadata, models

    def test_health_serving(self):
        self.assertEqual(self.client(["health"]).stdout.strip(), "SERVING")
        self.assertEqual(self.client(["health", "--service", "digits_snn"]).stdout.strip(),
                         "SERVING")

    def test_health_unknown_service_fails(self):
        result = self.client(["health", "--service", "no_such_model"], expect=1)
        self.assertIn("NOT_FOUND", result.stderr)

    def test_address_from_environment(self):
        result = subprocess.run([CLIENT_BIN, "health"], capture_output=True, text=True,
                                timeout=60, env=dict(os.environ, SELU_ADDRESS=self.address))
        self.assertEqual((result.returncode, result.stdout.strip()), (0, "SERVING"))

    def test_server_metadata(self):
        metadata = json.loads(self.client(["metadata"]).stdout)
        self.assertEqual(metadata["name"], "selu-serve")
        self.assertTrue(metadata["version"])

    def test_model_metadata(self):
        metadata = json.loads(self.client(["metadata", "digits_snn"]).stdout)
        self.assertEqual(metadata["name"], "digits_snn")
        self.assertEqual(metadata["inputs"][0]["name"], "input")
        self.assertEqual([int(d) for d in metadata["inputs"][0]["shape"]], [-1, 64])
        self.assertEqual(metadata["outputs"][0]["name"], "probabilities")

    def test_metadata_unknown_model(self):
        result = self.client(["metadata", "no_such_model"], expect=1)
        self.assertIn("NOT_FOUND", result.stderr)

    def test_models(self):
        models = json.loads(self.client(["models", "--json"]).stdout)
        self.assertEqual(models, [{"name": "digits_snn", "ready": True, "versions": ["1"]}])
        table = self.client(["models"]).stdout.splitlines()
        self.assertEqual(table[1].split(), ["digits_snn", "yes", "1"])

    # ---- infer

    def test_infer_json_raw_and_typed_agree(self):
        images, labels = heldout()
        outputs = []
        for mode in ([], ["--typed"]):
            doc = json.loads(self.client(["infer", "digits_snn", "--json",
                                          json.dumps(images[:5])] + mode).stdout)
            output = doc["outputs"][0]
            self.assertEqual(output["name"], "probabilities")
            self.assertEqual(output["shape"], [5, 10])
            for row in output["data"]:
                self.assertAlmostEqual(sum(row), 1.0, places=4)
            outputs.append(output["data"])
        for a, b in zip(outputs[0], outputs[1]):
            for x, y in zip(a, b):
                self.assertAlmostEqual(x, y, places=6)

    def test_infer_csv_batched_argmax_accuracy(self):
        _, labels = heldout()
        doc = json.loads(self.client(["infer", "digits_snn", "--csv", HELDOUT_CSV,
                                      "--batch", "50", "--argmax"]).stdout)
        output = doc["outputs"][0]
        self.assertEqual(output["shape"], [len(labels), 10])
        correct = sum(p == y for p, y in zip(output["argmax"], labels))
        self.assertGreaterEqual(correct / len(labels), 0.95)

    def test_infer_json_file_table(self):
        with tempfile.NamedTemporaryFile("w", suffix=".json", dir=self.workdir,
                                         delete=False) as f:
            json.dump([DIGIT_ZERO, DIGIT_ZERO], f)
        lines = self.client(["infer", "digits_snn", "--json-file", f.name, "-o", "table",
                             "--argmax"]).stdout.splitlines()
        self.assertTrue(lines[0].startswith("# probabilities FP32 [2, 10]"), lines)
        self.assertEqual([line.split()[:2] for line in lines[2:]], [["0", "0"], ["1", "0"]])

    def test_infer_errors(self):
        result = self.client(["infer", "digits_snn", "--json", "[[1, 2, 3]]"], expect=1)
        self.assertIn("INVALID_ARGUMENT", result.stderr)
        result = self.client(["infer", "no_such_model", "--json", "[[1]]"], expect=1)
        self.assertIn("NOT_FOUND", result.stderr)
        self.client(["infer", "digits_snn"], expect=2)  # no rows
        self.client(["infer", "digits_snn", "--json", "[[1], [1, 2]]"], expect=2)
        self.client(["infer", "digits_snn", "--csv", "/nonexistent.csv"], expect=2)
        self.client(["no_such_command"], expect=2)

    # ---- bench

    def bench(self, args):
        return json.loads(self.client(["bench", "-D", GHZ_REQUEST, "-O", "json"] + args,
                                      timeout=240).stdout)

    def test_bench_closed_loop_report(self):
        report = self.bench(["-n", "2000", "-c", "16", "--connections", "2"])
        self.assertEqual(report["count"], 2000)
        self.assertEqual(report["statusCodeDistribution"], {"OK": 2000})
        self.assertEqual(report["errorDistribution"], {})
        self.assertEqual(report["endReason"], "normal")
        for field in ("total", "average", "fastest", "slowest"):
            self.assertIsInstance(report[field], int, field)  # nanoseconds
        self.assertIsInstance(report["rps"], float)
        self.assertLessEqual(report["fastest"], report["average"])
        self.assertLessEqual(report["average"], report["slowest"])
        self.assertLessEqual(report["slowest"], report["total"])
        self.assertAlmostEqual(report["rps"], 2000 / (report["total"] / 1e9), delta=1e-6 * 2000)
        percentiles = [(p["percentage"], p["latency"]) for p in report["latencyDistribution"]]
        self.assertEqual([p for p, _ in percentiles], [10, 25, 50, 75, 90, 95, 99, 99.9])
        latencies = [v for _, v in percentiles]
        self.assertEqual(latencies, sorted(latencies))
        self.assertGreaterEqual(latencies[0], report["fastest"])
        self.assertLessEqual(latencies[-1], report["slowest"])
        histogram = report["histogram"]
        self.assertEqual(sum(b["count"] for b in histogram), 2000)
        self.assertAlmostEqual(sum(b["frequency"] for b in histogram), 1.0, places=6)
        self.assertAlmostEqual(histogram[0]["mark"], report["fastest"] / 1e9, places=9)
        self.assertAlmostEqual(histogram[-1]["mark"], report["slowest"] / 1e9, places=9)
        self.assertEqual(report["options"]["concurrency"], 16)
        self.assertEqual(report["options"]["data"]["model_name"], "digits_snn")
        time.strptime(report["date"], "%Y-%m-%dT%H:%M:%SZ")

    def test_bench_skip_first_and_errors_counted(self):
        report = self.bench(["-n", "100", "-c", "4", "--skip-first", "10"])
        self.assertEqual(report["count"], 90)
        bad = json.loads(self.client(["bench", "-d", '{"model_name": "no_such_model"}', "-n",
                                      "20", "-c", "2", "-O", "json"]).stdout)
        self.assertEqual(bad["statusCodeDistribution"], {"NotFound": 20})
        self.assertEqual(list(bad["errorDistribution"].values()), [20])
        self.assertTrue(list(bad["errorDistribution"])[0].startswith(
            "rpc error: code = NotFound desc = "))

    def test_bench_rejects_bad_request_json(self):
        result = self.client(["bench", "-d", '{"model_nam": "x"}', "-n", "1"], expect=2)
        self.assertIn("ModelInferRequest", result.stderr)

    def test_bench_summary(self):
        out = self.client(["bench", "-D", GHZ_REQUEST, "-n", "50", "-c", "2"]).stdout
        self.assertIn("Count:\t50", out)
        self.assertIn("[OK]\t50 responses", out)

    def test_bench_open_loop_holds_the_rate(self):
        report = self.bench(["--rps", "200", "-z", "3s", "-c", "16"])
        self.assertEqual(report["endReason"], "timeout")
        self.assertAlmostEqual(report["count"], 600, delta=30)
        self.assertAlmostEqual(report["rps"], 200, delta=10)
        self.assertEqual(report["statusCodeDistribution"], {"OK": report["count"]})

    # ---- the Python example

    def test_python_example(self):
        result = subprocess.run(
            [sys.executable, os.path.join(SOURCE_DIR, "client", "python", "digits_client.py"),
             "--stubs", PY_STUBS, "--address", self.address],
            capture_output=True, text=True, timeout=120)
        self.assertEqual(result.returncode, 0, result.stderr)
        lines = result.stdout.splitlines()
        self.assertEqual(len(lines), 361)  # a line per held-out row, then the accuracy
        accuracy = float(lines[-1].split()[1])
        self.assertGreaterEqual(accuracy, 0.95)


class StoppedServerTest(unittest.TestCase):
    def test_health_fails_once_the_server_stopped(self):
        workdir = tempfile.mkdtemp(prefix="selu-client-test-")
        server, log, address = start_server(workdir)
        try:
            self.assertEqual(run_client(address, ["health"]).returncode, 0)
        finally:
            server.send_signal(signal.SIGTERM)
            self.assertEqual(server.wait(timeout=30), 0)
            log.close()
            shutil.rmtree(workdir, ignore_errors=True)
        result = run_client(address, ["--timeout", "2s", "health"])
        self.assertEqual(result.returncode, 1, result.stdout)
        self.assertIn("UNAVAILABLE", result.stderr)


if __name__ == "__main__":
    unittest.main()
