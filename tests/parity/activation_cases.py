"""Parity cases for issue 13's activations, patterns and load-time folds.

Imported by make_parity_models.py (same case protocol: each function returns
(model, x, y32, y64, description[, tolerance])). Models are PyTorch modules
exported with torch.onnx.export, or, where PyTorch cannot export what a user's
converter writes (FP16 / FP64 weights with FP32 inputs), onnx.helper graphs
holding a PyTorch module's own weights. References are the PyTorch modules
themselves, never the engine. Folding cases carry a tolerance of 1e-5: the
folded engine must match the unfolded PyTorch model that closely.
"""

import math

import numpy as np
import torch
import torch.nn as nn
from onnx import TensorProto, helper, numpy_helper

FOLD_TOLERANCE = 1e-5


def _lin(gen, n_in, n_out, bias_scale=0.1):
    lin = nn.Linear(n_in, n_out)
    with torch.no_grad():
        lin.weight.copy_(torch.randn(lin.weight.shape, generator=gen) / math.sqrt(n_in))
        lin.bias.copy_(bias_scale * torch.randn(lin.bias.shape, generator=gen))
    return lin


class Affine(nn.Module):
    """x·scale + shift with constant (scalar or per-feature) tensors."""

    def __init__(self, scale, shift):
        super().__init__()
        self.register_buffer("scale", torch.as_tensor(scale, dtype=torch.float32))
        self.register_buffer("shift", torch.as_tensor(shift, dtype=torch.float32))

    def forward(self, x):
        return x * self.scale + self.shift


class ScaleThenSub(nn.Module):
    """x / d − c (PyTorch exports Div and Sub)."""

    def __init__(self, d, c):
        super().__init__()
        self.d, self.c = d, c

    def forward(self, x):
        return x / self.d - self.c


def _module_case(ctx, m, x, description, tolerance=None, check_ops=()):
    model = ctx.export(m, x)
    ops = [n.op_type for n in model.graph.node]
    for op in check_ops:
        if op not in ops:
            raise RuntimeError(f"export lacks {op}: {ops}")
    y32, y64 = ctx.torch_reference(ctx.module_fn(m), x)
    out = (model, x, y32, y64, description)
    return out + (tolerance,) if tolerance else out


def case_mixed_leaky_prelu(ctx):
    gen = torch.Generator().manual_seed(301)
    w = [23, 41, 37, 29, 45, 33, 6]
    prelu = nn.PReLU(w[2])
    with torch.no_grad():
        prelu.weight.copy_(torch.linspace(-0.5, 1.5, w[2]))
    shared = nn.PReLU()
    with torch.no_grad():
        shared.weight.fill_(0.2)
    m = nn.Sequential(
        _lin(gen, w[0], w[1]), nn.LeakyReLU(0.1),
        _lin(gen, w[1], w[2]), prelu, Affine(1.5, 0.0),   # per-channel PReLU, then a scale
        _lin(gen, w[2], w[3]), nn.ELU(0.5),
        _lin(gen, w[3], w[4]), nn.SELU(), Affine(0.5, -0.25),
        _lin(gen, w[4], w[5]), shared,
        _lin(gen, w[5], w[6]))
    x = ctx.make_input(3101, ctx.ROWS, w[0])
    return _module_case(ctx, m, x, "LeakyReLU(0.1), PReLU(37 slopes) ×1.5, ELU(0.5), "
                        "SELU ×0.5 −0.25, PReLU(1 slope): torch.onnx.export",
                        check_ops=("LeakyRelu", "PRelu", "Elu", "Selu", "Mul"))


def case_smooth_activations(ctx):
    gen = torch.Generator().manual_seed(302)
    w = [19, 36, 28, 44, 30, 26, 34, 40, 8]
    m = nn.Sequential(
        _lin(gen, w[0], w[1]), nn.GELU(),
        _lin(gen, w[1], w[2]), nn.SiLU(),
        _lin(gen, w[2], w[3]), nn.Hardsigmoid(),
        _lin(gen, w[3], w[4]), nn.Softplus(),
        _lin(gen, w[4], w[5]), nn.ReLU6(),
        _lin(gen, w[5], w[6]), nn.Hardswish(),
        _lin(gen, w[6], w[7]), nn.Softplus(beta=2.0),   # Mul(2) → Softplus → Div(2)
        _lin(gen, w[7], w[8]))
    x = ctx.make_input(3102, ctx.ROWS, w[0])
    return _module_case(ctx, m, x, "GELU, SiLU, Hardsigmoid, Softplus, ReLU6, Hardswish, "
                        "Softplus(beta=2): the patterns PyTorch 1.13 exports",
                        check_ops=("Erf", "Sigmoid", "HardSigmoid", "Softplus", "Clip", "Div"))


def case_batchnorm_fold(ctx):
    gen = torch.Generator().manual_seed(303)
    w = [21, 48, 35, 5]
    bns = [nn.BatchNorm1d(w[1]), nn.BatchNorm1d(w[2])]
    for bn in bns:
        n = bn.num_features
        with torch.no_grad():
            bn.weight.copy_(1.0 + 0.5 * torch.randn(n, generator=gen))
            bn.bias.copy_(0.3 * torch.randn(n, generator=gen))
            bn.running_mean.copy_(0.5 * torch.randn(n, generator=gen))
            bn.running_var.copy_(0.2 + torch.rand(n, generator=gen) * 2.0)
    m = nn.Sequential(_lin(gen, w[0], w[1]), bns[0], nn.SELU(),
                      _lin(gen, w[1], w[2]), bns[1], nn.Tanh(),
                      _lin(gen, w[2], w[3]))
    x = ctx.make_input(3103, ctx.ROWS, w[0])
    return _module_case(ctx, m, x, "Linear → BatchNorm1d (eval, random statistics) → SELU, "
                        "twice: folded into the Gemm weights at load", FOLD_TOLERANCE,
                        check_ops=("BatchNormalization",))


def case_constant_scale_shift(ctx):
    gen = torch.Generator().manual_seed(304)
    w = [17, 31, 27, 22, 4]
    v1 = torch.linspace(-2.0, 2.0, w[2])
    v2 = torch.linspace(0.5, 1.5, w[3])
    m = nn.Sequential(
        _lin(gen, w[0], w[1]), Affine(2.5, -1.0), nn.SELU(),          # scalars: fold
        _lin(gen, w[1], w[2]), Affine(v1, v1 * 0.1), nn.Tanh(),       # per feature: fold
        Affine(0.5, 0.25),                                            # after: eltwise_linear
        _lin(gen, w[2], w[3]), nn.ReLU(), Affine(v2, -v2),            # after: binary post-ops
        _lin(gen, w[3], w[4]), ScaleThenSub(4.0, 0.5))                # Div, Sub: fold
    x = ctx.make_input(3104, ctx.ROWS, w[0])
    return _module_case(ctx, m, x, "Linear followed by constant Mul/Add/Div/Sub, scalar and "
                        "per-feature, before (folded) and after (post-ops) activations",
                        FOLD_TOLERANCE, check_ops=("Mul", "Add", "Div", "Sub"))


def _typed_weights_case(ctx, seed, onnx_type, np_type, description):
    """An MLP whose initializers are stored as onnx_type and cast to FLOAT by
    Cast nodes (what FP16/FP64 converters with FP32 I/O write). The reference
    is the PyTorch module with its weights rounded through np_type."""
    gen = torch.Generator().manual_seed(seed)
    w = [26, 42, 30, 7]
    lins = [_lin(gen, w[i], w[i + 1], bias_scale=0.2) for i in range(3)]
    stored = {}
    with torch.no_grad():
        for i, lin in enumerate(lins):
            for name, p in (("w", lin.weight), ("b", lin.bias)):
                # Values off the FLOAT grid, so the conversion has to round.
                exact = p.double() * (1.0 + 1e-9 * torch.randn(p.shape, generator=gen,
                                                               dtype=torch.float64))
                stored[f"{name}{i}"] = exact.numpy().astype(np_type)
                p.copy_(torch.from_numpy(stored[f"{name}{i}"].astype(np.float32)))
    nodes, inits, cur = [], [], "input"
    for i, lin in enumerate(lins):
        for name in ("w", "b"):
            inits.append(numpy_helper.from_array(stored[f"{name}{i}"], f"{name}{i}_stored"))
            nodes.append(helper.make_node("Cast", [f"{name}{i}_stored"], [f"{name}{i}"],
                                          name=f"cast_{name}{i}", to=TensorProto.FLOAT))
        out = "output" if i == len(lins) - 1 else f"h{i}"
        nodes.append(helper.make_node("Gemm", [cur, f"w{i}", f"b{i}"], [out], name=f"gemm{i}",
                                      transB=1))
        cur = out
        if i < len(lins) - 1:
            nodes.append(helper.make_node("Selu", [cur], [f"a{i}"], name=f"selu{i}"))
            cur = f"a{i}"
    graph = helper.make_graph(
        nodes, "typed_weights",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", w[0]])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["batch", w[-1]])],
        initializer=inits)
    model = helper.make_model(graph, producer_name="selu-serve-parity",
                              opset_imports=[helper.make_opsetid("", ctx.DEFAULT_OPSET)])
    model.ir_version = 8
    assert all(i.data_type == onnx_type for i in model.graph.initializer)
    x = ctx.make_input(seed + 2800, ctx.ROWS, w[0])

    def fn(x, dt):
        h = x
        for i, lin in enumerate(lins):
            h = nn.functional.linear(h, lin.weight.to(dt), lin.bias.to(dt))
            if i < len(lins) - 1:
                h = ctx.selu_ref(h, ctx.ONNX_SELU_ALPHA, ctx.ONNX_SELU_GAMMA)
        return h

    y32, y64 = ctx.torch_reference(fn, x)
    return model, x, y32, y64, description


def case_fp16_weights(ctx):
    return _typed_weights_case(ctx, 305, TensorProto.FLOAT16, np.float16,
                               "FLOAT16 initializers + Cast(to=FLOAT), SELU MLP 26->42->30->7 "
                               "(reference: the PyTorch module with fp16-rounded weights)")


def case_fp64_weights(ctx):
    return _typed_weights_case(ctx, 306, TensorProto.DOUBLE, np.float64,
                               "DOUBLE initializers + Cast(to=FLOAT), SELU MLP 26->42->30->7")


CASES = {
    "mixed_leaky_prelu": case_mixed_leaky_prelu,
    "smooth_activations": case_smooth_activations,
    "batchnorm_fold": case_batchnorm_fold,
    "constant_scale_shift": case_constant_scale_shift,
    "fp16_weights": case_fp16_weights,
    "fp64_weights": case_fp64_weights,
}


# ----------------------------------------------------------------------------
# The numpy interpreter's share of these ops (float64), called by
# make_parity_models.run_onnx_numpy for ops it does not know.

_erf = np.frompyfunc(math.erf, 1, 1)


def run_extra_op(node, ins, attr):
    """The output of `node` on inputs `ins`; attr(node, name, default) reads an
    attribute. None for an op this interpreter does not know either."""
    op = node.op_type
    if op == "Constant":
        return numpy_helper.to_array(attr(node, "value", None)).astype(np.float64)
    if op == "Cast":
        assert attr(node, "to", 0) == TensorProto.FLOAT, node
        return np.asarray(ins[0]).astype(np.float32).astype(np.float64)
    if op in ("Mul", "Sub", "Div"):
        return {"Mul": np.multiply, "Sub": np.subtract, "Div": np.divide}[op](ins[0], ins[1])
    if op == "Erf":
        return _erf(ins[0]).astype(np.float64)
    if op == "LeakyRelu":
        v = ins[0]
        return np.where(v > 0, v, attr(node, "alpha", 0.01) * v)
    if op == "PRelu":
        v = ins[0]
        return np.where(v > 0, v, ins[1] * v)
    if op == "HardSigmoid":
        v = attr(node, "alpha", 0.2) * ins[0] + attr(node, "beta", 0.5)
        return np.clip(v, 0.0, 1.0)
    if op == "Softplus":
        return np.logaddexp(0.0, ins[0])
    if op == "Clip":
        lo = ins[1] if len(ins) > 1 and ins[1] is not None else -np.inf
        hi = ins[2] if len(ins) > 2 and ins[2] is not None else np.inf
        return np.minimum(np.maximum(ins[0], lo), hi)
    if op == "BatchNormalization":
        x, scale, b, mean, var = ins
        eps = attr(node, "epsilon", 1e-5)
        return (x - mean) / np.sqrt(var + eps) * scale + b
    return None
