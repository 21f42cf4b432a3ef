#!/usr/bin/python3
"""The times behind the fault tests (tests/integration/test_faults.py), which
assert behaviour from the server's books and never a time:

  restart   SIGKILL, then a new process on the same port: from its start to
            health SERVING and to the first answer (issue 15: ready within
            300 ms with the bundled model), over --restarts cycles.
  overload  a model whose 16-row batch costs milliseconds, queue limit 8:
            capacity measured in a closed loop, then an open loop at 3x it for
            --overload-seconds while a probe client sends one request every
            20 ms: how fast RESOURCE_EXHAUSTED comes back, the accepted
            probes' latency, and how long after the load stops the probes are
            back within 1.5x their latency before it (issue 15: 1 s).

    bench/faults.sh [--serve BIN] [--client BIN] [--restarts 5]
"""

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "models"))
import onnx_mlp_eval  # noqa: E402

MODEL = "digits_snn"
SLOW_SIZES = [64, 2048, 2048, 2048, 10]
BATCH, QUEUE = 16, 8


def log(*args):
    print(*args, flush=True)


def load_stubs(build_stubs):
    sys.path.insert(0, build_stubs)
    global grpc, pb, pb_grpc, health_pb2, health_pb2_grpc
    import grpc  # noqa: F401
    import grpc_service_pb2 as pb
    import grpc_service_pb2_grpc as pb_grpc
    import health_pb2
    import health_pb2_grpc


def write_slow_model(path):
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    rng = np.random.default_rng(5)
    nodes, inits, current = [], [], "x"
    for i in range(len(SLOW_SIZES) - 1):
        fan_in, fan_out = SLOW_SIZES[i], SLOW_SIZES[i + 1]
        w = (rng.standard_normal((fan_out, fan_in)) / np.sqrt(fan_in)).astype(np.float32)
        inits += [numpy_helper.from_array(w, "w%d" % i),
                  numpy_helper.from_array(np.zeros(fan_out, np.float32), "b%d" % i)]
        out = "y" if i == len(SLOW_SIZES) - 2 else "g%d" % i
        nodes.append(helper.make_node("Gemm", [current, "w%d" % i, "b%d" % i], [out], transB=1))
        current = out
        if out != "y":
            nodes.append(helper.make_node("Selu", [out], ["s%d" % i]))
            current = "s%d" % i
    graph = helper.make_graph(
        nodes, "slow", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 64])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 10])], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    os.makedirs(os.path.dirname(path), exist_ok=True)
    onnx.save(model, path)


class Server:
    def __init__(self, serve, repository, work, args=(), address="127.0.0.1:0"):
        self.port_file = os.path.join(work, "port-%d" % time.monotonic_ns())
        self.log = open(os.path.join(work, "server.log"), "ab")
        self.started = time.monotonic()
        self.proc = subprocess.Popen(
            [serve, "--model-repository", repository, "--grpc-address", address,
             "--metrics-address", "", "--port-file", self.port_file] + list(args),
            stdout=self.log, stderr=subprocess.STDOUT)

    def port(self):
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError("selu-serve exited with %d" % self.proc.returncode)
            try:
                with open(self.port_file) as f:
                    text = f.read().strip()
                if text:
                    return int(text)
            except FileNotFoundError:
                pass
            time.sleep(0.001)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=30)
        self.log.close()


def heldout_request(rows, model=MODEL, name="input", features=64):
    x, _ = onnx_mlp_eval.read_heldout_csv(os.path.join(ROOT, "models", MODEL, "heldout.csv"))
    req = pb.ModelInferRequest(model_name=model)
    req.inputs.add(name=name, datatype="FP32", shape=[rows, features])
    req.raw_input_contents.append(np.ascontiguousarray(x[:rows, :features], "<f4").tobytes())
    return req


def restart_times(args, work):
    """[(ms to health SERVING, ms to the first answer, whether the model was
    ready when health first said SERVING)] of restarts after SIGKILL."""
    repo = os.path.join(ROOT, "models")
    first = Server(args.serve, repo, work)
    address = "127.0.0.1:%d" % first.port()
    request = heldout_request(1)
    wait_serving(address, deadline=time.monotonic() + 60)
    current, times = first, []
    for _ in range(args.restarts):
        current.proc.send_signal(signal.SIGKILL)
        current.proc.wait()
        current.log.close()
        current = Server(args.serve, repo, work, address=address)
        t_serving, model_ready = wait_serving(address, deadline=time.monotonic() + 60)
        t_answer = first_answer(address, request, deadline=time.monotonic() + 60)
        times.append(((t_serving - current.started) * 1e3, (t_answer - current.started) * 1e3,
                      model_ready))
    current.stop()
    return times


def wait_serving(address, deadline):
    """Asks health "" on a fresh channel every millisecond or so (no reconnect
    backoff to wait out) until SERVING; returns the monotonic time and whether
    the model was ready then (ModelReady right after)."""
    while time.monotonic() < deadline:
        channel = grpc.insecure_channel(address)
        try:
            status = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=""), timeout=0.5).status
            if status == health_pb2.HealthCheckResponse.SERVING:
                t = time.monotonic()
                ready = pb_grpc.GRPCInferenceServiceStub(channel).ModelReady(
                    pb.ModelReadyRequest(name=MODEL), timeout=5).ready
                return t, ready
        except grpc.RpcError:
            pass
        finally:
            channel.close()
        time.sleep(0.001)
    raise RuntimeError("not SERVING in time")


def first_answer(address, request, deadline):
    channel = grpc.insecure_channel(address)
    try:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        while time.monotonic() < deadline:
            try:
                stub.ModelInfer(request, timeout=1)
                return time.monotonic()
            except grpc.RpcError:
                time.sleep(0.001)
    finally:
        channel.close()
    raise RuntimeError("no answer in time")


def bench(client, port, data, extra):
    out = subprocess.run([client, "bench", "-d", data, "-O", "json",
                          "127.0.0.1:%d" % port] + extra, capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError("selu-client bench: %s" % out.stderr[-1000:])
    return json.loads(out.stdout)


def overload(args, work):
    repo = os.path.join(work, "slow-repo")
    write_slow_model(os.path.join(repo, "slow", "1", "model.onnx"))
    server = Server(args.serve, repo, work, ["--max-queue-size", str(QUEUE), "--max-batch-size",
                                             str(BATCH), "--max-queue-delay-us", "0",
                                             "--batch-execution", "workers"])
    port = server.port()
    first_answer("127.0.0.1:%d" % port, heldout_request(1, "slow", "x"), time.monotonic() + 120)
    x = np.random.default_rng(3).standard_normal((BATCH, 64)).astype(np.float32)
    data = json.dumps({"model_name": "slow", "inputs": [{
        "name": "x", "datatype": "FP32", "shape": [BATCH, 64],
        "contents": {"fp32_contents": x.ravel().tolist()}}]})
    capacity = bench(args.client, port, data, ["-c", "2", "-z", "5s"])
    rate = 3 * capacity["rps"]

    request = pb.ModelInferRequest(model_name="slow")
    request.inputs.add(name="x", datatype="FP32", shape=[BATCH, 64])
    request.raw_input_contents.append(np.ascontiguousarray(x, "<f4").tobytes())
    channel = grpc.insecure_channel("127.0.0.1:%d" % port)
    stub = pb_grpc.GRPCInferenceServiceStub(channel)
    probes, stop = [], threading.Event()

    def probe():
        while not stop.is_set():
            t = time.monotonic()
            try:
                stub.ModelInfer(request, timeout=30)
                code = "OK"
            except grpc.RpcError as e:
                code = e.code().name
            probes.append((t, (time.monotonic() - t) * 1e3, code))
            time.sleep(max(0.0, 0.02 - (time.monotonic() - t)))

    prober = threading.Thread(target=probe)
    prober.start()
    time.sleep(2)
    t_flood = time.monotonic()
    flood = bench(args.client, port, data, ["-r", "%.1f" % rate, "-c", "64", "-z",
                                             "%gs" % args.overload_seconds])
    t_end = time.monotonic()
    time.sleep(3)
    stop.set()
    prober.join()
    channel.close()
    server.stop()

    before = [ms for t, ms, code in probes if t < t_flood and code == "OK"]
    during = [(ms, code) for t, ms, code in probes if t_flood <= t < t_end]
    normal = statistics.median(before)
    after = [(t, ms) for t, ms, code in probes if t >= t_end and code == "OK"]
    # The first probe within 1.5x the median before (the machine is shared:
    # later spikes are other processes', so the second second is shown too).
    recovered = next((t for t, ms in after if ms <= 1.5 * normal), None)
    first_second = [ms for t, ms in after if t < t_end + 1.0]
    if os.environ.get("FAULTS_DEBUG"):
        log("after:", [(round((t - t_end) * 1e3), round(ms, 1)) for t, ms in after])
    return dict(capacity=capacity["rps"], rate=rate, flood=flood, normal=normal,
                after_first_second=first_second,
                refused=[ms for ms, code in during if code == "RESOURCE_EXHAUSTED"],
                accepted=[ms for ms, code in during if code == "OK"],
                other=[code for ms, code in during if code not in ("OK", "RESOURCE_EXHAUSTED")],
                recovery_ms=None if recovered is None else (recovered - t_end) * 1e3)


def pct(values, p):
    return float(np.percentile(values, p)) if values else float("nan")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--serve", default=os.environ.get(
        "SELU_SERVE_BIN", os.path.join(ROOT, "build/release/server/selu-serve")))
    parser.add_argument("--client", default=os.environ.get(
        "SELU_CLIENT_BIN", os.path.join(ROOT, "build/release/client/selu-client")))
    parser.add_argument("--stubs", default=os.environ.get("SELU_STUBS_DIR"),
                        help="the integration tests' Python stubs "
                             "(<build>/tests/integration/stubs) [next to --serve]")
    parser.add_argument("--restarts", type=int, default=5)
    parser.add_argument("--overload-seconds", type=float, default=10.0)
    args = parser.parse_args()
    stubs = args.stubs or os.path.join(os.path.dirname(os.path.dirname(args.serve)),
                                       "tests", "integration", "stubs")
    for path in (args.serve, args.client, os.path.join(stubs, "grpc_service_pb2.py")):
        if not os.path.exists(path):
            log("missing %s (build the project, or pass --serve/--client/--stubs)" % path)
            return 2
    load_stubs(stubs)
    work = tempfile.mkdtemp(prefix="selu-faults-")
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                if line.startswith("model name")), "?")
    log("%d cores (%s), load average %s; work folder %s"
        % (os.cpu_count(), cpu, " ".join(open("/proc/loadavg").read().split()[:3]), work))

    times = restart_times(args, work)
    answer = [b for _, b, _ in times]
    log("restart after SIGKILL (bundled model), %d times: from the new process's start to "
        "the first answer %s ms (median %.0f, max %.0f); to health SERVING median %.0f ms; "
        "health said SERVING before the model was ready %d times"
        % (len(times), [round(b) for b in answer], statistics.median(answer), max(answer),
           statistics.median(a for a, _, _ in times), sum(1 for *_, r in times if not r)))

    o = overload(args, work)
    log("overload: capacity %.0f requests/s of %d rows (closed loop, 2 callers); offered %.0f/s "
        "(3x) for %g s: %s" % (o["capacity"], BATCH, o["rate"], args.overload_seconds,
                               o["flood"]["statusCodeDistribution"]))
    log("  probes during it: RESOURCE_EXHAUSTED %d, median %.2f ms, p99 %.2f ms; accepted %d, "
        "median %.1f ms, max %.1f ms (%.1f ms before the overload; queue limit %d)"
        % (len(o["refused"]), pct(o["refused"], 50), pct(o["refused"], 99), len(o["accepted"]),
           pct(o["accepted"], 50), max(o["accepted"] or [float("nan")]), o["normal"], QUEUE))
    log("  after it: the first probe within 1.5x the latency before came %s after the load "
        "stopped; the first second's %d probes: median %.1f ms, p90 %.1f ms%s"
        % ("never" if o["recovery_ms"] is None else "%.0f ms" % o["recovery_ms"],
           len(o["after_first_second"]), pct(o["after_first_second"], 50),
           pct(o["after_first_second"], 90),
           "; other codes: %s" % o["other"] if o["other"] else ""))
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
