"""selu-serve's time to ready and resident size serving the bundled digits_snn (bench/run.sh).

    /usr/bin/python3 bench/peers/startup_rss.py --stubs DIR --serve selu-serve \\
        --client selu-client --request request.json --repository models --out startup.json

Time to ready: from just before the process is spawned until ServerReady answers true
(polled every 2 ms once the port file appears), over --starts fresh starts (median and
worst reported). Resident size: the last start is then driven with `selu-client bench`
(concurrency 16, --load-seconds) with the request given, and VmRSS / VmHWM are read from
/proc/PID/status afterwards. Metrics are on (a free port), as they are in a deployment.
"""

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time


def read_status_kib(pid, field):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError("no %s in /proc/%d/status" % (field, pid))


def start_and_wait(args, pb, pb_grpc, grpc, folder):
    port_file = os.path.join(folder, "port")
    if os.path.exists(port_file):
        os.remove(port_file)
    t0 = time.perf_counter()
    proc = subprocess.Popen([args.serve, "--model-repository", args.repository,
                             "--grpc-address", "127.0.0.1:0", "--port-file", port_file,
                             "--metrics-address", "127.0.0.1:0", "--http-address", "127.0.0.1:0",
                             "--log-level", "warn"],
                            stderr=open(os.path.join(folder, "serve.log"), "ab"))
    deadline = t0 + 30
    stub = None
    while time.perf_counter() < deadline:
        if proc.poll() is not None:
            sys.exit("startup_rss: selu-serve exited with %d at start-up" % proc.returncode)
        if stub is None and os.path.exists(port_file):
            port = open(port_file).read().strip()
            if port:
                stub = pb_grpc.GRPCInferenceServiceStub(
                    grpc.insecure_channel("127.0.0.1:" + port))
        if stub is not None:
            try:
                if stub.ServerReady(pb.ServerReadyRequest(), timeout=0.5).ready:
                    return proc, port, 1000 * (time.perf_counter() - t0)
            except grpc.RpcError:
                pass
        time.sleep(0.002)
    proc.kill()
    sys.exit("startup_rss: selu-serve not ready within 30 s")


def stop(proc):
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    for flag in ("--stubs", "--serve", "--client", "--request", "--out"):
        parser.add_argument(flag, required=True)
    parser.add_argument("--repository", default="models")
    parser.add_argument("--starts", type=int, default=5)
    parser.add_argument("--load-seconds", type=float, default=4)
    args = parser.parse_args()
    sys.path.insert(0, args.stubs)
    import grpc
    import grpc_service_pb2 as pb
    import grpc_service_pb2_grpc as pb_grpc

    ready_ms = []
    with tempfile.TemporaryDirectory() as folder:
        for i in range(args.starts):
            proc, port, ms = start_and_wait(args, pb, pb_grpc, grpc, folder)
            ready_ms.append(ms)
            if i + 1 < args.starts:
                stop(proc)
        idle_rss = read_status_kib(proc.pid, "VmRSS")
        load = subprocess.run([args.client, "bench", "127.0.0.1:" + port, "-c", "16",
                               "--connections", "4", "-D", args.request, "-O", "json",
                               "-z", "%gs" % args.load_seconds],
                              capture_output=True, text=True)
        rss = read_status_kib(proc.pid, "VmRSS")
        hwm = read_status_kib(proc.pid, "VmHWM")
        stop(proc)
    try:
        ok = int(json.loads(load.stdout).get("statusCodeDistribution", {}).get("OK", 0))
    except ValueError:
        ok = 0
    if ok == 0:
        sys.exit("startup_rss: the load on digits_snn got no OK answer: %s" % load.stderr[-300:])
    result = {"ready_ms": ready_ms, "ready_ms_median": statistics.median(ready_ms),
              "ready_ms_max": max(ready_ms), "rss_idle_mib": idle_rss / 1024,
              "rss_after_load_mib": rss / 1024, "rss_peak_mib": hwm / 1024,
              "load_requests": ok}
    with open(args.out, "w") as f:
        json.dump(result, f, indent=1)
    print("startup_rss: ready in %.0f ms (median of %d; worst %.0f), RSS %.1f MiB after %d "
          "requests (peak %.1f)" % (result["ready_ms_median"], len(ready_ms),
                                    result["ready_ms_max"], result["rss_after_load_mib"], ok,
                                    result["rss_peak_mib"]), file=sys.stderr)


if __name__ == "__main__":
    main()
