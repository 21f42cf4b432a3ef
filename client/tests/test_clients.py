"""selu-client, the Python example and the ghz request file against the real selu-serve.

Environment (set by ctest, see client/CMakeLists.txt): SELU_SERVE_BIN,
SELU_CLIENT_BIN, SELU_PY_STUBS, SELU_SOURCE_DIR, and SELU_STUBS_DIR for the
integration tests' server fixture (tests/integration/selu_server.py), which
starts and stops the servers here.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

SOURCE_DIR = os.environ["SELU_SOURCE_DIR"]
sys.path.insert(0, os.path.join(SOURCE_DIR, "tests", "integration"))

from selu_server import (BUNDLED_ONNX, SeluServer, ServerTestCase,  # noqa: E402
                         SharedServerTestCase)

CLIENT_BIN = os.environ["SELU_CLIENT_BIN"]
PY_STUBS = os.environ["SELU_PY_STUBS"]
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


def address_of(server):
    return "127.0.0.1:%d" % server.port


class ClientAssertions:
    """client(): runs selu-client against self.address and checks its exit code."""

    def client(self, args, expect=0, timeout=120):
        result = run_client(self.address, args, timeout)
        self.assertEqual(result.returncode, expect,
                         "selu-client %s: exit %d\nstdout: %s\nstderr: %s"
                         % (" ".join(args), result.returncode, result.stdout[-2000:],
                            result.stderr[-2000:]))
        return result


class ClientTest(ClientAssertions, SharedServerTestCase):
    """One server on the bundled repository (default model control: none)."""

    SERVER_KWARGS = {"metrics": False}

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.workdir = cls.server.workdir
        cls.address = address_of(cls.server)

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
        self.assertEqual(models, [{"name": "digits_snn", "version": "1", "state": "READY",
                                   "reason": ""}])
        table = self.client(["models"]).stdout.splitlines()
        self.assertEqual([line.split() for line in table],
                         [["MODEL", "VERSION", "STATE", "REASON"], ["digits_snn", "1", "READY"]])

    def test_config(self):
        config = json.loads(self.client(["config", "digits_snn"]).stdout)
        self.assertEqual(config["name"], "digits_snn")
        self.assertIsInstance(config["max_batch_size"], int)
        self.assertGreater(config["max_batch_size"], 0)
        self.assertEqual(config["input"][0]["name"], "input")
        self.assertEqual(config["input"][0]["data_type"], "TYPE_FP32")  # proto field names
        self.assertEqual([int(d) for d in config["input"][0]["dims"]], [64])
        result = self.client(["config", "no_such_model"], expect=1)
        self.assertIn("NOT_FOUND", result.stderr)

    def test_load_and_unload_need_explicit_model_control(self):
        for args in (["load", "digits_snn"], ["unload", "digits_snn"]):
            result = self.client(args, expect=1)
            self.assertIn("FAILED_PRECONDITION", result.stderr)
        self.assertEqual(self.client(["health", "--service", "digits_snn"]).stdout.strip(),
                         "SERVING")

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

    def test_infer_classification(self):
        # The bundled model's labels.txt names the classes (zero..nine).
        _, labels = heldout()
        names = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
        for mode in ([], ["--typed"]):
            doc = json.loads(self.client(["infer", "digits_snn", "--csv", HELDOUT_CSV,
                                          "--batch", "64", "--classification", "2"] + mode).stdout)
            output = doc["outputs"][0]
            self.assertEqual((output["name"], output["datatype"], output["shape"]),
                             ("probabilities", "BYTES", [len(labels), 2]))
            top = []
            for row in output["data"]:
                score, index, label = row[0].split(":")
                self.assertEqual(label, names[int(index)])
                self.assertGreaterEqual(float(score), float(row[1].split(":")[0]))
                top.append(int(index))
            correct = sum(p == y for p, y in zip(top, labels))
            self.assertGreaterEqual(correct / len(labels), 0.95)
        lines = self.client(["infer", "digits_snn", "--json", json.dumps([DIGIT_ZERO]),
                             "--classification", "1", "-o", "table"]).stdout.splitlines()
        self.assertEqual(lines[0], "# probabilities BYTES [1, 1]")
        self.assertRegex(lines[1], r"^\s+0 1\.000000:0:zero$")
        result = self.client(["infer", "digits_snn", "--json", "[[1]]", "--classification", "0"],
                             expect=2)
        self.assertIn("K must be a whole number >= 1", result.stderr)

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
        # Open loop: request i is due at start + i/rps, so 300 requests at 200/s
        # cannot all have been sent before request 299 is due, 1.495 s in: a
        # lower bound the schedule guarantees however slow the machine (no
        # upper bound or measured rate is asserted: those depend on load).
        report = self.bench(["--rps", "200", "-n", "300", "-c", "16"])
        self.assertEqual(report["endReason"], "normal")
        self.assertEqual(report["count"], 300)
        self.assertEqual(report["options"]["rps"], 200)
        self.assertEqual(report["statusCodeDistribution"], {"OK": 300})
        self.assertGreaterEqual(report["total"], 299 * 10 ** 9 // 200)

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
        server = SeluServer(metrics=False).start()
        try:
            address = address_of(server)
            self.assertEqual(run_client(address, ["health"]).returncode, 0)
            self.assertEqual(server.stop(), 0)
        finally:
            server.kill()
            server.cleanup_files()
        result = run_client(address, ["--timeout", "2s", "health"])
        self.assertEqual(result.returncode, 1, result.stdout)
        self.assertIn("UNAVAILABLE", result.stderr)


class RepositoryIndexTest(ClientAssertions, SharedServerTestCase):
    """models on a repository where one version of a model does not load: digits_snn,
    and "broken" with the bundled model as version 1 and random bytes as version 2
    (the default version policy serves version 1 and shows version 2 as UNAVAILABLE)."""

    @classmethod
    def setUpClass(cls):
        cls.repository = tempfile.mkdtemp(prefix="selu-client-repo-")
        cls.addClassCleanup(shutil.rmtree, cls.repository, ignore_errors=True)
        for model, version in (("digits_snn", "1"), ("broken", "1"), ("broken", "2")):
            os.makedirs(os.path.join(cls.repository, model, version))
        for model in ("digits_snn", "broken"):
            shutil.copy(BUNDLED_ONNX, os.path.join(cls.repository, model, "1", "model.onnx"))
        with open(os.path.join(cls.repository, "broken", "2", "model.onnx"), "wb") as f:
            f.write(os.urandom(4096))
        cls.SERVER_KWARGS = {"repository": cls.repository, "metrics": False,
                             "ready_service": "broken"}
        super().setUpClass()
        cls.address = address_of(cls.server)

    def test_models_json_shows_the_failed_version(self):
        models = json.loads(self.client(["models", "--json"]).stdout)
        by_version = {(m["name"], m["version"]): m for m in models}
        self.assertEqual(sorted(by_version), [("broken", "1"), ("broken", "2"),
                                              ("digits_snn", "1")])
        for key in (("broken", "1"), ("digits_snn", "1")):
            self.assertEqual((by_version[key]["state"], by_version[key]["reason"]),
                             ("READY", ""))
        failed = by_version[("broken", "2")]
        self.assertEqual(failed["state"], "UNAVAILABLE")
        self.assertIn(os.path.join("broken", "2", "model.onnx"), failed["reason"])
        self.assertEqual(sorted(failed), ["name", "reason", "state", "version"])

    def test_models_table_shows_the_failed_version(self):
        lines = self.client(["models"]).stdout.splitlines()
        self.assertEqual(lines[0].split(), ["MODEL", "VERSION", "STATE", "REASON"])
        rows = {tuple(line.split(None, 3)[:2]): line.split(None, 3)[2:] for line in lines[1:]}
        self.assertEqual(rows[("digits_snn", "1")], ["READY"])
        self.assertEqual(rows[("broken", "1")], ["READY"])
        state, reason = rows[("broken", "2")]
        self.assertEqual(state, "UNAVAILABLE")
        self.assertIn(os.path.join("broken", "2", "model.onnx"), reason)
        # The REASON column starts where its header does.
        self.assertEqual(lines[0].index("REASON"), next(
            line.index(reason) for line in lines if line.endswith(reason)))

    def test_models_ready_lists_only_ready_versions(self):
        models = json.loads(self.client(["models", "--ready", "--json"]).stdout)
        self.assertEqual(sorted((m["name"], m["version"], m["state"]) for m in models),
                         [("broken", "1", "READY"), ("digits_snn", "1", "READY")])
        table = self.client(["models", "--ready"]).stdout.splitlines()
        self.assertEqual(sorted(line.split()[:2] for line in table[1:]),
                         [["broken", "1"], ["digits_snn", "1"]])


class ModelControlTest(ClientAssertions, ServerTestCase):
    """load / unload / config against `selu-serve --model-control-mode explicit`,
    a server per test."""

    def start(self, *args):
        server = self.start_server("--model-control-mode", "explicit",
                                   "--load-model", "digits_snn", *args, metrics=False)
        self.address = address_of(server)
        return server

    def health(self):
        return run_client(self.address, ["health", "--service", "digits_snn"])

    def max_batch_size(self):
        return json.loads(self.client(["config", "digits_snn"]).stdout)["max_batch_size"]

    def test_unload_then_load(self):
        self.start()
        self.assertEqual(self.client(["unload", "digits_snn"]).stdout, "unloaded digits_snn\n")
        health = self.health()
        self.assertNotEqual(health.returncode, 0, health.stdout)
        self.assertNotIn("READY", [m["state"] for m in json.loads(
            self.client(["models", "--json"]).stdout)])
        result = self.client(["infer", "digits_snn", "--json", json.dumps([DIGIT_ZERO])],
                             expect=1)
        self.assertIn("digits_snn", result.stderr)

        self.assertEqual(self.client(["load", "digits_snn"]).stdout, "loaded digits_snn\n")
        health = self.health()
        self.assertEqual((health.returncode, health.stdout.strip()), (0, "SERVING"))
        doc = json.loads(self.client(["infer", "digits_snn", "--json", json.dumps([DIGIT_ZERO]),
                                      "--argmax"]).stdout)
        self.assertEqual(doc["outputs"][0]["argmax"], [0])

    def test_load_with_a_config(self):
        self.start("--max-batch-size", "16")
        self.assertEqual(self.max_batch_size(), 16)
        self.client(["load", "digits_snn", "--config", '{"max_batch_size": 4}'])
        self.assertEqual(self.max_batch_size(), 4)
        config_file = os.path.join(tempfile.mkdtemp(prefix="selu-client-config-"), "c.json")
        self.addCleanup(shutil.rmtree, os.path.dirname(config_file), ignore_errors=True)
        with open(config_file, "w") as f:
            json.dump({"max_batch_size": 8}, f)
        # --timeout after the subcommand still applies (the common flag).
        self.client(["load", "digits_snn", "--config-file", config_file, "--timeout", "60s"])
        self.assertEqual(self.max_batch_size(), 8)
        # Without a config the load reads the repository again: the flag's value.
        self.client(["load", "digits_snn"])
        self.assertEqual(self.max_batch_size(), 16)

    def test_load_errors(self):
        self.start()
        result = self.client(["load", "nope"], expect=1)
        self.assertIn("NOT_FOUND", result.stderr)
        result = self.client(["load", "digits_snn", "--config", '{"max_batch_size": 4'], expect=2)
        self.assertIn("not JSON", result.stderr)
        self.client(["load", "digits_snn", "--config", "[4]"], expect=2)
        self.client(["load", "digits_snn", "--config", "{}", "--config-file", "/dev/null"],
                    expect=2)
        self.client(["load", "digits_snn", "--config-file", "/nonexistent.json"], expect=2)
        result = self.client(["load", "digits_snn", "--config", '{"max_batch_size": -3}'],
                             expect=1)
        self.assertIn("max_batch_size", result.stderr)
        self.client(["load"], expect=2)
        self.client(["unload"], expect=2)
        # None of these changed what serves.
        self.assertEqual(self.health().stdout.strip(), "SERVING")
        self.assertGreater(self.max_batch_size(), 0)


if __name__ == "__main__":
    unittest.main()
