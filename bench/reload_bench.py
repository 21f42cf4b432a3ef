#!/usr/bin/python3
"""What reloading one model costs the traffic of another.

One selu-serve (--model-control-mode explicit) serves the bundled digits_snn and
a second, larger model ("other", 64 -> WIDTH x 3 -> 10). bench/infer_load drives
digits_snn in a closed loop; in alternate runs of the same length, a client
reloads "other" back to back through RepositoryModelLoad (switching its config
between two max_batch_size values, so every call really loads, warms up and
swaps a new version, and drains and frees the old one). Quiet and reloading runs
alternate, so the shared machine's noise falls on both alike.

    /usr/bin/python3 bench/reload_bench.py [--build build/release] [--rounds 3]
        [--duration 4] [--concurrency 8] [--width 1024] [--interval 0]
        [--server-args "--model-load-nice 0"]

Prints, per round and as medians: digits_snn requests/s, p50 and p99 during
quiet and reloading runs, their ratios, reloads done, and failed requests
(the load generator counts any non-OK answer).
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def write_mlp(path, sizes, seed=0):
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    nodes, inits, current = [], [], "x"
    for i in range(len(sizes) - 1):
        w = rng.standard_normal((sizes[i + 1], sizes[i]), dtype=np.float32)
        w *= np.float32(1.0 / np.sqrt(sizes[i]))
        b = np.zeros(sizes[i + 1], np.float32)
        inits += [numpy_helper.from_array(w, "w%d" % i), numpy_helper.from_array(b, "b%d" % i)]
        last = i == len(sizes) - 2
        out = "y" if last else "g%d" % i
        nodes.append(helper.make_node("Gemm", [current, "w%d" % i, "b%d" % i], [out], transB=1))
        current = out
        if not last:
            nodes.append(helper.make_node("Selu", [out], ["s%d" % i]))
            current = "s%d" % i
    graph = helper.make_graph(
        nodes, "mlp", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", sizes[0]])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", sizes[-1]])],
        initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    os.makedirs(os.path.dirname(path), exist_ok=True)
    onnx.save(model, path)


def stubs(build):
    path = os.path.join(build, "client", "python_stubs")
    if not os.path.exists(os.path.join(path, "grpc_service_pb2_grpc.py")):
        sys.exit("missing %s: cmake --build %s --target selu_client_python_stubs" % (path, build))
    sys.path.insert(0, path)
    import grpc  # noqa: F401
    import grpc_service_pb2
    import grpc_service_pb2_grpc
    return grpc_service_pb2, grpc_service_pb2_grpc


class Reloader(threading.Thread):
    def __init__(self, pb, stub, interval):
        super().__init__(daemon=True)
        self.pb, self.stub, self.interval = pb, stub, interval
        self.stop = threading.Event()
        self.reloads = 0
        self.errors = []

    def run(self):
        sizes = [32, 64]
        while not self.stop.is_set():
            started = time.monotonic()
            req = self.pb.RepositoryModelLoadRequest(model_name="other")
            req.parameters["config"].string_param = json.dumps(
                {"max_batch_size": sizes[self.reloads % 2]})
            try:
                self.stub.RepositoryModelLoad(req, timeout=60)
                self.reloads += 1
                self.stop.wait(max(0.0, self.interval - (time.monotonic() - started)))
            except Exception as e:  # noqa: BLE001 - reported, not hidden
                self.errors.append(str(e))
                return


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build", default=os.path.join(ROOT, "build", "release"))
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=float, default=4.0)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--width", type=int, default=1024)
    ap.add_argument("--server-args", default="", help="more selu-serve options")
    ap.add_argument("--interval", type=float, default=0.0,
                    help="seconds between the start of two reloads (0: back to back)")
    args = ap.parse_args()
    build = os.path.abspath(args.build)
    serve = os.path.join(build, "server", "selu-serve")
    load = os.path.join(build, "bench", "infer_load")
    for binary in (serve, load):
        if not os.access(binary, os.X_OK):
            sys.exit("missing %s: cmake --build %s --target selu-serve infer_load" % (binary, build))
    pb, pb_grpc = stubs(build)
    import grpc

    work = tempfile.mkdtemp(prefix="selu-reload-bench-")
    server = None
    try:
        repo = os.path.join(work, "repo")
        os.makedirs(os.path.join(repo, "digits_snn", "1"))
        shutil.copyfile(os.path.join(ROOT, "models", "digits_snn", "1", "model.onnx"),
                        os.path.join(repo, "digits_snn", "1", "model.onnx"))
        write_mlp(os.path.join(repo, "other", "1", "model.onnx"),
                  [64, args.width, args.width, args.width, 10])
        port_file = os.path.join(work, "port")
        log = open(os.path.join(work, "server.log"), "wb")
        server = subprocess.Popen(
            [serve, "--model-repository", repo, "--grpc-address", "127.0.0.1:0",
             "--metrics-address", "", "--port-file", port_file, "--log-level", "warn",
             "--model-control-mode", "explicit", "--load-model", "*"] + args.server_args.split(),
            stdout=log, stderr=subprocess.STDOUT)
        for _ in range(600):
            if os.path.exists(port_file) and open(port_file).read().strip():
                break
            time.sleep(0.05)
        port = int(open(port_file).read())
        channel = grpc.insecure_channel("127.0.0.1:%d" % port)
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        for _ in range(600):
            if stub.ServerReady(pb.ServerReadyRequest(), timeout=5).ready:
                break
            time.sleep(0.05)

        def run_load(label):
            out = subprocess.run(
                [load, "--address", "127.0.0.1:%d" % port, "--concurrency",
                 str(args.concurrency), "--duration", str(args.duration), "--warmup", "0.5",
                 "--server-pid", str(server.pid), "--label", label,
                 "--data", os.path.join(ROOT, "models", "digits_snn", "heldout.csv")],
                capture_output=True, text=True, check=True)
            return json.loads(out.stdout.strip().splitlines()[-1])

        def failed(run):
            return run["requests"] - run["ok"] + run["warmup_errors"]

        quiet, busy, reloads = [], [], []
        for r in range(args.rounds):
            quiet.append(run_load("quiet"))
            reloader = Reloader(pb, stub, args.interval)
            reloader.start()
            busy.append(run_load("reloading"))
            reloader.stop.set()
            reloader.join()
            if reloader.errors:
                sys.exit("RepositoryModelLoad failed: %s" % reloader.errors[0])
            reloads.append(reloader.reloads)
            q, b = quiet[-1], busy[-1]
            print("round %d: quiet %.0f rps p50 %.0f p99 %.0f us | reloading %.0f rps p50 %.0f "
                  "p99 %.0f us, %d reloads | failed quiet %d, reloading %d"
                  % (r + 1, q["rps"], q["p50_us"], q["p99_us"], b["rps"], b["p50_us"],
                     b["p99_us"], reloader.reloads, failed(q), failed(b)))

        def med(runs, key):
            return statistics.median(x[key] for x in runs)

        print("\nmedian over %d rounds, digits_snn at concurrency %d, 'other' %dx3 wide:"
              % (args.rounds, args.concurrency, args.width))
        for key in ("rps", "p50_us", "p99_us"):
            print("  %-7s quiet %9.1f  reloading %9.1f  reloading/quiet %.2f"
                  % (key, med(quiet, key), med(busy, key), med(busy, key) / med(quiet, key)))
        print("  reloads per %.0f s run: %s; failed requests: quiet %d, reloading %d"
              % (args.duration, reloads, sum(failed(x) for x in quiet),
                 sum(failed(x) for x in busy)))
        print("command: /usr/bin/python3 bench/reload_bench.py --rounds %d --duration %g "
              "--concurrency %d --width %d --interval %g --server-args '%s'"
              % (args.rounds, args.duration, args.concurrency, args.width, args.interval,
                 args.server_args))
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=30)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
