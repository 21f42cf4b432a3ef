#!/usr/bin/python3
"""Writes the seed corpora of the fuzz targets: tests/fuzz/corpus/<target>/.

Usage: tests/fuzz/make_seeds.py [--out DIR]   (default: tests/fuzz/corpus)

Deterministic: the same files every run. Needs python3-onnx, python3-protobuf
and protoc (for the Open Inference Protocol messages). The seeds are small on
purpose: tiny MLPs in the shapes the loader accepts (and a few it refuses),
config.pbtxt and JSON configs as Triton users write them, and ModelInfer
requests for the bundled model (models/digits_snn: input "input" [N, 64],
output "probabilities" [N, 10]) and for the fuzzers' rank-3 spec (input "x"
[N, 2, 3], output "y", batch fixed at 3).

The corpus folders also hold grown-* files: a few small inputs picked from the
30-minute runs' merged corpora (those adding the most coverage); this script
leaves them alone.
"""

import argparse
import importlib
import os
import struct
import subprocess
import sys
import tempfile

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def write(out, target, name, data):
    folder = os.path.join(out, target)
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


def weights(name, shape, seed, dtype=np.float32, raw=True):
    rng = np.random.default_rng(seed)
    values = (rng.standard_normal(shape) * 0.5).astype(dtype)
    t = numpy_helper.from_array(values, name)
    if not raw:
        t = helper.make_tensor(name, t.data_type, shape, values.flatten().tolist())
    return t


def model(nodes, inputs, output, initializers, opset=13, ir=8, metadata=None):
    graph = helper.make_graph(nodes, "mlp", inputs, [output], initializers)
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)],
                          producer_name="selu-serve-fuzz-seed")
    m.ir_version = ir
    for key, value in (metadata or {}).items():
        p = m.metadata_props.add()
        p.key, p.value = key, value
    return m.SerializeToString()


def tensor_info(name, dims):
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, dims)


def onnx_seeds(out):
    t = "fuzz_onnx_loader"
    x = tensor_info("x", ["batch", 4])
    write(out, t, "gemm_selu_softmax.onnx", model(
        [helper.make_node("Gemm", ["x", "w1", "b1"], ["h1"], name="fc1", transB=1),
         helper.make_node("Selu", ["h1"], ["a1"], name="selu1"),
         helper.make_node("Gemm", ["a1", "w2", "b2"], ["h2"], name="fc2", transB=1, alpha=0.5,
                          beta=2.0),
         helper.make_node("Softmax", ["h2"], ["y"], name="softmax")],
        [x], tensor_info("y", ["batch", 2]),
        [weights("w1", [3, 4], 1), weights("b1", [3], 2), weights("w2", [2, 3], 3),
         weights("b2", [2], 4)]))
    write(out, t, "matmul_add_relu.onnx", model(
        [helper.make_node("MatMul", ["x", "w1"], ["m1"]),
         helper.make_node("Add", ["b1", "m1"], ["h1"]),
         helper.make_node("Relu", ["h1"], ["a1"]),
         helper.make_node("MatMul", ["a1", "w2"], ["m2"]),
         helper.make_node("Add", ["m2", "b2"], ["y"])],
        [x], tensor_info("y", ["batch", 2]),
        [weights("w1", [4, 3], 5, raw=False), weights("b1", [1, 3], 6, raw=False),
         weights("w2", [3, 2], 7), weights("b2", [1], 8)]))
    write(out, t, "flatten_rank3.onnx", model(
        [helper.make_node("Flatten", ["x"], ["f"], axis=1),
         helper.make_node("Gemm", ["f", "w1"], ["h1"]),
         helper.make_node("Elu", ["h1"], ["e1"], alpha=0.7),
         helper.make_node("Tanh", ["e1"], ["t1"]),
         helper.make_node("Sigmoid", ["t1"], ["y"])],
        [tensor_info("x", ["batch", 2, 3])], tensor_info("y", ["batch", 2]),
        [weights("w1", [6, 2], 9)]))
    const_w = helper.make_tensor("cw", TensorProto.FLOAT, [4, 2],
                                 np.linspace(-1, 1, 8, dtype=np.float32).tolist())
    train = helper.make_tensor("train", TensorProto.BOOL, [], [False])
    write(out, t, "constant_identity_dropout.onnx", model(
        [helper.make_node("Constant", [], ["w1"], value=const_w),
         helper.make_node("Identity", ["b1"], ["b1_shared"]),
         helper.make_node("Gemm", ["x", "w1", "b1_shared"], ["h1"]),
         helper.make_node("Dropout", ["h1", "", "train"], ["d1"]),
         helper.make_node("Identity", ["d1"], ["i1"]),
         helper.make_node("Softmax", ["i1"], ["y"], axis=1)],
        [x], tensor_info("y", ["batch", 2]),
        [weights("b1", [2], 10), train], opset=12))
    write(out, t, "double_fixed_batch.onnx", model(
        [helper.make_node("Gemm", ["x", "w1", "b1"], ["h1"], transB=1),
         helper.make_node("Selu", ["h1"], ["y"], alpha=1.5, gamma=1.1)],
        [tensor_info("x", [1, 4])], tensor_info("y", [1, 3]),
        [weights("w1", [3, 4], 11, dtype=np.float64), weights("b1", [3], 12, dtype=np.float64)],
        metadata={"selu.reference_stats": '{"layers": []}'}))
    # IR 3: the initializers are listed among the graph inputs.
    m = onnx.load_from_string(model(
        [helper.make_node("Gemm", ["x", "w1", "b1"], ["y"], transB=1)],
        [x], tensor_info("y", ["batch", 3]),
        [weights("w1", [3, 4], 13), weights("b1", [3], 14)], opset=9, ir=3))
    m.graph.input.extend([tensor_info("w1", [3, 4]), tensor_info("b1", [3])])
    write(out, t, "ir3_initializer_inputs.onnx", m.SerializeToString())
    # The activations and folds beyond SELU's family, in PyTorch 1.13's export forms.
    gemm = [helper.make_node("Gemm", ["x", "w1", "b1"], ["h"], transB=1)]
    wb = [weights("w1", [3, 4], 16), weights("b1", [3], 17)]
    y3 = tensor_info("y", ["batch", 3])
    scalar = lambda name, v: helper.make_tensor(name, TensorProto.FLOAT, [], [v])
    write(out, t, "leakyrelu_prelu.onnx", model(
        gemm + [helper.make_node("LeakyRelu", ["h"], ["l"], alpha=0.2),
                helper.make_node("PRelu", ["l", "slope"], ["y"])],
        [x], y3, wb + [weights("slope", [3], 18)]))
    write(out, t, "hardsigmoid_softplus_clip.onnx", model(
        gemm + [helper.make_node("HardSigmoid", ["h"], ["s"], alpha=0.3, beta=0.4),
                helper.make_node("Softplus", ["s"], ["p"]),
                helper.make_node("Clip", ["p", "lo", "hi"], ["y"])],
        [x], y3, wb + [scalar("lo", -1.0), scalar("hi", 6.0)]))
    write(out, t, "gelu_erf.onnx", model(
        gemm + [helper.make_node("Div", ["h", "sqrt2"], ["d"]),
                helper.make_node("Erf", ["d"], ["e"]),
                helper.make_node("Add", ["e", "one"], ["a"]),
                helper.make_node("Mul", ["h", "a"], ["m"]),
                helper.make_node("Mul", ["m", "half"], ["y"])],
        [x], y3, wb + [scalar("sqrt2", 1.4142135), scalar("one", 1.0), scalar("half", 0.5)]))
    write(out, t, "silu_hardswish.onnx", model(
        gemm + [helper.make_node("Sigmoid", ["h"], ["g"]),
                helper.make_node("Mul", ["h", "g"], ["s"]),
                helper.make_node("HardSigmoid", ["s"], ["hg"], alpha=1.0 / 6, beta=0.5),
                helper.make_node("Mul", ["s", "hg"], ["y"])],
        [x], y3, wb))
    write(out, t, "scale_shift_cast.onnx", model(
        gemm + [helper.make_node("Tanh", ["h"], ["t"]),
                helper.make_node("Mul", ["t", "scale"], ["sc"]),
                helper.make_node("Sub", ["sc", "shift"], ["sh"]),
                helper.make_node("Div", ["sh", "two"], ["dv"]),
                helper.make_node("Cast", ["dv"], ["y"], to=TensorProto.FLOAT)],
        [x], y3, wb + [weights("scale", [3], 19), weights("shift", [3], 20), scalar("two", 2.0)]))
    write(out, t, "batchnorm_fold.onnx", model(
        gemm + [helper.make_node("BatchNormalization", ["h", "bn_s", "bn_b", "bn_m", "bn_v"],
                                 ["y"], epsilon=1e-5)],
        [x], y3, wb + [weights("bn_s", [3], 21), weights("bn_b", [3], 22),
                       weights("bn_m", [3], 23), numpy_helper.from_array(
                           np.array([0.5, 1.0, 2.0], dtype=np.float32), "bn_v")]))
    # Refused: an op outside the subset, and two graph inputs with no layer.
    write(out, t, "refused_conv.onnx", model(
        [helper.make_node("Conv", ["x", "w1"], ["y"])],
        [x], tensor_info("y", ["batch", 3]), [weights("w1", [3, 4, 1, 1], 15)]))
    write(out, t, "refused_two_inputs.onnx", model(
        [helper.make_node("Add", ["x", "z"], ["y"])],
        [x, tensor_info("z", ["batch", 4])], tensor_info("y", ["batch", 4]), []))
    graph_seeds(out, t)


def graph_model(name, nodes, inputs, outputs, initializers, opset=13):
    graph = helper.make_graph(nodes, name, inputs, outputs, initializers)
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)],
                          producer_name="selu-serve-fuzz-seed")
    m.ir_version = 8
    return m.SerializeToString()


def ints(name, values, shape=None):
    a = np.array(values, dtype=np.int64)
    return numpy_helper.from_array(a.reshape(shape) if shape is not None else a, name)


def graph_seeds(out, t):
    """Graphs (issue 13): heads on a trunk, an unrolled RNN, joins and selections."""
    node = helper.make_node
    write(out, t, "graph_vae_two_outputs.onnx", graph_model("vae", [
        node("Gemm", ["x", "w1", "b1"], ["g1"], name="enc"), node("Selu", ["g1"], ["h"]),
        node("Gemm", ["h", "wm", "bm"], ["mu"], name="mu"),
        node("Gemm", ["h", "wv", "bv"], ["logvar"], name="logvar")],
        [tensor_info("x", ["batch", 8])],
        [tensor_info("mu", ["batch", 2]), tensor_info("logvar", ["batch", 2])],
        [weights("w1", [8, 6], 30), weights("b1", [6], 31), weights("wm", [6, 2], 32),
         weights("bm", [2], 33), weights("wv", [6, 2], 34), weights("bv", [2], 35)]))
    nodes, h = [], "h0"
    for step in range(4):
        nodes += [node("Gather", ["x", "t%d" % step], ["x%d" % step], axis=1),
                  node("Gemm", ["x%d" % step, "wx", "bx"], ["a%d" % step]),
                  node("MatMul", [h, "wh"], ["r%d" % step]),
                  node("Add", ["a%d" % step, "r%d" % step], ["s%d" % step]),
                  node("Tanh", ["s%d" % step], ["h%d" % (step + 1)])]
        h = "h%d" % (step + 1)
    nodes += [node("Gemm", [h, "wo", "bo"], ["z"]), node("Softmax", ["z"], ["p"])]
    write(out, t, "graph_unrolled_rnn.onnx", graph_model(
        "rnn", nodes, [tensor_info("x", ["batch", 4, 4]), tensor_info("h0", ["batch", 3])],
        [tensor_info("p", ["batch", 2])],
        [weights("wx", [4, 3], 36), weights("bx", [3], 37), weights("wh", [3, 3], 38),
         weights("wo", [3, 2], 39), weights("bo", [2], 40)] +
        [ints("t%d" % step, step, ()) for step in range(4)]))
    write(out, t, "graph_wide_deep_selections.onnx", graph_model("widedeep", [
        node("Gemm", ["deep", "wd", "bd"], ["d1"]), node("Selu", ["d1"], ["d1s"]),
        node("Add", ["d1s", "deep"], ["res"]),
        node("Concat", ["wide", "res"], ["cat"], axis=1),
        node("Slice", ["cat", "st", "en", "ax"], ["sl"]),
        node("Split", ["sl", "sp"], ["p0", "p1"], axis=1),
        node("Unsqueeze", ["p0", "ax"], ["u"]), node("Squeeze", ["u", "ax"], ["q"]),
        node("Reshape", ["p1", "shape"], ["rs"]), node("Flatten", ["rs"], ["fl"], axis=1),
        node("Gemm", ["q", "wq", "bq"], ["yq"]), node("Gemm", ["fl", "wf", "bf"], ["yf"]),
        node("Mul", ["yf", "two"], ["yf2"]), node("Sigmoid", ["yq"], ["yqs"])],
        [tensor_info("wide", ["batch", 5]), tensor_info("deep", ["batch", 4])],
        [tensor_info("yqs", ["batch", 1]), tensor_info("yf2", ["batch", 2]),
         tensor_info("cat", ["batch", 9])],
        [weights("wd", [4, 4], 41), weights("bd", [4], 42), ints("st", [1]), ints("en", [9]),
         ints("ax", [1]), ints("sp", [3, 5]), ints("shape", [0, 5, 1]),
         weights("wq", [3, 1], 43), weights("bq", [1], 44), weights("wf", [5, 2], 45),
         weights("bf", [2], 46), numpy_helper.from_array(np.array(2.0, np.float32), "two")]))
    write(out, t, "refused_rnn_op.onnx", graph_model("rnn_op", [
        node("RNN", ["x", "w", "r"], ["y"], hidden_size=3)],
        [tensor_info("x", [8, 2, 4])], [tensor_info("y", [8, 1, 2, 3])],
        [weights("w", [1, 3, 4], 47), weights("r", [1, 3, 3], 48)]))


CONFIGS = {
    # The Triton config of tests/unit/model/model_config_test.cc.
    "triton_digits.pbtxt": '''name: "digits"
platform: "onnxruntime_onnx"
max_batch_size: 64
version_policy: { specific: { versions: [ 3, 1, 3 ] } }
default_model_filename: "digits.onnx"
parameters { key: "engine_primitive" value: { string_value: "matmul" } }
optimization { execution_accelerators { cpu_execution_accelerator : [ { name : "openvino" } ] } }
input [
  {
    name: "x"
    data_type: TYPE_FP32
    dims: [ 64 ]
    reshape { shape: [ 8, 8 ] }
  }
]
output [ { name: "y", data_type: TYPE_FP32, dims: [ 10 ] } ]
instance_group [ { kind: KIND_CPU, count: 2 }, { kind: KIND_AUTO } ]
dynamic_batching {
  preferred_batch_size: [ 32, 8 ]
  max_queue_delay_microseconds: 500
  default_queue_policy {
    max_queue_size: 128
    default_timeout_microseconds: 20000
  }
  priority_levels: 2
}
model_warmup [
  {
    name: "zeros"
    batch_size: 1
    inputs {
      key: "x"
      value: { data_type: TYPE_FP32, dims: [ 64 ], zero_data: true }
    }
  }
]
response_cache { enable: true }
''',
    "minimal.pbtxt": 'name: "digits_snn"\nmax_batch_size: 8\n',
    "digits_io.pbtxt": '''name: "digits_snn"
backend: "selu"
max_batch_size: 32
input [ { name: "input" data_type: TYPE_FP32 dims: [ 64 ] } ]
output [ { name: "probabilities" data_type: TYPE_FP32 dims: [ -1 ] label_filename: "l.txt" } ]
version_policy: { latest: { num_versions: 2 } }
instance_group [ { count: 3 kind: KIND_CPU gpus: [ 0 ] name: "g" } ]
''',
    "rank3_io.pbtxt": '''max_batch_size: 3
input { name: "x" data_type: TYPE_FP32 dims: 2 dims: 3 format: FORMAT_NCHW optional: true }
output { name: "y" data_type: TYPE_FP32 dims: 2 }
version_policy { all { } }
dynamic_batching { preferred_batch_size: 2 preferred_batch_size: 3 preserve_ordering: true
  default_queue_policy { timeout_action: DELAY allow_timeout_override: true } }
''',
    "parameters.pbtxt": '''# every parameter selu-serve reads, and one it does not
parameters { key: "engine_primitive" value { string_value: "inner_product" } }
parameters { key: "batch_execution" value { string_value: "caller" } }
parameters { key: "monitor_sample_rate" value { string_value: "0.25" } }
parameters { key: "monitor_window_rows" value { string_value: "256" } }
parameters: { key: "other" value: { string_value: "x" } }
default_model_filename: "snn.onnx"
''',
    "completed.pbtxt": '''name: "digits_snn"
platform: "onnxruntime_onnx"
backend: "onnxruntime"
max_batch_size: 64
input { name: "input" data_type: TYPE_FP32 dims: 64 }
output { name: "probabilities" data_type: TYPE_FP32 dims: 10 }
version_policy { latest { num_versions: 1 } }
dynamic_batching { max_queue_delay_microseconds: 0
  default_queue_policy { max_queue_size: 0 default_timeout_microseconds: 0 } }
instance_group { name: "digits_snn" kind: KIND_CPU count: 1 }
default_model_filename: "model.onnx"
''',
    "refused_specific.pbtxt": 'version_policy: { specific: { versions: [ 0 ] } }\n'
                              'max_batch_size: -1\ninstance_group [ { kind: KIND_GPU } ]\n',
    "unknown_lists.pbtxt": 'model_warmup [ { name: "w" } ]\nsequence_batching { }\n'
                           'ensemble_scheduling < step [ { model_name: \'m\' } ] >\n',
}

JSON_CONFIGS = {
    "minimal.json": '{"name": "digits_snn", "max_batch_size": 8}',
    "camel.json": '''{"maxBatchSize": 16, "input": [{"name": "input", "dataType": "TYPE_FP32",
 "dims": ["64"]}], "output": [{"name": "probabilities", "data_type": "TYPE_FP32", "dims": [10]}],
 "dynamicBatching": {"preferredBatchSize": [4, 8], "maxQueueDelayMicroseconds": "250",
 "defaultQueuePolicy": {"maxQueueSize": 9, "defaultTimeoutMicroseconds": "1000"}},
 "versionPolicy": {"specific": {"versions": ["2", "1"]}}}''',
    "unknown_fields.json": '''{"name": "digits_snn", "optimization": {"priority": "PRIORITY_MAX"},
 "input": [{"name": "input", "reshape": {"shape": [8, 8]}}],
 "dynamic_batching": {"priority_levels": 2},
 "parameters": {"engine_primitive": {"string_value": "matmul", "extra": 1}}}''',
    "rank3.json": '''{"max_batch_size": 3, "input": [{"name": "x", "data_type": "TYPE_FP32",
 "dims": [2, 3]}], "instance_group": [{"kind": "KIND_AUTO", "count": 2}],
 "version_policy": {"all": {}}, "default_model_filename": "m.onnx",
 "parameters": {"batch_execution": {"string_value": "auto"},
                "monitor_window_rows": {"string_value": "64"}}}''',
    "refused_type.json": '{"max_batch_size": "lots"}',
}


def load_inference_protos():
    tmp = tempfile.mkdtemp(prefix="selu_fuzz_protos_")
    subprocess.run(["protoc", "-I", os.path.join(ROOT, "proto"), "--python_out", tmp,
                    "model_config.proto", "grpc_service.proto"], check=True)
    sys.path.insert(0, tmp)
    return importlib.import_module("grpc_service_pb2")


def infer_seeds(out, pb):
    t = "fuzz_infer_decode"

    def request(name, shape, datatype, raw=None, fp32=None, fp64=None, outputs=(), **extra):
        r = pb.ModelInferRequest(model_name=extra.get("model", "digits_snn"), id="seed")
        i = r.inputs.add(name=name, datatype=datatype, shape=shape)
        if fp32 is not None:
            i.contents.fp32_contents.extend(fp32)
        if fp64 is not None:
            i.contents.fp64_contents.extend(fp64)
        if raw is not None:
            r.raw_input_contents.append(raw)
        for o in outputs:
            r.outputs.add(name=o)
        for o, k in extra.get("classify", {}).items():
            # Triton's classification extension: int64_param k (others refused).
            param = r.outputs.add(name=o).parameters["classification"]
            if isinstance(k, str):
                param.string_param = k
            else:
                param.int64_param = k
        if extra.get("param"):
            r.parameters["priority"].int64_param = 1
            i.parameters["binary_data_size"].int64_param = 4
        return r.SerializeToString()

    row = [((i * 7) % 17) / 8.0 - 1.0 for i in range(64)]
    write(out, t, "digits_raw_fp32.bin", request(
        "input", [1, 64], "FP32", raw=struct.pack("<64f", *row), outputs=["probabilities"]))
    write(out, t, "digits_typed_fp32_2rows.bin", request(
        "input", [2, 64], "FP32", fp32=row + row[::-1], param=True))
    write(out, t, "digits_typed_fp64.bin", request("input", [1, 64], "FP64", fp64=row))
    write(out, t, "digits_raw_fp64.bin", request("input", [1, 64], "FP64",
                                                 raw=struct.pack("<64d", *row)))
    write(out, t, "digits_raw_fp16.bin", request(
        "input", [1, 64], "FP16", raw=np.array(row, dtype=np.float16).tobytes()))
    bf16 = (np.array(row, dtype=np.float32).view(np.uint32) >> 16).astype("<u2").tobytes()
    write(out, t, "digits_raw_bf16.bin", request("input", [1, 64], "BF16", raw=bf16))
    six = [0.5, -1.0, 2.0, 0.0, -0.25, 1.5]
    write(out, t, "rank3_raw_fp32.bin", request(
        "x", [1, 2, 3], "FP32", raw=struct.pack("<6f", *six), outputs=["y"], model="rank3"))
    write(out, t, "rank3_typed_2rows.bin", request("x", [2, 6], "FP32", fp32=six + six,
                                                   model="rank3"))
    write(out, t, "refused_nan.bin", request("x", [1, 6], "FP32", fp32=six[:5] + [float("nan")],
                                             model="rank3"))
    write(out, t, "refused_unknown_output.bin", request(
        "input", [1, 64], "FP32", fp32=row, outputs=["probabilities", "logits"]))
    write(out, t, "digits_raw_classified.bin", request(
        "input", [1, 64], "FP32", raw=struct.pack("<64f", *row), classify={"probabilities": 3}))
    write(out, t, "digits_typed_classified_2rows.bin", request(
        "input", [2, 64], "FP32", fp32=row + row[::-1], classify={"probabilities": 20}))
    write(out, t, "refused_classification_string.bin", request(
        "input", [1, 64], "FP32", fp32=row, classify={"probabilities": "3"}))
    # The two-input, two-output spec: h classified, s plain.
    r = pb.ModelInferRequest(model_name="graph", id="seed")
    r.inputs.add(name="a", datatype="FP32", shape=[1, 2]).contents.fp32_contents.extend(six[:2])
    r.inputs.add(name="b", datatype="FP32", shape=[1, 2, 3]).contents.fp32_contents.extend(six)
    r.outputs.add(name="s")
    r.outputs.add(name="h").parameters["classification"].int64_param = 2
    write(out, t, "graph_typed_classified.bin", r.SerializeToString())


def rest_seeds(out):
    """fuzz_rest_body: a first byte choosing the binary section's length (0:
    none), then a REST body; JSON flat and nested, FP16, BYTES/BOOL, the
    binary extension and a truncated body."""
    import json
    t = "fuzz_rest_body"
    x = np.random.default_rng(1).standard_normal((2, 64)).astype(np.float32).round(3)

    def body(obj):
        return json.dumps(obj, separators=(",", ":")).encode()

    write(out, t, "json_flat.bin", b"\0" + body({"inputs": [
        {"name": "input", "datatype": "FP32", "shape": [2, 64], "data": x.ravel().tolist()}]}))
    write(out, t, "json_nested_fp64.bin", b"\0" + body({
        "id": "r1",
        "inputs": [{"name": "input", "datatype": "FP64", "shape": [2, 64], "data": x.tolist()}],
        "outputs": [{"name": "output", "parameters": {"binary_data": True}},
                    {"name": "y", "parameters": {"classification": 3}}]}))
    write(out, t, "json_fp16.bin", b"\0" + body({
        "inputs": [{"name": "input", "datatype": "FP16", "shape": [1, 64],
                    "data": x[0].tolist()}],
        "parameters": {"binary_data_output": True}}))
    raw = x[:1].astype("<f4").tobytes()[:64]
    write(out, t, "binary_fp32.bin", bytes([len(raw) + 1]) + body({
        "inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 16],
                    "parameters": {"binary_data_size": len(raw)}}],
        "outputs": [{"name": "output"}]}) + raw)
    write(out, t, "json_bytes_bool.bin", b"\0" + body({"inputs": [
        {"name": "s", "datatype": "BYTES", "shape": [2], "data": ["ab", "c\u00e9"]},
        {"name": "b", "datatype": "BOOL", "shape": [1], "data": [True]}]}))
    write(out, t, "malformed.bin",
          b"\0" + b'{"inputs":[{"name":"input","datatype":"FP32","shape":[1,')


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=os.path.join(HERE, "corpus"))
    args = parser.parse_args()
    onnx_seeds(args.out)
    for name, text in CONFIGS.items():
        write(args.out, "fuzz_model_config_text", name, text)
    for name, text in JSON_CONFIGS.items():
        write(args.out, "fuzz_model_config_json", name, text)
    infer_seeds(args.out, load_inference_protos())
    rest_seeds(args.out)


if __name__ == "__main__":
    main()
