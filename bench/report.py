#!/usr/bin/python3
"""Turns engine_bench's JSON and pytorch_bench.py's JSON lines into one table.

Every speed is a ratio against a baseline measured in the same run:
  eng/bare   engine rows/s over the bare oneDNN chain with the same primitive
             (target >= 0.95)
  mm/ip      engine with matmul over engine with inner product
  eng/torch  faster engine primitive over the fastest PyTorch variant
  eng/naive  faster engine primitive over the naive triple loop
  overhead   engine minus bare time per call on a tiny 16-16-16 model at batch 1
  %peak      the faster engine primitive's GFLOP/s over the best dnnl_sgemm
             GFLOP/s of the run (target for big at batch >= 128: >= 80 %)

A second table compares the engine's variants (when the run has them):
  auto/best      EnginePrimitive::kAuto over the faster of ip and matmul (fp32)
  bf16/fp32 ...  bf16 weights over fp32 weights with the same primitive choice
  bf16 best/fp32 best  the faster bf16 variant over the faster fp32 one

For each benchmark the best repetition is used (least time per iteration): on
a shared machine the other processes only ever make a run slower. --basis cpu
(default) uses this thread's CPU time, which leaves out the time the thread was
descheduled; --basis real uses wall time.
"""
import argparse
import json
import re
import sys

UNIT = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0}
BARE_TARGET = 0.95
PEAK_TARGET = 0.80


def load_engine(path, basis):
    with open(path) as f:
        data = json.load(f)
    best = {}  # name -> seconds per iteration
    gflops = {}
    for b in data["benchmarks"]:
        if b.get("run_type", "iteration") != "iteration" or b.get("error_occurred"):
            continue
        t = b["cpu_time" if basis == "cpu" else "real_time"] * UNIT[b.get("time_unit", "ns")]
        name = b.get("run_name", b["name"])
        if name not in best or t < best[name]:
            best[name] = t
    for b in data["benchmarks"]:
        m = re.fullmatch(r"BM_Sgemm/(\d+)", b.get("run_name", b["name"]))
        if m and b.get("run_type", "iteration") == "iteration":
            n = int(m.group(1))
            gflops[n] = 2.0 * n ** 3 / best[b.get("run_name", b["name"])] / 1e9
    return data.get("context", {}), best, gflops


def load_pytorch(path, basis):
    config, best = {}, {}  # (model, batch) -> (rows/s, variant)
    if not path:
        return config, best
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line.startswith("{"):
                continue
            r = json.loads(line)
            if r.get("kind") == "pytorch_config":
                config = r
            elif r.get("kind") == "pytorch":
                rate = r["rows_per_s_cpu" if basis == "cpu" else "rows_per_s_wall"]
                key = (r["model"], r["batch"])
                if key not in best or rate > best[key][0]:
                    best[key] = (rate, r["variant"])
    return config, best


def fmt_rate(x):
    if x is None:
        return "-"
    if x >= 1e6:
        return "%.2fM" % (x / 1e6)
    if x >= 1e5:
        return "%.0fk" % (x / 1e3)
    if x >= 1e4:
        return "%.1fk" % (x / 1e3)
    if x >= 1e3:
        return "%.2fk" % (x / 1e3)
    return "%.0f" % x


def fmt_ratio(x, target=None):
    if x is None:
        return "-"
    s = "%.2f" % x
    return s + " !" if target is not None and x < target else s


def print_table(header, rows):
    widths = [max(len(r[i]) for r in rows + [header]) for i in range(len(header))]
    line = lambda cells: "| " + " | ".join(c.rjust(w) for c, w in zip(cells, widths)) + " |"
    print(line(header))
    print("|" + "|".join("-" * (w + 1) + ":" for w in widths) + "|")
    for r in rows:
        print(line(r))


def variant_rows(points, rate):
    """auto vs the faster of ip/matmul, and bf16 over fp32, per model x batch."""
    header = ["model", "batch", "auto rows/s", "auto/best", "bf16 ip/fp32 ip",
              "bf16 mm/fp32 mm", "bf16 auto/fp32 auto", "bf16 best/fp32 best"]
    rows = []
    for model, batch in points:
        e = {v: rate("BM_Engine/%s/%d/%s" % (model, batch, v), batch)
             for v in ("ip", "matmul", "auto", "ip_bf16", "matmul_bf16", "auto_bf16")}
        if e["auto"] is None:
            continue
        div = lambda a, b: a / b if a and b else None
        best32 = max([e[v] for v in ("ip", "matmul") if e[v]], default=None)
        best16 = max([e[v] for v in ("ip_bf16", "matmul_bf16", "auto_bf16") if e[v]],
                     default=None)
        rows.append([model, str(batch), fmt_rate(e["auto"]), fmt_ratio(div(e["auto"], best32)),
                     fmt_ratio(div(e["ip_bf16"], e["ip"])),
                     fmt_ratio(div(e["matmul_bf16"], e["matmul"])),
                     fmt_ratio(div(e["auto_bf16"], e["auto"])),
                     fmt_ratio(div(best16, max(best32 or 0, e["auto"]) or None))])
    return (header, rows) if rows else None


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("engine_json")
    ap.add_argument("pytorch_jsonl", nargs="?")
    ap.add_argument("--basis", choices=("cpu", "real"), default="cpu")
    args = ap.parse_args()

    context, best, sgemm = load_engine(args.engine_json, args.basis)
    torch_config, torch_best = load_pytorch(args.pytorch_jsonl, args.basis)
    peak = max(sgemm.values()) if sgemm else None

    flops_per_row = {"small": 2 * (64 * 256 + 256 * 256 * 2 + 256 * 10),
                     "big": 2 * 5 * 1024 * 1024}
    points = sorted({(m.group(1), int(m.group(2)))
                     for n in best
                     for m in [re.fullmatch(r"BM_Engine/(\w+)/(\d+)/\w+", n)]
                     if m and m.group(1) in flops_per_row},
                    key=lambda p: (p[0] != "small", p[1]))

    def rate(name, batch):
        return batch / best[name] if name in best else None

    header = ["model", "batch", "eng ip rows/s", "eng mm rows/s", "bare ip", "bare mm",
              "eng/bare ip", "eng/bare mm", "mm/ip", "eng/torch", "torch best",
              "eng/naive", "GFLOP/s", "%peak"]
    rows, misses = [], []
    for model, batch in points:
        e = {p: rate("BM_Engine/%s/%d/%s" % (model, batch, p), batch) for p in ("ip", "matmul")}
        bare = {p: rate("BM_BareOneDnn/%s/%d/%s" % (model, batch, p), batch)
                for p in ("ip", "matmul")}
        ratio = {p: e[p] / bare[p] if e[p] and bare[p] else None for p in e}
        faster = max((p for p in e if e[p]), key=lambda p: e[p], default=None)
        best_engine = e[faster] if faster else None
        naive = rate("BM_Naive/%s/%d" % (model, batch), batch)
        torch_rate, torch_variant = torch_best.get((model, batch), (None, "-"))
        gf = best_engine * flops_per_row[model] / 1e9 if best_engine else None
        pct = gf / peak if gf and peak else None
        for p in e:
            if ratio[p] is not None and ratio[p] < BARE_TARGET:
                misses.append("%s batch %d %s: engine %.3fx bare (target %.2f)"
                              % (model, batch, p, ratio[p], BARE_TARGET))
        if model == "big" and batch >= 128 and pct is not None and pct < PEAK_TARGET:
            misses.append("big batch %d: %.0f%% of sgemm peak (target %.0f%%)"
                          % (batch, 100 * pct, 100 * PEAK_TARGET))
        rows.append([model, str(batch), fmt_rate(e["ip"]), fmt_rate(e["matmul"]),
                     fmt_rate(bare["ip"]), fmt_rate(bare["matmul"]),
                     fmt_ratio(ratio["ip"], BARE_TARGET), fmt_ratio(ratio["matmul"], BARE_TARGET),
                     fmt_ratio(e["matmul"] / e["ip"] if e["ip"] and e["matmul"] else None),
                     fmt_ratio(best_engine / torch_rate if best_engine and torch_rate else None),
                     torch_variant,
                     fmt_ratio(best_engine / naive if best_engine and naive else None),
                     "%.1f" % gf if gf else "-",
                     ("%.0f%%" % (100 * pct)) if pct is not None else "-"])

    print_table(header, rows)
    variants = variant_rows(points, rate)
    if variants:
        print()
        print_table(*variants)
    print()
    print("time basis: %s time, best of the repetitions of each benchmark" % args.basis)
    if sgemm:
        print("measured fp32 peak (dnnl_sgemm, 1 thread): " +
              ", ".join("n=%d %.1f GFLOP/s" % (n, g) for n, g in sorted(sgemm.items())))
    overhead = []
    for p in ("ip", "matmul"):
        eng, bare = best.get("BM_Engine/tiny/1/" + p), best.get("BM_BareOneDnn/tiny/1/" + p)
        if eng and bare:
            overhead.append("%s %+.0f ns (bare call %.0f ns)" % (p, (eng - bare) * 1e9, bare * 1e9))
    if overhead:
        print("engine per-call overhead, engine - bare on a 16-16-16 model at batch 1: " +
              ", ".join(overhead))
    if context:
        print("machine: %s CPUs @ %s MHz, onednn %s (isa %s), load avg %s" % (
            context.get("num_cpus"), context.get("mhz_per_cpu"),
            context.get("onednn_version"), context.get("onednn_cpu_isa"),
            context.get("load_avg")))
    if torch_config:
        blas = [l for l in torch_config.get("loaded_libraries", []) if "blas" in l]
        print("pytorch %s, %d thread(s), OpenBLAS core %s (OPENBLAS_CORETYPE=%s), loaded %s" % (
            torch_config.get("torch_version"), torch_config.get("num_threads"),
            torch_config.get("openblas", {}).get("openblas_get_corename", "?"),
            torch_config.get("env", {}).get("OPENBLAS_CORETYPE"), ", ".join(blas) or "?"))
    if misses:
        print("\nbelow target (marked !):")
        for m in misses:
            print("  " + m)
    else:
        print("\nall targets met")


if __name__ == "__main__":
    sys.exit(main())
