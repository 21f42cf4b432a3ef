"""Parity cases for issue 13's graph models: several named inputs and outputs,
heads sharing a trunk, residual Add (after and before the activation), Concat
of features, an unrolled Elman RNN selecting x[:, t, :] of an [N, 8, 4] input,
Split/Slice/Squeeze/Reshape/Flatten of features, shared weights, mixed
LeakyReLU/PReLU/ELU/SELU, BatchNorm1d after Linear (folded at load) and FP16
weights.

Registered in make_parity_models.py's case list (same protocol: each case
returns (model, x, y32, y64, description[, tolerance]), here with x, y32 and
y64 tuples, one tensor per graph input / output in graph order, written as
packed rows by parity_io.write_case). Models are PyTorch modules exported with
torch.onnx.export (opset 13, named inputs and outputs, dynamic batch axis on
each), or, for FP16 weights, an onnx.helper graph holding the module's own
fp16-rounded weights. References are the PyTorch modules (float32 and float64
copies), never the engine. tests/integration/test_graphs.py serves the same
models (build(name)).
"""

import math
from collections import Counter

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from onnx import TensorProto, helper, numpy_helper

import parity_io as pio

FOLD_TOLERANCE = 1e-5
# The op types a graph model may be served with (issue 13). An export holding
# anything else (Shape, Expand, ConstantOfShape, Transpose, ...) is a bug of
# the case: restructure the module the way a user would.
SERVABLE_OPS = {
    "Gemm", "MatMul", "Add", "Concat", "Gather", "Slice", "Split", "Squeeze", "Reshape",
    "Flatten", "Identity", "Constant", "Cast", "BatchNormalization", "Selu", "Elu",
    "LeakyRelu", "PRelu", "Relu", "Tanh", "Sigmoid", "Softmax",
}


def _lin(gen, n_in, n_out, bias=True, bias_scale=0.1):
    """LeCun-normal weights, a small random bias."""
    lin = nn.Linear(n_in, n_out, bias=bias)
    with torch.no_grad():
        lin.weight.copy_(torch.randn(lin.weight.shape, generator=gen) / math.sqrt(n_in))
        if bias:
            lin.bias.copy_(bias_scale * torch.randn(lin.bias.shape, generator=gen))
    return lin


def _batchnorm(gen, n, gain=1.0, var_floor=0.2):
    """Eval-mode BN with random, non-trivial running statistics."""
    bn = nn.BatchNorm1d(n)
    with torch.no_grad():
        bn.weight.copy_(gain * (1.0 + 0.5 * torch.randn(n, generator=gen)))
        bn.bias.copy_(0.3 * torch.randn(n, generator=gen))
        bn.running_mean.copy_(0.5 * torch.randn(n, generator=gen))
        bn.running_var.copy_(var_floor + 2.0 * torch.rand(n, generator=gen))
    return bn.eval()


def op_summary(model):
    """'Gemm×3, Selu×2, ...' in order of first appearance."""
    counts = Counter(pio.op_types(model))
    return ", ".join(f"{op}×{n}" if n > 1 else op for op, n in counts.items())


class Graph:
    """A graph model, its PyTorch reference and a sample input (a tuple, one
    tensor of ROWS rows per graph input)."""

    def __init__(self, model, module, x, description, tolerance=None, must_have=()):
        self.model, self.module, self.x, self.tolerance = model, module, tuple(x), tolerance
        ops = set(pio.op_types(model))
        if not ops <= SERVABLE_OPS or not set(must_have) <= ops:
            raise RuntimeError(f"unexpected export: {pio.op_types(model)} (outside the servable "
                               f"ops: {sorted(ops - SERVABLE_OPS)}; missing: "
                               f"{sorted(set(must_have) - ops)})")
        self.description = f"{description}; ONNX: {op_summary(model)}"
        self.inputs = [(p.name, pio.port_shape(p)) for p in pio.graph_inputs(model)]
        self.outputs = [(p.name, pio.port_shape(p)) for p in model.graph.output]

    def reference(self, xs, dtype=torch.float64):
        """The module's outputs (tuple of numpy arrays, graph output order) on
        xs (arrays in graph input order)."""
        with torch.no_grad():
            ts = tuple(torch.from_numpy(np.asarray(a)).to(dtype) for a in xs)
            return tuple(t.numpy() for t in pio.as_tuple(pio.module_fn(self.module)(ts, dtype)))

    def case(self):
        y32, y64 = pio.torch_reference(pio.module_fn(self.module), self.x)
        out = (self.model, self.x, pio.as_tuple(y32), pio.as_tuple(y64), self.description)
        return out + (self.tolerance,) if self.tolerance else out


def _exported(module, x, input_names, output_names, description, **kwargs):
    module.eval()
    model = pio.export(module, tuple(x), input_names=input_names, output_names=output_names)
    return Graph(model, module, x, description, **kwargs)


# ----------------------------------------------------------------------------
# Modules


class VaeEncoder(nn.Module):
    def __init__(self, gen):
        super().__init__()
        self.trunk = nn.Sequential(_lin(gen, 20, 64), nn.SELU(), _lin(gen, 64, 32), nn.SELU())
        self.mu = _lin(gen, 32, 8)
        self.logvar = _lin(gen, 32, 8)

    def forward(self, x):
        h = self.trunk(x)
        return self.mu(h), self.logvar(h)


class ResidualSnn(nn.Module):
    """h = h + selu(W h + b) twice (add_first: h = selu(h + W h + b))."""

    def __init__(self, gen, add_first):
        super().__init__()
        self.add_first = add_first
        self.stem = _lin(gen, 24, 32)
        self.blocks = nn.ModuleList([_lin(gen, 32, 32), _lin(gen, 32, 32)])
        self.head = _lin(gen, 32, 5)

    def forward(self, x):
        h = F.selu(self.stem(x))
        for block in self.blocks:
            h = F.selu(h + block(h)) if self.add_first else h + F.selu(block(h))
        return self.head(h)


class ElmanRnn(nn.Module):
    """Unrolled over T = 8 steps of x [N, 8, 4]; no h0 tensor (with a dynamic
    batch, zeros(N, H) would export Shape/ConstantOfShape)."""

    def __init__(self, gen, features=4, hidden=16, outputs=3, steps=8):
        super().__init__()
        self.steps = steps
        self.inp = _lin(gen, features, hidden)
        self.rec = _lin(gen, hidden, hidden, bias=False)
        self.head = _lin(gen, hidden, outputs)

    def forward(self, x):
        h = F.selu(self.inp(x[:, 0]))
        for t in range(1, self.steps):
            h = F.selu(self.inp(x[:, t]) + self.rec(h))
        return self.head(h)


class FeatureSlicing(nn.Module):
    """Contiguous feature selections of x [N, 8, 4]: Split, Slice+Squeeze,
    Slice, Reshape(-1, 20), Flatten."""

    def __init__(self, gen):
        super().__init__()
        self.a = _lin(gen, 12, 16)
        self.b = _lin(gen, 20, 16)
        self.last = _lin(gen, 4, 6)
        self.mid = _lin(gen, 16, 6)
        self.head = _lin(gen, 28, 4)

    def forward(self, x):
        first, rest = torch.split(x, [3, 5], dim=1)
        h = F.selu(self.a(first.flatten(1)) + self.b(rest.reshape(-1, 20)))
        last = F.selu(self.last(x[:, 7:8, :].squeeze(1)))
        mid = F.selu(self.mid(x[:, 2:6].flatten(1)))
        return self.head(torch.cat([h, last, mid], dim=1))


class MixedActivations(nn.Module):
    """LeakyReLU trunk, per-channel PReLU after a residual Add, ELU and SELU
    branches joined by Concat."""

    def __init__(self, gen):
        super().__init__()
        self.stem = _lin(gen, 14, 24)
        self.leaky = nn.LeakyReLU(0.05)
        self.block = _lin(gen, 24, 24)
        self.prelu = nn.PReLU(24)
        with torch.no_grad():
            self.prelu.weight.copy_(torch.linspace(-0.6, 1.4, 24))
        self.elu_branch = nn.Sequential(_lin(gen, 24, 12), nn.ELU(0.8))
        self.selu_branch = nn.Sequential(_lin(gen, 24, 10), nn.SELU())
        self.head = _lin(gen, 22, 6)

    def forward(self, x):
        h = self.leaky(self.stem(x))
        h = self.prelu(h + self.block(h))
        return self.head(torch.cat([self.elu_branch(h), self.selu_branch(h)], dim=1))


class BatchNormGraph(nn.Module):
    """Linear(no bias) → BN → SELU; a residual block Linear → BN → SELU; a
    head Linear → BN (no activation after it)."""

    def __init__(self, gen):
        super().__init__()
        # Gains keep |y| a few units: the fold tolerance is absolute (1e-5).
        self.stem, self.bn0 = _lin(gen, 21, 40, bias=False), _batchnorm(gen, 40, 0.6, 1.0)
        self.block, self.bn1 = _lin(gen, 40, 40), _batchnorm(gen, 40, 0.5, 1.0)
        self.head, self.bn2 = _lin(gen, 40, 5), _batchnorm(gen, 5, 0.3, 1.0)

    def forward(self, x):
        h = F.selu(self.bn0(self.stem(x)))
        h = h + F.selu(self.bn1(self.block(h)))
        return self.bn2(self.head(h))


class WideAndDeep(nn.Module):
    def __init__(self, gen):
        super().__init__()
        self.deep = nn.Sequential(_lin(gen, 10, 32), nn.SELU(), _lin(gen, 32, 16), nn.SELU())
        self.out = _lin(gen, 6 + 16, 2)

    def forward(self, wide, deep):
        return self.out(torch.cat([wide, self.deep(deep)], dim=1))


class SharedBlockNet(nn.Module):
    """SELU stem, one residual block applied twice (shared weights), two heads."""

    def __init__(self, gen):
        super().__init__()
        self.stem = _lin(gen, 12, 32, bias_scale=0.2)
        self.block = _lin(gen, 32, 32, bias_scale=0.2)
        self.head_a = _lin(gen, 32, 4, bias_scale=0.2)
        self.head_b = _lin(gen, 32, 2, bias_scale=0.2)

    def forward(self, x):
        h = F.selu(self.stem(x))
        h = h + F.selu(self.block(h))
        h = h + F.selu(self.block(h))
        return self.head_a(h), self.head_b(h)


# ----------------------------------------------------------------------------
# Builders: name → Graph


def build_vae_encoder():
    gen = torch.Generator().manual_seed(401)
    return _exported(VaeEncoder(gen), (pio.make_input(4101, pio.ROWS, 20),), ["x"],
                     ["mu", "logvar"], "VAE encoder: SELU trunk 20->64->32, heads mu and "
                     "logvar 32->8 (two outputs sharing a trunk)", must_have=("Gemm", "Selu"))


def build_residual_snn():
    gen = torch.Generator().manual_seed(402)
    return _exported(ResidualSnn(gen, add_first=False), (pio.make_input(4102, pio.ROWS, 24),),
                     ["x"], ["y"], "24->32 SELU stem, h = h + selu(W h + b) twice (32->32), "
                     "head 32->5", must_have=("Add",))


def build_residual_add_before_selu():
    gen = torch.Generator().manual_seed(403)
    return _exported(ResidualSnn(gen, add_first=True), (pio.make_input(4103, pio.ROWS, 24),),
                     ["x"], ["y"], "24->32 SELU stem, h = selu(h + W h + b) twice (Add "
                     "before the activation), head 32->5", must_have=("Add",))


def build_rnn_unrolled():
    gen = torch.Generator().manual_seed(404)
    return _exported(ElmanRnn(gen), (pio.make_input(4104, pio.ROWS, 8, 4),), ["x"], ["y"],
                     "Elman RNN, SELU, unrolled over x [N,8,4] in forward(): h = selu(inp(x[:,0]))"
                     ", h = selu(inp(x[:,t]) + rec(h)) for t=1..7 (inp 4->16 with bias and rec "
                     "16->16 without: weights shared by every step), head 16->3. PyTorch 1.13 "
                     "exports x[:,t] as Gather(axis=1) of a scalar Constant index, inp as one "
                     "Gemm per step on the same initializers, rec as MatMul on Identity copies "
                     "of one transposed initializer",
                     must_have=("Gather", "Gemm", "MatMul", "Add", "Selu"))


def build_feature_slicing():
    gen = torch.Generator().manual_seed(405)
    return _exported(FeatureSlicing(gen), (pio.make_input(4105, pio.ROWS, 8, 4),), ["x"], ["y"],
                     "x [N,8,4]: split([3,5], dim=1) -> flatten / reshape(-1,20) -> Linear, "
                     "added; x[:,7:8].squeeze(1) and x[:,2:6].flatten(1) -> Linear+SELU; "
                     "concat -> head 28->4", must_have=("Split", "Slice", "Squeeze", "Reshape",
                                                        "Flatten", "Concat"))


def build_graph_mixed_activations():
    gen = torch.Generator().manual_seed(406)
    return _exported(MixedActivations(gen), (pio.make_input(4106, pio.ROWS, 14),), ["x"], ["y"],
                     "LeakyReLU(0.05) stem 14->24; PReLU(24 slopes) after h + Linear(h); "
                     "ELU(0.8) 24->12 and SELU 24->10 branches concatenated; head 22->6",
                     must_have=("LeakyRelu", "PRelu", "Elu", "Selu", "Concat", "Add"))


def build_batchnorm_after_gemm():
    gen = torch.Generator().manual_seed(407)
    return _exported(BatchNormGraph(gen), (pio.make_input(4107, pio.ROWS, 21),), ["x"], ["y"],
                     "Linear(no bias) 21->40 -> BatchNorm1d -> SELU; h + SELU(BN(Linear 40->40 "
                     "(h))); Linear 40->5 -> BN; eval, random running statistics, folded at load",
                     tolerance=FOLD_TOLERANCE, must_have=("BatchNormalization", "Add"))


def build_wide_and_deep():
    gen = torch.Generator().manual_seed(408)
    x = (pio.make_input(4108, pio.ROWS, 6), pio.make_input(5108, pio.ROWS, 10))
    return _exported(WideAndDeep(gen), x, ["wide", "deep"], ["score"],
                     "inputs wide [N,6] and deep [N,10]; deep: SELU MLP 10->32->16; "
                     "concat([wide, deep_out]) -> Linear 22->2", must_have=("Concat",))


def build_graph_fp16_weights():
    """SharedBlockNet with fp16-rounded weights; its ONNX holds them as FLOAT16
    initializers behind Cast(to=FLOAT) (one Cast per tensor, the shared
    block's used by both of its Gemms), FP32 input and outputs."""
    gen = torch.Generator().manual_seed(409)
    m = SharedBlockNet(gen).eval()
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(p.half().float())
    nodes, inits = [], []
    for lname in ("stem", "block", "head_a", "head_b"):
        lin = getattr(m, lname)
        for kind, p in (("weight", lin.weight), ("bias", lin.bias)):
            stored = f"{lname}.{kind}.fp16"
            inits.append(numpy_helper.from_array(p.detach().numpy().astype(np.float16), stored))
            nodes.append(helper.make_node("Cast", [stored], [f"{lname}.{kind}"],
                                          name=f"cast_{lname}_{kind}", to=TensorProto.FLOAT))

    def gemm(src, lname, out):
        nodes.append(helper.make_node("Gemm", [src, f"{lname}.weight", f"{lname}.bias"], [out],
                                      name=f"{out}_gemm", transB=1))

    gemm("x", "stem", "g0")
    nodes.append(helper.make_node("Selu", ["g0"], ["h0"], name="selu0"))
    cur = "h0"
    for i in (1, 2):
        gemm(cur, "block", f"g{i}")
        nodes.append(helper.make_node("Selu", [f"g{i}"], [f"s{i}"], name=f"selu{i}"))
        nodes.append(helper.make_node("Add", [cur, f"s{i}"], [f"h{i}"], name=f"add{i}"))
        cur = f"h{i}"
    gemm(cur, "head_a", "a")
    gemm(cur, "head_b", "b")
    graph = helper.make_graph(
        nodes, "graph_fp16_weights",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 12])],
        [helper.make_tensor_value_info("a", TensorProto.FLOAT, ["batch", 4]),
         helper.make_tensor_value_info("b", TensorProto.FLOAT, ["batch", 2])],
        initializer=inits)
    model = helper.make_model(graph, producer_name="selu-serve-parity",
                              opset_imports=[helper.make_opsetid("", pio.DEFAULT_OPSET)])
    model.ir_version = 8
    assert all(i.data_type == TensorProto.FLOAT16 for i in model.graph.initializer)
    return Graph(model, m, (pio.make_input(4109, pio.ROWS, 12),),
                 "FLOAT16 initializers + Cast(to=FLOAT): SELU stem 12->32, one residual block "
                 "applied twice (shared weights), heads a 32->4 and b 32->2 (reference: the "
                 "PyTorch module with fp16-rounded weights)", must_have=("Cast", "Add"))


BUILDERS = {
    "vae_encoder": build_vae_encoder,
    "residual_snn": build_residual_snn,
    "residual_add_before_selu": build_residual_add_before_selu,
    "rnn_unrolled": build_rnn_unrolled,
    "feature_slicing": build_feature_slicing,
    # "mixed_activations" and "fp16_weights" are chain cases already.
    "graph_mixed_activations": build_graph_mixed_activations,
    "batchnorm_after_gemm": build_batchnorm_after_gemm,
    "wide_and_deep": build_wide_and_deep,
    "graph_fp16_weights": build_graph_fp16_weights,
}


def build(name):
    return BUILDERS[name]()


CASES = {name: (lambda b=b: b().case()) for name, b in BUILDERS.items()}
