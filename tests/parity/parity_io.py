"""Shared pieces of the parity generator: inputs, PyTorch references, export,
a float64 numpy interpreter of the ONNX subset the cases use, and write_case,
which writes one case folder (see make_parity_models.py).

Cases with several graph inputs or outputs give x, y32 and y64 as tuples of
tensors, one per graph input (output) in the graph's order. They are written as
PACKED ROWS: a row of input.bin holds every input's features one after another
(each input flattened per row in C order: an input [N, 8, 4] is 32 floats per
row), a row of expected.bin every output's features; case.json's "in"/"out"
are the packed widths and "inputs"/"outputs" list each port's name and shape
(-1 for a symbolic batch). A one-input one-output case is written exactly as
before.
"""

import io
import json
import os

import numpy as np
import onnx
from onnx import helper, numpy_helper
import torch

import activation_cases

ROWS = 64
DEFAULT_OPSET = 13
SELU_ALPHA = 1.6732632423543772848170429916717
SELU_LAMBDA = 1.0507009873554804934193349852946
# ONNX's Selu defaults are the fp32-rounded constants.
ONNX_SELU_ALPHA = float(np.float32(1.67326319217681884765625))
ONNX_SELU_GAMMA = float(np.float32(1.05070102214813232421875))


# ----------------------------------------------------------------------------
# Inputs and references


def make_input(seed, rows, *feature_shape):
    """~N(0,1), every fourth row scaled x5 (negative SELU branch, saturation)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(rows, *feature_shape, generator=g, dtype=torch.float32)
    x[::4] *= 5.0
    return x


def selu_ref(x, alpha=SELU_ALPHA, gamma=SELU_LAMBDA):
    return gamma * torch.where(x > 0, x, alpha * torch.expm1(x))


def elu_ref(x, alpha):
    return torch.where(x > 0, x, alpha * torch.expm1(x))


def as_tuple(v):
    return tuple(v) if isinstance(v, (tuple, list)) else (v,)


def torch_reference(fn, x):
    """float32 result, and the float64 result of the same function. x is a
    tensor or a tuple of tensors (then fn receives the tuple)."""
    with torch.no_grad():
        if isinstance(x, (tuple, list)):
            return fn(tuple(x), torch.float32), fn(tuple(t.double() for t in x), torch.float64)
        return fn(x, torch.float32), fn(x.double(), torch.float64)


def module_fn(module):
    """fn(x, dtype) running `module` in dtype; a tuple x is passed as
    separate arguments (one per graph input)."""
    def fn(x, dtype):
        m = module.to(dtype)
        return m(*x) if isinstance(x, tuple) else m(x)
    return fn


# ----------------------------------------------------------------------------
# Export


def export(module, example, opset=DEFAULT_OPSET, dynamic=True, input_names=("input",),
           output_names=("output",)):
    """torch.onnx.export of `module` on `example` (a tensor or a tuple, one per
    input), named inputs and outputs, a dynamic axis 0 on each of them."""
    module.eval()
    buf = io.BytesIO()
    kwargs = {}
    if dynamic:
        kwargs["dynamic_axes"] = {n: {0: "batch"} for n in (*input_names, *output_names)}
    args = tuple(example) if isinstance(example, (tuple, list)) else (example,)
    torch.onnx.export(module, args, buf, input_names=list(input_names),
                      output_names=list(output_names), opset_version=opset,
                      do_constant_folding=True, **kwargs)
    return onnx.load_from_string(buf.getvalue())


def op_types(model):
    return [n.op_type for n in model.graph.node]


def graph_inputs(model):
    """The graph inputs that are not initializers, in order."""
    inits = {i.name for i in model.graph.initializer}
    return [i for i in model.graph.input if i.name not in inits]


def port_shape(value_info):
    """Declared dims, -1 for a symbolic one."""
    return [d.dim_value if d.HasField("dim_value") else -1
            for d in value_info.type.tensor_type.shape.dim]


# ----------------------------------------------------------------------------
# A numpy interpreter for the ONNX subset the cases use (float64; integer
# tensors such as Gather indices or Reshape shapes stay integers).


def _attr(node, name, default):
    for a in node.attribute:
        if a.name == name:
            return helper.get_attribute_value(a)
    return default


def _value(array):
    a = np.asarray(array)
    return a.astype(np.int64) if a.dtype.kind in "iub" else a.astype(np.float64)


def _ints(v):
    return [int(i) for i in np.asarray(v).ravel()]


def _run_shape_op(node, ins):
    """Gather/Slice/Split/Squeeze/Unsqueeze/Reshape/Concat; None otherwise."""
    op = node.op_type
    if op == "Gather":
        return np.take(ins[0], ins[1], axis=_attr(node, "axis", 0))
    if op == "Slice":
        data = ins[0]
        starts, ends = _ints(ins[1]), _ints(ins[2])
        axes = _ints(ins[3]) if len(ins) > 3 and ins[3] is not None else range(len(starts))
        steps = _ints(ins[4]) if len(ins) > 4 and ins[4] is not None else [1] * len(starts)
        index = [slice(None)] * data.ndim
        for s, e, a, st in zip(starts, ends, axes, steps):
            index[a] = slice(s, e, st)
        return data[tuple(index)]
    if op == "Split":
        axis = _attr(node, "axis", 0)
        sizes = _ints(ins[1]) if len(ins) > 1 and ins[1] is not None else _attr(node, "split", None)
        if sizes is None:
            sizes = [ins[0].shape[axis] // len(node.output)] * len(node.output)
        return np.split(ins[0], np.cumsum(sizes)[:-1], axis=axis)
    if op == "Squeeze":
        axes = _ints(ins[1]) if len(ins) > 1 and ins[1] is not None else _attr(node, "axes", None)
        return np.squeeze(ins[0], axis=tuple(axes) if axes is not None else None)
    if op == "Unsqueeze":
        axes = _ints(ins[1]) if len(ins) > 1 else _attr(node, "axes", [])
        return np.expand_dims(ins[0], tuple(axes))
    if op == "Reshape":
        shape = [ins[0].shape[i] if d == 0 else d for i, d in enumerate(_ints(ins[1]))]
        return ins[0].reshape(shape)
    if op == "Concat":
        return np.concatenate(ins, axis=_attr(node, "axis", 0))
    return None


def _run_node(node, ins):
    op = node.op_type
    if op == "Gemm":
        a, b = ins[0], ins[1]
        if _attr(node, "transA", 0):
            a = a.T
        if _attr(node, "transB", 0):
            b = b.T
        y = _attr(node, "alpha", 1.0) * (a @ b)
        if len(ins) > 2 and ins[2] is not None:
            y = y + _attr(node, "beta", 1.0) * ins[2]
        return y
    if op == "MatMul":
        return ins[0] @ ins[1]
    if op == "Add":
        return ins[0] + ins[1]
    if op == "Flatten":
        axis = _attr(node, "axis", 1)
        return ins[0].reshape(int(np.prod(ins[0].shape[:axis])), -1)
    if op == "Selu":
        al = _attr(node, "alpha", ONNX_SELU_ALPHA)
        ga = _attr(node, "gamma", ONNX_SELU_GAMMA)
        v = ins[0]
        return ga * np.where(v > 0, v, al * np.expm1(np.minimum(v, 0)))
    if op == "Elu":
        al = _attr(node, "alpha", 1.0)
        v = ins[0]
        return np.where(v > 0, v, al * np.expm1(np.minimum(v, 0)))
    if op == "Relu":
        return np.maximum(ins[0], 0)
    if op == "Tanh":
        return np.tanh(ins[0])
    if op == "Sigmoid":
        return 1.0 / (1.0 + np.exp(-ins[0]))
    if op in ("Identity", "Dropout"):
        return ins[0]
    if op == "Softmax":
        axis = _attr(node, "axis", -1)
        v = ins[0] - ins[0].max(axis=axis, keepdims=True)
        e = np.exp(v)
        return e / e.sum(axis=axis, keepdims=True)
    if op == "Constant":
        return _value(numpy_helper.to_array(_attr(node, "value", None)))
    y = _run_shape_op(node, ins)
    if y is None:
        y = activation_cases.run_extra_op(node, ins, _attr)
    if y is None:
        raise RuntimeError(f"numpy interpreter: unsupported op {op} ({node.name})")
    return y


def run_onnx_numpy(model, x):
    """The graph's outputs (a list, in graph order) for x: one array, or a
    sequence of arrays, one per graph input in order. A single array in gives
    the first output alone, as before."""
    env = {init.name: _value(numpy_helper.to_array(init)) for init in model.graph.initializer}
    single = not isinstance(x, (tuple, list))
    xs = (x,) if single else tuple(x)
    ports = graph_inputs(model)
    if len(ports) != len(xs):
        raise RuntimeError(f"{len(xs)} arrays for {len(ports)} graph inputs")
    for port, value in zip(ports, xs):
        env[port.name] = np.asarray(value).astype(np.float64)
    for node in model.graph.node:
        y = _run_node(node, [env[i] if i else None for i in node.input])
        if isinstance(y, list):
            for name, part in zip(node.output, y):
                env[name] = part
        else:
            env[node.output[0]] = y
    outs = [env[o.name] for o in model.graph.output]
    return outs[0] if single else outs


# ----------------------------------------------------------------------------
# Writing a case folder


def pack(tensors, rows):
    """Per-row concatenation of each tensor flattened per row (C order)."""
    return torch.cat([t.reshape(rows, -1) for t in tensors], dim=1).contiguous()


def write_case(out_dir, name, fn):
    model, x, y32, y64, description, *tolerance = fn()
    model.producer_name = model.producer_name or "selu-serve-parity"
    onnx.checker.check_model(model, full_check=True)

    xs, y32s, y64s = as_tuple(x), as_tuple(y32), as_tuple(y64)
    ins, outs = graph_inputs(model), list(model.graph.output)
    if len(ins) != len(xs) or len(outs) != len(y32s) or len(y32s) != len(y64s):
        raise RuntimeError(f"{name}: {len(xs)} inputs / {len(y32s)} outputs given, the graph "
                           f"has {len(ins)} / {len(outs)}")
    rows = xs[0].shape[0]
    for port, t in [*zip(ins, xs), *zip(outs, y32s)]:
        declared = port_shape(port)[1:]
        if t.shape[0] != rows or (declared != list(t.shape[1:])):
            raise RuntimeError(f"{name}: {port.name} declared [batch, {declared}], "
                               f"given {list(t.shape)}")
    x2 = pack(xs, rows)
    y32p = pack([t.detach().float() for t in y32s], rows)
    y64p = pack([t.detach() for t in y64s], rows)
    assert torch.isfinite(y32p).all(), name

    # The reference itself must be far more precise than the C++ tolerance.
    f32_vs_f64 = (y32p.double() - y64p).abs().max().item()
    # And the ONNX graph must compute what the torch reference computes (up to
    # the fp32-rounded Selu constants ONNX uses by default).
    got = run_onnx_numpy(model, [t.numpy() for t in xs])
    onnx_vs_torch = np.abs(pack([torch.from_numpy(g) for g in got], rows).numpy()
                           - y64p.numpy()).max()
    if f32_vs_f64 > 2e-5 or onnx_vs_torch > 1e-5:
        raise RuntimeError(f"{name}: reference check failed: float32 vs float64 {f32_vs_f64:.3g}, "
                           f"ONNX graph vs torch {onnx_vs_torch:.3g}")

    case_dir = os.path.join(out_dir, name)
    os.makedirs(case_dir)
    onnx.save(model, os.path.join(case_dir, "model.onnx"))
    x2.numpy().astype("<f4").tofile(os.path.join(case_dir, "input.bin"))
    y32p.numpy().astype("<f4").tofile(os.path.join(case_dir, "expected.bin"))
    dim0 = ins[0].type.tensor_type.shape.dim[0]
    meta = {
        "name": name,
        "rows": rows,
        "in": x2.shape[1],
        "out": y32p.shape[1],
        "fixed_batch": dim0.dim_value if dim0.HasField("dim_value") else 0,
        "opset": model.opset_import[0].version,
        "nodes": op_types(model),
        "inputs": [{"name": p.name, "shape": port_shape(p)} for p in ins],
        "outputs": [{"name": p.name, "shape": port_shape(p)} for p in outs],
        "description": description,
    }
    if tolerance:
        meta["tolerance"] = tolerance[0]
    with open(os.path.join(case_dir, "case.json"), "w") as f:
        json.dump(meta, f, indent=2)
        f.write("\n")
    print(f"{name:18s} rows={rows:3d} in={meta['in']:3d} out={meta['out']:3d} "
          f"|y|max={y32p.abs().max().item():7.3f} f32-f64={f32_vs_f64:.2e}  {description}")
