"""Numbers: every held-out row through ModelInfer, in every encoding and at
several batch sizes, equals the numpy reference (models/onnx_mlp_eval.py)
within 1e-5; two models served side by side.

Tolerance for converted datatypes. The server converts FP64/FP16/BF16 to FP32
before computing. Every FP16 and BF16 value is exactly representable in FP32,
and FP64 → FP32 is the correctly rounded cast numpy also does, so the server
computes on exactly the FP32 values we compute the reference on (the
reference input is the value the client actually sent, cast to FP32). The
conversion therefore adds no error and the tolerance stays 1e-5. The held-out
pixels (integers 0..16) are exact in every format; the fractional-input tests
make rounding matter, so a conversion that truncates or mis-decodes shows.
"""

import os
import shutil
import tempfile
import unittest

import numpy as np

import selu_server as s

MAX_BATCH = 64


class BundledModelCorrectnessTest(s.SharedServerTestCase):
    SERVER_ARGS = ("--max-batch-size", str(MAX_BATCH))

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.x, cls.labels = s.load_heldout()
        cls.ref = s.bundled_reference()
        cls.expected = cls.ref(cls.x)

    def infer_all(self, x, batch, **request_kwargs):
        """Sends x in requests of `batch` rows; returns the stacked outputs."""
        outs = []
        for start in range(0, len(x), batch):
            chunk = x[start:start + batch]
            resp = self.stub.ModelInfer(s.infer_request(chunk, **request_kwargs), timeout=30)
            outs.append(s.response_output(resp, len(chunk), 10))
        return np.concatenate(outs)

    def assert_matches(self, got, expected):
        np.testing.assert_allclose(got, expected, rtol=0, atol=s.TOLERANCE)

    def test_reference_itself_is_accurate(self):
        # Guards the comparison below: a broken reference would make it vacuous.
        self.assertGreaterEqual(np.mean(np.argmax(self.expected, 1) == self.labels), 0.95)
        self.assertEqual(self.x.shape, (360, 64))

    def test_heldout_raw_fp32_various_batch_sizes(self):
        for batch in (1, 7, 33, MAX_BATCH):
            with self.subTest(batch=batch):
                got = self.infer_all(self.x, batch, raw=True)
                self.assert_matches(got, self.expected)
                accuracy = np.mean(np.argmax(got, 1) == self.labels)
                self.assertGreaterEqual(accuracy, 0.95)

    def test_heldout_typed_fp32(self):
        for batch in (1, 50):
            with self.subTest(batch=batch):
                got = self.infer_all(self.x, batch, raw=False)
                self.assert_matches(got, self.expected)
                self.assertGreaterEqual(np.mean(np.argmax(got, 1) == self.labels), 0.95)

    def test_heldout_fp64_raw_and_typed(self):
        x64 = self.x.astype(np.float64)
        for raw in (True, False):
            with self.subTest(raw=raw):
                got = self.infer_all(x64, 40, datatype="FP64", raw=raw)
                self.assert_matches(got, self.expected)

    def test_heldout_fp16_and_bf16_raw(self):
        for datatype in ("FP16", "BF16"):
            with self.subTest(datatype=datatype):
                got = self.infer_all(self.x, 60, datatype=datatype, raw=True)
                self.assert_matches(got, self.expected)

    def fractional_inputs(self):
        rng = np.random.default_rng(7)
        return self.x[:64] + rng.uniform(-0.5, 0.5, size=(64, 64))

    def test_fractional_fp64_is_rounded_like_numpy(self):
        x64 = self.fractional_inputs()
        expected = self.ref(x64.astype(np.float32))
        for raw in (True, False):
            with self.subTest(raw=raw):
                self.assert_matches(self.infer_all(x64, 16, datatype="FP64", raw=raw), expected)

    def test_fractional_fp16_decodes_exactly(self):
        x16 = self.fractional_inputs().astype(np.float16)
        got = self.infer_all(x16, 16, datatype="FP16", raw=True)
        self.assert_matches(got, self.ref(x16.astype(np.float32)))
        # Sanity: half rounding moved the inputs, so the check above is not a
        # copy of the FP32 one.
        self.assertGreater(np.abs(x16.astype(np.float64) - self.fractional_inputs()).max(), 1e-4)

    def test_fractional_bf16_decodes_exactly(self):
        x = self.fractional_inputs().astype(np.float32)
        bits = s.to_bf16_bits(x)
        sent = s.bf16_bits_to_float(bits)
        got = self.infer_all(x, 16, datatype="BF16", raw=True)
        self.assert_matches(got, self.ref(sent))
        self.assertGreater(np.abs(sent - x).max(), 1e-3)

    def test_one_row_alone_equals_the_same_row_in_a_batch(self):
        row = self.x[17:18]
        alone = s.response_output(self.stub.ModelInfer(s.infer_request(row), timeout=10), 1, 10)
        batch = s.response_output(self.stub.ModelInfer(s.infer_request(self.x[:MAX_BATCH]),
                                                       timeout=10), MAX_BATCH, 10)
        np.testing.assert_allclose(alone[0], batch[17], rtol=0, atol=s.TOLERANCE)


class TwoModelsTest(s.ServerTestCase):
    """The bundled 64→256→256→256→10 model and a 37→129→65→3 model exported
    with torch here, in one repository, served by one server."""

    @classmethod
    def setUpClass(cls):
        cls.repo = tempfile.mkdtemp(prefix="selu-it-repo-")
        s.link_bundled_model(cls.repo)
        path = os.path.join(cls.repo, "odd_mlp", "1", "model.onnx")
        s.export_selu_mlp(path, [37, 129, 65, 3], seed=11)
        cls.odd = s.ReferenceModel(path, "odd_mlp")

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.repo, ignore_errors=True)

    def test_both_models_answer_correctly_side_by_side(self):
        server = self.start_server(repository=self.repo)
        stub = server.inference()
        from selu_server import pb
        self.assertTrue(stub.ServerReady(pb.ServerReadyRequest(), timeout=5).ready)
        for name in ("digits_snn", "odd_mlp"):
            self.assertTrue(stub.ModelReady(pb.ModelReadyRequest(name=name), timeout=5).ready)
        meta = stub.ModelMetadata(pb.ModelMetadataRequest(name="odd_mlp"), timeout=5)
        self.assertEqual((meta.inputs[0].name, list(meta.inputs[0].shape)), ("x", [-1, 37]))
        self.assertEqual((meta.outputs[0].name, list(meta.outputs[0].shape)), ("y", [-1, 3]))

        rng = np.random.default_rng(3)
        x_odd = rng.normal(size=(50, 37)).astype(np.float32)
        x_digits, labels = s.load_heldout()
        ref_digits = s.bundled_reference()
        # Interleave the two models' requests (futures, so they overlap).
        futures = []
        for i in range(0, 50, 5):
            futures.append(("odd", i, stub.ModelInfer.future(
                s.infer_request(x_odd[i:i + 5], model="odd_mlp", input_name="x"), timeout=30)))
            futures.append(("digits", i, stub.ModelInfer.future(
                s.infer_request(x_digits[i:i + 5]), timeout=30)))
        for kind, i, future in futures:
            resp = future.result()
            if kind == "odd":
                self.assertEqual(resp.model_name, "odd_mlp")
                np.testing.assert_allclose(s.response_output(resp, 5, 3),
                                           self.odd(x_odd[i:i + 5]), rtol=0, atol=s.TOLERANCE)
            else:
                self.assertEqual(resp.model_name, "digits_snn")
                np.testing.assert_allclose(s.response_output(resp, 5, 10),
                                           ref_digits(x_digits[i:i + 5]), rtol=0,
                                           atol=s.TOLERANCE)
        # The unnormalized odd model's outputs are not probabilities: a server
        # that mixed the models up would not pass the checks above.
        self.assertGreater(np.abs(self.odd(x_odd)).max(), 1.0)


if __name__ == "__main__":
    unittest.main()
