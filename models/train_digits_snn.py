#!/usr/bin/python3
"""Train and export the bundled self-normalizing network `digits_snn`.

    /usr/bin/python3 models/train_digits_snn.py [--repo-root PATH]

Data: sklearn.datasets.load_digits() (8x8 grey-level digits, pixel values
0..16, 1797 samples; ships with python3-sklearn, nothing is downloaded),
split 60/20/20 train/validation/test, stratified, fixed seed.

Model: 64 -> 256 -> 256 -> 256 -> 10, SELU after each hidden layer,
LeCun-normal init, AlphaDropout in training, Softmax at the end of the
exported graph. Inputs are standardized during training; the standardization
is then folded into the first layer so clients send RAW pixel values.

Writes (relative to the repo root):
    models/digits_snn/1/model.onnx      Gemm/Selu/Softmax graph, opset 13,
                                        metadata: selu.reference_stats, ...
    models/digits_snn/1/accuracy.json   accuracy of the written ONNX file
    models/digits_snn/heldout.csv       the test split, raw values

Reproducible: fixed seeds, deterministic algorithms, one thread.
"""

import argparse
import copy
import json
import os
import sys
import time

import numpy as np
import onnx
import torch
import torch.nn as nn
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

sys.dont_write_bytecode = True  # keep the source tree clean (ctest may run this)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import onnx_mlp_eval  # noqa: E402

SEED = 20240229
HIDDEN = [256, 256, 256]
DROPOUT = 0.05
EPOCHS = 60
BATCH = 32
LR = 0.01        # SGD with momentum 0.9, cosine-annealed to 0 over EPOCHS
MOMENTUM = 0.9
OPSET = 13
MODEL_NAME = "digits_snn"
MODEL_VERSION = "1"
SCRIPT = "models/train_digits_snn.py"
ALLOWED_OPS = {"Gemm", "Selu", "Softmax", "Identity"}


def sig7(x):
    """Round to 7 significant digits (keeps the metadata JSON small)."""
    x = float(x)
    if not np.isfinite(x):
        raise ValueError("non-finite statistic %r" % x)
    return float("%.7g" % x)


class SNN(nn.Module):
    def __init__(self, n_in, hidden, n_out, dropout):
        super().__init__()
        layers = []
        prev = n_in
        for h in hidden:
            layers += [nn.Linear(prev, h), nn.SELU(), nn.AlphaDropout(dropout)]
            prev = h
        layers.append(nn.Linear(prev, n_out))
        self.net = nn.Sequential(*layers)
        for m in self.net:
            if isinstance(m, nn.Linear):
                # LeCun normal: N(0, 1/fan_in), zero bias.
                nn.init.normal_(m.weight, mean=0.0, std=(1.0 / m.in_features) ** 0.5)
                nn.init.zeros_(m.bias)

    def forward(self, x):  # logits
        return self.net(x)


class WithSoftmax(nn.Module):
    def __init__(self, body):
        super().__init__()
        self.body = body
        self.softmax = nn.Softmax(dim=1)

    def forward(self, x):
        return self.softmax(self.body(x))


def split_data():
    digits = load_digits()
    x = digits.data.astype(np.float64)  # raw pixel values 0..16
    y = digits.target.astype(np.int64)
    idx = np.arange(len(y))
    idx_train, idx_rest = train_test_split(idx, test_size=0.4, stratify=y, random_state=SEED)
    idx_val, idx_test = train_test_split(idx_rest, test_size=0.5, stratify=y[idx_rest],
                                         random_state=SEED)
    return x, y, idx_train, idx_val, idx_test


def evaluate(model, x, y):
    model.eval()
    with torch.no_grad():
        return float((model(x).argmax(dim=1) == y).float().mean())


def train(xtr, ytr, xva, yva):
    """Plain SGD + momentum with a cosine schedule; the final epoch's weights
    are used (no early stopping, so the validation split stays an unbiased
    basis for the reference statistics)."""
    model = SNN(xtr.shape[1], HIDDEN, 10, DROPOUT)
    opt = torch.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, EPOCHS)
    loss_fn = nn.CrossEntropyLoss()
    gen = torch.Generator().manual_seed(SEED)
    n = xtr.shape[0]
    for epoch in range(EPOCHS):
        model.train()
        perm = torch.randperm(n, generator=gen)
        total = 0.0
        for i in range(0, n, BATCH):
            b = perm[i:i + BATCH]
            opt.zero_grad()
            loss = loss_fn(model(xtr[b]), ytr[b])
            loss.backward()
            opt.step()
            total += float(loss) * len(b)
        sched.step()
        if (epoch + 1) % 10 == 0:
            print("  epoch %3d  train loss %.4f  validation accuracy %.4f"
                  % (epoch + 1, total / n, evaluate(model, xva, yva)))
    model.eval()
    return model


def fold_standardization(model, mean, std):
    """Returns a copy of `model` taking raw inputs: W' = W/std, b' = b - W'.mean."""
    folded = SNN(model.net[0].in_features, HIDDEN, 10, DROPOUT)
    folded.load_state_dict(model.state_dict())
    first = folded.net[0]
    with torch.no_grad():
        w = first.weight.detach().double()
        b = first.bias.detach().double()
        w_f = w / torch.from_numpy(std)[None, :]
        b_f = b - w_f @ torch.from_numpy(mean)
        first.weight.copy_(w_f.float())
        first.bias.copy_(b_f.float())
    folded.eval()
    return folded


def check_graph(model):
    onnx.checker.check_model(model)
    g = model.graph
    ops = [n.op_type for n in g.node]
    bad = sorted(set(ops) - ALLOWED_OPS)
    assert not bad, "unexpected op types in exported graph: %r" % bad
    assert "Constant" not in ops
    inits = {i.name: i for i in g.initializer}
    for i in g.initializer:
        assert i.data_type == onnx.TensorProto.FLOAT, "initializer %s is not float" % i.name
    for n in g.node:
        if n.op_type == "Gemm":
            for name in n.input[1:]:
                assert name in inits, "Gemm %s input %s is not an initializer" % (n.name, name)
    assert [i.name for i in g.input] == ["input"], [i.name for i in g.input]
    assert [o.name for o in g.output] == ["probabilities"], [o.name for o in g.output]
    dims = g.input[0].type.tensor_type.shape.dim
    assert len(dims) == 2 and dims[0].dim_param == "batch" and dims[1].dim_value == 64, dims
    odims = g.output[0].type.tensor_type.shape.dim
    assert len(odims) == 2 and odims[0].dim_param == "batch" and odims[1].dim_value == 10, odims
    assert sum(op == "Gemm" for op in ops) == len(HIDDEN) + 1
    assert sum(op == "Selu" for op in ops) == len(HIDDEN)
    assert ops[-1] == "Softmax"


def reference_stats_json(model, x_val):
    stats = onnx_mlp_eval.layer_stats(model, x_val)
    layers = []
    for s in stats:
        layers.append({
            "index": s["index"],
            "name": s["name"],
            "features": s["features"],
            "activation": s["activation"],
            "mean": sig7(s["mean"]),
            "variance": sig7(s["variance"]),
            "unit_mean": [sig7(v) for v in s["unit_mean"]],
            "unit_variance": [sig7(v) for v in s["unit_variance"]],
        })
    doc = {"format": 1, "split": "validation", "rows": int(x_val.shape[0]), "layers": layers}
    return json.dumps(doc, separators=(",", ":"), allow_nan=False), stats


def write_heldout_csv(path, x, y):
    xi = np.rint(x).astype(np.int64)
    assert np.array_equal(xi, x), "digits pixel values are expected to be integers"
    with open(path, "w") as f:
        f.write(",".join(["pixel_%d" % i for i in range(x.shape[1])] + ["label"]) + "\n")
        for row, label in zip(xi, y):
            f.write(",".join(str(int(v)) for v in row) + ",%d\n" % int(label))


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repo-root", default=os.path.dirname(here))
    args = ap.parse_args()
    out_dir = os.path.join(args.repo_root, "models", MODEL_NAME)
    ver_dir = os.path.join(out_dir, MODEL_VERSION)
    os.makedirs(ver_dir, exist_ok=True)

    t0 = time.time()
    torch.manual_seed(SEED)
    np.random.seed(SEED)
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)

    x, y, idx_train, idx_val, idx_test = split_data()
    mean = x[idx_train].mean(axis=0)
    std = x[idx_train].std(axis=0)
    std[std == 0] = 1.0

    def std_t(idx):
        return torch.from_numpy(((x[idx] - mean) / std).astype(np.float32))

    def raw_t(idx):
        return torch.from_numpy(x[idx].astype(np.float32))

    ytr, yva, yte = (torch.from_numpy(y[i]) for i in (idx_train, idx_val, idx_test))
    model = train(std_t(idx_train), ytr, std_t(idx_val), yva)
    print("trained %d epochs in %.1f s" % (EPOCHS, time.time() - t0))

    # Fold the standardization into layer 0 and check equivalence.
    folded = fold_standardization(model, mean, std)
    # The model's output (probabilities) is compared in float32, as served.
    # Logits are compared in float64 (float32 folded weights, so this covers
    # the fp32 rounding of W' and b'): in float32 the logits reach |z| ~ 40,
    # where one ulp is ~4e-6, so their fp32 difference is rounding noise of
    # ~1e-5 and is checked relative to the logit scale instead.
    with torch.no_grad():
        d_logit = d_prob = d_logit64 = scale = 0.0
        folded64 = copy.deepcopy(folded).double()
        model64 = copy.deepcopy(model).double()
        for idx in (idx_train, idx_val, idx_test):
            a, b = model(std_t(idx)), folded(raw_t(idx))
            scale = max(scale, float(a.abs().max()))
            d_logit = max(d_logit, float((a - b).abs().max()))
            d_prob = max(d_prob, float((a.softmax(1) - b.softmax(1)).abs().max()))
            a64 = model64(torch.from_numpy((x[idx] - mean) / std))
            b64 = folded64(torch.from_numpy(x[idx]))
            d_logit64 = max(d_logit64, float((a64 - b64).abs().max()))
    print("fold check, max |unfolded(standardized x) - folded(raw x)|: probabilities %.3g (fp32), "
          "logits %.3g (fp64), logits %.3g (fp32, max |logit| %.1f)"
          % (d_prob, d_logit64, d_logit, scale))
    assert d_prob < 1e-5, "folding changed the probabilities by %g" % d_prob
    assert d_logit64 < 1e-5, "folding changed the fp64 logits by %g" % d_logit64
    assert d_logit < 1e-6 * max(1.0, scale), "folding changed the fp32 logits by %g" % d_logit

    # Export.
    export = WithSoftmax(folded).eval()
    onnx_path = os.path.join(ver_dir, "model.onnx")
    torch.onnx.export(
        export, raw_t(idx_val[:2]), onnx_path,
        export_params=True, opset_version=OPSET, do_constant_folding=True,
        input_names=["input"], output_names=["probabilities"],
        dynamic_axes={"input": {0: "batch"}, "probabilities": {0: "batch"}})
    m = onnx.load(onnx_path)
    check_graph(m)

    # Compare the ONNX graph (numpy evaluation) with the torch module.
    with torch.no_grad():
        p_torch = export(raw_t(idx_val)).numpy()
    p_onnx = onnx_mlp_eval.run(m, x[idx_val].astype(np.float32))[0]["probabilities"]
    onnx_diff = float(np.abs(p_torch - p_onnx).max())
    print("onnx (numpy) vs torch on validation: max |diff| = %.3g" % onnx_diff)
    assert onnx_diff < 1e-5, onnx_diff

    # Held-out CSV, then accuracy of the exported graph measured on it.
    csv_path = os.path.join(out_dir, "heldout.csv")
    write_heldout_csv(csv_path, x[idx_test], y[idx_test])
    x_test, y_test = onnx_mlp_eval.read_heldout_csv(csv_path)
    test_acc = onnx_mlp_eval.accuracy(m, x_test, y_test)
    val_acc = onnx_mlp_eval.accuracy(m, x[idx_val].astype(np.float32), y[idx_val])

    # Metadata.
    stats_json, stats = reference_stats_json(m, x[idx_val].astype(np.float32))
    del m.metadata_props[:]
    for k, v in (("selu.reference_stats", stats_json),
                 ("selu.training_script", SCRIPT),
                 ("selu.heldout_accuracy", repr(test_acc))):
        p = m.metadata_props.add()
        p.key, p.value = k, v
    onnx.checker.check_model(m)
    onnx.save(m, onnx_path)

    acc = {
        "heldout_accuracy": test_acc,
        "heldout_rows": int(len(y_test)),
        "validation_accuracy": val_acc,
        "train_rows": int(len(idx_train)),
        "torch_version": torch.__version__,
        "script": SCRIPT,
    }
    with open(os.path.join(ver_dir, "accuracy.json"), "w") as f:
        json.dump(acc, f, indent=2)
        f.write("\n")

    for s in stats:
        print("  layer %d %-24s %-8s mean % .4f variance %.4f"
              % (s["index"], s["name"], s["activation"], s["mean"], s["variance"]))
    print("graph nodes: " + ", ".join("%s(%s)" % (n.op_type, n.name) for n in m.graph.node))
    print("wrote %s (%d bytes), %s, accuracy.json" % (onnx_path, os.path.getsize(onnx_path), csv_path))
    print("held-out accuracy %.4f (%d rows), validation accuracy %.4f, total %.1f s"
          % (test_acc, len(y_test), val_acc, time.time() - t0))
    if test_acc < 0.95:
        print("ERROR: held-out accuracy below 0.95", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
