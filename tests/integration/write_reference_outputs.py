"""Writes the numpy reference outputs (models/onnx_mlp_eval.py) of the bundled
model on its held-out rows, for grpc_client_test (a ctest fixture): one line
per row, the 10 probabilities with 17 significant digits.

usage: write_reference_outputs.py SOURCE_DIR OUT_FILE
"""

import os
import sys

import numpy as np
import onnx

source_dir, out_path = sys.argv[1], sys.argv[2]
sys.path.insert(0, os.path.join(source_dir, "models"))
import onnx_mlp_eval  # noqa: E402

model_dir = os.path.join(source_dir, "models", "digits_snn")
x, _ = onnx_mlp_eval.read_heldout_csv(os.path.join(model_dir, "heldout.csv"))
model = onnx.load(os.path.join(model_dir, "1", "model.onnx"))
outputs, _ = onnx_mlp_eval.run(model, np.asarray(x, dtype=np.float32))
y = np.asarray(outputs[model.graph.output[0].name], dtype=np.float64)
if y.shape != (x.shape[0], 10):
    sys.exit("reference output shape %s, wanted (%d, 10)" % (y.shape, x.shape[0]))
os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
tmp = out_path + ".tmp"
with open(tmp, "w") as f:
    for row in y:
        f.write(" ".join("%.17g" % v for v in row) + "\n")
os.replace(tmp, out_path)
