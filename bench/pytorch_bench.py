#!/usr/bin/python3
"""PyTorch baseline for bench/engine_bench: the same two MLPs, single thread.

Prints JSON lines on stdout: one {"kind": "pytorch_config", ...} line with the
BLAS PyTorch actually loaded, then one {"kind": "pytorch", ...} line per
model x batch x variant. Variants: "eager" (nn.Sequential in eval mode under
torch.no_grad), "jit_freeze" (torch.jit.trace + torch.jit.freeze) and
"jit_optimized" (torch.jit.optimize_for_inference on the frozen module, which
may swap in oneDNN kernels). bench/report.py takes the fastest variant.

Each point is timed in `--reps` repetitions of at least `--min-time` seconds
(so >= 0.5 s per point with the defaults); the best repetition is reported,
as wall time (time.perf_counter) and as this thread's CPU time
(time.thread_time). Run with OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 and
OPENBLAS_CORETYPE naming this CPU (bench/run_engine_bench.sh does).
"""
import argparse
import ctypes
import json
import os
import sys
import time

# Must be set before torch loads OpenMP and OpenBLAS.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import torch  # noqa: E402
from torch import nn  # noqa: E402

MODELS = {
    "small": [64, 256, 256, 256, 10],
    "big": [1024, 1024, 1024, 1024, 1024, 1024],
}
BATCH_SIZES = [1, 8, 32, 128, 512]


def make_model(widths, seed):
    """LeCun-normal weights, N(0, 0.1^2) biases, SELU on hidden layers, last layer linear."""
    gen = torch.Generator().manual_seed(seed)
    layers = []
    for i in range(len(widths) - 1):
        lin = nn.Linear(widths[i], widths[i + 1])
        with torch.no_grad():
            lin.weight.normal_(0.0, widths[i] ** -0.5, generator=gen)
            lin.bias.normal_(0.0, 0.1, generator=gen)
        layers.append(lin)
        if i + 2 < len(widths):
            layers.append(nn.SELU())
    return nn.Sequential(*layers).eval()


def flops_per_row(widths):
    return sum(2 * widths[i] * widths[i + 1] for i in range(len(widths) - 1))


def loaded_blas_libraries():
    libs = set()
    with open("/proc/self/maps") as maps:
        for line in maps:
            path = line.split()[-1] if len(line.split()) >= 6 else ""
            name = os.path.basename(path)
            if any(k in name for k in ("blas", "lapack", "dnnl", "mkl", "gomp")):
                libs.add(os.path.realpath(path))
    return sorted(libs)


def openblas_info():
    try:
        lib = ctypes.CDLL("libopenblas.so.0")
    except OSError:
        return {}
    info = {}
    for fn in ("openblas_get_corename", "openblas_get_config"):
        f = getattr(lib, fn, None)
        if f is not None:
            f.restype = ctypes.c_char_p
            info[fn] = f().decode()
    get_threads = getattr(lib, "openblas_get_num_threads", None)
    if get_threads is not None:
        info["openblas_get_num_threads"] = get_threads()
    return info


def time_point(fn, min_time, reps):
    """Best of `reps` repetitions, each >= min_time seconds; returns (wall, cpu) per call."""
    for _ in range(3):
        fn()
    n = 1
    while True:  # calibrate: iterations filling min_time
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        dt = time.perf_counter() - t0
        if dt >= min_time / 4:
            n = max(1, int(n * min_time / dt * 1.05))
            break
        n *= 4
    best_wall = best_cpu = float("inf")
    for _ in range(reps):
        w0, c0 = time.perf_counter(), time.thread_time()
        for _ in range(n):
            fn()
        c1, w1 = time.thread_time(), time.perf_counter()
        best_wall = min(best_wall, (w1 - w0) / n)
        best_cpu = min(best_cpu, (c1 - c0) / n)
    return best_wall, best_cpu, n


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--min-time", type=float, default=0.2, help="seconds per repetition")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--models", default="small,big")
    ap.add_argument("--batches", default=",".join(map(str, BATCH_SIZES)))
    args = ap.parse_args()

    torch.set_num_threads(1)
    torch.manual_seed(0)
    config = {
        "kind": "pytorch_config",
        "torch_version": torch.__version__,
        "num_threads": torch.get_num_threads(),
        "env": {k: os.environ.get(k) for k in
                ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "OPENBLAS_CORETYPE")},
        "openblas": openblas_info(),
        "loaded_libraries": loaded_blas_libraries(),
        "config_show": torch.__config__.show(),
    }
    print(json.dumps(config), flush=True)
    print("pytorch_bench: BLAS core %s; loaded %s" % (
        config["openblas"].get("openblas_get_corename", "?"),
        ", ".join(config["loaded_libraries"])), file=sys.stderr)

    for model_name in args.models.split(","):
        widths = MODELS[model_name]
        model = make_model(widths, seed=1)
        example = torch.randn(8, widths[0])
        with torch.no_grad():
            frozen = torch.jit.freeze(torch.jit.trace(model, example).eval())
            variants = {"eager": model, "jit_freeze": frozen}
            try:
                variants["jit_optimized"] = torch.jit.optimize_for_inference(
                    torch.jit.freeze(torch.jit.trace(model, example).eval()))
            except Exception as e:  # not every build supports it
                print("pytorch_bench: optimize_for_inference failed: %s" % e, file=sys.stderr)
        for batch in map(int, args.batches.split(",")):
            x = torch.randn(batch, widths[0])
            with torch.no_grad():
                reference = model(x)
                for variant, module in variants.items():
                    y = module(x)
                    if not torch.allclose(y, reference, atol=1e-4, rtol=1e-4):
                        raise SystemExit("pytorch_bench: %s output differs from eager by %g" % (
                            variant, (y - reference).abs().max().item()))
                    wall, cpu, iters = time_point(lambda: module(x), args.min_time, args.reps)
                    flops = flops_per_row(widths) * batch
                    print(json.dumps({
                        "kind": "pytorch", "model": model_name, "batch": batch,
                        "variant": variant, "iterations_per_rep": iters,
                        "wall_s_per_iter": wall, "cpu_s_per_iter": cpu,
                        "rows_per_s_wall": batch / wall, "rows_per_s_cpu": batch / cpu,
                        "gflops_wall": flops / wall / 1e9,
                    }), flush=True)


if __name__ == "__main__":
    main()
