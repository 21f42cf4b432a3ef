"""Every malformed or refused ModelInfer gets the right status code and a
message that names the problem; the server keeps serving afterwards. Also
queue-full, message-size, deadline and cancellation behaviour."""

import time
import unittest

import grpc
import numpy as np

import selu_server as s
from selu_server import pb

INVALID = grpc.StatusCode.INVALID_ARGUMENT


class MalformedRequestTest(s.SharedServerTestCase):
    SERVER_ARGS = ("--max-batch-size", "16")

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.x, _ = s.load_heldout()

    def assert_refused(self, request, code, *fragments):
        with self.assertRaises(grpc.RpcError) as cm:
            self.stub.ModelInfer(request, timeout=10)
        err = cm.exception
        self.assertEqual(err.code(), code, err.details())
        for fragment in fragments:
            self.assertIn(fragment, err.details())
        return err.details()

    def tearDown(self):
        super().tearDown()
        # Whatever was refused, the next good request is answered correctly.
        resp = self.stub.ModelInfer(s.infer_request(self.x[:2]), timeout=10)
        np.testing.assert_allclose(s.response_output(resp, 2, 10),
                                   s.bundled_reference()(self.x[:2]), rtol=0, atol=s.TOLERANCE)

    def test_unknown_model(self):
        self.assert_refused(s.infer_request(self.x[:1], model="no_such_model"),
                            grpc.StatusCode.NOT_FOUND, "no_such_model")

    def test_unknown_version(self):
        self.assert_refused(s.infer_request(self.x[:1], version="3"),
                            grpc.StatusCode.NOT_FOUND, "3", s.BUNDLED_MODEL)

    def test_non_integer_version(self):
        for version in ("latest", "1.0", "-1"):
            with self.subTest(version=version):
                self.assert_refused(s.infer_request(self.x[:1], version=version), INVALID,
                                    version)

    def test_wrong_input_name(self):
        self.assert_refused(s.infer_request(self.x[:1], input_name="pixels"), INVALID,
                            "'pixels'", "'input'")

    def test_wrong_datatype(self):
        req = s.infer_request(self.x[:1])
        req.inputs[0].datatype = "INT32"
        self.assert_refused(req, INVALID, "INT32", "FP32")
        req = pb.ModelInferRequest(model_name=s.BUNDLED_MODEL)
        tensor = req.inputs.add(name="input", datatype="INT32", shape=[1, 64])
        tensor.contents.int_contents.extend([1] * 64)
        self.assert_refused(req, INVALID, "INT32")

    def test_wrong_feature_count(self):
        for raw in (True, False):
            with self.subTest(raw=raw):
                req = s.infer_request(np.zeros((2, 63), np.float32), raw=raw)
                self.assert_refused(req, INVALID, "[2,63]", "64")

    def test_wrong_rank(self):
        req = s.infer_request(np.zeros((2, 8, 8), np.float32))
        self.assert_refused(req, INVALID, "[2,8,8]", "64")

    def test_zero_rows(self):
        self.assert_refused(s.infer_request(np.zeros((0, 64), np.float32)), INVALID, "[0,64]")

    def test_typed_element_count_mismatch(self):
        req = s.infer_request(self.x[:2], raw=False)
        del req.inputs[0].contents.fp32_contents[-1]
        self.assert_refused(req, INVALID, "127", "128")

    def test_raw_byte_length_mismatch(self):
        req = s.infer_request(self.x[:2])
        req.raw_input_contents[0] = req.raw_input_contents[0][:-3]
        self.assert_refused(req, INVALID, "509", "512")

    def test_fp64_raw_sent_with_fp32_byte_count(self):
        req = s.infer_request(self.x[:2])  # FP32 bytes...
        req.inputs[0].datatype = "FP64"    # ...declared FP64: half the bytes needed
        self.assert_refused(req, INVALID, "512", "1024")

    def test_both_raw_and_typed(self):
        req = s.infer_request(self.x[:1], raw=False)
        req.raw_input_contents.append(s.encode_raw(self.x[:1], "FP32"))
        self.assert_refused(req, INVALID, "raw_input_contents", "contents")

    def test_two_inputs(self):
        req = s.infer_request(self.x[:1], raw=False)
        second = req.inputs.add(name="input2", datatype="FP32", shape=[1, 64])
        second.contents.fp32_contents.extend([0.0] * 64)
        self.assert_refused(req, INVALID, "1 input", "2")

    def test_no_input(self):
        req = pb.ModelInferRequest(model_name=s.BUNDLED_MODEL)
        self.assert_refused(req, INVALID, "1 input", "0")

    def test_non_finite_values_name_input_and_index(self):
        for raw in (True, False):
            for value, label in ((np.nan, "NaN"), (np.inf, "+inf"), (-np.inf, "-inf")):
                with self.subTest(raw=raw, value=label):
                    x = self.x[:3].copy()
                    x[2, 5] = value  # flat index 2*64+5 = 133
                    msg = self.assert_refused(s.infer_request(x, raw=raw), INVALID, "'input'",
                                              label, "133")
                    self.assertNotIn("index 0 ", msg)

    def test_non_finite_after_conversion(self):
        # 1e39 is finite as FP64 but overflows FP32; FP16 has its own inf.
        x = self.x[:1].astype(np.float64)
        x[0, 3] = 1e39
        self.assert_refused(s.infer_request(x, datatype="FP64"), INVALID, "'input'", "index 3")
        x16 = self.x[:1].astype(np.float16)
        x16[0, 7] = np.inf
        self.assert_refused(s.infer_request(x16, datatype="FP16"), INVALID, "+inf", "index 7")

    def test_batch_over_max(self):
        self.assert_refused(s.infer_request(self.x[:17]), INVALID, "17", "16")

    def test_batch_at_max_is_fine(self):
        resp = self.stub.ModelInfer(s.infer_request(self.x[:16]), timeout=10)
        self.assertEqual(list(resp.outputs[0].shape), [16, 10])

    def test_unknown_requested_output(self):
        self.assert_refused(s.infer_request(self.x[:1], outputs=["logits"]), INVALID,
                            "'logits'", "'probabilities'")

    def test_fp16_in_typed_contents(self):
        req = s.infer_request(self.x[:1], raw=False)
        req.inputs[0].datatype = "FP16"
        self.assert_refused(req, INVALID, "FP16", "raw_input_contents")


class ResourceLimitTest(s.ServerTestCase):
    def test_queue_full_is_resource_exhausted(self):
        server = self.start_server("--max-queue-size", "2", "--max-queue-delay-us", "2000000",
                                   "--max-batch-size", "64")
        stub = server.inference()
        x, _ = s.load_heldout()
        expected = s.bundled_reference()(x[:8])
        futures = [stub.ModelInfer.future(s.infer_request(x[i:i + 1], request_id=str(i)),
                                          timeout=30) for i in range(8)]
        ok, exhausted = 0, 0
        for i, future in enumerate(futures):
            try:
                resp = future.result()
                np.testing.assert_allclose(s.response_output(resp, 1, 10), expected[i:i + 1],
                                           rtol=0, atol=s.TOLERANCE)
                ok += 1
            except grpc.RpcError as e:
                self.assertEqual(e.code(), grpc.StatusCode.RESOURCE_EXHAUSTED, e.details())
                self.assertIn("queue", e.details())
                exhausted += 1
        # At most the 2 queued plus the one a worker may have taken succeed.
        self.assertGreaterEqual(ok, 2)
        self.assertLessEqual(ok, 3)
        self.assertEqual(ok + exhausted, 8)
        # The queue drains and the server accepts again.
        resp = stub.ModelInfer(s.infer_request(x[:1]), timeout=10)
        self.assertEqual(list(resp.outputs[0].shape), [1, 10])

    def test_message_over_max_receive_size(self):
        server = self.start_server("--max-receive-message-bytes", "4096")
        stub = server.inference()
        x, _ = s.load_heldout()
        small = stub.ModelInfer(s.infer_request(x[:2]), timeout=10)  # ~600 bytes
        self.assertEqual(list(small.outputs[0].shape), [2, 10])
        with self.assertRaises(grpc.RpcError) as cm:
            stub.ModelInfer(s.infer_request(x[:32]), timeout=10)  # ~8 KiB
        self.assertEqual(cm.exception.code(), grpc.StatusCode.RESOURCE_EXHAUSTED)
        self.assertIn("4096", cm.exception.details())
        # The connection survives the refusal.
        self.assertTrue(stub.ServerReady(pb.ServerReadyRequest(), timeout=5).ready)


class DeadlineAndCancellationTest(s.ServerTestCase):
    def test_deadline_while_queued(self):
        server = self.start_server("--max-queue-delay-us", "1000000")
        stub = server.inference()
        x, _ = s.load_heldout()
        t0 = time.monotonic()
        with self.assertRaises(grpc.RpcError) as cm:
            stub.ModelInfer(s.infer_request(x[:3]), timeout=0.1)
        self.assertEqual(cm.exception.code(), grpc.StatusCode.DEADLINE_EXCEEDED)
        self.assertLess(time.monotonic() - t0, 0.9, "the deadline was not honoured")
        # Healthy afterwards: a request with time to spare is answered
        # correctly, and the expired one was never computed (the server is
        # fresh, so its statistics count exactly these two requests).
        resp = stub.ModelInfer(s.infer_request(x[:2]), timeout=10)
        np.testing.assert_allclose(s.response_output(resp, 2, 10), s.bundled_reference()(x[:2]),
                                   rtol=0, atol=s.TOLERANCE)
        self.assertTrue(stub.ServerReady(pb.ServerReadyRequest(), timeout=5).ready)
        after = s.statistics(stub)
        self.assertEqual(after.inference_count, 2)
        self.assertEqual(after.inference_stats.success.count, 1)
        self.assertEqual(after.inference_stats.fail.count, 1)

    def test_cancel_while_queued(self):
        server = self.start_server("--max-queue-delay-us", "1000000")
        stub = server.inference()
        x, _ = s.load_heldout()
        future = stub.ModelInfer.future(s.infer_request(x[:4]), timeout=30)
        time.sleep(0.2)
        self.assertTrue(future.cancel())
        self.assertTrue(future.cancelled())
        with self.assertRaises(grpc.FutureCancelledError):
            future.result()
        # Two requests that share a batch after the cancelled one is dropped.
        futures = [stub.ModelInfer.future(s.infer_request(x[i:i + 3]), timeout=30)
                   for i in (10, 20)]
        ref = s.bundled_reference()
        for i, f in zip((10, 20), futures):
            np.testing.assert_allclose(s.response_output(f.result(), 3, 10), ref(x[i:i + 3]),
                                       rtol=0, atol=s.TOLERANCE)
        # Give the server time to notice the cancellation if it has not yet.
        deadline = time.monotonic() + 5
        while True:
            after = s.statistics(stub)
            if after.inference_stats.fail.count > 0 or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        self.assertEqual(after.inference_count, 6,
                         "the cancelled request's rows were computed")
        self.assertEqual(after.inference_stats.success.count, 2)
        self.assertEqual(after.inference_stats.fail.count, 1)


if __name__ == "__main__":
    unittest.main()
