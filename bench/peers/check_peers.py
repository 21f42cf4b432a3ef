"""Before bench/run.sh times anything: every server computes the same answers.

    /usr/bin/python3 bench/peers/check_peers.py --stubs DIR --models models.json \\
        --server selu=127.0.0.1:PORT --server python=... --server node=...

Sends the same 5 seeded rows of each of digits_snn and big_snn (raw FP32, one request)
to every server given and compares the answers with a numpy evaluation of the ONNX file
(models/onnx_mlp_eval.py, float64): max abs diff must be < 1e-4, or it exits 1 naming
the server and model. A fast server that answers wrong would otherwise win the race.
"""

import argparse
import json
import os
import sys

import numpy as np
import onnx

SOURCE = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOLERANCE = 1e-4


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--stubs", required=True)
    parser.add_argument("--models", required=True)
    parser.add_argument("--server", action="append", default=[], metavar="NAME=HOST:PORT")
    args = parser.parse_args()
    sys.path.insert(0, args.stubs)
    sys.path.insert(0, os.path.join(SOURCE, "models"))
    import grpc
    import grpc_service_pb2 as pb
    import grpc_service_pb2_grpc as pb_grpc
    import onnx_mlp_eval

    models = json.load(open(args.models))
    failures = 0
    for name in ("digits_snn", "big_snn"):
        info = models[name]
        x = np.random.default_rng(5).uniform(0, 4, (5, info["in"])).astype(np.float32)
        outputs, _ = onnx_mlp_eval.run(onnx.load(info["file"]), x.astype(np.float64),
                                       dtype=np.float64)
        want = outputs[info["output"]]
        for spec in args.server:
            server, _, address = spec.partition("=")
            stub = pb_grpc.GRPCInferenceServiceStub(grpc.insecure_channel(address))
            request = pb.ModelInferRequest(model_name=name, id="check")
            request.inputs.add(name=info["input"], datatype="FP32", shape=x.shape)
            request.raw_input_contents.append(x.tobytes())
            try:
                response = stub.ModelInfer(request, timeout=30)
                got = np.frombuffer(response.raw_output_contents[0], "<f4").reshape(want.shape)
                diff = float(np.abs(got - want).max())
            except (grpc.RpcError, IndexError, ValueError) as e:
                print("check_peers: %s / %s: no usable answer: %s" % (server, name, e))
                failures += 1
                continue
            verdict = "ok" if diff < TOLERANCE else "WRONG"
            print("check_peers: %-7s %-10s max abs diff vs numpy %.2e  %s"
                  % (server, name, diff, verdict))
            failures += diff >= TOLERANCE
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
