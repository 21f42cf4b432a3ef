"""Issue 13's graph models through the real server: several named inputs and
outputs (a VAE encoder's mu/logvar heads, wide & deep's two inputs), residual
SNNs, an unrolled Elman RNN over an [N, 8, 4] input. The models and their
PyTorch references come from tests/parity/graph_cases.py (the parity cases);
expected values are the PyTorch modules evaluated here in float64, never the
server. Tolerance 1e-4 (the parity tolerance). Every parity graph case is
served (the feature slicing, mixed activations, BatchNorm and FP16 ones too).
Also: metadata of every port,
typed and raw contents, inputs sent out of order, requested outputs,
concurrent callers merged by the batcher, refused requests, and the models of
graph_refusals.py failing to load with a message naming the node.
"""

import os
import shutil
import sys
import tempfile
import threading
import unittest

import grpc
import numpy as np

import selu_server as s
from selu_server import pb

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(s.SOURCE_DIR, "tests", "parity"))
import graph_cases  # noqa: E402
import graph_refusals  # noqa: E402

TOLERANCE = 1e-4
INVALID = grpc.StatusCode.INVALID_ARGUMENT
# A version that does not load: RepositoryModelLoad answers FAILED_PRECONDITION
# (as for test_repository.py's corrupt model).
LOAD_REFUSED_CODE = grpc.StatusCode.FAILED_PRECONDITION
# Long enough that requests issued together always share a batch.
QUEUE_DELAY_US = 100000
SERVED = ("vae_encoder", "residual_snn", "residual_add_before_selu", "rnn_unrolled",
          "wide_and_deep", "feature_slicing", "graph_mixed_activations",
          "batchnorm_after_gemm", "graph_fp16_weights")
# What ModelMetadata must list (graph order; -1: the batch), written out here
# rather than read back from the ONNX files.
PORTS = {
    "vae_encoder": ([("x", [-1, 20])], [("mu", [-1, 8]), ("logvar", [-1, 8])]),
    "residual_snn": ([("x", [-1, 24])], [("y", [-1, 5])]),
    "residual_add_before_selu": ([("x", [-1, 24])], [("y", [-1, 5])]),
    "rnn_unrolled": ([("x", [-1, 8, 4])], [("y", [-1, 3])]),
    "wide_and_deep": ([("wide", [-1, 6]), ("deep", [-1, 10])], [("score", [-1, 2])]),
    "feature_slicing": ([("x", [-1, 8, 4])], [("y", [-1, 4])]),
    "graph_mixed_activations": ([("x", [-1, 14])], [("y", [-1, 6])]),
    "batchnorm_after_gemm": ([("x", [-1, 21])], [("y", [-1, 5])]),
    "graph_fp16_weights": ([("x", [-1, 12])], [("a", [-1, 4]), ("b", [-1, 2])]),
}
ROWS = 40


def make_request(model, inputs, mode="raw", outputs=(), placeholders=True):
    """A ModelInferRequest sending `inputs` ([(name, array)], in that order) as
    FP32; mode "raw", "typed", or {name: "raw"|"typed"} (a mix: then
    raw_input_contents keeps one entry per input, empty for the typed ones)."""
    modes = {n: mode for n, _ in inputs} if isinstance(mode, str) else dict(mode)
    any_raw = "raw" in modes.values()
    req = pb.ModelInferRequest(model_name=model)
    for name, a in inputs:
        a = np.asarray(a, np.float32)
        tensor = req.inputs.add(name=name, datatype="FP32", shape=list(a.shape))
        if modes[name] == "typed":
            tensor.contents.fp32_contents.extend(a.ravel().tolist())
        if modes[name] == "raw":
            req.raw_input_contents.append(s.encode_raw(a, "FP32"))
        elif any_raw and placeholders:
            req.raw_input_contents.append(b"")
    for name in outputs:
        req.outputs.add(name=name)
    return req


def response_outputs(resp, rows):
    """{name: float32 array} of every output of `resp`, raw or typed."""
    got = {}
    raw = len(resp.raw_output_contents) > 0
    if raw and len(resp.raw_output_contents) != len(resp.outputs):
        raise AssertionError("%d raw_output_contents for %d outputs"
                             % (len(resp.raw_output_contents), len(resp.outputs)))
    for i, out in enumerate(resp.outputs):
        if out.name in got:
            raise AssertionError("output %r twice" % out.name)
        if out.datatype != "FP32":
            raise AssertionError("output %r datatype %r" % (out.name, out.datatype))
        shape = list(out.shape)
        if not shape or shape[0] != rows:
            raise AssertionError("output %r shape %s for %d rows" % (out.name, shape, rows))
        if raw:
            if len(out.contents.fp32_contents):
                raise AssertionError("output %r has raw and typed contents" % out.name)
            data = np.frombuffer(resp.raw_output_contents[i], dtype="<f4")
        else:
            data = np.asarray(out.contents.fp32_contents, dtype=np.float32)
        if data.size != int(np.prod(shape)):
            raise AssertionError("output %r holds %d values for shape %s"
                                 % (out.name, data.size, shape))
        got[out.name] = data.reshape(shape)
    return got


class GraphModelsTest(s.SharedRepositoryTestCase):
    SERVER_ARGS = ("--max-batch-size", "64", "--max-queue-delay-us", str(QUEUE_DELAY_US))

    @classmethod
    def fill_repository(cls, repo):
        cls.graphs, cls.samples = {}, {}
        rng = np.random.default_rng(20132)
        for name in SERVED:
            g = graph_cases.build(name)
            path = os.path.join(repo, name, "1", "model.onnx")
            os.makedirs(os.path.dirname(path))
            s.onnx.save(g.model, path)
            cls.graphs[name] = g
            xs = []
            for _, shape in PORTS[name][0]:
                x = rng.normal(0.0, 1.5, size=(ROWS, *shape[1:])).astype(np.float32)
                x[::5] *= 4.0  # saturation and negative tails
                xs.append(x)
            cls.samples[name] = xs

    # ---- helpers

    def expected(self, name, xs):
        """{output name: float64 array}: the PyTorch module on xs (graph order)."""
        ys = self.graphs[name].reference(xs)
        return {out: y for (out, _), y in zip(PORTS[name][1], ys)}

    def named_inputs(self, name, rows=slice(None)):
        return [(n, x[rows]) for (n, _), x in zip(PORTS[name][0], self.samples[name])]

    def infer(self, name, inputs, stub=None, **kwargs):
        rows = len(inputs[0][1])
        resp = (stub or self.stub).ModelInfer(make_request(name, inputs, **kwargs),
                                              timeout=30 * s.SLOWDOWN)
        self.assertEqual(resp.model_name, name)
        return response_outputs(resp, rows)

    def assert_outputs(self, got, want, names=None):
        """got holds exactly `names` (default: all of want), each matching."""
        names = list(want) if names is None else names
        self.assertEqual(sorted(got), sorted(names))
        for out in names:
            self.assertEqual(got[out].shape, want[out].shape, out)
            np.testing.assert_allclose(got[out], want[out], rtol=0, atol=TOLERANCE,
                                       err_msg="output %r" % out)

    def assert_refused(self, request, code, *fragments):
        with self.assertRaises(grpc.RpcError) as cm:
            self.stub.ModelInfer(request, timeout=10)
        err = cm.exception
        self.assertEqual(err.code(), code, err.details())
        for fragment in fragments:
            self.assertIn(fragment, err.details())
        return err.details()

    # ---- tests

    def test_every_model_ready(self):
        for name in SERVED:
            with self.subTest(model=name):
                resp = self.stub.ModelReady(pb.ModelReadyRequest(name=name), timeout=10)
                self.assertTrue(resp.ready, self.server.log_text()[-3000:])

    def test_metadata_lists_every_input_and_output(self):
        for name, (inputs, outputs) in PORTS.items():
            with self.subTest(model=name):
                meta = self.stub.ModelMetadata(pb.ModelMetadataRequest(name=name), timeout=10)
                self.assertEqual(meta.name, name)
                for got, want in ((meta.inputs, inputs), (meta.outputs, outputs)):
                    self.assertEqual([(t.name, list(t.shape)) for t in got], want)
                    self.assertEqual([t.datatype for t in got], ["FP32"] * len(want))

    def test_typed_and_raw_match_pytorch(self):
        for name in SERVED:
            for rows in (slice(None), slice(5, 6), slice(3, 10)):
                inputs = self.named_inputs(name, rows)
                want = self.expected(name, [x for _, x in inputs])
                for mode in ("raw", "typed"):
                    with self.subTest(model=name, rows=rows, mode=mode):
                        self.assert_outputs(self.infer(name, inputs, mode=mode), want)

    def test_mixed_typed_and_raw_inputs(self):
        # One input typed, the other raw: raw_input_contents holds the raw
        # inputs' data in request order (the typed one has none).
        name = "wide_and_deep"
        inputs = self.named_inputs(name)
        want = self.expected(name, [x for _, x in inputs])
        for typed in ("wide", "deep"):
            with self.subTest(typed=typed):
                mode = {n: "typed" if n == typed else "raw" for n, _ in inputs}
                req = make_request(name, inputs, mode=mode, placeholders=False)
                resp = self.stub.ModelInfer(req, timeout=30 * s.SLOWDOWN)
                self.assert_outputs(response_outputs(resp, ROWS), want)
        # An empty raw entry beside the typed input's contents: as many raw
        # entries as inputs, so the typed one has both (the protocol says
        # raw_input_contents then holds every input).
        req = make_request(name, inputs, mode={"wide": "typed", "deep": "raw"})
        self.assert_refused(req, INVALID, "'wide'", "raw_input_contents")

    def test_inputs_sent_in_another_order(self):
        name = "wide_and_deep"
        inputs = self.named_inputs(name)
        want = self.expected(name, [x for _, x in inputs])
        for mode in ("raw", "typed"):
            with self.subTest(mode=mode):
                self.assert_outputs(self.infer(name, inputs[::-1], mode=mode), want)

    def test_requested_outputs(self):
        name = "vae_encoder"
        inputs = self.named_inputs(name, slice(0, 7))
        want = self.expected(name, [x for _, x in inputs])
        for requested in (["logvar"], ["mu"], ["logvar", "mu"], ["mu", "logvar"]):
            for mode in ("raw", "typed"):
                with self.subTest(outputs=requested, mode=mode):
                    got = self.infer(name, inputs, mode=mode, outputs=requested)
                    self.assert_outputs(got, want, names=requested)

    def test_concurrent_callers_are_batched_and_get_their_rows(self):
        for name in ("wide_and_deep", "vae_encoder", "rnn_unrolled", "graph_fp16_weights"):
            with self.subTest(model=name):
                self.run_concurrent_callers(name)

    def run_concurrent_callers(self, name):
        callers, per_caller = 8, 4
        expected = self.expected(name, self.samples[name])
        before = s.statistics(self.stub, model=name)
        channels = [self.server.new_channel() for _ in range(2)]
        self.addCleanup(lambda: [ch.close() for ch in channels])
        stubs = [self.server.inference(ch) for ch in channels]
        barrier = threading.Barrier(callers)
        errors, requests = [], []

        def caller(c):
            try:
                stub = stubs[c % len(stubs)]
                barrier.wait(timeout=30 * s.SLOWDOWN)
                futures = []
                for i in range(per_caller):
                    start, rows = (c * 5 + i * 3) % 36, 1 + (c + i) % 4   # 1..4 rows
                    inputs = self.named_inputs(name, slice(start, start + rows))
                    if (c + i) % 3 == 0:
                        inputs = inputs[::-1]
                    req = make_request(name, inputs, mode="raw" if i % 2 == 0 else "typed")
                    futures.append((start, rows, stub.ModelInfer.future(
                        req, timeout=60 * s.SLOWDOWN)))
                for start, rows, future in futures:
                    got = response_outputs(future.result(), rows)
                    if sorted(got) != sorted(expected):
                        raise AssertionError("caller %d: outputs %s" % (c, sorted(got)))
                    for out, want in expected.items():
                        err = np.abs(got[out] - want[start:start + rows]).max()
                        if err > TOLERANCE:
                            raise AssertionError("caller %d rows %d..%d output %r off by %g"
                                                 % (c, start, start + rows, out, err))
                    requests.append(rows)
            except Exception as e:  # collected; the main thread fails the test
                errors.append(e)

        threads = [threading.Thread(target=caller, args=(c,)) for c in range(callers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120 * s.SLOWDOWN)
        self.assertFalse(any(t.is_alive() for t in threads), "callers still running")
        self.assertEqual(errors[:3], [])
        self.assertEqual(len(requests), callers * per_caller)
        after = s.statistics(self.stub, model=name)
        executions = after.execution_count - before.execution_count
        served = after.inference_count - before.inference_count
        self.assertEqual(served, sum(requests))
        # All 32 requests are in flight within the 100 ms batching window.
        self.assertLess(executions, callers * per_caller, "the batcher merged no requests")

    def test_missing_input(self):
        inputs = self.named_inputs("wide_and_deep", slice(0, 2))[:1]   # wide only
        for mode in ("raw", "typed"):
            with self.subTest(mode=mode):
                self.assert_refused(make_request("wide_and_deep", inputs, mode=mode), INVALID,
                                    "'deep'")

    def test_unknown_input(self):
        wide, deep = self.named_inputs("wide_and_deep", slice(0, 2))
        cases = {"renamed": [wide, ("deeep", deep[1])],
                 "extra": [wide, deep, ("extra", np.zeros((2, 3), np.float32))]}
        for label, inputs in cases.items():
            for mode in ("raw", "typed"):
                with self.subTest(case=label, mode=mode):
                    self.assert_refused(make_request("wide_and_deep", inputs, mode=mode),
                                        INVALID, "'%s'" % inputs[-1][0])

    def test_unknown_requested_output(self):
        inputs = self.named_inputs("vae_encoder", slice(0, 2))
        for outputs in (["sigma"], ["mu", "sigma"]):
            with self.subTest(outputs=outputs):
                self.assert_refused(make_request("vae_encoder", inputs, outputs=outputs),
                                    INVALID, "'sigma'")

    def tearDown(self):
        super().tearDown()
        # Whatever was refused, the next good request is answered correctly.
        name = "wide_and_deep"
        inputs = self.named_inputs(name, slice(0, 2))
        self.assert_outputs(self.infer(name, inputs),
                            self.expected(name, [x for _, x in inputs]))


class GraphMonitorTest(s.SharedRepositoryTestCase):
    """The monitor sees every hidden tensor of a graph: the unrolled RNN's
    inputs to each step, its hidden states and its head, named by layer with
    the use (shared weights), each window's mean and variance those of the
    PyTorch module's own intermediate tensors on the same rows."""

    WINDOW = 32
    SERVER_ARGS = ("--monitor-sample-rate", "1", "--batch-execution", "workers",
                   "--instances", "1", "--max-queue-delay-us", "0")
    SERVER_KWARGS = dict(env={"SELU_MONITOR_WINDOW_ROWS": str(WINDOW)})

    @classmethod
    def fill_repository(cls, repo):
        cls.graph = graph_cases.build("rnn_unrolled")
        path = os.path.join(repo, "rnn", "1", "model.onnx")
        os.makedirs(os.path.dirname(path))
        s.onnx.save(cls.graph.model, path)
        cls.x = np.random.default_rng(77).normal(0, 1, size=(cls.WINDOW, 8, 4)).astype(np.float32)

    @classmethod
    def run_workload(cls):
        for start in (0, cls.WINDOW // 2):  # two batches close one window
            cls.stub.ModelInfer(make_request("rnn", [("x", cls.x[start:start + cls.WINDOW // 2])]),
                                timeout=30 * s.SLOWDOWN)
        cls.response = s.monitor_check(cls.server, "rnn")

    def expected_tensors(self):
        """[(layer base name, use, activation, tensor)] in the engine's order:
        h0 = selu(inp(x0)); then per step inp(x_t) alone, and rec(h) with the
        add and the selu fused after it; then the head."""
        import torch
        import torch.nn.functional as F
        m = self.graph.module.double()
        x = torch.from_numpy(self.x).double()
        with torch.no_grad():
            h = F.selu(m.inp(x[:, 0]))
            out = [("inp", 0, "Selu", h)]
            for t in range(1, 8):
                a = m.inp(x[:, t])
                out.append(("inp", t, "Identity", a))
                h = F.selu(a + m.rec(h))
                out.append(("rec", t, "Add+Selu", h))
            out.append(("head", 0, "Identity", m.head(h)))
        return [(b, u, act, v.numpy()) for b, u, act, v in out]

    def test_every_hidden_tensor_is_observed(self):
        r = self.response
        expected = self.expected_tensors()
        self.assertEqual(len(r.tensors), 1 + len(expected), [t.name for t in r.tensors])
        self.assertEqual(r.tensors[0].layer, -1)
        self.assertEqual(r.tensors[0].features, 32)
        names = [t.name for t in r.tensors[1:]]
        self.assertEqual(len(set(names)), len(names), names)
        for k, (t, (base, use, act, values)) in enumerate(zip(r.tensors[1:], expected)):
            with self.subTest(layer=k, name=t.name):
                self.assertEqual(t.layer, k)
                self.assertIn(base, t.name)
                self.assertEqual(t.name.endswith("@%d" % use), use > 0, t.name)
                self.assertEqual(t.activation, act)
                self.assertEqual(t.features, values.shape[1])
                self.assertTrue(t.has_live)
                self.assertAlmostEqual(t.live_mean, values.mean(),
                                       delta=1e-5 * (1 + abs(values.mean())))
                self.assertAlmostEqual(t.live_variance, values.var(), delta=1e-5 * values.var())


WIDE_AND_DEEP_CONFIG = """
name: "%s"
max_batch_size: 16
input [
  { name: "deep" data_type: TYPE_FP32 dims: [ %d ] },
  { name: "wide" data_type: TYPE_FP32 dims: [ 6 ] }
]
output [ { name: "score" data_type: TYPE_FP32 dims: [ 2 ] } ]
"""


class GraphConfigTest(s.SharedRepositoryTestCase):
    """config.pbtxt with several input entries (listed in another order than
    the model's) is checked against the graph's ports by name: right dims
    load, and ModelConfig lists every port; a wrong dims for one input
    keeps that model from loading with a message naming the input."""

    SERVER_KWARGS = dict(ready_service="wd")  # wd_bad never serves

    @classmethod
    def fill_repository(cls, repo):
        cls.graph = graph_cases.build("wide_and_deep")
        for name, deep_dims in (("wd", 10), ("wd_bad", 11)):
            path = os.path.join(repo, name, "1", "model.onnx")
            os.makedirs(os.path.dirname(path))
            s.onnx.save(cls.graph.model, path)
            with open(os.path.join(repo, name, "config.pbtxt"), "w") as f:
                f.write(WIDE_AND_DEEP_CONFIG % (name, deep_dims))

    def test_config_with_every_port_loads_and_is_reported(self):
        config = self.stub.ModelConfig(pb.ModelConfigRequest(name="wd"), timeout=10).config
        self.assertEqual(config.max_batch_size, 16)
        self.assertEqual(sorted((t.name, list(t.dims)) for t in config.input),
                         [("deep", [10]), ("wide", [6])])
        self.assertEqual([(t.name, list(t.dims)) for t in config.output], [("score", [2])])
        rng = np.random.default_rng(5)
        xs = [rng.normal(size=(3, 6)).astype(np.float32), rng.normal(size=(3, 10)).astype(np.float32)]
        resp = self.stub.ModelInfer(make_request("wd", [("wide", xs[0]), ("deep", xs[1])]),
                                    timeout=30 * s.SLOWDOWN)
        want = self.graph.reference(xs)[0]
        np.testing.assert_allclose(response_outputs(resp, 3)["score"], want, rtol=0,
                                   atol=TOLERANCE)

    def test_config_contradicting_one_input_is_refused_naming_it(self):
        self.assertFalse(self.stub.ModelReady(pb.ModelReadyRequest(name="wd_bad"),
                                              timeout=10).ready)
        entries = [e for e in s.repository_index(self.stub) if e[0] == "wd_bad"]
        self.assertEqual(len(entries), 1, entries)
        _, _, state, reason = entries[0]
        self.assertEqual(state, "UNAVAILABLE")
        self.assertIn("input[0].dims [11] do not match the model's [10] for 'deep'", reason)


class GraphRefusalTest(s.ServerTestCase):
    """Each model of graph_refusals.py, beside the bundled model, does not
    load; its reason (RepositoryIndex, RepositoryModelLoad, the log) names
    the node and its op type."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.refusals = graph_refusals.build_all()

    def make_repository(self):
        repo = tempfile.mkdtemp(prefix="selu-it-graph-refusals-")
        self.addCleanup(shutil.rmtree, repo, True)
        s.link_bundled_model(repo)
        for name, model, _, _ in self.refusals:
            path = os.path.join(repo, name, "1", "model.onnx")
            os.makedirs(os.path.dirname(path))
            s.onnx.save(model, path)
        return repo

    def test_refused_at_start_naming_the_node(self):
        server = self.start_server(repository=self.make_repository(),
                                   ready_service=s.BUNDLED_MODEL)
        stub = server.inference()

        def entry(name):
            """The model's UNAVAILABLE entry with a reason, once there is one."""
            entries = [e for e in s.repository_index(stub)
                       if e[0] == name and e[2] == "UNAVAILABLE" and e[3]]
            return entries[0] if entries else None

        for name, _, must_contain, why in self.refusals:
            with self.subTest(model=name, why=why):
                _, _, state, reason = s.wait_until(
                    lambda: entry(name), 30 * s.SLOWDOWN,
                    lambda: "%s UNAVAILABLE in %s" % (name, s.repository_index(stub)))
                for fragment in must_contain:
                    self.assertIn(fragment, reason)
                ready = stub.ModelReady(pb.ModelReadyRequest(name=name), timeout=10).ready
                self.assertFalse(ready)
                self.assertIn(must_contain[0], server.log_text())
        self.assertTrue(stub.ModelReady(pb.ModelReadyRequest(name=s.BUNDLED_MODEL),
                                        timeout=10).ready)

    def test_explicit_load_refused_naming_the_node(self):
        server = self.start_server("--model-control-mode", "explicit", "--load-model",
                                   s.BUNDLED_MODEL, repository=self.make_repository(),
                                   ready_service=s.BUNDLED_MODEL)
        stub = server.inference()
        for name, _, must_contain, why in self.refusals:
            with self.subTest(model=name, why=why):
                with self.assertRaises(grpc.RpcError) as cm:
                    stub.RepositoryModelLoad(pb.RepositoryModelLoadRequest(model_name=name),
                                             timeout=60 * s.SLOWDOWN)
                err = cm.exception
                self.assertEqual(err.code(), LOAD_REFUSED_CODE, err.details())
                for fragment in must_contain:
                    self.assertIn(fragment, err.details())
                self.assertFalse(stub.ModelReady(pb.ModelReadyRequest(name=name),
                                                 timeout=10).ready)


if __name__ == "__main__":
    unittest.main()
