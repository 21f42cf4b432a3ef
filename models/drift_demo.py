#!/usr/bin/python3
"""The README's worked example of the self-normalization monitor.

Starts the real selu-serve on the bundled repository (gRPC and /metrics on
free ports of 127.0.0.1), and sends the bundled digits_snn its held-out rows
as a client would, one row per request, in three phases:

    normal   the raw held-out pixels (0..16), as the model was trained on
    +0.25    every pixel shifted by +0.25
    x16      every pixel x16 (inputs on the wrong scale: a client whose
             rescaling step went missing)

at the server's default monitor settings (sample rate 0.25, windows of 128
sampled rows; --monitor-sample-rate passes another rate on). It calls
selu.monitor.v1.ModelMonitor/Check after every --poll-every requests and keeps
a point whenever a new window has closed (and at each phase's end): request
count, drift score, windows, alarms, the last window's rows and layer 0's live
mean and variance. Between two points Check answers the same, so the plot's
steps are exact (with --poll-every 1, the default). The answers' accuracy is measured per phase.

Writes --json (the points, per-phase summary, the reference figures and the
/metrics counters at the end) and --out (a PNG: the drift score against the
threshold 1, phases shaded; layer 0's live mean and variance against the
reference), and prints a summary. Exits 1 if the story does not hold: an alarm
in the normal phase, or a drift phase without one.

    /usr/bin/python3 models/drift_demo.py [--serve build/release/server/selu-serve]
        [--out docs/drift_demo.png] [--json docs/drift_demo.json] [--quick]

Needs the selu-serve binary, grpcio with grpc_tools (python3-grpc-tools),
numpy, onnx and matplotlib; Python stubs are generated from proto/ into a
temporary folder. Nothing else of the build tree is used.
"""

import argparse
import ctypes
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.dont_write_bytecode = True  # no __pycache__ in the model repository

import numpy as np  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import onnx_mlp_eval  # noqa: E402

MODEL = "digits_snn"
HELDOUT = os.path.join(HERE, MODEL, "heldout.csv")
THRESHOLD = 1.0
SCORE_FLOOR = 1e-3  # scores below are drawn at this height on the log axis
# Phase lengths, multiples of the 360 held-out rows (so each phase's accuracy
# is that of whole passes), and in --quick mode.
PHASES = (("normal", "normal held-out rows", lambda x: x, 2880, 720),
          ("shift", "+0.25 per pixel", lambda x: x + 0.25, 1440, 720),
          ("scale", "x16 (unscaled)", lambda x: x * 16, 1080, 120))
COLORS = {"normal": "#d9f0d3", "shift": "#fee0b6", "scale": "#f4a582"}


def generate_stubs(folder):
    protos = [os.path.join(ROOT, "proto", name)
              for name in ("grpc_service.proto", "model_config.proto", "monitor.proto")]
    subprocess.run([sys.executable, "-m", "grpc_tools.protoc", "-I" + os.path.join(ROOT, "proto"),
                    "--python_out=" + folder, "--grpc_python_out=" + folder] + protos,
                   check=True)
    sys.path.insert(0, folder)


class Server:
    """selu-serve on free ports, its log in `folder`; killed if we die."""

    def __init__(self, binary, folder, args):
        self.binary, self.folder, self.args = binary, folder, list(args)
        self.proc = None

    def start(self, timeout=60):
        import grpc

        port_file = os.path.join(self.folder, "port")
        metrics_file = os.path.join(self.folder, "metrics-port")
        self.log = open(os.path.join(self.folder, "server.log"), "wb")
        libc = ctypes.CDLL(None, use_errno=True)
        cmd = [self.binary, "--model-repository", HERE, "--grpc-address", "127.0.0.1:0",
               "--port-file", port_file, "--metrics-address", "127.0.0.1:0",
               "--metrics-port-file", metrics_file, "--shutdown-grace", "5"] + self.args
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT,
                                     preexec_fn=lambda: libc.prctl(1, signal.SIGKILL))
        self.port = self._read_port(port_file, timeout)
        self.metrics_port = self._read_port(metrics_file, timeout)
        self.channel = grpc.insecure_channel("127.0.0.1:%d" % self.port)
        grpc.channel_ready_future(self.channel).result(timeout=timeout)
        import grpc_service_pb2 as pb
        import grpc_service_pb2_grpc as pb_grpc

        stub = pb_grpc.GRPCInferenceServiceStub(self.channel)
        deadline = time.monotonic() + timeout
        while not stub.ModelReady(pb.ModelReadyRequest(name=MODEL), timeout=5).ready:
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError("model %s not ready; log:\n%s" % (MODEL, self.log_text()))
            time.sleep(0.05)
        return self

    def _read_port(self, path, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("selu-serve exited with %d:\n%s"
                                   % (self.proc.returncode, self.log_text()))
            if os.path.exists(path):
                text = open(path).read().strip()
                if text:
                    return int(text)
            time.sleep(0.02)
        raise RuntimeError("selu-serve wrote no %s in %.0f s" % (path, timeout))

    def log_text(self):
        with open(os.path.join(self.folder, "server.log"), "rb") as f:
            return f.read().decode("utf-8", "replace")

    def scrape(self):
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open("http://127.0.0.1:%d/metrics" % self.metrics_port, timeout=10) as r:
            return r.read().decode("utf-8")

    def stop(self):
        """SIGTERM; the exit code (0 expected)."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.channel.close()
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return -9
        finally:
            self.log.close()

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def metric(text, family):
    m = re.search(r'^%s\{[^}]*model="%s"[^}]*\} (\S+)$' % (family, MODEL), text, re.M)
    return float(m.group(1)) if m else None


def run(server, x, labels, phases, poll_every):
    import grpc_service_pb2 as pb
    import grpc_service_pb2_grpc as pb_grpc
    import monitor_pb2
    import monitor_pb2_grpc

    infer = pb_grpc.GRPCInferenceServiceStub(server.channel).ModelInfer
    check = monitor_pb2_grpc.ModelMonitorStub(server.channel).Check

    def ask():
        return check(monitor_pb2.ModelMonitorRequest(name=MODEL), timeout=10)

    first = ask()
    layer0 = first.tensors[1]
    info = dict(model=MODEL, version=first.version, sample_rate=first.sample_rate,
                window_rows=first.window_rows, drift_threshold=first.drift_threshold,
                reference_source=first.reference_source, layer0_name=layer0.name,
                layer0_reference_mean=layer0.reference_mean,
                layer0_reference_variance=layer0.reference_variance, poll_every=poll_every)
    keys = ("request", "phase", "drift_score", "windows", "alarms", "last_window_rows",
            "layer0_mean", "layer0_variance")
    points = {k: [] for k in keys}
    summary, sent, recorded_windows = [], 0, 0

    def record(r, phase):
        points["request"].append(sent)
        points["phase"].append(phase)
        points["drift_score"].append(round(r.drift_score, 6) if r.has_score else None)
        points["windows"].append(r.windows)
        points["alarms"].append(r.alarms)
        points["last_window_rows"].append(r.last_window_rows)
        t = r.tensors[1]
        points["layer0_mean"].append(float("%.6g" % t.live_mean) if t.has_live else None)
        points["layer0_variance"].append(float("%.6g" % t.live_variance) if t.has_live else None)

    record(first, PHASES[0][0])
    for name, label, transform, requests in phases:
        start, start_r = sent, ask()
        first_alarm, max_score, correct = None, None, 0
        for i in range(requests):
            row = transform(x[i % len(x)][None, :]).astype("<f4")
            req = pb.ModelInferRequest(model_name=MODEL)
            req.inputs.add(name="input", datatype="FP32", shape=[1, x.shape[1]])
            req.raw_input_contents.append(row.tobytes())
            resp = infer(req, timeout=10)
            probs = np.frombuffer(resp.raw_output_contents[0], dtype="<f4")
            correct += int(np.argmax(probs) == labels[i % len(x)])
            sent += 1
            if (i + 1) % poll_every and i + 1 < requests:
                continue
            r = ask()
            if r.windows != recorded_windows or i + 1 == requests:
                if r.windows > start_r.windows and r.has_score:
                    max_score = max(max_score or 0.0, r.drift_score)
                record(r, name)
                recorded_windows = r.windows
            if first_alarm is None and r.alarms > start_r.alarms:
                first_alarm = sent - start
        summary.append(dict(name=name, label=label, start=start, end=sent, requests=requests,
                            accuracy=correct / requests, windows=r.windows - start_r.windows,
                            alarms=r.alarms - start_r.alarms, max_score=max_score,
                            first_alarm_after=first_alarm))
    text = server.scrape()
    final = ask()
    info["metrics_at_end"] = dict(
        windows_total=metric(text, "selu_monitor_windows_total"),
        drift_alarms_total=metric(text, "selu_monitor_drift_alarms_total"),
        input_drift_score=metric(text, "selu_input_drift_score"))
    info["check_at_end"] = dict(windows=final.windows, alarms=final.alarms,
                                drift_score=final.drift_score)
    return info, summary, points


def plot(path, info, summary, points):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    req = np.asarray(points["request"], float)
    end = summary[-1]["end"]

    def series(key, floor=None):
        v = np.asarray([np.nan if p is None else p for p in points[key]], float)
        return np.maximum(v, floor) if floor is not None else v

    fig, axes = plt.subplots(3, 1, figsize=(10, 7.5), sharex=True,
                             gridspec_kw=dict(height_ratios=[2.2, 1, 1]))
    for ax in axes:
        for p in summary:
            ax.axvspan(p["start"], p["end"], color=COLORS[p["name"]], lw=0)
        ax.grid(True, alpha=0.3)
        ax.set_xlim(0, end)

    ax = axes[0]
    ax.step(req, series("drift_score", SCORE_FLOOR), where="post", color="black", lw=1.4,
            label="drift score of the last closed window (0 drawn at %g)" % SCORE_FLOOR)
    ax.axhline(THRESHOLD, color="#b2182b", ls="--", lw=1.2, label="threshold 1 (drift)")
    ax.set_yscale("log")
    ax.set_ylim(SCORE_FLOOR / 1.5, 1000)
    ax.set_ylabel("drift score")
    for p in summary:
        text = "%s\naccuracy %.3f" % (p["label"], p["accuracy"])
        if p["first_alarm_after"] is not None:
            x = p["start"] + p["first_alarm_after"]
            ax.axvline(x, color="#b2182b", lw=0.8, ls=":")
            text += "\nalarm after %d req." % p["first_alarm_after"]
        elif p["max_score"] is not None:
            text += "\nno alarm, max %.3f" % p["max_score"]
        ax.text((p["start"] + p["end"]) / 2, 300, text, ha="center", va="top", fontsize=8.5)
    ax.legend(loc="lower right", fontsize=8.5, framealpha=0.9)
    ax.set_title("selu-serve monitor, %s: batch-1 requests, sample rate %g, windows of %d "
                 "sampled rows" % (info["model"], info["sample_rate"], info["window_rows"]),
                 fontsize=10.5)

    ax = axes[1]
    ax.step(req, series("layer0_mean"), where="post", color="#2166ac", lw=1.3,
            label="layer 0 live mean")
    ax.axhline(info["layer0_reference_mean"], color="#2166ac", ls="--", lw=1,
               label="reference %.3g" % info["layer0_reference_mean"])
    ax.set_yscale("symlog", linthresh=0.3)
    ax.set_ylim(-0.3, 1.5 * max(1.0, np.nanmax(series("layer0_mean"))))
    ax.set_ylabel("layer 0 mean")
    ax.legend(loc="upper left", fontsize=8.5, framealpha=0.9)

    ax = axes[2]
    ax.step(req, series("layer0_variance"), where="post", color="#762a83", lw=1.3,
            label="layer 0 live variance")
    ax.axhline(info["layer0_reference_variance"], color="#762a83", ls="--", lw=1,
               label="reference %.3g" % info["layer0_reference_variance"])
    ax.set_yscale("log")
    ax.set_ylabel("layer 0 variance")
    ax.set_xlabel("batch-1 requests sent")
    ax.legend(loc="upper left", fontsize=8.5, framealpha=0.9)

    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--serve", default=os.path.join(ROOT, "build", "release", "server",
                                                    "selu-serve"), help="selu-serve binary")
    ap.add_argument("--out", default=os.path.join(ROOT, "docs", "drift_demo.png"))
    ap.add_argument("--json", default=os.path.join(ROOT, "docs", "drift_demo.json"))
    ap.add_argument("--quick", action="store_true",
                    help="short phases (720, 720, 120 requests): a smoke test")
    ap.add_argument("--poll-every", type=int, default=1, help="requests between Check calls")
    ap.add_argument("--monitor-sample-rate", help="passed to selu-serve (default: its own)")
    args = ap.parse_args()

    x, labels = onnx_mlp_eval.read_heldout_csv(HELDOUT)
    phases = [(n, label, f, quick if args.quick else full)
              for n, label, f, full, quick in PHASES]
    server_args = ["--log-level", "warn"]
    if args.monitor_sample_rate is not None:
        server_args += ["--monitor-sample-rate", args.monitor_sample_rate]
    folder = tempfile.mkdtemp(prefix="selu-drift-demo-")
    server = None
    try:
        generate_stubs(folder)
        server = Server(os.path.abspath(args.serve), folder, server_args).start()
        info, summary, points = run(server, x, labels, phases, args.poll_every)
        code = server.stop()
        if code != 0:
            raise RuntimeError("selu-serve exited with %d:\n%s" % (code, server.log_text()))
    except BaseException:
        if server is not None:
            server.kill()
            sys.stderr.write(server.log_text())
        raise
    finally:
        shutil.rmtree(folder, ignore_errors=True)

    os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
    with open(args.json, "w") as f:
        json.dump(dict(info, phases=summary, points=points), f, separators=(",", ":"))
        f.write("\n")
    plot(args.out, info, summary, points)

    print("drift demo: %s, batch-1 requests, sample rate %g, window %d rows (Check every %d "
          "request%s)" % (MODEL, info["sample_rate"], info["window_rows"], args.poll_every,
                          "" if args.poll_every == 1 else "s"))
    print("  %-22s %8s %9s %8s %7s %10s  %s" % ("phase", "requests", "accuracy", "windows",
                                               "alarms", "max score", "first alarm"))
    for p in summary:
        print("  %-22s %8d %9.4f %8d %7d %10s  %s" % (
            p["label"], p["requests"], p["accuracy"], p["windows"], p["alarms"],
            "-" if p["max_score"] is None else "%.4f" % p["max_score"],
            "-" if p["first_alarm_after"] is None
            else "after %d requests" % p["first_alarm_after"]))
    print("  wrote %s and %s" % (args.json, args.out))

    problems = []
    if summary[0]["alarms"]:
        problems.append("%d alarms on normal traffic" % summary[0]["alarms"])
    problems += ["no alarm in phase %s" % p["label"] for p in summary[1:]
                 if p["first_alarm_after"] is None]
    m, c = info["metrics_at_end"], info["check_at_end"]
    if (m["windows_total"], m["drift_alarms_total"]) != (c["windows"], c["alarms"]):
        problems.append("/metrics %s disagrees with Check %s" % (m, c))
    for problem in problems:
        print("drift demo: " + problem, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
