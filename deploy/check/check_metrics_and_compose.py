#!/usr/bin/env python3
"""Checks for deploy/check-deploy.sh (Python 3 + python3-yaml only).

  metrics SCRAPE_FILE        every metric named in the Grafana dashboard's and
                             the alert rules' exprs is in a real /metrics scrape
  compose                    docker-compose.yml parses and names existing files
  adapter SCRAPE_FILE VALUES RENDERED...
                             the prometheus-adapter rules (Helm values): every
                             metric they name is in the scrape, each is a
                             per-pod rule whose name.matches fits its series,
                             the metricsQuery with its templates filled in
                             passes promtool, and every Pods metric of the
                             HPAs in the rendered manifests is a rule's name
"""
import json
import pathlib
import re
import subprocess
import sys
import tempfile

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


def exported_names(scrape_path):
    exported = set()
    for line in pathlib.Path(scrape_path).read_text().splitlines():
        if line and not line.startswith("#"):
            exported.add(re.match(r"[a-zA-Z_:][a-zA-Z0-9_:]*", line).group(0))
    if not exported:
        sys.exit("no metrics in the scrape %s" % scrape_path)
    return exported


def check_metrics(scrape_path):
    exported = exported_names(scrape_path)
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


# What prometheus-adapter substitutes for a pods metric of an HPA in
# namespace selu (its Go templates), so that promtool can parse the query.
ADAPTER_TEMPLATES = {
    "<<.LabelMatchers>>": 'namespace="selu",pod=~"selu-serve-a|selu-serve-b"',
    "<<.GroupBy>>": "namespace, pod",
}


def check_adapter(scrape_path, values_path, rendered_paths):
    exported = exported_names(scrape_path)
    values = yaml.safe_load(pathlib.Path(values_path).read_text())
    rules = ((values or {}).get("rules") or {}).get("custom") or []
    problems, names, promql = [], set(), []
    if not rules:
        problems.append("%s: no rules.custom" % values_path)
    for i, rule in enumerate(rules):
        where = "%s: rules.custom[%d]" % (values_path, i)
        series_query = rule.get("seriesQuery", "")
        series = sorted(metric_names(series_query))
        if len(series) != 1:
            problems.append("%s: seriesQuery should name one metric, names %s" % (where, series))
            continue
        series_name = series[0]
        for label in ("namespace", "pod"):
            if not re.search(r'\b%s!=""' % label, series_query):
                problems.append('%s: seriesQuery lacks %s!="" (series without it map to no pod)' % (where, label))
        overrides = (rule.get("resources") or {}).get("overrides") or {}
        if (overrides.get("pod") or {}).get("resource") != "pod" or \
                (overrides.get("namespace") or {}).get("resource") != "namespace":
            problems.append("%s: resources.overrides must map the labels pod and namespace to their resources" % where)
        name = rule.get("name") or {}
        if not re.search(name.get("matches", "^$"), series_name):
            problems.append("%s: name.matches %r does not match the series %s" % (where, name.get("matches"), series_name))
        metric = name.get("as") or series_name
        names.add(metric)
        query = rule.get("metricsQuery", "")
        if "<<.LabelMatchers>>" not in query or "<<.GroupBy>>" not in query:
            problems.append("%s: metricsQuery must use <<.LabelMatchers>> and <<.GroupBy>> (else it is not per pod)" % where)
        filled = query.replace("<<.Series>>", series_name)
        for template, value in ADAPTER_TEMPLATES.items():
            filled = filled.replace(template, value)
        if "<<" in filled:
            problems.append("%s: metricsQuery has a template the check does not know: %s" % (where, filled))
        promql.append((metric, filled))
        for used in sorted((metric_names(filled) | {series_name}) - grouping_labels(filled)):
            if used not in exported:
                problems.append("%s: metric %s is not exported by selu-serve" % (where, used))
    # promtool parses each filled-in query, as a recording rule.
    with tempfile.NamedTemporaryFile("w", suffix=".yml") as f:
        yaml.safe_dump({"groups": [{"name": "prometheus-adapter", "rules": [
            {"record": "adapter:" + m, "expr": q} for m, q in promql]}]}, f)
        f.flush()
        result = subprocess.run(["promtool", "check", "rules", f.name], capture_output=True, text=True)
        if result.returncode != 0:
            problems.append("%s: promtool rejects a metricsQuery: %s%s" % (values_path, result.stdout, result.stderr))
    hpa_metrics = 0
    for path in rendered_paths:
        for doc in yaml.safe_load_all(pathlib.Path(path).read_text()):
            if not doc or doc.get("kind") != "HorizontalPodAutoscaler":
                continue
            for m in doc["spec"].get("metrics", []):
                if m.get("type") != "Pods":
                    continue
                hpa_metrics += 1
                wanted = m["pods"]["metric"]["name"]
                if wanted not in names:
                    problems.append("%s: HPA %s asks for pods metric %s, which no adapter rule makes (%s)"
                                    % (path, doc["metadata"]["name"], wanted, ", ".join(sorted(names))))
    if hpa_metrics == 0:
        problems.append("no HPA in %s uses a Pods metric" % " ".join(rendered_paths))
    for p in problems:
        print("FAIL", p)
    print("%d adapter rules (%s) checked against %d exported series names, promtool, and %d HPA pods metrics"
          % (len(rules), ", ".join(sorted(names)), len(exported), hpa_metrics))
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
    elif sys.argv[1:2] == ["adapter"] and len(sys.argv) >= 5:
        ok = check_adapter(sys.argv[2], sys.argv[3], sys.argv[4:])
    else:
        sys.exit(__doc__)
    sys.exit(0 if ok else 1)
