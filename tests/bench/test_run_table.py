"""bench/run_table.py on a recorded run: medians, ratios, targets, re-printing.

The figures are made up (this machine's speed is not under test); what is checked is
that the script turns a run's files into the numbers a reader of the table relies on.
"""

import json
import os
import subprocess
import sys
import tempfile
import unittest

SOURCE = os.environ.get("SELU_SOURCE_DIR",
                        os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
SCRIPT = os.path.join(SOURCE, "bench", "run_table.py")


def run_line(target, c, rnd, rps, p99, errors=0, tool="selu-client", model="digits_snn"):
    ok = int(rps * 4)
    return {"tool": tool, "target": target, "model": model, "concurrency": c,
            "connections": 1 if c == 1 else 4, "round": rnd, "rps": rps if ok else 0, "ok": ok,
            "errors": errors, "error_sample": "Unimplemented" if errors else None,
            "p50_ms": p99 / 2, "p99_ms": p99, "server_cpu_s": ok * 20e-6,
            "server_cpu_us_per_req": 20.0}


class RunTableTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.out = self.tmp.name
        runs = []
        # echo-unary rounds 1000, 1200, 1100 -> median 1100; selu-unary median 990.
        for rnd, (echo, selu) in enumerate([(1000, 950), (1200, 990), (1100, 1000)], 1):
            runs.append(run_line("echo-unary", 16, rnd, echo, 1.0))
            runs.append(run_line("selu-unary", 16, rnd, selu, 1.3))
            runs.append(run_line("python", 16, rnd, 40, 50.0))
            runs.append(run_line("node", 16, rnd, 400, 5.0))
            runs.append(run_line("selu-nomon", 16, rnd, 1000, 1.2))
            # A target that failed every request: no ratio may be built on it.
            runs.append(run_line("selu-stream", 16, rnd, 0, 0, errors=100))
            runs.append(run_line("echo-stream", 16, rnd, 3000, 0.5))
        with open(os.path.join(self.out, "runs.jsonl"), "w") as f:
            f.write("".join(json.dumps(r) + "\n" for r in runs))
        engine = {"onnxruntime_node": "1.30.0", "node": "v20", "rounds": 5,
                  "seconds_per_run": 0.3, "statistic": "best of rounds", "threads": 1,
                  "rows": [{"model": "digits_snn", "batch": b, "max_abs_diff": 1e-7, "isa": "x",
                            "engine_rows_per_s": e, "ort_rows_per_s": o,
                            "engine_rows_per_s_median": e, "ort_rows_per_s_median": o,
                            "ratio": e / o, "ratio_median": e / o, "node_call_us": 3.0,
                            "ort_call_us": b * 1e6 / o, "engine_call_us": b * 1e6 / e}
                           for b, e, o in [(1, 300e3, 200e3), (8, 1.1e6, 1e6)]]}
        with open(os.path.join(self.out, "engine.json"), "w") as f:
            json.dump(engine, f)
        startup = {"ready_ms": [120, 140, 400], "ready_ms_median": 140, "ready_ms_max": 400,
                   "rss_idle_mib": 20, "rss_after_load_mib": 31.5, "rss_peak_mib": 32,
                   "load_requests": 5000}
        with open(os.path.join(self.out, "startup.json"), "w") as f:
            json.dump(startup, f)

    def tearDown(self):
        self.tmp.cleanup()

    def collect(self):
        proc = subprocess.run([sys.executable, SCRIPT, "--collect", self.out, "--machine",
                               "Test CPU", "--versions", "node=v20"],
                              capture_output=True, text=True, check=True)
        with open(os.path.join(self.out, "bench-results.json")) as f:
            return proc.stdout, json.load(f)

    def test_medians_and_ratios(self):
        _, doc = self.collect()
        cell = next(c for c in doc["cells"] if c["target"] == "echo-unary")
        self.assertEqual(cell["rps"], 1100)
        self.assertEqual(cell["rounds"], 3)
        (ratios,) = doc["ratios"]
        self.assertAlmostEqual(ratios["selu/echo"], 990 / 1100)
        self.assertAlmostEqual(ratios["selu/python"], 990 / 40)
        self.assertAlmostEqual(ratios["selu/node"], 990 / 400)
        self.assertAlmostEqual(ratios["monitor/no-monitor"], 990 / 1000)
        self.assertAlmostEqual(ratios["p99 selu/echo"], 1.3)
        self.assertNotIn("stream/echo-stream", ratios, "a failed target must give no ratio")

    def test_targets(self):
        _, doc = self.collect()
        met = {t["what"]: t["met"] for t in doc["targets"]}
        self.assertTrue(met["selu-client digits_snn c=16 selu/echo"])      # 0.90 >= 0.85
        self.assertTrue(met["selu-client digits_snn c=16 selu/python"])    # 24.75 >= 20
        self.assertFalse(met["selu-client digits_snn c=16 selu/node"])     # 2.48 < 3
        self.assertFalse(met["selu-client digits_snn c=16 p99 selu/echo"])  # 1.3 > 1.2
        self.assertTrue(met["selu-client digits_snn c=16 monitor/no-monitor"])
        self.assertTrue(met["engine/ORT digits_snn batch 1"])               # 1.5 >= 1.0
        self.assertFalse(met["engine/ORT digits_snn batch 8"])              # 1.1 < 1.2
        self.assertFalse(met["time to ready (worst of 3 starts), ms"])      # 400 > 300
        self.assertTrue(met["RSS serving digits_snn after load, MiB"])

    def test_tables_print_and_reprint(self):
        printed, _ = self.collect()
        self.assertIn("Machine: Test CPU", printed)
        self.assertIn("| 16 | 4 | echo-unary | 1100 |", printed)
        self.assertIn("| selu-stream |", printed)
        self.assertIn("targets met.", printed)
        again = subprocess.run([sys.executable, SCRIPT,
                                os.path.join(self.out, "bench-results.json")],
                               capture_output=True, text=True, check=True).stdout
        self.assertEqual(printed, again)


if __name__ == "__main__":
    unittest.main()
