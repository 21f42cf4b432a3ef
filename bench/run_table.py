"""bench/run.sh's tables: aggregates one run's files and checks issue 14's targets.

    /usr/bin/python3 bench/run_table.py --collect OUT [--machine M] [--versions k=v ...]
                                        [--settings TEXT]
        reads OUT/runs.jsonl (one line per measured run), OUT/engine.json and
        OUT/startup.json (when present), writes OUT/bench-results.json, prints the tables
    /usr/bin/python3 bench/run_table.py OUT/bench-results.json
        prints the tables of a finished run again

Per tool, model, target and concurrency the figure is the median over the rounds (req/s,
p50, p99, server CPU per request); ratios are ratios of those medians. The tables are
Markdown, so a real run's can go into a README as they are. Exit status 0 whatever the
figures: meeting a target is reported, not enforced.
"""

import argparse
import json
import os
import statistics
import sys

# (name, numerator target, denominator target, goal, concurrencies it applies to or None)
RATIOS = [
    ("selu/echo", "selu-unary", "echo-unary", 0.85, None),
    ("selu/python", "selu-unary", "python", 20.0, (16, 64)),
    ("selu/node", "selu-unary", "node", 3.0, (16, 64)),
    ("stream/echo-stream", "selu-stream", "echo-stream", 0.85, (16, 64)),
    ("stream/echo-unary", "selu-stream", "echo-unary", 1.5, (16, 64)),
    ("monitor/no-monitor", "selu-unary", "selu-nomon", 0.98, None),
]
TARGET_ORDER = ["echo-unary", "selu-unary", "echo-stream", "selu-stream", "python", "node",
                "selu-nomon"]


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def aggregate_runs(runs):
    groups = {}
    for r in runs:
        key = (r["tool"], r["model"], r["concurrency"], r["target"])
        groups.setdefault(key, []).append(r)
    cells = []
    for (tool, model, c, target), rs in sorted(groups.items()):
        cells.append({
            "tool": tool, "model": model, "concurrency": c, "target": target,
            "connections": rs[0]["connections"], "rounds": len(rs),
            "rps": median([r["rps"] for r in rs]),
            "p50_ms": median([r["p50_ms"] for r in rs]),
            "p99_ms": median([r["p99_ms"] for r in rs]),
            "server_cpu_us_per_req": median([r["server_cpu_us_per_req"] for r in rs]),
            "errors": sum(r["errors"] for r in rs),
            "rps_rounds": [r["rps"] for r in rs]})
    return cells


def ratios_and_targets(cells, engine, startup, engine_bf16=None):
    by = {(c["tool"], c["model"], c["concurrency"], c["target"]): c for c in cells}
    ratios, targets = [], []
    for tool, model, conc in sorted({k[:3] for k in by}):
        row = {"tool": tool, "model": model, "concurrency": conc}
        for name, num, den, goal, applies in RATIOS:
            a, b = by.get((tool, model, conc, num)), by.get((tool, model, conc, den))
            if not a or not b or not a["rps"] or not b["rps"] or a["errors"] or b["errors"]:
                continue
            row[name] = a["rps"] / b["rps"]
            if applies is None or conc in applies:
                targets.append({"what": "%s %s c=%d %s" % (tool, model, conc, name),
                                "value": row[name], "goal": ">= %g" % goal,
                                "met": row[name] >= goal})
        a, b = by.get((tool, model, conc, "selu-unary")), by.get((tool, model, conc, "echo-unary"))
        if a and b and a["p99_ms"] and b["p99_ms"]:
            row["p99 selu/echo"] = a["p99_ms"] / b["p99_ms"]
            targets.append({"what": "%s %s c=%d p99 selu/echo" % (tool, model, conc),
                            "value": row["p99 selu/echo"], "goal": "<= 1.2",
                            "met": row["p99 selu/echo"] <= 1.2})
        ratios.append(row)
    for r in (engine or {}).get("rows", []):
        goal = 1.2 if r["batch"] >= 8 else 1.0
        targets.append({"what": "engine/ORT %s batch %d" % (r["model"], r["batch"]),
                        "value": r["ratio"], "goal": ">= %g" % goal, "met": r["ratio"] >= goal})
    for r in (engine_bf16 or {}).get("rows", []):
        if r["model"] == "big_snn" and r["batch"] == 1:
            targets.append({"what": "engine bf16 / ORT fp32 big_snn batch 1", "value": r["ratio"],
                            "goal": ">= 1.6", "met": r["ratio"] >= 1.6})
    if startup:
        targets.append({"what": "time to ready (worst of %d starts), ms" % len(startup["ready_ms"]),
                        "value": startup["ready_ms_max"], "goal": "<= 300",
                        "met": startup["ready_ms_max"] <= 300})
        targets.append({"what": "RSS serving digits_snn after load, MiB",
                        "value": startup["rss_after_load_mib"], "goal": "<= 50",
                        "met": startup["rss_after_load_mib"] <= 50})
    return ratios, targets


def fmt(v, digits=2):
    if v is None:
        return "-"
    if abs(v) >= 1000:
        return "%.0f" % v
    return "%.*f" % (digits, v)


def table(header, rows):
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---:" for _ in header) + "|"]
    out += ["| " + " | ".join(str(x) for x in row) + " |" for row in rows]
    return "\n".join(out)


def render(doc):
    parts = []
    meta = doc.get("machine", "?")
    parts.append("Machine: %s, %s CPUs. %s" % (meta, doc.get("cpus", "?"), doc.get("settings", "")))
    if doc.get("versions"):
        parts.append("Versions: " + ", ".join("%s %s" % kv for kv in sorted(doc["versions"].items())))
    for tool in sorted({c["tool"] for c in doc["cells"]}):
        for model in sorted({c["model"] for c in doc["cells"] if c["tool"] == tool}):
            cells = [c for c in doc["cells"] if c["tool"] == tool and c["model"] == model]
            cells.sort(key=lambda c: (c["concurrency"], TARGET_ORDER.index(c["target"])
                                      if c["target"] in TARGET_ORDER else 99))
            parts.append("\n%s, %s, batch-1 requests (median of rounds):\n" % (tool, model))
            parts.append(table(
                ["c", "conns", "target", "req/s", "p50 ms", "p99 ms", "server CPU µs/req",
                 "errors"],
                [[c["concurrency"], c["connections"], c["target"], fmt(c["rps"], 0),
                  fmt(c["p50_ms"], 3), fmt(c["p99_ms"], 3), fmt(c["server_cpu_us_per_req"], 1),
                  c["errors"]] for c in cells]))
    names = [r[0] for r in RATIOS] + ["p99 selu/echo"]
    if doc["ratios"]:
        parts.append("\nRatios (req/s over req/s; p99 over p99):\n")
        parts.append(table(["tool", "model", "c"] + names,
                           [[r["tool"], r["model"], r["concurrency"]] + [fmt(r.get(n)) for n in names]
                            for r in doc["ratios"]]))
    for key, weights in (("engine", "fp32"), ("engine_bf16", "bf16 weights (ORT fp32)")):
        engine = doc.get(key)
        if not engine:
            continue
        parts.append("\nEngine vs ONNX Runtime (onnxruntime-node %s), %s, 1 thread, %s, "
                     "%d rounds of %.2f s:\n" % (engine["onnxruntime_node"], weights,
                                                 engine["statistic"], engine["rounds"],
                                                 engine["seconds_per_run"]))
        parts.append(table(
            ["model", "batch", "engine rows/s", "ORT rows/s", "engine/ORT", "median ratio",
             "engine µs/call", "ORT µs/call", "Node+ORT Identity µs/call"],
            [[r["model"], r["batch"], fmt(r["engine_rows_per_s"], 0), fmt(r["ort_rows_per_s"], 0),
              fmt(r["ratio"]), fmt(r["ratio_median"]), fmt(r["engine_call_us"], 1),
              fmt(r["ort_call_us"], 1), fmt(r["node_call_us"], 1)] for r in engine["rows"]]))
    startup = doc.get("startup")
    if startup:
        parts.append("\nselu-serve with the bundled models/: ready in %.0f ms (median of %d "
                     "starts, worst %.0f); RSS %.1f MiB after %d digits_snn requests (peak %.1f, "
                     "idle %.1f)" % (startup["ready_ms_median"], len(startup["ready_ms"]),
                                     startup["ready_ms_max"], startup["rss_after_load_mib"],
                                     startup["load_requests"], startup["rss_peak_mib"],
                                     startup["rss_idle_mib"]))
    if doc["targets"]:
        parts.append("\nIssue 14's targets:\n")
        parts.append(table(["what", "value", "goal", "met"],
                           [[t["what"], fmt(t["value"]), t["goal"], "yes" if t["met"] else "NO"]
                            for t in doc["targets"]]))
        met = sum(t["met"] for t in doc["targets"])
        parts.append("\n%d of %d targets met." % (met, len(doc["targets"])))
    return "\n".join(parts)


def load_optional(path):
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def collect(args):
    out = args.collect
    with open(os.path.join(out, "runs.jsonl")) as f:
        runs = [json.loads(line) for line in f if line.strip()]
    engine = load_optional(os.path.join(out, "engine.json"))
    engine_bf16 = load_optional(os.path.join(out, "engine_bf16.json"))
    startup = load_optional(os.path.join(out, "startup.json"))
    cells = aggregate_runs(runs)
    ratios, targets = ratios_and_targets(cells, engine, startup, engine_bf16)
    versions = dict(v.split("=", 1) for v in args.versions)
    if engine:
        versions["onnxruntime-node"] = engine["onnxruntime_node"]
    if args.node_lock and os.path.exists(args.node_lock):
        packages = json.load(open(args.node_lock)).get("packages", {})
        for name in ("@grpc/grpc-js", "@grpc/proto-loader", "onnxruntime-node"):
            if "node_modules/" + name in packages:
                versions[name] = packages["node_modules/" + name]["version"]
    doc = {"machine": args.machine, "cpus": os.cpu_count(), "settings": args.settings,
           "versions": versions, "runs": runs, "cells": cells, "ratios": ratios,
           "engine": engine, "engine_bf16": engine_bf16, "startup": startup, "targets": targets}
    with open(os.path.join(out, "bench-results.json"), "w") as f:
        json.dump(doc, f, indent=1)
    return doc


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("results", nargs="?", help="a bench-results.json to print again")
    parser.add_argument("--collect", metavar="OUT", help="aggregate the run in folder OUT")
    parser.add_argument("--machine", default="?")
    parser.add_argument("--versions", action="append", default=[], metavar="NAME=VERSION")
    parser.add_argument("--settings", default="")
    parser.add_argument("--node-lock", help="package-lock.json of the npm packages installed")
    args = parser.parse_args()
    if bool(args.collect) == bool(args.results):
        parser.error("give either --collect OUT or a bench-results.json")
    if args.collect:
        doc = collect(args)
    else:
        with open(args.results) as f:
            doc = json.load(f)
    print(render(doc))


if __name__ == "__main__":
    sys.exit(main())
