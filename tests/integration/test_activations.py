"""Issue 13's activations, patterns and load-time folds through the real
server: PyTorch models (LeakyReLU/PReLU/ELU/SELU mixed; GELU/SiLU/Hardsigmoid/
Softplus/ReLU6/Hardswish; BatchNorm1d and constant scale/shift after Linear;
FP16 weights behind Cast nodes) served from a temporary repository, asked with
typed and raw FP32 inputs and converted FP64 ones, and by concurrent callers so
that the dynamic batcher merges their requests. Expected values come from the
PyTorch modules, evaluated here in float64; tolerance 1e-4 (the parity
tolerance: oneDNN's fp32 kernels against PyTorch).
"""

import math
import os
import shutil
import tempfile
import threading
import unittest

import numpy as np

import selu_server as s

TOLERANCE = 1e-4
# Long enough that requests issued together always share a batch, short enough
# for the one-request calls of the other tests.
QUEUE_DELAY_US = 100000


def _linear(torch, gen, n_in, n_out):
    lin = torch.nn.Linear(n_in, n_out)
    with torch.no_grad():
        lin.weight.copy_(torch.randn(lin.weight.shape, generator=gen) / math.sqrt(n_in))
        lin.bias.copy_(0.1 * torch.randn(lin.bias.shape, generator=gen))
    return lin


def _models():
    """name → (torch module in float64, in_features, out_features, build(path))."""
    import torch
    from onnx import TensorProto, helper, numpy_helper

    torch.manual_seed(13)
    gen = torch.Generator().manual_seed(1313)
    nn = torch.nn
    prelu = nn.PReLU(24)
    with torch.no_grad():
        prelu.weight.copy_(torch.linspace(-0.4, 1.2, 24))
    mixed = nn.Sequential(_linear(torch, gen, 12, 20), nn.LeakyReLU(0.2),
                          _linear(torch, gen, 20, 24), prelu,
                          _linear(torch, gen, 24, 16), nn.ELU(0.6),
                          _linear(torch, gen, 16, 16), nn.SELU(),
                          _linear(torch, gen, 16, 5))
    smooth = nn.Sequential(_linear(torch, gen, 12, 18), nn.GELU(),
                           _linear(torch, gen, 18, 18), nn.SiLU(),
                           _linear(torch, gen, 18, 14), nn.Hardsigmoid(),
                           _linear(torch, gen, 14, 14), nn.Softplus(),
                           _linear(torch, gen, 14, 10), nn.ReLU6(),
                           _linear(torch, gen, 10, 10), nn.Hardswish(),
                           _linear(torch, gen, 10, 4))
    bn = nn.BatchNorm1d(22)
    with torch.no_grad():
        bn.weight.copy_(1.0 + 0.3 * torch.randn(22, generator=gen))
        bn.bias.copy_(0.2 * torch.randn(22, generator=gen))
        bn.running_mean.copy_(0.4 * torch.randn(22, generator=gen))
        bn.running_var.copy_(0.3 + torch.rand(22, generator=gen))

    class ScaleShift(nn.Module):
        def forward(self, x):
            return x * 0.5 - 0.125

    folded = nn.Sequential(_linear(torch, gen, 12, 22), bn, nn.SELU(), ScaleShift(),
                           _linear(torch, gen, 22, 6))
    half = nn.Sequential(_linear(torch, gen, 12, 30), nn.SELU(), _linear(torch, gen, 30, 3))
    with torch.no_grad():
        for p in half.parameters():  # the weights the FP16 file will hold
            p.copy_(p.half().float())

    def exporter(module, n_in):
        def build(path):
            torch.onnx.export(module.eval(), torch.zeros(2, n_in), path, input_names=["input"],
                              output_names=["output"], opset_version=13,
                              dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}})
        return build

    def build_fp16(path):
        nodes, inits, cur = [], [], "input"
        lins = [half[0], half[2]]
        for i, lin in enumerate(lins):
            for name, p in (("w", lin.weight), ("b", lin.bias)):
                inits.append(numpy_helper.from_array(p.detach().numpy().astype(np.float16),
                                                     "%s%d_fp16" % (name, i)))
                nodes.append(helper.make_node("Cast", ["%s%d_fp16" % (name, i)],
                                              ["%s%d" % (name, i)], to=TensorProto.FLOAT))
            out = "output" if i == len(lins) - 1 else "h%d" % i
            nodes.append(helper.make_node("Gemm", [cur, "w%d" % i, "b%d" % i], [out], transB=1))
            cur = out
            if i == 0:
                # torch's SELU constants, as an exporter writes them.
                nodes.append(helper.make_node("Selu", [cur], ["a0"], alpha=1.6732632423543772,
                                              gamma=1.0507009873554805))
                cur = "a0"
        graph = helper.make_graph(
            nodes, "fp16_weights",
            [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 12])],
            [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["batch", 3])],
            initializer=inits)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
        model.ir_version = 8
        s.onnx.save(model, path)

    return {
        "mixed_prelu": (mixed, 12, 5, exporter(mixed, 12)),
        "smooth": (smooth, 12, 4, exporter(smooth, 12)),
        "folded_bn": (folded, 12, 6, exporter(folded, 12)),
        "fp16_weights": (half, 12, 3, build_fp16),
    }


class ActivationModelsTest(s.SharedRepositoryTestCase):
    SERVER_ARGS = ("--max-batch-size", "64", "--max-queue-delay-us", str(QUEUE_DELAY_US))

    @classmethod
    def fill_repository(cls, repo):
        import torch

        cls.models = {}
        for name, (module, n_in, n_out, build) in _models().items():
            path = os.path.join(repo, name, "1", "model.onnx")
            os.makedirs(os.path.dirname(path))
            build(path)
            reference = module.eval().double()

            def expected(x, reference=reference):
                with torch.no_grad():
                    return reference(torch.from_numpy(np.asarray(x, np.float64))).numpy()

            cls.models[name] = (n_in, n_out, expected)
        rng = np.random.default_rng(20131)
        cls.x = rng.normal(0.0, 1.5, size=(40, 12)).astype(np.float32)
        cls.x[::5] *= 4.0  # saturation and negative tails

    def infer(self, name, x, stub=None, **kwargs):
        n_out = self.models[name][1]
        req = s.infer_request(x, model=name, input_name="input", **kwargs)
        resp = (stub or self.stub).ModelInfer(req, timeout=30 * s.SLOWDOWN)
        return s.response_output(resp, len(x), n_out)

    def test_every_model_loaded(self):
        for name in self.models:
            with self.subTest(model=name):
                resp = self.stub.ModelReady(s.pb.ModelReadyRequest(name=name), timeout=10)
                self.assertTrue(resp.ready, self.server.log_text()[-3000:])

    def test_typed_and_raw_fp32_and_fp64(self):
        for name, (_, _, expected) in self.models.items():
            want = expected(self.x)
            for kwargs in ({"raw": True}, {"raw": False},
                           {"raw": True, "datatype": "FP64"}, {"raw": False, "datatype": "FP64"}):
                with self.subTest(model=name, **kwargs):
                    x = self.x.astype(np.float64) if "datatype" in kwargs else self.x
                    got = self.infer(name, x, **kwargs)
                    np.testing.assert_allclose(got, want, rtol=0, atol=TOLERANCE)

    def test_concurrent_callers_are_batched_and_correct(self):
        name = "mixed_prelu"
        before = s.statistics(self.stub, model=name)
        callers, per_caller = 8, 4
        stubs = [self.server.inference(self.server.new_channel()) for _ in range(2)]
        expected = self.models[name][2](self.x)
        barrier = threading.Barrier(callers)
        errors, requests = [], []

        def caller(c):
            try:
                stub = stubs[c % len(stubs)]
                barrier.wait(timeout=30 * s.SLOWDOWN)
                futures = []
                for i in range(per_caller):
                    start, rows = (c * 5 + i * 3) % 36, 1 + (c + i) % 4
                    req = s.infer_request(self.x[start:start + rows], model=name,
                                          input_name="input", raw=(i % 2 == 0))
                    futures.append((start, rows, stub.ModelInfer.future(
                        req, timeout=60 * s.SLOWDOWN)))
                for start, rows, future in futures:
                    got = s.response_output(future.result(), rows, 5)
                    err = np.abs(got - expected[start:start + rows]).max()
                    if err > TOLERANCE:
                        raise AssertionError("caller %d rows %d..%d off by %g"
                                             % (c, start, start + rows, err))
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


class ActivationRefusalTest(s.ServerTestCase):
    """A model the loader refuses does not load; the server says which node and
    why (the unit tests check every refusal; this one goes through the server)."""

    def test_gelu_tanh_export_is_refused_naming_the_node(self):
        import torch

        repo = tempfile.mkdtemp(prefix="selu-it-refusal-")
        try:
            s.link_bundled_model(repo)
            net = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.GELU(approximate="tanh"))
            path = os.path.join(repo, "gelu_tanh", "1", "model.onnx")
            os.makedirs(os.path.dirname(path))
            torch.onnx.export(net.eval(), torch.zeros(2, 4), path, input_names=["input"],
                              output_names=["output"], opset_version=13)
            server = self.start_server(repository=repo, ready_service=s.BUNDLED_MODEL)
            entries = [e for e in s.repository_index(server.inference()) if e[0] == "gelu_tanh"]
            self.assertEqual(len(entries), 1, entries)
            _, _, state, reason = entries[0]
            self.assertNotEqual(state, "READY")
            # PyTorch's tanh GELU starts with Mul(x, x): node, op type and why.
            self.assertIn("/1/Mul", reason)
            self.assertIn("(Mul)", reason)
            self.assertIn("is not a constant", reason)
        finally:
            shutil.rmtree(repo, ignore_errors=True)


if __name__ == "__main__":
    unittest.main()
