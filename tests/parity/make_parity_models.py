#!/usr/bin/python3
"""Generates whole-model parity cases for selu-serve's engine.

Usage: make_parity_models.py OUT_DIR

Each case is a folder OUT_DIR/<name>/ holding
  model.onnx    the model, checked with onnx.checker.check_model
  input.bin     raw little-endian float32, rows x in (row-major)
  expected.bin  raw little-endian float32, rows x out, computed by PyTorch in
                float32 on the same input
  case.json     {"name", "rows", "in", "out", "fixed_batch", "inputs", "outputs",
                 "description"[, "tolerance"]}
Graph cases (graph_cases.py) with several inputs or outputs write PACKED rows:
a row of input.bin holds every graph input's features in graph input order, a
row of expected.bin every output's; "in"/"out" are the packed widths and
"inputs"/"outputs" list [{"name", "shape"}] (parity_io.py).

Models are either exported from torch.nn modules with torch.onnx.export, or
written with onnx.helper and evaluated with torch functional ops. Every case is
also evaluated by a small numpy interpreter of the ONNX graph itself, so a
mistake in graph surgery here cannot masquerade as an engine bug, and by
PyTorch in float64, so the 1e-4 tolerance of the C++ test is not eaten by
float32 rounding of the reference. Fixed seeds: the output is deterministic.

Needs Debian's python3-torch (1.13) and python3-onnx (1.12): run it with
/usr/bin/python3.
"""

import math
import os
import shutil
import sys

import numpy as np
from onnx import TensorProto, helper, numpy_helper
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.dont_write_bytecode = True  # no __pycache__ in the source tree for the imports below
import activation_cases  # noqa: E402
import graph_cases  # noqa: E402
# The shared helpers; activation_cases reaches them as attributes of this module.
from parity_io import (  # noqa: E402,F401
    DEFAULT_OPSET, ONNX_SELU_ALPHA, ONNX_SELU_GAMMA, ROWS, SELU_ALPHA, SELU_LAMBDA, _attr,
    elu_ref, export, make_input, module_fn, run_onnx_numpy, selu_ref, torch_reference,
    write_case)


# ----------------------------------------------------------------------------
# Model builders


def init_linear(layer, gen, bias_scale=0.1):
    """LeCun-normal weights, small random bias (so the bias path is tested)."""
    fan_in = layer.in_features
    with torch.no_grad():
        layer.weight.copy_(torch.randn(layer.weight.shape, generator=gen) / math.sqrt(fan_in))
        layer.bias.copy_(bias_scale * torch.randn(layer.bias.shape, generator=gen))


def selu_mlp(widths, gen, softmax=False):
    mods = []
    for i in range(len(widths) - 1):
        lin = nn.Linear(widths[i], widths[i + 1])
        init_linear(lin, gen)
        mods.append(lin)
        if i < len(widths) - 2:
            mods.append(nn.SELU())
    if softmax:
        mods.append(nn.Softmax(dim=1))
    return nn.Sequential(*mods)


def rand(gen, *shape, scale=1.0):
    return scale * torch.randn(*shape, generator=gen, dtype=torch.float32)


def lecun(gen, fan_in, *shape):
    return torch.randn(*shape, generator=gen, dtype=torch.float32) / math.sqrt(fan_in)


def graph_model(nodes, inits, in_shape, out_features, name, opset=DEFAULT_OPSET):
    """An onnx.helper model with input 'input' [batch, *in_shape] and output 'output'."""
    graph = helper.make_graph(
        nodes, name,
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", *in_shape])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["batch", out_features])],
        initializer=[numpy_helper.from_array(v.detach().numpy().astype(np.float32), k)
                     for k, v in inits.items()])
    model = helper.make_model(graph, producer_name="selu-serve-parity",
                              opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return model


# ----------------------------------------------------------------------------
# Cases. Each returns (model, x, y32, y64, description).


def case_odd_widths(opset=DEFAULT_OPSET):
    gen = torch.Generator().manual_seed(101)
    m = selu_mlp([37, 129, 65, 3], gen)
    x = make_input(1101, ROWS, 37)
    model = export(m, x, opset=opset)
    y32, y64 = torch_reference(module_fn(m), x)
    return model, x, y32, y64, (
        f"37->129->65->3 SELU MLP, torch.onnx.export opset {opset} (Gemm transB=1)")


def case_one_layer():
    gen = torch.Generator().manual_seed(102)
    lin = nn.Linear(20, 5)
    init_linear(lin, gen)
    m = nn.Sequential(lin)
    x = make_input(1102, ROWS, 20)
    model = export(m, x)
    y32, y64 = torch_reference(module_fn(m), x)
    return model, x, y32, y64, "a single Linear 20->5, no activation"


def case_sixteen_layers():
    gen = torch.Generator().manual_seed(103)
    widths = [32, 48, 40, 64, 33, 56, 24, 72, 48, 17, 64, 40, 96, 32, 50, 24, 10]
    assert len(widths) == 17
    m = selu_mlp(widths, gen)
    x = make_input(1103, ROWS, 32)
    model = export(m, x)
    y32, y64 = torch_reference(module_fn(m), x)
    return model, x, y32, y64, "16 Linear layers 32->...->10 with SELU, LeCun-normal init"


def case_softmax():
    gen = torch.Generator().manual_seed(104)
    m = selu_mlp([30, 64, 64, 10], gen, softmax=True)
    x = make_input(1104, ROWS, 30)
    model = export(m, x)
    sm = [n for n in model.graph.node if n.op_type == "Softmax"]
    assert len(sm) == 1, "export must give exactly one Softmax"
    axis = _attr(sm[0], "axis", -1)
    assert axis in (1, -1), f"Softmax axis {axis}"
    y32, y64 = torch_reference(module_fn(m), x)
    return model, x, y32, y64, f"30->64->64->10 SELU MLP + Softmax(axis={axis})"


def case_gemm_transb0():
    gen = torch.Generator().manual_seed(105)
    w1 = lecun(gen, 24, 24, 40)   # [in, out]: transB=0
    b1 = rand(gen, 40, scale=0.1)
    w2 = lecun(gen, 40, 40, 16)   # transB=0, alpha=0.75, beta=-1.5
    b2 = rand(gen, 16, scale=0.1)
    w3 = lecun(gen, 16, 6, 16)    # [out, in]: transB=1, alpha=1.25, beta=0.5
    b3 = rand(gen, 6, scale=0.1)
    nodes = [
        helper.make_node("Gemm", ["input", "w1", "b1"], ["h1"], name="gemm1", transB=0),
        helper.make_node("Selu", ["h1"], ["a1"], name="selu1"),
        helper.make_node("Gemm", ["a1", "w2", "b2"], ["h2"], name="gemm2",
                         alpha=0.75, beta=-1.5, transB=0),
        helper.make_node("Selu", ["h2"], ["a2"], name="selu2"),
        helper.make_node("Gemm", ["a2", "w3", "b3"], ["output"], name="gemm3",
                         alpha=1.25, beta=0.5, transB=1),
    ]
    model = graph_model(nodes, {"w1": w1, "b1": b1, "w2": w2, "b2": b2, "w3": w3, "b3": b3},
                        [24], 6, "gemm_transb0")
    x = make_input(1105, ROWS, 24)

    def fn(x, dt):
        a = selu_ref(x @ w1.to(dt) + b1.to(dt), ONNX_SELU_ALPHA, ONNX_SELU_GAMMA)
        a = selu_ref(0.75 * (a @ w2.to(dt)) + (-1.5) * b2.to(dt),
                     ONNX_SELU_ALPHA, ONNX_SELU_GAMMA)
        return F.linear(a, 1.25 * w3.to(dt), 0.5 * b3.to(dt))

    y32, y64 = torch_reference(fn, x)
    return model, x, y32, y64, (
        "Gemm transB=0 (weights [in,out]); Gemm transB=0 alpha=0.75 beta=-1.5; "
        "Gemm transB=1 alpha=1.25 beta=0.5; Selu with default attributes")


def case_matmul_add():
    gen = torch.Generator().manual_seed(106)
    w1 = lecun(gen, 28, 28, 45)
    b1 = rand(gen, 45, scale=0.1)
    w2 = lecun(gen, 45, 45, 30)   # MatMul with no Add
    w3 = lecun(gen, 30, 30, 7)
    b3 = rand(gen, 7, scale=0.1)
    nodes = [
        helper.make_node("MatMul", ["input", "w1"], ["m1"], name="matmul1"),
        helper.make_node("Add", ["m1", "b1"], ["h1"], name="add1"),
        helper.make_node("Selu", ["h1"], ["a1"], name="selu1"),
        helper.make_node("MatMul", ["a1", "w2"], ["h2"], name="matmul2_no_bias"),
        helper.make_node("Selu", ["h2"], ["a2"], name="selu2"),
        helper.make_node("MatMul", ["a2", "w3"], ["m3"], name="matmul3"),
        helper.make_node("Add", ["m3", "b3"], ["output"], name="add3"),
    ]
    model = graph_model(nodes, {"w1": w1, "b1": b1, "w2": w2, "w3": w3, "b3": b3},
                        [28], 7, "matmul_add")
    x = make_input(1106, ROWS, 28)

    def fn(x, dt):
        a = selu_ref(x @ w1.to(dt) + b1.to(dt), ONNX_SELU_ALPHA, ONNX_SELU_GAMMA)
        a = selu_ref(a @ w2.to(dt), ONNX_SELU_ALPHA, ONNX_SELU_GAMMA)
        return a @ w3.to(dt) + b3.to(dt)

    y32, y64 = torch_reference(fn, x)
    return model, x, y32, y64, (
        "MatMul+Add 28->45, Selu, MatMul without Add 45->30, Selu, MatMul+Add 30->7")


def case_mixed_activations():
    gen = torch.Generator().manual_seed(107)
    widths = [18, 33, 27, 40, 21, 35, 26, 9]
    ws, bs, inits = [], [], {}
    for i in range(len(widths) - 1):
        w = lecun(gen, widths[i], widths[i + 1], widths[i])   # [out, in], transB=1
        b = rand(gen, widths[i + 1], scale=0.1)
        ws.append(w)
        bs.append(b)
        inits[f"w{i}"] = w
        inits[f"b{i}"] = b
    # Per layer: the ONNX nodes after the Gemm and the torch reference.
    acts = [
        ([("Elu", {"alpha": 0.7})], lambda v: elu_ref(v, 0.7)),
        ([("Relu", {}), ("Dropout", {})], F.relu),
        ([("Tanh", {}), ("Identity", {})], torch.tanh),
        ([("Sigmoid", {})], torch.sigmoid),
        ([("Identity", {}), ("Selu", {})],
         lambda v: selu_ref(v, ONNX_SELU_ALPHA, ONNX_SELU_GAMMA)),
        ([("Relu", {}), ("Tanh", {})], lambda v: torch.tanh(F.relu(v))),
        ([("Dropout", {})], lambda v: v),
    ]
    assert len(acts) == len(ws)
    nodes, cur = [], "input"
    for i, (onnx_acts, _) in enumerate(acts):
        out = f"g{i}"
        nodes.append(helper.make_node("Gemm", [cur, f"w{i}", f"b{i}"], [out],
                                      name=f"gemm{i}", transB=1))
        cur = out
        for j, (op, attrs) in enumerate(onnx_acts):
            last = i == len(acts) - 1 and j == len(onnx_acts) - 1
            out = "output" if last else f"{op.lower()}{i}_{j}"
            nodes.append(helper.make_node(op, [cur], [out], name=f"{op.lower()}{i}_{j}", **attrs))
            cur = out
    model = graph_model(nodes, inits, [widths[0]], widths[-1], "mixed_activations")
    x = make_input(1107, ROWS, widths[0])

    def fn(x, dt):
        h = x
        for (_, ref), w, b in zip(acts, ws, bs):
            h = ref(F.linear(h, w.to(dt), b.to(dt)))
        return h

    y32, y64 = torch_reference(fn, x)
    return model, x, y32, y64, (
        "Gemm layers with Elu(0.7), Relu+Dropout, Tanh+Identity, Sigmoid, Identity+Selu, "
        "Relu+Tanh, and a final Dropout (inference: no-op)")


def case_selu_custom_attrs():
    gen = torch.Generator().manual_seed(108)
    w1 = lecun(gen, 16, 31, 16)
    b1 = rand(gen, 31, scale=0.1)
    w2 = lecun(gen, 31, 22, 31)
    b2 = rand(gen, 22, scale=0.1)
    w3 = lecun(gen, 22, 4, 22)
    b3 = rand(gen, 4, scale=0.1)
    nodes = [
        helper.make_node("Gemm", ["input", "w1", "b1"], ["h1"], name="gemm1", transB=1),
        helper.make_node("Selu", ["h1"], ["a1"], name="selu_custom", alpha=1.5, gamma=1.2),
        helper.make_node("Gemm", ["a1", "w2", "b2"], ["h2"], name="gemm2", transB=1),
        helper.make_node("Selu", ["h2"], ["a2"], name="selu_gamma_only", gamma=0.8),
        helper.make_node("Gemm", ["a2", "w3", "b3"], ["output"], name="gemm3", transB=1),
    ]
    model = graph_model(nodes, {"w1": w1, "b1": b1, "w2": w2, "b2": b2, "w3": w3, "b3": b3},
                        [16], 4, "selu_custom_attrs")
    x = make_input(1108, ROWS, 16)
    # Attributes are stored as float32 in the file.
    a_custom, g_custom = float(np.float32(1.5)), float(np.float32(1.2))
    g_only = float(np.float32(0.8))

    def fn(x, dt):
        a = selu_ref(F.linear(x, w1.to(dt), b1.to(dt)), a_custom, g_custom)
        a = selu_ref(F.linear(a, w2.to(dt), b2.to(dt)), ONNX_SELU_ALPHA, g_only)
        return F.linear(a, w3.to(dt), b3.to(dt))

    y32, y64 = torch_reference(fn, x)
    return model, x, y32, y64, (
        "Selu alpha=1.5 gamma=1.2, then Selu gamma=0.8 with the default alpha")


def case_flatten_input():
    gen = torch.Generator().manual_seed(109)
    l1, l2 = nn.Linear(32, 50), nn.Linear(50, 12)
    init_linear(l1, gen)
    init_linear(l2, gen)
    m = nn.Sequential(nn.Flatten(1), l1, nn.SELU(), l2)
    x = make_input(1109, ROWS, 4, 8)
    model = export(m, x)
    fl = [n for n in model.graph.node if n.op_type == "Flatten"]
    if len(fl) != 1 or _attr(fl[0], "axis", 1) != 1 or model.graph.node[0].op_type != "Flatten":
        raise RuntimeError("export did not give a leading Flatten(axis=1): "
                           + str([n.op_type for n in model.graph.node]))
    y32, y64 = torch_reference(module_fn(m), x)
    return model, x, y32, y64, "input [batch,4,8] -> Flatten(axis=1) -> Gemm 32->50 -> Selu -> Gemm 50->12"


FIXED_BATCH = 16


def case_fixed_batch():
    gen = torch.Generator().manual_seed(110)
    m = selu_mlp([12, 26, 8], gen)
    x = make_input(1110, FIXED_BATCH, 12)
    model = export(m, x, dynamic=False)
    dim0 = model.graph.input[0].type.tensor_type.shape.dim[0]
    assert dim0.HasField("dim_value") and dim0.dim_value == FIXED_BATCH, dim0
    y32, y64 = torch_reference(module_fn(m), x)
    return model, x, y32, y64, f"12->26->8 SELU MLP exported with a fixed batch of {FIXED_BATCH}"


CASES = {
    "odd_widths": case_odd_widths,
    "one_layer": case_one_layer,
    "sixteen_layers": case_sixteen_layers,
    "softmax": case_softmax,
    "gemm_transb0": case_gemm_transb0,
    "matmul_add": case_matmul_add,
    "mixed_activations": case_mixed_activations,
    "selu_custom_attrs": case_selu_custom_attrs,
    "flatten_input": case_flatten_input,
    "fixed_batch": case_fixed_batch,
    "opset17": lambda: case_odd_widths(opset=17),
}
# Issue 13's activations, patterns, folds and weight types (activation_cases.py).
CASES.update({name: (lambda fn=fn: fn(sys.modules[__name__]))
              for name, fn in activation_cases.CASES.items()})
# Issue 13's graph models: several inputs/outputs, residuals, concat, an
# unrolled RNN, folds and FP16 weights in graphs (graph_cases.py).
assert not set(CASES) & set(graph_cases.CASES), set(CASES) & set(graph_cases.CASES)
CASES.update(graph_cases.CASES)


def main(argv):
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    out_dir = argv[1]
    torch.manual_seed(0)
    torch.set_num_threads(1)
    # Regenerate from scratch so stale cases never linger.
    if os.path.isdir(out_dir):
        shutil.rmtree(out_dir)
    os.makedirs(out_dir)
    for name, fn in CASES.items():
        write_case(out_dir, name, fn)
    print(f"wrote {len(CASES)} cases to {out_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
