#!/usr/bin/env python3
"""Table of run_server_bench.sh results (runs.jsonl: one infer_load JSON line per run).

For each load (concurrency, connections) and server: median rps over its runs, median
p50/p99 latency, median server and client CPU per 1k requests, and selu/echo, the ratio of
median rps. `paired` is the range of each selu-serve run divided by the echo run just
before it (same load, seconds apart): the spread shows the machine's noise.
"""
import json
import statistics
import sys
from collections import OrderedDict


def main(path):
    runs = [json.loads(line) for line in open(path) if line.strip()]
    groups = OrderedDict()
    paired = {}
    last_echo = {}
    for r in runs:
        load = (r["concurrency"], r["connections"])
        groups.setdefault(load, OrderedDict()).setdefault(r["label"], []).append(r)
        if r["label"] == "echo":
            last_echo[load] = r
        elif load in last_echo and last_echo[load]["rps"] > 0:
            paired.setdefault((load, r["label"]), []).append(r["rps"] / last_echo[load]["rps"])

    def med(rs, key):
        values = [r[key] for r in rs if key in r]
        return statistics.median(values) if values else float("nan")

    header = (f"{'conc':>4} {'conn':>4}  {'server':<40} {'runs':>4} {'rps':>8} {'p50 µs':>8} "
              f"{'p99 µs':>8} {'srv ms/1k':>9} {'cli ms/1k':>9} {'errors':>6} {'selu/echo':>9} "
              f"{'paired':>11}")
    print(header)
    print("-" * len(header))
    for (c, k), servers in groups.items():
        echo_rps = med(servers.get("echo", []), "rps")
        for label, rs in servers.items():
            errors = sum(r["requests"] - r["ok"] for r in rs)
            ratio = "" if label == "echo" else f"{med(rs, 'rps') / echo_rps:9.2f}"
            p = paired.get(((c, k), label))
            prange = f"{min(p):.2f}-{max(p):.2f}" if p else ""
            if label == "echo":
                lo, hi = min(r["rps"] for r in rs), max(r["rps"] for r in rs)
                prange = f"±{(hi - lo) / 2 / echo_rps * 100:.0f}%"
            name = label if label == "echo" else label.replace("--max-queue-delay-us ", "delay=")\
                .replace("--instances ", "inst=").replace("--metrics-address=", "no-metrics").replace("selu ", "selu ")
            print(f"{c:>4} {k:>4}  {name:<40} {len(rs):>4} {med(rs, 'rps'):>8.0f} "
                  f"{med(rs, 'p50_us'):>8.0f} {med(rs, 'p99_us'):>8.0f} "
                  f"{med(rs, 'server_cpu_ms_per_1k'):>9.1f} {med(rs, 'client_cpu_ms_per_1k'):>9.1f} "
                  f"{errors:>6} {ratio:>9} {prange:>11}")
    busy = [r.get("machine_busy_cores", 0) for r in runs]
    print(f"\nmachine busy cores during runs (all tenants): median {statistics.median(busy):.2f}, "
          f"min {min(busy):.2f}, max {max(busy):.2f}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "runs.jsonl")
