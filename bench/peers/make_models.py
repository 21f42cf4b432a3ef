"""Writes the ONNX files bench/run.sh compares on (generated, never committed).

    /usr/bin/python3 bench/peers/make_models.py OUT_DIR

OUT_DIR/repo is a model repository selu-serve serves:
  digits_snn  the bundled model (copied from models/digits_snn), 64 -> 10 with softmax
  big_snn     1024 -> 1024 x4 (SELU) -> 1024, linear head, 21 MB of weights
  tiny_snn    37 -> 129 -> 65 (SELU) -> 3, odd widths that fit no vector length
PyTorch (fixed seed, LeCun-normal weights as an SNN is initialised,
small random biases) exports them with
torch.onnx.export. OUT_DIR/identity_<width>.onnx: one Identity node each, width 64, 37
and 1024, to measure what a call through onnxruntime-node costs by itself.
OUT_DIR/models.json lists each model's file, input/output names and widths.
"""

import json
import os
import shutil
import sys

import onnx
import torch
from onnx import TensorProto, helper

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.dirname(os.path.dirname(HERE))


def snn(widths, seed):
    torch.manual_seed(seed)
    layers = []
    for i in range(len(widths) - 1):
        linear = torch.nn.Linear(widths[i], widths[i + 1])
        torch.nn.init.normal_(linear.weight, std=widths[i] ** -0.5)
        torch.nn.init.normal_(linear.bias, std=0.05)
        layers.append(linear)
        if i < len(widths) - 2:
            layers.append(torch.nn.SELU())
    return torch.nn.Sequential(*layers).eval()


def export(module, width, path):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    torch.onnx.export(module, torch.zeros(1, width), path, input_names=["input"],
                      output_names=["output"], dynamic_axes={"input": {0: "batch"},
                                                             "output": {0: "batch"}},
                      opset_version=13)


def identity(width, path):
    shape = ["batch", width]
    graph = helper.make_graph(
        [helper.make_node("Identity", ["input"], ["output"])], "identity",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, shape)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    onnx.checker.check_model(model)
    onnx.save(model, path)


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: make_models.py OUT_DIR")
    out = os.path.abspath(sys.argv[1])
    repo = os.path.join(out, "repo")
    digits = os.path.join(repo, "digits_snn", "1", "model.onnx")
    os.makedirs(os.path.dirname(digits), exist_ok=True)
    shutil.copyfile(os.path.join(SOURCE, "models", "digits_snn", "1", "model.onnx"), digits)
    models = {"digits_snn": {"file": digits, "input": "input", "output": "probabilities",
                             "in": 64, "out": 10}}
    with torch.no_grad():
        for name, widths, seed in (("big_snn", [1024] * 6, 14), ("tiny_snn", [37, 129, 65, 3], 15)):
            path = os.path.join(repo, name, "1", "model.onnx")
            if not os.path.exists(path):
                export(snn(widths, seed), widths[0], path)
            models[name] = {"file": path, "input": "input", "output": "output",
                            "in": widths[0], "out": widths[-1]}
    for width in (64, 37, 1024):
        path = os.path.join(out, "identity_%d.onnx" % width)
        identity(width, path)
        models["identity_%d" % width] = {"file": path, "input": "input", "output": "output",
                                         "in": width, "out": width}
    with open(os.path.join(out, "models.json"), "w") as f:
        json.dump(models, f, indent=1)


if __name__ == "__main__":
    main()
