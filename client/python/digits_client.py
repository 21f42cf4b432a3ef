#!/usr/bin/python3
"""Classify the held-out digits with the bundled model digits_snn over gRPC.

Sends the rows of models/digits_snn/heldout.csv (64 pixel values, then the
label) to a selu-serve in requests of --batch rows, prints each prediction and
the accuracy. Needs Debian's python3-grpcio and python3-numpy, and the stubs
the build generates from proto/grpc_service.proto (build/<preset>/client/python_stubs):

    /usr/bin/python3 client/python/digits_client.py --stubs build/release/client/python_stubs
"""

import argparse
import csv
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_CSV = os.path.join(HERE, "..", "..", "models", "digits_snn", "heldout.csv")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--address", default=os.environ.get("SELU_ADDRESS", "localhost:8001"))
    parser.add_argument("--stubs", default=os.environ.get("SELU_PY_STUBS"),
                        help="folder with grpc_service_pb2*.py (env SELU_PY_STUBS)")
    parser.add_argument("--csv", default=DEFAULT_CSV)
    parser.add_argument("--batch", type=int, default=32, help="rows per request")
    parser.add_argument("--quiet", action="store_true", help="only print the accuracy")
    args = parser.parse_args()
    if not args.stubs:
        parser.error("--stubs (or SELU_PY_STUBS) is required")
    sys.path.insert(0, args.stubs)
    import grpc
    import grpc_service_pb2 as pb
    import grpc_service_pb2_grpc as pb_grpc

    with open(args.csv) as f:
        table = np.array([row for row in csv.reader(f)][1:], dtype=np.float32)
    images, labels = table[:, :64], table[:, 64].astype(int)

    stub = pb_grpc.GRPCInferenceServiceStub(grpc.insecure_channel(args.address))
    predictions = []
    for first in range(0, len(images), args.batch):
        x = images[first:first + args.batch]
        request = pb.ModelInferRequest(model_name="digits_snn")
        request.inputs.add(name="input", datatype="FP32", shape=x.shape)
        request.raw_input_contents.append(x.tobytes())  # little-endian FP32
        try:
            response = stub.ModelInfer(request, timeout=10)
        except grpc.RpcError as e:
            print("ModelInfer failed: %s: %s" % (e.code().name, e.details()), file=sys.stderr)
            return 1
        probabilities = np.frombuffer(response.raw_output_contents[0], np.float32)
        predictions.extend(probabilities.reshape(len(x), 10).argmax(axis=1))

    predictions = np.array(predictions)
    if not args.quiet:
        for i, (p, y) in enumerate(zip(predictions, labels)):
            print("row %3d: predicted %d, label %d%s" % (i, p, y, "" if p == y else "  <- wrong"))
    print("accuracy: %.4f (%d/%d)" % ((predictions == labels).mean(), (predictions == labels).sum(),
                                      len(labels)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
