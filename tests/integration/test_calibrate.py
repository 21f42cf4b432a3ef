"""`selu-serve calibrate`: the real binary on a PyTorch SNN and CSV data.

The reference_stats.json it writes beside the model must hold the statistics
numpy computes from the same rows through the torch model's own layers, and
the real server must load the model with it (no 'bad reference' warning; a
tampered copy beside it does get one, so the check can fail). Bad data, a
wrong field count, a missing model and usage errors exit non-zero with a
message naming the problem.
"""

import json
import os
import re
import shutil
import subprocess
import tempfile
import unittest

import numpy as np

import selu_server as s

SIZES = (12, 32, 32, 3)
ROWS = 1500
# The engine computes in fp32, the reference below in float64: per-element
# differences are ~1e-7, and so are those of the moments (measured: <= 3e-7).
RTOL = 1e-4
ATOL = 1e-6


def layer_outputs(net, x):
    """Each dense layer's output after its activation, in float64."""
    import torch

    outputs, h = [], torch.from_numpy(np.asarray(x, dtype=np.float64))
    modules = list(net)
    with torch.no_grad():
        for i, module in enumerate(modules):
            h = module(h)
            last = i + 1 == len(modules)
            if isinstance(module, torch.nn.SELU) or (last and isinstance(module, torch.nn.Linear)):
                outputs.append(h.numpy())
    return outputs


# Shared with test_drift.py.
export_lecun_snn = s.export_lecun_snn
write_csv = s.write_csv
calibrate = s.run_calibrate


class CalibrateTest(s.ServerTestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="selu-it-calibrate-")
        cls.repo = os.path.join(cls.tmp, "repo")
        cls.model = os.path.join(cls.repo, "snn", "1", "model.onnx")
        cls.net = export_lecun_snn(cls.model, SIZES, seed=3)
        rng = np.random.default_rng(5)
        cls.x = rng.standard_normal((ROWS, SIZES[0])).astype(np.float32)
        cls.data = os.path.join(cls.tmp, "data.csv")
        write_csv(cls.data, cls.x)
        import onnx

        cls.gemm_names = [n.name for n in onnx.load(cls.model).graph.node
                          if n.op_type in ("Gemm", "MatMul")]

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def scratch_dir(self):
        path = tempfile.mkdtemp(prefix="case-", dir=self.tmp)
        self.addCleanup(shutil.rmtree, path, True)
        return path

    def assert_stats(self, got, tensor, what):
        tensor = np.asarray(tensor, dtype=np.float64)
        with self.subTest(tensor=what):
            self.assertEqual(got["features"], tensor.shape[1])
            np.testing.assert_allclose(got["mean"], tensor.mean(), rtol=RTOL, atol=ATOL)
            np.testing.assert_allclose(got["variance"], tensor.var(), rtol=RTOL, atol=ATOL)
            np.testing.assert_allclose(got["unit_mean"], tensor.mean(axis=0), rtol=RTOL,
                                       atol=ATOL)
            np.testing.assert_allclose(got["unit_variance"], tensor.var(axis=0), rtol=RTOL,
                                       atol=ATOL)

    def test_reference_matches_torch_and_the_server_loads_it(self):
        out = calibrate("--model", self.model, "--data", self.data, "--batch-rows", "100")
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertEqual(out.stderr, "")
        written = os.path.join(os.path.dirname(self.model), "reference_stats.json")
        self.assertIn("on %d rows" % ROWS, out.stdout)
        self.assertIn("(header skipped)", out.stdout)
        self.assertIn("wrote " + written, out.stdout)
        # Written through a temporary file and a rename: nothing else is left.
        self.assertEqual(sorted(os.listdir(os.path.dirname(self.model))),
                         ["model.onnx", "reference_stats.json"])

        with open(written) as f:
            ref = json.load(f)
        self.assertEqual(ref["format"], 1)
        self.assertEqual(ref["split"], "calibration")
        self.assertEqual(ref["rows"], ROWS)
        self.assert_stats(ref["input"], self.x, "input")
        outputs = layer_outputs(self.net, self.x)
        self.assertEqual(len(ref["layers"]), len(outputs))
        for k, (layer, tensor) in enumerate(zip(ref["layers"], outputs)):
            self.assertEqual(layer["index"], k)
            self.assertEqual(layer["name"], self.gemm_names[k])
            self.assertEqual(layer["activation"], "Selu" if k + 1 < len(outputs) else "Identity")
            self.assert_stats(layer, tensor, "layer %d" % k)
        # The summary prints each layer's figures.
        for k, layer in enumerate(ref["layers"]):
            self.assertRegex(out.stdout, r"layer %d .*%s" % (k, re.escape(
                "mean %+.4f  variance %.4f" % (layer["mean"], layer["variance"]))))

        # A copy whose reference the server must refuse, beside it.
        tampered = os.path.join(self.repo, "snn_tampered", "1")
        os.makedirs(tampered, exist_ok=True)
        shutil.copyfile(self.model, os.path.join(tampered, "model.onnx"))
        ref["layers"][0]["unit_variance"][7] = -1.0
        with open(os.path.join(tampered, "reference_stats.json"), "w") as f:
            json.dump(ref, f)
        self.addCleanup(shutil.rmtree, os.path.dirname(tampered), True)

        server = self.start_server(repository=self.repo)

        def tampered_model_warned():
            text = server.log_text()
            return text if "model 'snn_tampered' version 1: bad reference" in text else None

        log = s.wait_until(tampered_model_warned, 30, "the tampered model's bad-reference warning")
        self.assertIn("layers[0].unit_variance[7] is negative", log)
        self.assertRegex(log, r"model 'snn' version 1 READY")
        self.assertNotRegex(log, r"model 'snn' version 1: bad reference")

    def test_output_elsewhere_is_noted(self):
        folder = self.scratch_dir()
        out = calibrate("--model", self.model, "--data", self.data, "--output", folder)
        self.assertEqual(out.returncode, 0, out.stderr)
        written = os.path.join(folder, "reference_stats.json")
        self.assertTrue(os.path.isfile(written))
        self.assertIn("note: the server reads a model's reference from", out.stdout)

    def assert_refused(self, data_text, expected_message):
        folder = self.scratch_dir()
        data = os.path.join(folder, "bad.csv")
        with open(data, "w") as f:
            f.write(data_text)
        output = os.path.join(folder, "reference_stats.json")
        out = calibrate("--model", self.model, "--data", data, "--output", output)
        self.assertEqual(out.returncode, 1, out.stdout + out.stderr)
        self.assertEqual(out.stderr, "selu-serve calibrate: %s:%s\n" % (data, expected_message))
        self.assertEqual(out.stdout, "")
        self.assertEqual(os.listdir(folder), ["bad.csv"])

    def test_bad_value_names_line_and_field(self):
        rows = ["f%d" % j for j in range(12)], ["0.5"] * 12, ["1"] * 12, ["1"] * 2 + ["abc"]
        text = "\n".join(",".join(r + ["2"] * (12 - len(r))) for r in rows) + "\n"
        self.assert_refused(text, "4:3: 'abc' is not a number")

    def test_non_finite_value_names_line_and_field(self):
        self.assert_refused("1,2,3,4,5,6,7,8,9,10,11,12\r\n1,2,3,4,5,6,7,8,9,10,11,inf\r\n",
                            "2:12: 'inf' is not finite")

    def test_wrong_field_count(self):
        self.assert_refused("1,2,3,4,5,6,7,8,9,10,11,12\n" * 2 + "1,2,3,4,5,6,7,8,9,10,11\n",
                            "3: has 11 fields, the model takes 12")

    def test_one_row_is_not_enough(self):
        self.assert_refused("f0,f1,f2,f3,f4,f5,f6,f7,f8,f9,f10,f11\n" + "1," * 11 + "1\n",
                            " calibration needs at least 2 rows of data, got 1")

    def test_missing_model_names_the_path(self):
        missing = os.path.join(self.scratch_dir(), "absent", "model.onnx")
        out = calibrate("--model", missing, "--data", self.data)
        self.assertEqual(out.returncode, 1, out.stderr)
        self.assertTrue(out.stderr.startswith("selu-serve calibrate: "), out.stderr)
        self.assertIn(missing, out.stderr)
        self.assertFalse(os.path.exists(os.path.dirname(missing)))

    def test_usage(self):
        out = calibrate("--help")
        self.assertEqual(out.returncode, 0, out.stderr)
        for option in ("--model", "--data", "--output", "--batch-rows"):
            self.assertIn(option, out.stdout)
        out = calibrate("--model", self.model)
        self.assertEqual(out.returncode, 2)
        self.assertIn("selu-serve calibrate: --data is required", out.stderr)
        out = calibrate("--model", self.model, "--data", self.data, "--batch-rows", "0")
        self.assertEqual(out.returncode, 2)
        self.assertIn("--batch-rows", out.stderr)
        # The server's own command line is unchanged.
        out = subprocess.run([s.SERVE_BIN, "--help"], capture_output=True, text=True, timeout=30)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertIn("--model-repository", out.stdout)
        self.assertNotIn("--batch-rows", out.stdout)


if __name__ == "__main__":
    unittest.main()
