"""Every malformed or refused ModelInfer gets the right status code and a
message that names the problem; the server keeps serving afterwards. Also
queue-full, message-size, deadline and cancellation behaviour."""

import os
import shutil
import tempfile
import unittest

import grpc
import numpy as np

import selu_server as s
from selu_server import pb
from test_metrics import parse_exposition

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


LONG = 20 * 1024  # a 20 KB name: over gRPC's 8 KB metadata limit if quoted whole
SHORT_MESSAGE = 300  # bytes: what a status message quoting client text stays under
FORGED_LINE = "2024-01-01T00:00:00.000000Z E FORGED"


class ClientTextInMessagesTest(s.SharedRepositoryTestCase):
    """Client text that a status message or log line quotes is cut to 128
    bytes plus its size and has its line breaks escaped: a huge name gets
    its real code (not RESOURCE_EXHAUSTED from the client's metadata limit),
    and a name with a newline cannot write a line of its own into the log."""

    SERVER_ARGS = ("--model-control-mode", "explicit", "--load-model", s.BUNDLED_MODEL)

    @classmethod
    def fill_repository(cls, repo):
        # "spare" is not loaded at start: a refused load of it changes nothing
        # that serves.
        for name in (s.BUNDLED_MODEL, "spare"):
            version = os.path.join(repo, name, "1")
            os.makedirs(version)
            shutil.copyfile(s.BUNDLED_ONNX, os.path.join(version, "model.onnx"))

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.x, _ = s.load_heldout()

    def assert_short_refusal(self, code, call, request, *fragments):
        with self.assertRaises(grpc.RpcError) as cm:
            call(request, timeout=30)
        err = cm.exception
        details = err.details() or ""
        self.assertEqual(err.code(), code, details[:500])
        self.assertLess(len(details.encode()), SHORT_MESSAGE, details[:500])
        for fragment in fragments:
            self.assertIn(fragment, details)
        return details

    def test_infer_with_a_20_kb_model_name_is_not_found(self):
        details = self.assert_short_refusal(
            grpc.StatusCode.NOT_FOUND, self.stub.ModelInfer,
            s.infer_request(self.x[:1], model="m" * LONG), "unknown model 'mmm",
            "(20480 bytes)")
        self.assertIn("m" * 128 + "\u2026 (20480 bytes)", details)

    def test_infer_asking_for_a_100_kb_output_name_is_invalid(self):
        self.assert_short_refusal(
            INVALID, self.stub.ModelInfer,
            s.infer_request(self.x[:1], outputs=["o" * (100 * 1024)]), "unknown output 'ooo",
            "(102400 bytes)", "has output")

    def test_infer_with_long_version_input_name_and_datatype_is_invalid(self):
        self.assert_short_refusal(
            INVALID, self.stub.ModelInfer,
            s.infer_request(self.x[:1], version="9" * LONG), "model version '999",
            "(20480 bytes)")
        self.assert_short_refusal(
            INVALID, self.stub.ModelInfer,
            s.infer_request(self.x[:1], input_name="i" * LONG), "unknown input 'iii",
            "(20480 bytes)")
        req = s.infer_request(self.x[:1])
        req.inputs[0].datatype = "D" * LONG
        self.assert_short_refusal(INVALID, self.stub.ModelInfer, req, "has datatype 'DDD",
                                  "(20480 bytes)")

    def test_short_names_are_quoted_unchanged(self):
        self.assert_short_refusal(
            grpc.StatusCode.NOT_FOUND, self.stub.ModelInfer,
            s.infer_request(self.x[:1], model="no_such_model"), "unknown model 'no_such_model'")

    def test_metadata_ready_config_and_monitor_with_a_20_kb_name(self):
        self.assert_short_refusal(
            grpc.StatusCode.NOT_FOUND, self.stub.ModelMetadata,
            pb.ModelMetadataRequest(name="m" * LONG), "unknown model", "(20480 bytes)")
        self.assert_short_refusal(
            grpc.StatusCode.NOT_FOUND, self.stub.ModelConfig,
            pb.ModelConfigRequest(name="m" * LONG), "unknown model", "(20480 bytes)")
        self.assert_short_refusal(
            grpc.StatusCode.NOT_FOUND, self.server.monitor().Check,
            s.monitor_pb2.ModelMonitorRequest(name="m" * LONG), "unknown model",
            "(20480 bytes)")
        # An unknown model is simply not ready; a malformed version is refused.
        self.assertFalse(self.stub.ModelReady(pb.ModelReadyRequest(name="m" * LONG),
                                              timeout=10).ready)
        self.assert_short_refusal(
            INVALID, self.stub.ModelReady,
            pb.ModelReadyRequest(name=s.BUNDLED_MODEL, version="v" * LONG),
            "model version 'vvv", "(20480 bytes)")
        self.assert_short_refusal(
            INVALID, self.server.monitor().Check,
            s.monitor_pb2.ModelMonitorRequest(name=s.BUNDLED_MODEL, version="v" * LONG),
            "model version 'vvv", "(20480 bytes)")

    def test_repository_rpcs_with_20_kb_text(self):
        load = self.stub.RepositoryModelLoad
        self.assert_short_refusal(
            INVALID, load, pb.RepositoryModelLoadRequest(model_name="m" * LONG),
            "model name 'mmm", "(20480 bytes)", "not a plain folder name")
        self.assert_short_refusal(
            INVALID, self.stub.RepositoryModelUnload,
            pb.RepositoryModelUnloadRequest(model_name="m" * LONG), "model name 'mmm",
            "(20480 bytes)")
        self.assert_short_refusal(
            grpc.StatusCode.NOT_FOUND, load,
            pb.RepositoryModelLoadRequest(repository_name="r" * LONG, model_name="spare"),
            "unknown model repository 'rrr", "(20480 bytes)")
        req = pb.RepositoryModelLoadRequest(model_name="spare")
        req.parameters["k" * LONG].string_param = "1"
        self.assert_short_refusal(INVALID, load, req, "unknown parameter 'kkk", "(20480 bytes)")
        req = pb.RepositoryModelLoadRequest(model_name="spare")
        req.parameters["config"].string_param = "{" + "x" * LONG
        self.assert_short_refusal(INVALID, load, req, "parameter 'config'", "config JSON")
        req = pb.RepositoryModelLoadRequest(model_name="spare")
        req.parameters["config"].string_param = '{"name": "%s"}' % ("n" * LONG)
        self.assert_short_refusal(grpc.StatusCode.FAILED_PRECONDITION, load, req,
                                  "model 'spare'", "name 'nnn", "(20480 bytes)",
                                  "does not match the model folder 'spare'")
        # The refused loads changed nothing that serves.
        self.assertTrue(self.stub.ModelReady(pb.ModelReadyRequest(name=s.BUNDLED_MODEL),
                                             timeout=10).ready)

    def test_a_newline_in_client_text_cannot_forge_a_log_line(self):
        name = "x\n" + FORGED_LINE + " name"
        # A config with a key the server does not use: its warning is logged
        # with the model's name and the key, then the load finds no folder.
        req = pb.RepositoryModelLoadRequest(model_name=name)
        req.parameters["config"].string_param = (
            '{"max_batch_size": 8, "k\\r\\n%s key": 1}' % FORGED_LINE)
        details = self.assert_short_refusal(
            grpc.StatusCode.NOT_FOUND, self.stub.RepositoryModelLoad, req,
            "no model folder 'x\\n" + FORGED_LINE + " name'")
        self.assertNotIn("\n", details)
        details = self.assert_short_refusal(
            grpc.StatusCode.NOT_FOUND, self.stub.ModelInfer,
            s.infer_request(self.x[:1], model=name), "unknown model 'x\\n" + FORGED_LINE)
        self.assertNotIn("\n", details)
        log = self.server.log_text()
        # The warning was written, with the name and the key escaped...
        self.assertIn("model 'x\\n" + FORGED_LINE + " name': the load request's 'config'", log)
        self.assertIn("k\\r\\n" + FORGED_LINE + " key", log)
        # ...and no line of the log is one the client wrote.
        forged = [line for line in log.splitlines() if line.startswith(FORGED_LINE)]
        self.assertEqual(forged, [], log[-3000:])


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


def requests_by_code(text, model=s.BUNDLED_MODEL):
    """{code: count} of selu_inference_requests_total{model} on a /metrics page
    (codes counted at least once)."""
    return {lab["code"]: v for lab, v in parse_exposition(text).select(
        "selu_inference_requests_total", model=model, version="1") if v}


def grpc_handled(text, method="ModelInfer"):
    """{grpc_code: count} of grpc_server_handled_total for one inference rpc
    (codes counted at least once)."""
    return {lab["grpc_code"]: v for lab, v in parse_exposition(text).select(
        "grpc_server_handled_total", grpc_service="inference.GRPCInferenceService",
        grpc_method=method) if v}


def queue_depth(server):
    return parse_exposition(server.scrape()).value(
        "selu_inference_queue_depth", model=s.BUNDLED_MODEL, version="1")


def computed_rows(stats):
    """{batch size: engine calls} from ModelStatistics' batch_stats, where every
    engine call is counted, whatever became of its requests."""
    return {b.batch_size: b.compute_infer.count for b in stats.batch_stats
            if b.compute_infer.count}


# Server-side evidence comes from the server's own books: a DEADLINE_EXCEEDED or
# CANCELLED the client raised by itself would leave selu_inference_requests_total
# and grpc_server_handled_total without that code, and a request that was
# computed and then failed would show in execution_count and batch_stats.
WAIT_S = 15.0


class DeadlineAndCancellationTest(s.ServerTestCase):
    def wait_for_code(self, server, code):
        return s.wait_until(lambda: requests_by_code(server.scrape()).get(code, 0) >= 1, WAIT_S,
                            lambda: "the server to count a %s (counted: %s)"
                            % (code, requests_by_code(server.scrape())))

    def test_deadline_while_queued(self):
        # The batcher waits 2 s for company; the request's 0.1 s deadline passes
        # in the queue. The former wakes at the earliest deadline in the queue
        # and answers the expired request without computing it.
        server = self.start_server("--max-queue-delay-us", "2000000")
        stub = server.inference()
        x, _ = s.load_heldout()
        with self.assertRaises(grpc.RpcError) as cm:
            stub.ModelInfer(s.infer_request(x[:3]), timeout=0.1)
        self.assertEqual(cm.exception.code(), grpc.StatusCode.DEADLINE_EXCEEDED)
        # The code above may be the client's own timer: the server must have
        # counted the request as DEADLINE_EXCEEDED itself, out of its queue.
        self.wait_for_code(server, "DEADLINE_EXCEEDED")
        s.wait_until(lambda: queue_depth(server) == 0, WAIT_S, "the queue to empty")
        # Healthy afterwards: a request with time to spare is answered correctly.
        resp = stub.ModelInfer(s.infer_request(x[:2]), timeout=30)
        np.testing.assert_allclose(s.response_output(resp, 2, 10), s.bundled_reference()(x[:2]),
                                   rtol=0, atol=s.TOLERANCE)
        # The server is fresh: its books hold exactly these two requests, and
        # the only engine call was the 2-row one (the expired 3 rows never ran).
        text = server.scrape()
        self.assertEqual(requests_by_code(text), {"OK": 1, "DEADLINE_EXCEEDED": 1})
        self.assertEqual(grpc_handled(text), {"OK": 1, "DeadlineExceeded": 1})
        after = s.statistics(stub)
        self.assertEqual(after.execution_count, 1)
        self.assertEqual(computed_rows(after), {2: 1})
        self.assertEqual(after.inference_count, 2)
        self.assertEqual(after.inference_stats.success.count, 1)
        self.assertEqual(after.inference_stats.fail.count, 1)

    def test_queue_timeout_is_the_servers_deadline(self):
        # default_queue_policy's timeout (0.2 s) expires the request in the queue
        # while the client would wait 30 s: the DEADLINE_EXCEEDED, and its
        # message, can only come from the server.
        repo = tempfile.mkdtemp(prefix="selu-it-queue-timeout-")
        self.addCleanup(shutil.rmtree, repo, True)
        s.link_bundled_model(repo)
        with open(os.path.join(repo, s.BUNDLED_MODEL, "config.pbtxt"), "w") as f:
            f.write('name: "%s"\ndynamic_batching { max_queue_delay_microseconds: 2000000 '
                    'default_queue_policy { default_timeout_microseconds: 200000 } }\n'
                    % s.BUNDLED_MODEL)
        server = self.start_server(repository=repo)
        stub = server.inference()
        x, _ = s.load_heldout()
        with self.assertRaises(grpc.RpcError) as cm:
            stub.ModelInfer(s.infer_request(x[:3]), timeout=30)
        self.assertEqual(cm.exception.code(), grpc.StatusCode.DEADLINE_EXCEEDED,
                         cm.exception.details())
        self.assertRegex(cm.exception.details(),
                         r"^model 'digits_snn': deadline exceeded after \d+ µs in queue$")
        text = server.scrape()
        self.assertEqual(requests_by_code(text), {"DEADLINE_EXCEEDED": 1})
        self.assertEqual(grpc_handled(text), {"DeadlineExceeded": 1})
        after = s.statistics(stub)
        self.assertEqual(after.execution_count, 0)
        self.assertEqual(computed_rows(after), {})
        self.assertEqual(after.inference_count, 0)
        self.assertEqual(after.inference_stats.fail.count, 1)

    def test_cancel_while_queued(self):
        server = self.start_server("--max-queue-delay-us", "2000000")
        stub = server.inference()
        x, _ = s.load_heldout()
        future = stub.ModelInfer.future(s.infer_request(x[:4]), timeout=30)
        s.wait_until(lambda: queue_depth(server) == 1, WAIT_S, "the request to be queued")
        self.assertTrue(future.cancel())
        self.assertTrue(future.cancelled())
        with self.assertRaises(grpc.FutureCancelledError):
            future.result()
        # The client cancelled by itself: the server must have seen it and
        # dropped the request from its queue.
        self.wait_for_code(server, "CANCELLED")
        s.wait_until(lambda: queue_depth(server) == 0, WAIT_S, "the queue to empty")
        # Two requests after the cancelled one was dropped.
        futures = [stub.ModelInfer.future(s.infer_request(x[i:i + 3]), timeout=30)
                   for i in (10, 20)]
        ref = s.bundled_reference()
        for i, f in zip((10, 20), futures):
            np.testing.assert_allclose(s.response_output(f.result(), 3, 10), ref(x[i:i + 3]),
                                       rtol=0, atol=s.TOLERANCE)
        text = server.scrape()
        self.assertEqual(requests_by_code(text), {"OK": 2, "CANCELLED": 1})
        self.assertEqual(grpc_handled(text), {"OK": 2, "Canceled": 1})
        after = s.statistics(stub)
        # Every engine call is in batch_stats: they computed the 6 rows of the
        # two answered requests and not the cancelled request's 4, however the
        # two were batched (together or apart).
        batches = computed_rows(after)
        self.assertEqual(sum(size * n for size, n in batches.items()), 6, batches)
        self.assertEqual(after.execution_count, sum(batches.values()))
        self.assertEqual(after.inference_count, 6)
        self.assertEqual(after.inference_stats.success.count, 2)
        self.assertEqual(after.inference_stats.fail.count, 1)


if __name__ == "__main__":
    unittest.main()
