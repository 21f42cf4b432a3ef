"""Pure-numpy evaluator for the ONNX MLP subset used by the bundled models.

Shared by models/train_digits_snn.py (to measure the accuracy of, and the
reference statistics for, the file that is actually written) and by
models/check_digits_snn.py (to re-verify the committed file). Only onnx and
numpy are needed; no torch, no onnxruntime.

Supported ops: Gemm (alpha, beta, transA, transB), Selu (alpha, gamma),
Softmax (opset >= 13 semantics: along one axis), Identity. Anything else
raises ValueError naming the node.
"""

import numpy as np
from onnx import numpy_helper

# SELU constants (see /work/shared/DESIGN.md). ONNX's attribute defaults are
# the fp32-rounded values; we always honour the attributes a file carries.
SELU_ALPHA = 1.6732632423543772848170429916717
SELU_LAMBDA = 1.0507009873554804934193349852946

SUPPORTED_OPS = {"Gemm", "Selu", "Softmax", "Identity"}


def _attrs(node):
    out = {}
    for a in node.attribute:
        if a.type == a.FLOAT:
            out[a.name] = a.f
        elif a.type == a.INT:
            out[a.name] = a.i
        else:
            raise ValueError("node %r: unsupported attribute %r" % (node.name, a.name))
    return out


def selu(x, alpha=SELU_ALPHA, gamma=SELU_LAMBDA):
    """SELU(x) = gamma*x (x > 0), gamma*alpha*expm1(x) (x <= 0)."""
    x = np.asarray(x)
    return np.where(x > 0, gamma * x, (gamma * alpha) * np.expm1(np.minimum(x, 0))).astype(x.dtype)


def softmax(x, axis=-1):
    m = np.max(x, axis=axis, keepdims=True)
    e = np.exp(x - m)
    return e / np.sum(e, axis=axis, keepdims=True)


def opset_version(model):
    for o in model.opset_import:
        if o.domain in ("", "ai.onnx"):
            return o.version
    raise ValueError("model has no default-domain opset import")


def run(model, x, dtype=np.float32):
    """Evaluate `model` (an onnx.ModelProto) on x of shape [batch, features].

    Returns (outputs, values): outputs maps graph output names to arrays,
    values maps every tensor name computed along the way to its array.
    """
    g = model.graph
    if opset_version(model) < 13:
        raise ValueError("opset < 13 Softmax semantics not supported by this evaluator")
    values = {init.name: numpy_helper.to_array(init).astype(dtype) for init in g.initializer}
    graph_inputs = [i.name for i in g.input if i.name not in values]
    if len(graph_inputs) != 1:
        raise ValueError("expected exactly one non-initializer graph input, got %r" % graph_inputs)
    values[graph_inputs[0]] = np.asarray(x, dtype=dtype)

    for node in g.node:  # ONNX requires nodes to be topologically sorted
        a = _attrs(node)
        ins = [values[n] for n in node.input if n]
        if node.op_type == "Gemm":
            A, B = ins[0], ins[1]
            if a.get("transA", 0):
                A = A.T
            if a.get("transB", 0):
                B = B.T
            y = a.get("alpha", 1.0) * (A @ B)
            if len(ins) > 2:
                y = y + a.get("beta", 1.0) * ins[2]
            y = y.astype(dtype)
        elif node.op_type == "Selu":
            y = selu(ins[0], a.get("alpha", 1.67326319217681884765625),
                     a.get("gamma", 1.05070102214813232421875))
        elif node.op_type == "Softmax":
            y = softmax(ins[0], axis=a.get("axis", -1)).astype(dtype)
        elif node.op_type == "Identity":
            y = ins[0]
        else:
            raise ValueError("node %r: unsupported op type %r" % (node.name, node.op_type))
        if len(node.output) != 1:
            raise ValueError("node %r: expected one output" % node.name)
        values[node.output[0]] = y

    outputs = {o.name: values[o.name] for o in g.output}
    return outputs, values


def dense_layers(model):
    """The dense layers of the MLP, in order.

    Each entry is (gemm_node, activation_name, tensor_name) where tensor_name
    is the tensor holding the layer's output after its activation; for a Gemm
    followed (possibly through Identity nodes) by Softmax or by nothing, the
    activation is "Identity" and the tensor is the Gemm output itself (i.e.
    the statistics are taken before the final Softmax).
    """
    g = model.graph
    consumers = {}
    for node in g.node:
        for n in node.input:
            consumers.setdefault(n, []).append(node)
    layers = []
    for node in g.node:
        if node.op_type != "Gemm":
            continue
        tensor = node.output[0]
        activation = "Identity"
        cur = tensor
        while True:
            cs = consumers.get(cur, [])
            if len(cs) != 1:
                break
            c = cs[0]
            if c.op_type == "Identity":
                cur = c.output[0]
                continue
            if c.op_type == "Selu":
                activation = "Selu"
                tensor = c.output[0]
            break
        layers.append((node, activation, tensor))
    return layers


def layer_stats(model, x):
    """Per-dense-layer activation statistics (float64) on inputs x."""
    _, values = run(model, x)
    stats = []
    for index, (node, activation, tensor) in enumerate(dense_layers(model)):
        v = values[tensor].astype(np.float64)
        stats.append({
            "index": index,
            "name": node.name,
            "features": int(v.shape[1]),
            "activation": activation,
            "mean": float(v.mean()),
            "variance": float(v.var()),  # population variance (ddof=0)
            "unit_mean": v.mean(axis=0),
            "unit_variance": v.var(axis=0),
        })
    return stats


def read_heldout_csv(path):
    """Returns (x float32 [n,64], labels int64 [n]) from a heldout.csv file."""
    with open(path) as f:
        header = f.readline().strip().split(",")
    expected = ["pixel_%d" % i for i in range(len(header) - 1)] + ["label"]
    if header != expected:
        raise ValueError("%s: unexpected header %r..." % (path, header[:3]))
    data = np.loadtxt(path, delimiter=",", skiprows=1, dtype=np.int64, ndmin=2)
    return data[:, :-1].astype(np.float32), data[:, -1]


def accuracy(model, x, labels):
    outputs, _ = run(model, x)
    if len(outputs) != 1:
        raise ValueError("expected one graph output")
    probs = next(iter(outputs.values()))
    return float(np.mean(np.argmax(probs, axis=1) == labels))
