"""bench/run.sh works end to end: a minimal run (echo and selu-serve, unary, concurrency 1,
half a second each, no npm, no engine comparison) must write a bench-results.json whose
runs all got answers. Speed is not checked: the figures of so short a run mean nothing.

Environment (set by ctest): SELU_SOURCE_DIR, SELU_BINARY_DIR (a configured, built tree).
"""

import json
import os
import subprocess
import tempfile
import unittest

SOURCE = os.environ["SELU_SOURCE_DIR"]
BINARY = os.environ["SELU_BINARY_DIR"]


class RunSmokeTest(unittest.TestCase):
    def test_minimal_run_writes_results(self):
        with tempfile.TemporaryDirectory() as out:
            env = dict(os.environ, BUILD=BINARY, OUT=out, SKIP_BUILD="1", ENGINE="0",
                       STARTUP="0", TARGETS="echo-unary selu-unary", MODELS="digits_snn",
                       CONCURRENCY="1", ROUNDS="1", DURATION="0.5", WARMUP="0.2")
            proc = subprocess.run([os.path.join(SOURCE, "bench", "run.sh")], env=env,
                                  capture_output=True, text=True, timeout=240)
            self.assertEqual(proc.returncode, 0, proc.stderr[-3000:])
            self.assertIn("check_peers: selu    digits_snn", proc.stderr)
            with open(os.path.join(out, "bench-results.json")) as f:
                doc = json.load(f)
        targets = sorted(c["target"] for c in doc["cells"])
        self.assertEqual(targets, ["echo-unary", "selu-unary"])
        for cell in doc["cells"]:
            self.assertEqual(cell["errors"], 0, cell)
            self.assertGreater(cell["rps"], 0, cell)
            self.assertIsNotNone(cell["server_cpu_us_per_req"], cell)
        self.assertIn("selu/echo", doc["ratios"][0])
        self.assertIn("| selu-client | digits_snn | 1 |", proc.stdout)


if __name__ == "__main__":
    unittest.main()
