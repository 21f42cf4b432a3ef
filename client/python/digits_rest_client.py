#!/usr/bin/python3
"""Classify the held-out digits with the bundled model digits_snn over REST.

The REST (KServe v2 / Triton HTTP) variant of digits_client.py, with the
Python standard library only (http.client, json, csv): sends the rows of
models/digits_snn/heldout.csv (64 pixel values, then the label) to a
selu-serve in requests of --batch rows, prints each prediction and the
accuracy. --binary uses Triton's binary tensor extension for the inputs and
the output instead of JSON numbers.

    /usr/bin/python3 client/python/digits_rest_client.py --address localhost:8000
"""

import argparse
import csv
import http.client
import json
import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_CSV = os.path.join(HERE, "..", "..", "models", "digits_snn", "heldout.csv")


def infer(conn, rows, binary):
    """The model's output for `rows` (lists of 64 floats): a list of 10-float lists."""
    shape = [len(rows), len(rows[0])]
    flat = [v for row in rows for v in row]
    headers = {"Content-Type": "application/json"}
    if binary:
        raw = struct.pack("<%df" % len(flat), *flat)
        header = json.dumps({
            "inputs": [{"name": "input", "datatype": "FP32", "shape": shape,
                        "parameters": {"binary_data_size": len(raw)}}],
            "outputs": [{"name": "probabilities", "parameters": {"binary_data": True}}]}).encode()
        body = header + raw
        headers = {"Content-Type": "application/octet-stream",
                   "Inference-Header-Content-Length": str(len(header))}
    else:
        body = json.dumps({"inputs": [{"name": "input", "datatype": "FP32", "shape": shape,
                                       "data": flat}]}).encode()
    conn.request("POST", "/v2/models/digits_snn/infer", body=body, headers=headers)
    resp = conn.getresponse()
    data = resp.read()
    if resp.status != 200:
        raise RuntimeError("HTTP %d: %s" % (resp.status, data.decode(errors="replace")))
    length = int(resp.getheader("Inference-Header-Content-Length") or len(data))
    out = json.loads(data[:length])["outputs"][0]
    rows_out, cols = out["shape"]
    if "data" in out:
        values = out["data"]
    else:
        values = struct.unpack("<%df" % (rows_out * cols), data[length:])
    return [list(values[r * cols:(r + 1) * cols]) for r in range(rows_out)]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--address", default=os.environ.get("SELU_HTTP_ADDRESS_OF_SERVER",
                                                            "localhost:8000"),
                        help="host:port of the REST endpoint")
    parser.add_argument("--csv", default=DEFAULT_CSV)
    parser.add_argument("--batch", type=int, default=32, help="rows per request")
    parser.add_argument("--binary", action="store_true",
                        help="Triton's binary tensor extension instead of JSON numbers")
    parser.add_argument("--quiet", action="store_true", help="only print the accuracy")
    args = parser.parse_args()

    with open(args.csv) as f:
        table = [[float(v) for v in row] for row in list(csv.reader(f))[1:]]
    images, labels = [row[:64] for row in table], [int(row[64]) for row in table]

    host, _, port = args.address.rpartition(":")
    conn = http.client.HTTPConnection(host or "localhost", int(port), timeout=30)
    predictions = []
    for first in range(0, len(images), args.batch):
        try:
            scores = infer(conn, images[first:first + args.batch], args.binary)
        except (OSError, RuntimeError, http.client.HTTPException) as e:
            sys.exit("inference failed: %s" % e)
        predictions += [max(range(len(s)), key=s.__getitem__) for s in scores]
    conn.close()
    correct = 0
    for i, (p, label) in enumerate(zip(predictions, labels)):
        correct += p == label
        if not args.quiet:
            print("row %d: predicted %d, label %d" % (i, p, label))
    print("accuracy %.4f (%d/%d)" % (correct / len(labels), correct, len(labels)))


if __name__ == "__main__":
    main()
