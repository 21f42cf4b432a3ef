#!/usr/bin/python3
"""Check the committed digits_snn model (quick; needs only onnx and numpy).

    /usr/bin/python3 models/check_digits_snn.py [--repo-root PATH]

Loads models/digits_snn/1/model.onnx, evaluates it with numpy on
models/digits_snn/heldout.csv, and checks that:
  * the graph passes onnx.checker and uses only Gemm/Selu/Softmax/Identity,
    with float initializers and no Constant nodes;
  * held-out accuracy >= 0.95 and equals accuracy.json and the
    selu.heldout_accuracy metadata (to 1e-9);
  * the selu.reference_stats metadata is well formed: one layer per Gemm
    node, in order, names and feature counts matching, unit arrays of the
    right length, all numbers finite.
Prints one summary line; exits 1 with a message on the first failure.
"""

import argparse
import json
import math
import os
import sys

import numpy as np
import onnx

sys.dont_write_bytecode = True  # keep the source tree clean (ctest may run this)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import onnx_mlp_eval  # noqa: E402

MODEL = "digits_snn"
VERSION = "1"
MIN_ACCURACY = 0.95
ALLOWED_OPS = {"Gemm", "Selu", "Softmax", "Identity"}


class CheckError(Exception):
    pass


def require(cond, msg):
    if not cond:
        raise CheckError(msg)


def is_finite_number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def check_graph(model):
    try:
        onnx.checker.check_model(model)
    except Exception as e:  # onnx raises ValidationError
        raise CheckError("onnx.checker rejected the model: %s" % e)
    g = model.graph
    bad = [(n.name, n.op_type) for n in g.node if n.op_type not in ALLOWED_OPS]
    require(not bad, "unsupported nodes (name, op): %r" % bad)
    for init in g.initializer:
        require(init.data_type == onnx.TensorProto.FLOAT,
                "initializer %r is not FLOAT (data_type %d)" % (init.name, init.data_type))
    require([i.name for i in g.input] == ["input"], "graph inputs are %r, expected ['input']"
            % [i.name for i in g.input])
    require([o.name for o in g.output] == ["probabilities"],
            "graph outputs are %r, expected ['probabilities']" % [o.name for o in g.output])
    dims = g.input[0].type.tensor_type.shape.dim
    require(len(dims) == 2 and dims[0].dim_param == "batch" and dims[1].dim_value == 64,
            "input shape is not [batch, 64]")


def check_stats(model, meta):
    require("selu.reference_stats" in meta, "metadata key selu.reference_stats missing")
    try:
        doc = json.loads(meta["selu.reference_stats"])
    except ValueError as e:
        raise CheckError("selu.reference_stats is not valid JSON: %s" % e)
    require(isinstance(doc, dict), "selu.reference_stats is not a JSON object")
    require(doc.get("format") == 1, "reference stats: format is %r, expected 1" % doc.get("format"))
    require(doc.get("split") == "validation",
            "reference stats: split is %r, expected 'validation'" % doc.get("split"))
    require(isinstance(doc.get("rows"), int) and doc["rows"] > 0,
            "reference stats: rows must be a positive integer")
    layers = doc.get("layers")
    require(isinstance(layers, list), "reference stats: layers is not a list")

    g = model.graph
    init_shapes = {i.name: list(i.dims) for i in g.initializer}
    expected = onnx_mlp_eval.dense_layers(model)
    require(len(layers) == len(expected),
            "reference stats: %d layers, but the graph has %d Gemm nodes"
            % (len(layers), len(expected)))
    for i, (layer, (node, activation, _)) in enumerate(zip(layers, expected)):
        where = "reference stats layer %d" % i
        require(isinstance(layer, dict), "%s is not an object" % where)
        require(layer.get("index") == i, "%s: index is %r" % (where, layer.get("index")))
        require(layer.get("name") == node.name, "%s: name %r != Gemm node name %r"
                % (where, layer.get("name"), node.name))
        transb = any(a.name == "transB" and a.i for a in node.attribute)
        bshape = init_shapes.get(node.input[1])
        require(bshape is not None and len(bshape) == 2,
                "%s: Gemm %r weight is not a 2-D initializer" % (where, node.name))
        features = bshape[0] if transb else bshape[1]
        require(layer.get("features") == features, "%s: features %r != %d (Gemm %r)"
                % (where, layer.get("features"), features, node.name))
        require(layer.get("activation") == activation, "%s: activation %r, expected %r"
                % (where, layer.get("activation"), activation))
        for key in ("mean", "variance"):
            require(is_finite_number(layer.get(key)), "%s: %s is not a finite number" % (where, key))
        require(layer["variance"] >= 0, "%s: negative variance" % where)
        for key in ("unit_mean", "unit_variance"):
            arr = layer.get(key)
            require(isinstance(arr, list) and len(arr) == features,
                    "%s: %s must be a list of %d numbers" % (where, key, features))
            require(all(is_finite_number(v) for v in arr),
                    "%s: %s has non-finite or non-numeric entries" % (where, key))
        require(all(v >= 0 for v in layer["unit_variance"]), "%s: negative unit_variance" % where)
        # The overall mean is the mean of the unit means (same row count per unit).
        um = float(np.mean(layer["unit_mean"]))
        require(abs(um - layer["mean"]) <= 1e-5 * max(1.0, abs(layer["mean"])),
                "%s: mean %r inconsistent with unit_mean (%r)" % (where, layer["mean"], um))
    return doc


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description="Check the committed digits_snn model.")
    ap.add_argument("--repo-root", default=os.path.dirname(here))
    args = ap.parse_args()
    model_dir = os.path.join(args.repo_root, "models", MODEL)
    onnx_path = os.path.join(model_dir, VERSION, "model.onnx")
    acc_path = os.path.join(model_dir, VERSION, "accuracy.json")
    csv_path = os.path.join(model_dir, "heldout.csv")
    try:
        for p in (onnx_path, acc_path, csv_path):
            require(os.path.isfile(p), "missing file %s" % p)
        model = onnx.load(onnx_path)
        check_graph(model)
        meta = {p.key: p.value for p in model.metadata_props}
        doc = check_stats(model, meta)

        x, labels = onnx_mlp_eval.read_heldout_csv(csv_path)
        require(x.shape[1] == 64, "%s: %d pixel columns, expected 64" % (csv_path, x.shape[1]))
        try:
            acc = onnx_mlp_eval.accuracy(model, x, labels)
        except ValueError as e:
            raise CheckError("numpy evaluation failed: %s" % e)
        with open(acc_path) as f:
            recorded = json.load(f)
        require(acc >= MIN_ACCURACY, "held-out accuracy %.4f is below %.2f" % (acc, MIN_ACCURACY))
        require(abs(acc - recorded.get("heldout_accuracy", float("nan"))) <= 1e-9,
                "held-out accuracy %.10f != accuracy.json heldout_accuracy %r"
                % (acc, recorded.get("heldout_accuracy")))
        require(recorded.get("heldout_rows") == len(labels),
                "accuracy.json heldout_rows %r != %d CSV rows" % (recorded.get("heldout_rows"), len(labels)))
        try:
            meta_acc = float(meta.get("selu.heldout_accuracy", "nan"))
        except ValueError:
            meta_acc = float("nan")
        require(abs(acc - meta_acc) <= 1e-9, "held-out accuracy %.10f != metadata selu.heldout_accuracy %r"
                % (acc, meta.get("selu.heldout_accuracy")))
        require(meta.get("selu.training_script") == "models/train_digits_snn.py",
                "metadata selu.training_script is %r" % meta.get("selu.training_script"))
    except CheckError as e:
        print("check_digits_snn: FAIL: %s" % e, file=sys.stderr)
        return 1
    print("check_digits_snn: OK: %s held-out accuracy %.4f (%d rows) = accuracy.json; "
          "%d nodes (%s); reference stats %d layers on %d validation rows"
          % (os.path.relpath(onnx_path, args.repo_root), acc, len(labels), len(model.graph.node),
             ",".join(n.op_type for n in model.graph.node), len(doc["layers"]), doc["rows"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
