#!/usr/bin/python3
"""Graph models the loader must REFUSE, each with the substrings its refusal
message must contain (the node's name, quoted as NodeLabel quotes it, and its
op type in parentheses: NodeLabel's "node '<name>' (<Op>)").

Usage: graph_refusals.py OUT_DIR
writes OUT_DIR/<name>/model.onnx and OUT_DIR/refusals.json:
  [{"name", "model": "<name>/model.onnx", "must_contain": [...], "why"}]
for C++ or Python tests; tests/integration/test_graphs.py imports REFUSALS.

The contract the substrings encode:
  * a control-flow or recurrent node (Loop, Scan, If, LSTM, GRU, RNN) is
    named whatever else the graph holds: nn.LSTM's export begins with the
    Shape/Expand prelude of its zero initial state, yet what the user must
    change is the LSTM (unroll it in forward()), so the refusal names the
    LSTM node, not the prelude's first Shape;
  * otherwise the first node (graph order) the server cannot serve is named.
Every model passes onnx.checker (full_check): they are valid ONNX, refused
only for what the server supports. Exports use opset 13 and a dynamic batch
axis on each input and output, like the parity cases.
"""

import json
import os
import shutil
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.dont_write_bytecode = True
import parity_io as pio  # noqa: E402


def _label(name, op):
    return [f"'{name}'", f"({op})"]


def _helper_model(nodes, inits, inputs, outputs, name):
    graph = helper.make_graph(nodes, name, inputs, outputs, initializer=inits)
    model = helper.make_model(graph, producer_name="selu-serve-refusals",
                              opset_imports=[helper.make_opsetid("", pio.DEFAULT_OPSET)])
    model.ir_version = 8
    return model


def _f32(rng, *shape):
    return (rng.standard_normal(shape) / np.sqrt(shape[-1])).astype(np.float32)


def _vi(name, *dims, elem=TensorProto.FLOAT):
    return helper.make_tensor_value_info(name, elem, list(dims))


def loop_node():
    """Gemm → Loop (3 iterations of Selu on the state) → Gemm."""
    rng = np.random.default_rng(501)
    body = helper.make_graph(
        [helper.make_node("Identity", ["cond_in"], ["cond_out"], name="body_cond"),
         helper.make_node("Selu", ["h_in"], ["h_out"], name="body_selu")],
        "loop_body",
        [_vi("iteration", elem=TensorProto.INT64), _vi("cond_in", elem=TensorProto.BOOL),
         _vi("h_in", "batch", 16)],
        [_vi("cond_out", elem=TensorProto.BOOL), _vi("h_out", "batch", 16)])
    nodes = [helper.make_node("Gemm", ["x", "w0", "b0"], ["h"], name="gemm0", transB=1),
             helper.make_node("Loop", ["trip_count", "", "h"], ["h_final"], name="loop",
                              body=body),
             helper.make_node("Gemm", ["h_final", "w1", "b1"], ["y"], name="gemm1", transB=1)]
    inits = [numpy_helper.from_array(_f32(rng, 16, 8), "w0"),
             numpy_helper.from_array(np.zeros(16, np.float32), "b0"),
             numpy_helper.from_array(np.array(3, np.int64), "trip_count"),
             numpy_helper.from_array(_f32(rng, 3, 16), "w1"),
             numpy_helper.from_array(np.zeros(3, np.float32), "b1")]
    model = _helper_model(nodes, inits, [_vi("x", "batch", 8)], [_vi("y", "batch", 3)],
                          "loop_node")
    return model, _label("loop", "Loop"), "Loop: control flow"


def scan_node():
    """An Elman RNN as a Scan over axis 1 of x [N, 8, 4]: initial state from
    x[:, 0], the body reading the outer graph's weights."""
    rng = np.random.default_rng(502)
    body = helper.make_graph(
        [helper.make_node("Gemm", ["x_t", "w_in", "b_in"], ["i_t"], name="body_in", transB=1),
         helper.make_node("MatMul", ["h_in", "w_rec"], ["r_t"], name="body_rec"),
         helper.make_node("Add", ["i_t", "r_t"], ["a_t"], name="body_add"),
         helper.make_node("Selu", ["a_t"], ["h_out"], name="body_selu")],
        "scan_body", [_vi("h_in", "batch", 16), _vi("x_t", "batch", 4)],
        [_vi("h_out", "batch", 16)])
    nodes = [helper.make_node("Gather", ["x", "t0"], ["x0"], name="gather_t0", axis=1),
             helper.make_node("Gemm", ["x0", "w_in", "b_in"], ["g0"], name="gemm_t0", transB=1),
             helper.make_node("Selu", ["g0"], ["h0"], name="selu_t0"),
             helper.make_node("Scan", ["h0", "x"], ["h_final"], name="scan", body=body,
                              num_scan_inputs=1, scan_input_axes=[1]),
             helper.make_node("Gemm", ["h_final", "w_out", "b_out"], ["y"], name="head",
                              transB=1)]
    inits = [numpy_helper.from_array(np.array(0, np.int64), "t0"),
             numpy_helper.from_array(_f32(rng, 16, 4), "w_in"),
             numpy_helper.from_array(np.zeros(16, np.float32), "b_in"),
             numpy_helper.from_array(_f32(rng, 16, 16), "w_rec"),
             numpy_helper.from_array(_f32(rng, 3, 16), "w_out"),
             numpy_helper.from_array(np.zeros(3, np.float32), "b_out")]
    model = _helper_model(nodes, inits, [_vi("x", "batch", 8, 4)], [_vi("y", "batch", 3)],
                          "scan_node")
    return model, _label("scan", "Scan"), "Scan: control flow"


class _Lstm(nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(4, 16, batch_first=True)
        self.head = nn.Linear(16, 3)

    def forward(self, x):
        _, (h, _) = self.lstm(x)
        return self.head(h[-1])


class _NonContiguous(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(8, 3)

    def forward(self, x):
        return self.lin(x[:, :, 0])   # features 0, 4, 8, ... of each row


class _BroadcastAdd(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(6, 4), nn.Linear(6, 1)

    def forward(self, x):
        return F.selu(self.a(x) + self.b(x))   # [N,4] + [N,1]


class _ZerosState(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(4, 16)

    def forward(self, x):
        h0 = torch.zeros(x.shape[0], 16)   # Shape → ... → ConstantOfShape
        return F.selu(self.lin(x) + h0)


def _torch_refusal(module, shape, op, why, expect_ops):
    torch.manual_seed(503)
    model = pio.export(module.eval(), (torch.randn(5, *shape),), input_names=("x",),
                       output_names=("y",))
    ops = pio.op_types(model)
    for want in expect_ops:
        if want not in ops:
            raise RuntimeError(f"export lacks {want}: {ops}")
    node = next(n for n in model.graph.node if n.op_type == op)
    return model, _label(node.name, op), f"{why}; export: {', '.join(ops)}"


def lstm_exported():
    return _torch_refusal(_Lstm(), (8, 4), "LSTM", "nn.LSTM(4, 16, batch_first=True) exported "
                          "by PyTorch: a recurrent node (unroll it in forward())",
                          ("Shape", "Transpose", "LSTM"))


def noncontiguous_gather():
    return _torch_refusal(_NonContiguous(), (8, 4), "Gather", "x[:, :, 0] of x [N,8,4]: "
                          "Gather on axis 2 picks every 4th feature (not a contiguous range)",
                          ("Gather",))


def broadcast_add():
    return _torch_refusal(_BroadcastAdd(), (6,), "Add", "Add of [N,4] and [N,1]: "
                          "broadcasting between computed tensors", ("Add",))


def shape_constant_of_shape():
    return _torch_refusal(_ZerosState(), (4,), "Shape", "torch.zeros(x.shape[0], 16) in "
                          "forward() with a dynamic batch: Shape → Gather → Unsqueeze → Concat "
                          "→ ConstantOfShape (shape computation at run time)",
                          ("Shape", "ConstantOfShape"))


REFUSALS = {
    "loop_node": loop_node,
    "scan_node": scan_node,
    "lstm_exported": lstm_exported,
    "noncontiguous_gather": noncontiguous_gather,
    "broadcast_add": broadcast_add,
    "shape_constant_of_shape": shape_constant_of_shape,
}


def build_all():
    """[(name, onnx.ModelProto, must_contain, why)], each model checked."""
    out = []
    for name, fn in REFUSALS.items():
        model, must_contain, why = fn()
        onnx.checker.check_model(model, full_check=True)
        out.append((name, model, must_contain, why))
    return out


def main(argv):
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    out_dir = argv[1]
    if os.path.isdir(out_dir):
        shutil.rmtree(out_dir)
    os.makedirs(out_dir)
    index = []
    for name, model, must_contain, why in build_all():
        os.makedirs(os.path.join(out_dir, name))
        onnx.save(model, os.path.join(out_dir, name, "model.onnx"))
        index.append({"name": name, "model": f"{name}/model.onnx", "must_contain": must_contain,
                      "why": why})
        print(f"{name:24s} must contain {must_contain}: {why}")
    with open(os.path.join(out_dir, "refusals.json"), "w") as f:
        json.dump(index, f, indent=2)
        f.write("\n")
    print(f"wrote {len(index)} refusal models to {out_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
