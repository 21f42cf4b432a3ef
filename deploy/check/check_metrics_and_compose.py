#!/usr/bin/env python3
"""Checks for deploy/check-deploy.sh (Python 3 + python3-yaml only).

  metrics SCRAPE_FILE        every metric named in the Grafana dashboard's and
                             the alert rules' exprs is in a real /metrics scrape
  compose                    docker-compose.yml parses and names existing files
"""
import json
import pathlib
import re
import sys

import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
# PromQL words that look like identifiers but are not metric names.
PROMQL_WORDS = {
    "sum", "min", "max", "avg", "count", "stddev", "stdvar", "topk", "bottomk", "quantile",
    "count_values", "group", "by", "without", "on", "ignoring", "group_left", "group_right",
    "and", "or", "unless", "bool", "offset", "rate", "irate", "increase", "delta", "idelta",
    "histogram_quantile", "label_values", "label_replace", "abs", "time", "vector", "scalar",
    "le", "avg_over_time", "max_over_time", "min_over_time", "sum_over_time", "humanize",
}


def metric_names(expr):
    # Drop label matchers {...}, ranges [...], strings and template variables first.
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    text = re.sub(r"\{[^}]*\}", "{}", text)
    text = re.sub(r"\[[^\]]*\]", "[]", text)
    text = re.sub(r"\$\w+", "", text)
    names = set()
    for m in re.finditer(r"(?<![\w.])([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(\(?)", text):
        word, paren = m.group(1), m.group(2)
        if paren or word in PROMQL_WORDS:
            continue
        # grouping labels: "by (a, b)" were consumed as words inside parens
        names.add(word)
    return names


def grouping_labels(expr):
    labels = set()
    for m in re.finditer(r"\b(?:by|without|on|ignoring)\s*\(([^)]*)\)", expr):
        labels.update(x.strip() for x in m.group(1).split(",") if x.strip())
    return labels


def exprs_in_dashboard(dash):
    out = []
    for panel in dash.get("panels", []):
        for t in panel.get("targets", []):
            out.append(("panel '%s'" % panel.get("title"), t["expr"]))
    for v in dash.get("templating", {}).get("list", []):
        q = v.get("query")
        if isinstance(q, dict):
            q = q.get("query")
        if v.get("type") == "query" and q:
            m = re.match(r"label_values\((.*),\s*\w+\)$", q)
            out.append(("variable '%s'" % v["name"], m.group(1) if m else q))
    return out


def check_metrics(scrape_path):
    exported = set()
    for line in pathlib.Path(scrape_path).read_text().splitlines():
        if line and not line.startswith("#"):
            exported.add(re.match(r"[a-zA-Z_:][a-zA-Z0-9_:]*", line).group(0))
    if not exported:
        sys.exit("no metrics in the scrape %s" % scrape_path)
    dash = json.loads((ROOT / "deploy/grafana/selu-serve-dashboard.json").read_text())
    exprs = exprs_in_dashboard(dash)
    rules = yaml.safe_load((ROOT / "deploy/prometheus/alerts.yml").read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            exprs.append(("alert '%s'" % rule.get("alert", rule.get("record")), rule["expr"]))
    # Prometheus' own series (up{...}) exist without the server.
    builtin = {"up"}
    problems, seen = [], set()
    for where, expr in exprs:
        for name in metric_names(expr) - grouping_labels(expr) - builtin:
            seen.add(name)
            if name not in exported:
                problems.append("%s: metric %s is not exported by selu-serve" % (where, name))
    if len(exprs) < 10:
        problems.append("only %d exprs found: dashboard or alerts not parsed" % len(exprs))
    for p in problems:
        print("FAIL", p)
    print("%d exprs, %d distinct metric names checked against %d exported series names"
          % (len(exprs), len(seen), len(exported)))
    return not problems


def check_compose():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    problems = []
    services = compose.get("services") or {}
    for want in ("selu-serve", "prometheus", "grafana"):
        if want not in services:
            problems.append("service %s missing" % want)
    for name, svc in services.items():
        build = svc.get("build")
        if build is not None:
            ctx = build if isinstance(build, str) else build.get("context", ".")
            dockerfile = "Dockerfile" if isinstance(build, str) else build.get("dockerfile", "Dockerfile")
            if not (ROOT / ctx / dockerfile).is_file():
                problems.append("%s: build %s/%s does not exist" % (name, ctx, dockerfile))
        for vol in svc.get("volumes", []):
            src = vol.split(":")[0] if isinstance(vol, str) else vol.get("source", "")
            if src.startswith("."):
                if not (ROOT / src).exists():
                    problems.append("%s: volume source %s does not exist" % (name, src))
        for dep in svc.get("depends_on", []):
            if dep not in services:
                problems.append("%s: depends on unknown service %s" % (name, dep))
    prom = yaml.safe_load((ROOT / "deploy/prometheus/prometheus.yml").read_text())
    targets = [t for sc in prom["scrape_configs"] for c in sc.get("static_configs", []) for t in c["targets"]]
    if "selu-serve:8002" not in targets:
        problems.append("prometheus.yml does not scrape selu-serve:8002 (the compose service)")
    for p in problems:
        print("FAIL", p)
    print("docker-compose.yml: %d services checked" % len(services))
    return not problems


if __name__ == "__main__":
    if sys.argv[1:2] == ["metrics"] and len(sys.argv) == 3:
        ok = check_metrics(sys.argv[2])
    elif sys.argv[1:] == ["compose"]:
        ok = check_compose()
    else:
        sys.exit(__doc__)
    sys.exit(0 if ok else 1)
