"""echo_server --mode burst (the async-API prototype of bench/UNARY_OVERHEAD.md) answers
every ModelInfer call of a concurrent load with OK, and its batch histogram accounts for
every call exactly once. Speed is not checked.

Environment (set by ctest): SELU_BINARY_DIR (a built tree).
"""

import json
import os
import re
import signal
import subprocess
import tempfile
import time
import unittest

BINARY = os.environ["SELU_BINARY_DIR"]
ECHO = os.path.join(BINARY, "bench", "echo_server")
CLIENT = os.path.join(BINARY, "client", "selu-client")
REQUEST = {"model_name": "digits_snn", "id": "burst-7",
           "inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 64],
                       "contents": {"fp32_contents": [0.5] * 64}}]}


class EchoBurstTest(unittest.TestCase):
    def test_every_call_answered_and_counted_once(self):
        with tempfile.TemporaryDirectory() as tmp:
            port_file = os.path.join(tmp, "port")
            server = subprocess.Popen(
                [ECHO, "--address", "127.0.0.1:0", "--port-file", port_file, "--mode", "burst",
                 "--work-us", "5", "--work-row-us", "1"],
                stderr=subprocess.PIPE, text=True)
            try:
                for _ in range(100):
                    if os.path.exists(port_file) and open(port_file).read().strip():
                        break
                    time.sleep(0.1)
                port = open(port_file).read().strip()
                target = "127.0.0.1:" + port
                load = subprocess.run(
                    [CLIENT, "bench", target, "-c", "16", "--connections", "4", "-n", "3000",
                     "-d", json.dumps(REQUEST), "-O", "json"],
                    capture_output=True, text=True, timeout=120)
                self.assertEqual(load.returncode, 0, load.stderr)
                report = json.loads(load.stdout)
                self.assertEqual(report["statusCodeDistribution"], {"OK": 3000}, report)
            finally:
                server.send_signal(signal.SIGTERM)
                _, err = server.communicate(timeout=30)
        self.assertEqual(server.returncode, 0, err)
        m = re.search(r"(\d+) calls in (\d+) batches \(mean [0-9.]+\):((?: \d+:\d+)+)", err)
        self.assertIsNotNone(m, err)
        calls, batches = int(m.group(1)), int(m.group(2))
        histogram = [tuple(map(int, p.split(":"))) for p in m.group(3).split()]
        self.assertEqual(calls, 3000, err)
        self.assertEqual(sum(n for _, n in histogram), batches)
        self.assertEqual(sum(size * n for size, n in histogram), calls)
        self.assertTrue(all(1 <= size <= 64 for size, _ in histogram), histogram)


if __name__ == "__main__":
    unittest.main()
