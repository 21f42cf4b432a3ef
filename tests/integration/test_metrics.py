"""The Prometheus endpoint: exact values after a known workload, a clean
`promtool check metrics`, a real Prometheus server scraping it, and no
endpoint at all with --metrics-address "".

Exact values come from requests sent one after another to a server with
--max-queue-delay-us 0: each request is then its own batch, so batch sizes,
counts and codes are known in advance. Queue-full, deadline and cancellation
use a server whose batcher waits 3 s for company, and the test waits for the
state it needs (queue depth 1, a code counted) by watching the metrics, never
by sleeping.
"""

import concurrent.futures
import json
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.parse

import grpc
import numpy as np

import selu_server as s
from selu_server import pb

PROMETHEUS_BIN = "/usr/bin/prometheus"
PROMTOOL_BIN = "/usr/bin/promtool"
WAIT_S = 60.0  # safety net for every wait on a condition; never what a test measures

# Canonical gRPC code names (selu_inference_requests_total{code}) and the
# go-grpc-prometheus spelling (grpc_server_handled_total{grpc_code}).
CANONICAL_CODES = ("OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED",
                   "NOT_FOUND", "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED",
                   "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED",
                   "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED")
GO_GRPC_CODES = ("OK", "Canceled", "Unknown", "InvalidArgument", "DeadlineExceeded",
                 "NotFound", "AlreadyExists", "PermissionDenied", "ResourceExhausted",
                 "FailedPrecondition", "Aborted", "OutOfRange", "Unimplemented", "Internal",
                 "Unavailable", "DataLoss", "Unauthenticated")
INFER_SERVICE = "inference.GRPCInferenceService"
BATCH_SIZE_BOUNDS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192)
LATENCY_HISTOGRAMS = ("selu_inference_request_duration_seconds",
                      "selu_inference_queue_duration_seconds",
                      "selu_inference_compute_duration_seconds")


# ---- the text exposition format, parsed strictly

class Exposition:
    """A parsed /metrics page.

    types: family name -> "counter" | "gauge" | "histogram" | "summary" | "untyped"
    samples: [(sample name, labels dict, float value)] in page order
    """

    def __init__(self, types, helps, samples):
        self.types = types
        self.helps = helps
        self.samples = samples

    def select(self, name, **labels):
        """Samples named `name` whose labels include `labels`."""
        return [(lab, v) for n, lab, v in self.samples
                if n == name and all(lab.get(k) == w for k, w in labels.items())]

    def value(self, name, **labels):
        """The value of the one series `name{labels}` (labels given exactly)."""
        found = [v for n, lab, v in self.samples if n == name and lab == labels]
        if len(found) != 1:
            raise AssertionError("%d series %s%s; have: %s" % (
                len(found), name, labels, [lab for lab, _ in self.select(name)]))
        return found[0]

    def histogram(self, family, **labels):
        """(buckets [(le float, cumulative count)] in page order, count, sum)
        of one histogram series."""
        buckets = []
        for lab, v in self.select(family + "_bucket", **labels):
            rest = dict(lab)
            le = rest.pop("le")
            if rest == labels:
                buckets.append((float(le), v))
        return (buckets, self.value(family + "_count", **labels),
                self.value(family + "_sum", **labels))


def _unescape(text, quotes):
    out, i = [], 0
    while i < len(text):
        c = text[i]
        if c == "\\" and i + 1 < len(text):
            nxt = text[i + 1]
            if nxt == "n":
                out.append("\n")
            elif nxt == "\\":
                out.append("\\")
            elif nxt == '"' and quotes:
                out.append('"')
            else:
                out.append("\\" + nxt)
            i += 2
        else:
            out.append(c)
            i += 1
    return "".join(out)


def _is_name(text, first_extra=":"):
    if not text or not (text[0].isascii() and (text[0].isalpha() or text[0] in "_" + first_extra)):
        return False
    return all(c.isascii() and (c.isalnum() or c in "_" + first_extra) for c in text)


def _parse_labels(text, pos, line):
    """Parses `{a="x",b="y"}` starting at text[pos] == '{'; returns (dict, end)."""
    labels = {}
    i = pos + 1
    while True:
        if text[i] == "}":
            return labels, i + 1
        eq = text.index("=", i)
        name = text[i:eq].strip()
        if not _is_name(name, first_extra=""):
            raise ValueError("bad label name %r in %r" % (name, line))
        if text[eq + 1] != '"':
            raise ValueError("label value not quoted in %r" % line)
        j = eq + 2
        raw = []
        while text[j] != '"':
            if text[j] == "\\":
                raw.append(text[j:j + 2])
                j += 2
            else:
                raw.append(text[j])
                j += 1
        if name in labels:
            raise ValueError("label %r twice in %r" % (name, line))
        labels[name] = _unescape("".join(raw), quotes=True)
        i = j + 1
        if text[i] == ",":
            i += 1
        elif text[i] != "}":
            raise ValueError("expected ',' or '}' at %d in %r" % (i, line))


def _family_of(sample_name, types):
    if sample_name in types:
        return sample_name
    for suffix, kinds in (("_bucket", ("histogram",)), ("_count", ("histogram", "summary")),
                          ("_sum", ("histogram", "summary"))):
        if sample_name.endswith(suffix):
            base = sample_name[:-len(suffix)]
            if types.get(base) in kinds:
                return base
    return sample_name


def parse_exposition(text):
    """Parses the Prometheus text format (version 0.0.4), raising ValueError
    on anything malformed: a bad line, TYPE/HELP twice, TYPE after the
    family's samples, a family whose lines are not contiguous, a duplicate
    series, or a value that is not a float."""
    types, helps, samples = {}, {}, []
    seen_series = set()
    finished, current = set(), None

    def enter(family):
        nonlocal current
        if family != current:
            if family in finished:
                raise ValueError("lines of family %r are not contiguous" % family)
            if current is not None:
                finished.add(current)
            current = family

    if text and not text.endswith("\n"):
        raise ValueError("the exposition does not end with a newline")
    for line in text.split("\n"):
        if not line.strip():
            continue
        if line.startswith("#"):
            parts = line.split(None, 3)
            if len(parts) >= 3 and parts[1] in ("HELP", "TYPE"):
                name = parts[2]
                if not _is_name(name):
                    raise ValueError("bad metric name in %r" % line)
                enter(name)
                if parts[1] == "HELP":
                    if name in helps:
                        raise ValueError("HELP twice for %r" % name)
                    helps[name] = _unescape(parts[3] if len(parts) > 3 else "", quotes=False)
                else:
                    kind = parts[3].strip() if len(parts) > 3 else ""
                    if kind not in ("counter", "gauge", "histogram", "summary", "untyped"):
                        raise ValueError("bad TYPE in %r" % line)
                    if name in types:
                        raise ValueError("TYPE twice for %r" % name)
                    if any(_family_of(n, {name: kind}) == name for n, _, _ in samples):
                        raise ValueError("TYPE of %r after its samples" % name)
                    types[name] = kind
            continue
        end = 0
        while end < len(line) and line[end] not in "{ \t":
            end += 1
        name = line[:end]
        if not _is_name(name):
            raise ValueError("bad metric name in %r" % line)
        labels = {}
        if end < len(line) and line[end] == "{":
            try:
                labels, end = _parse_labels(line, end, line)
            except (IndexError, ValueError) as e:
                raise ValueError("bad labels in %r: %s" % (line, e)) from None
        rest = line[end:].split()
        if len(rest) not in (1, 2):
            raise ValueError("expected a value and an optional timestamp in %r" % line)
        try:
            value = float(rest[0])
        except ValueError:
            raise ValueError("bad value in %r" % line) from None
        if len(rest) == 2:
            int(rest[1])  # timestamp: an integer (ValueError otherwise)
        family = _family_of(name, types)
        enter(family)
        key = (name, tuple(sorted(labels.items())))
        if key in seen_series:
            raise ValueError("duplicate series %s%s" % (name, labels))
        seen_series.add(key)
        samples.append((name, labels, value))
    for family in {_family_of(n, types) for n, _, _ in samples}:
        types.setdefault(family, "untyped")
    return Exposition(types, helps, samples)


class ParserSelfTest(unittest.TestCase):
    """The parser above, on hand-written pages (so a wrong check cannot pass
    because the parser is lenient)."""

    def test_parses_labels_escapes_and_special_values(self):
        page = ('# HELP a_total Help with \\\\ and \\n.\n# TYPE a_total counter\n'
                'a_total{x="q\\"uo\\\\te",y="line\\nbreak",} 3 1700000000000\n'
                '# TYPE h histogram\nh_bucket{le="1"} 1\nh_bucket{le="+Inf"} 2\n'
                'h_count 2\nh_sum 1.5e+00\nu NaN\nv -Inf\n')
        exp = parse_exposition(page)
        self.assertEqual(exp.types, {"a_total": "counter", "h": "histogram", "u": "untyped",
                                     "v": "untyped"})
        self.assertEqual(exp.helps["a_total"], "Help with \\ and \n.")
        self.assertEqual(exp.value("a_total", x='q"uo\\te', y="line\nbreak"), 3)
        self.assertEqual(exp.histogram("h"), ([(1.0, 1), (math.inf, 2)], 2, 1.5))
        self.assertTrue(math.isnan(exp.value("u")))
        self.assertEqual(exp.value("v"), -math.inf)

    def test_rejects_malformed_pages(self):
        for page in ("a 1\na 2\n",                                  # duplicate series
                     "a{x=\"1\"} 1\nb 1\na{x=\"2\"} 1\n",            # not contiguous
                     "# TYPE a counter\n# TYPE a gauge\na 1\n",     # TYPE twice
                     "a 1\n# TYPE a counter\n",                      # TYPE after samples
                     "a{x=1} 1\n", "a one\n", "a 1 2 3\n", "1a 1\n",
                     "a 1"):                                         # no final newline
            with self.subTest(page=page):
                with self.assertRaises(ValueError):
                    parse_exposition(page)


# ---- checks that hold for every scrape

class MetricsAssertions:
    """Mixin for unittest.TestCase."""

    def assert_well_formed(self, exp):
        """Every histogram: buckets ascending by le, cumulative, ending in
        +Inf == _count; a non-negative _sum, 0 with no samples. Counters:
        finite and non-negative. Code labels: spelled as documented."""
        for family, kind in exp.types.items():
            if kind == "counter":
                for lab, v in exp.select(family):
                    self.assertTrue(math.isfinite(v) and v >= 0, "%s%s = %r" % (family, lab, v))
            if kind != "histogram":
                continue
            groups = {}
            for lab, _ in exp.select(family + "_count"):
                groups[tuple(sorted(lab.items()))] = lab
            self.assertTrue(groups, "histogram %s has no _count" % family)
            bucket_groups = {tuple(sorted((k, v) for k, v in lab.items() if k != "le"))
                             for lab, _ in exp.select(family + "_bucket")}
            self.assertEqual(bucket_groups, set(groups), "%s: buckets without _count or "
                                                         "the reverse" % family)
            for lab in groups.values():
                with self.subTest(histogram=family, labels=lab):
                    buckets, count, total = exp.histogram(family, **lab)
                    bounds = [le for le, _ in buckets]
                    self.assertGreaterEqual(len(buckets), 2)
                    self.assertEqual(bounds, sorted(bounds), "le not ascending")
                    self.assertEqual(len(set(bounds)), len(bounds), "le repeated")
                    self.assertEqual(bounds[-1], math.inf, "no le=\"+Inf\" bucket last")
                    cumulative = [c for _, c in buckets]
                    for a, b in zip(cumulative, cumulative[1:]):
                        self.assertLessEqual(a, b, "buckets not cumulative: %s" % cumulative)
                    self.assertEqual(cumulative[-1], count, "le=\"+Inf\" != _count")
                    self.assertEqual(count, int(count))
                    self.assertTrue(math.isfinite(total) and total >= 0, total)
                    if count == 0:
                        self.assertEqual(total, 0)
        for lab, _ in exp.select("selu_inference_requests_total"):
            self.assertIn(lab.get("code"), CANONICAL_CODES, lab)
        for lab, _ in exp.select("grpc_server_handled_total"):
            self.assertIn(lab.get("grpc_code"), GO_GRPC_CODES, lab)

    def assert_grpc_books_balance(self, exp):
        """At rest, for every unary method: started == sum of handled ==
        observations of grpc_server_handling_seconds."""
        for lab, started in exp.select("grpc_server_started_total", grpc_type="unary"):
            with self.subTest(method=lab["grpc_method"]):
                handled = sum(v for _, v in exp.select("grpc_server_handled_total", **lab))
                _, count, _ = exp.histogram("grpc_server_handling_seconds", **lab)
                self.assertEqual((started, handled, count), (started, started, started))

    def assert_promtool_clean(self, text):
        out = subprocess.run([PROMTOOL_BIN, "check", "metrics"], input=text,
                             capture_output=True, text=True, timeout=WAIT_S)
        self.assertEqual((out.returncode, out.stdout + out.stderr), (0, ""),
                         "promtool check metrics complained")

    def wait_for_metric(self, server, predicate, what):
        """Scrapes until predicate(exposition) holds; returns that exposition."""
        deadline = time.monotonic() + WAIT_S
        while True:
            exp = parse_exposition(server.scrape())
            if predicate(exp):
                return exp
            if time.monotonic() > deadline:
                raise AssertionError("waited %.0f s for %s" % (WAIT_S, what))
            time.sleep(0.01)


def infer_labels(method="ModelInfer"):
    return dict(grpc_method=method, grpc_service=INFER_SERVICE, grpc_type="unary")


def requests_by_code(exp, model, version="1"):
    return {lab["code"]: v for lab, v in exp.select("selu_inference_requests_total",
                                                     model=model, version=version)}


# ---- exact values after a known sequence of requests

DIGITS_ROWS = (1, 1, 2, 3, 4, 5, 8, 1, 7, 6)  # successful requests, in rows (max 8)
TINY_ROWS = (2, 3)                             # the second model
TINY_MODEL = "tiny_snn"
BROKEN_MODEL = "broken"


class ExactValuesTest(s.SharedRepositoryTestCase, MetricsAssertions):
    """A known mix of successes and refusals, sent one at a time; one scrape
    at rest is then checked value by value."""

    SERVER_ARGS = ("--max-batch-size", "8", "--max-queue-delay-us", "0")
    SERVER_KWARGS = dict(ready_service=s.BUNDLED_MODEL)

    @classmethod
    def fill_repository(cls, repo):
        s.link_bundled_model(repo)
        s.export_selu_mlp(os.path.join(repo, TINY_MODEL, "1", "model.onnx"), [4, 8, 3], seed=7)
        os.makedirs(os.path.join(repo, BROKEN_MODEL, "1"))
        with open(os.path.join(repo, BROKEN_MODEL, "1", "model.onnx"), "wb") as f:
            f.write(b"\x08\x07this is not an onnx model" * 10)
        # Before the server starts (fill_repository runs first): the earliest
        # process_start_time_seconds may be.
        cls.before_start = time.time()

    @classmethod
    def _expect_code(cls, request, code):
        try:
            cls.stub.ModelInfer(request, timeout=WAIT_S)
        except grpc.RpcError as e:
            if e.code() != code:
                raise AssertionError("wanted %s, got %s: %s" % (code, e.code(), e.details()))
            return
        raise AssertionError("wanted %s, the request succeeded" % code)

    @classmethod
    def run_workload(cls):
        x, _ = s.load_heldout()
        ref = s.bundled_reference()
        offset = 0
        for rows in DIGITS_ROWS:
            resp = cls.stub.ModelInfer(s.infer_request(x[offset:offset + rows]), timeout=WAIT_S)
            np.testing.assert_allclose(s.response_output(resp, rows, 10),
                                       ref(x[offset:offset + rows]), rtol=0, atol=s.TOLERANCE)
            offset += rows
        for rows in TINY_ROWS:
            req = s.infer_request(np.ones((rows, 4), np.float32), model=TINY_MODEL,
                                  input_name="x")
            s.response_output(cls.stub.ModelInfer(req, timeout=WAIT_S), rows, 3)

        invalid = grpc.StatusCode.INVALID_ARGUMENT
        # Refused by the model's input checks: counted for digits_snn.
        cls._expect_code(s.infer_request(np.zeros((1, 63), np.float32)), invalid)  # shape
        nan = x[:2].copy()
        nan[1, 5] = np.nan
        cls._expect_code(s.infer_request(nan), invalid)
        wrong_type = s.infer_request(x[:1])
        wrong_type.inputs[0].datatype = "INT32"
        cls._expect_code(wrong_type, invalid)
        cls._expect_code(s.infer_request(x[:9]), invalid)  # over --max-batch-size 8
        cls._expect_code(s.infer_request(x[:1], input_name="pixels"), invalid)
        cls.model_invalid = 5
        # Refused before any model is chosen: in grpc_server_handled_total only.
        cls._expect_code(s.infer_request(x[:1], model="no_such_model"),
                         grpc.StatusCode.NOT_FOUND)
        cls._expect_code(s.infer_request(x[:1], version="7"), grpc.StatusCode.NOT_FOUND)
        cls._expect_code(s.infer_request(x[:1], version="latest"), invalid)
        cls._expect_code(s.infer_request(x[:1], model=BROKEN_MODEL), grpc.StatusCode.UNAVAILABLE)

        # in_flight drops when gRPC is done with a call, which may be just
        # after the client has its answer.
        cls.text = None
        deadline = time.monotonic() + WAIT_S
        while True:
            text = cls.server.scrape()
            exp = parse_exposition(text)
            if exp.value("selu_inference_in_flight") == 0 or time.monotonic() > deadline:
                break
            time.sleep(0.01)
        cls.text, cls.exp = text, exp
        cls.stats = {m: s.statistics(cls.stub, m) for m in (s.BUNDLED_MODEL, TINY_MODEL)}

    # -- the page as a whole

    def test_page_is_well_formed(self):
        self.assert_well_formed(self.exp)
        for family in ("selu_inference_requests_total", "selu_inference_rows_total",
                       "selu_model_loads_total", "grpc_server_started_total",
                       "grpc_server_handled_total", "process_cpu_seconds_total"):
            self.assertEqual(self.exp.types.get(family), "counter", family)
        for family in LATENCY_HISTOGRAMS + ("selu_inference_batch_size",
                                            "selu_model_load_duration_seconds",
                                            "grpc_server_handling_seconds"):
            self.assertEqual(self.exp.types.get(family), "histogram", family)
        for family in ("selu_inference_queue_depth", "selu_inference_in_flight",
                       "selu_model_ready", "selu_build_info", "process_resident_memory_bytes",
                       "process_open_fds", "process_start_time_seconds"):
            self.assertEqual(self.exp.types.get(family), "gauge", family)
        for family in self.exp.types:
            self.assertTrue(self.exp.helps.get(family), "no HELP for " + family)

    def test_promtool_check_metrics_is_silent(self):
        self.assert_promtool_clean(self.text)

    # -- counters

    def test_requests_by_code(self):
        self.assertEqual(requests_by_code(self.exp, s.BUNDLED_MODEL),
                         {"OK": len(DIGITS_ROWS), "INVALID_ARGUMENT": self.model_invalid})
        self.assertEqual(requests_by_code(self.exp, TINY_MODEL), {"OK": len(TINY_ROWS)})
        models = {lab["model"] for lab, _ in self.exp.select("selu_inference_requests_total")}
        self.assertNotIn("no_such_model", models)

    def test_rows_total(self):
        self.assertEqual(self.exp.value("selu_inference_rows_total", model=s.BUNDLED_MODEL,
                                        version="1"), sum(DIGITS_ROWS))
        self.assertEqual(self.exp.value("selu_inference_rows_total", model=TINY_MODEL,
                                        version="1"), sum(TINY_ROWS))

    def test_grpc_handled_for_model_infer(self):
        infer = {lab["grpc_code"]: v for lab, v in
                 self.exp.select("grpc_server_handled_total", **infer_labels())}
        self.assertEqual(infer, {"OK": len(DIGITS_ROWS) + len(TINY_ROWS),
                                 "InvalidArgument": self.model_invalid + 1,
                                 "NotFound": 2, "Unavailable": 1})
        requests = len(DIGITS_ROWS) + len(TINY_ROWS) + self.model_invalid + 4
        self.assertEqual(self.exp.value("grpc_server_started_total", **infer_labels()), requests)
        self.assertEqual(self.exp.histogram("grpc_server_handling_seconds",
                                            **infer_labels())[1], requests)
        # Only our own services are counted (their handlers keep the counters;
        # an interceptor for gRPC's own health/reflection services would cost
        # every call a completion-queue round trip).
        services = {lab["grpc_service"] for lab, _ in self.exp.select("grpc_server_started_total")}
        self.assertEqual(services, {"inference.GRPCInferenceService",
                                    "selu.monitor.v1.ModelMonitor"})
        self.assert_grpc_books_balance(self.exp)

    # -- histograms

    def test_histogram_counts(self):
        for model, rows, refused in ((s.BUNDLED_MODEL, DIGITS_ROWS, self.model_invalid),
                                     (TINY_MODEL, TINY_ROWS, 0)):
            labels = dict(model=model, version="1")
            with self.subTest(model=model):
                expected = {"selu_inference_request_duration_seconds": len(rows) + refused,
                            "selu_inference_queue_duration_seconds": len(rows),
                            "selu_inference_compute_duration_seconds": len(rows),
                            "selu_inference_batch_size": len(rows)}
                for family, count in expected.items():
                    buckets, got, total = self.exp.histogram(family, **labels)
                    self.assertEqual(got, count, family)
                    self.assertEqual(buckets[-1], (math.inf, count), family)
                    if family in LATENCY_HISTOGRAMS:
                        self.assertGreater(total, 0, family)

    def test_batch_size_buckets(self):
        for model, rows in ((s.BUNDLED_MODEL, DIGITS_ROWS), (TINY_MODEL, TINY_ROWS)):
            with self.subTest(model=model):
                buckets, count, total = self.exp.histogram("selu_inference_batch_size",
                                                           model=model, version="1")
                self.assertEqual([le for le, _ in buckets],
                                 [float(b) for b in BATCH_SIZE_BOUNDS] + [math.inf])
                for le, cumulative in buckets:
                    self.assertEqual(cumulative, sum(1 for r in rows if r <= le), "le=%s" % le)
                self.assertEqual(total, sum(rows))
        # Spelled out for digits_snn: rows 1,1,2,3,4,5,8,1,7,6.
        buckets = dict(self.exp.histogram("selu_inference_batch_size", model=s.BUNDLED_MODEL,
                                          version="1")[0])
        self.assertEqual((buckets[1], buckets[2], buckets[4], buckets[8], buckets[16]),
                         (3, 4, 6, 10, 10))

    # -- gauges

    def test_gauges_at_rest(self):
        self.assertEqual(self.exp.value("selu_inference_in_flight"), 0)
        for model in (s.BUNDLED_MODEL, TINY_MODEL):
            self.assertEqual(self.exp.value("selu_inference_queue_depth", model=model,
                                            version="1"), 0)
        self.assertEqual({lab["model"]: v for lab, v in self.exp.select("selu_model_ready")},
                         {s.BUNDLED_MODEL: 1, TINY_MODEL: 1, BROKEN_MODEL: 0})
        self.assertEqual(self.exp.value("selu_model_ready", model=s.BUNDLED_MODEL,
                                        version="1"), 1)

    def test_model_loads(self):
        loads = {(lab["model"], lab["result"]): v
                 for lab, v in self.exp.select("selu_model_loads_total")}
        self.assertEqual(loads, {(s.BUNDLED_MODEL, "success"): 1, (s.BUNDLED_MODEL, "failure"): 0,
                                 (TINY_MODEL, "success"): 1, (TINY_MODEL, "failure"): 0,
                                 (BROKEN_MODEL, "success"): 0, (BROKEN_MODEL, "failure"): 1})
        _, count, total = self.exp.histogram("selu_model_load_duration_seconds")
        self.assertEqual(count, sum(loads.values()))
        self.assertGreater(total, 0)

    def test_build_info(self):
        series = self.exp.select("selu_build_info")
        self.assertEqual(len(series), 1, series)
        labels, value = series[0]
        self.assertEqual(value, 1)
        self.assertEqual(set(labels), {"version", "onednn", "grpc", "isa"})
        for name, text in labels.items():
            self.assertTrue(text.strip(), "empty build_info label " + name)
        self.assertRegex(labels["onednn"], r"^\d+\.\d+\.\d+$")

    def test_process_metrics(self):
        self.assertGreater(self.exp.value("process_resident_memory_bytes"), 0)
        self.assertGreater(self.exp.value("process_open_fds"), 0)
        self.assertGreaterEqual(self.exp.value("process_cpu_seconds_total"), 0)
        started = self.exp.value("process_start_time_seconds")
        # Unix seconds, not ticks since boot: between the moment before the
        # test launched the process and now (the kernel's start time has
        # clock-tick resolution, hence the 1 s allowance below).
        self.assertGreaterEqual(started, math.floor(self.before_start) - 1, started)
        self.assertLessEqual(started, time.time(), started)

    # Bounds must print as round numbers (le="60", not "60.00000000000001"),
    # or a query or rule for le="60" matches nothing.
    def test_bucket_bounds_are_exact(self):
        for name, labels, _ in self.exp.samples:
            if name.endswith("_bucket") and labels["le"] != "+Inf":
                bound = float(labels["le"])
                with self.subTest(series=name, le=labels["le"]):
                    self.assertEqual(float("%.12g" % bound), bound,
                                     "le=%r is not a round number" % labels["le"])

    # -- Triton's ModelStatistics agrees

    def test_model_statistics_agrees(self):
        for model, rows, refused in ((s.BUNDLED_MODEL, DIGITS_ROWS, self.model_invalid),
                                     (TINY_MODEL, TINY_ROWS, 0)):
            with self.subTest(model=model):
                st = self.stats[model]
                labels = dict(model=model, version="1")
                by_code = requests_by_code(self.exp, model)
                self.assertEqual(st.inference_stats.success.count, by_code["OK"])
                self.assertEqual(st.inference_stats.fail.count,
                                 sum(v for c, v in by_code.items() if c != "OK"))
                self.assertEqual(st.inference_stats.fail.count, refused)
                self.assertEqual(st.inference_count,
                                 self.exp.value("selu_inference_rows_total", **labels))
                self.assertEqual(st.inference_count, sum(rows))
                batch_count = self.exp.histogram("selu_inference_batch_size", **labels)[1]
                self.assertEqual(st.execution_count, batch_count)
                self.assertEqual(st.inference_stats.queue.count, self.exp.histogram(
                    "selu_inference_queue_duration_seconds", **labels)[1])
                self.assertEqual(st.inference_stats.compute_infer.count, len(rows))
                per_size = {b.batch_size: b.compute_infer.count for b in st.batch_stats}
                self.assertEqual(per_size, {r: rows.count(r) for r in set(rows)})
                self.assertEqual(sum(per_size.values()), batch_count)


# ---- queue full, deadline, cancellation

class QueueLimitsTest(s.ServerTestCase, MetricsAssertions):
    """One model, a queue of 1 and a batcher that waits 3 s for company: a
    queued request makes the next one RESOURCE_EXHAUSTED, one whose 1 s
    deadline passes while queued is DEADLINE_EXCEEDED, one cancelled while
    queued is CANCELLED; each counted once, and never computed."""

    def test_refused_expired_and_cancelled_are_counted(self):
        server = self.start_server("--max-queue-size", "1", "--max-queue-delay-us", "3000000",
                                   "--max-batch-size", "8")
        stub = server.inference()
        x, _ = s.load_heldout()
        labels = dict(model=s.BUNDLED_MODEL, version="1")

        def depth_is(n):
            return lambda exp: exp.value("selu_inference_queue_depth", **labels) == n

        def counted(code):
            return lambda exp: requests_by_code(exp, s.BUNDLED_MODEL).get(code, 0) >= 1

        # A waits in the queue (3 rows) ...
        queued = stub.ModelInfer.future(s.infer_request(x[:3]), timeout=WAIT_S)
        self.wait_for_metric(server, depth_is(1), "the first request to be queued")
        # ... so B finds the queue full.
        with self.assertRaises(grpc.RpcError) as cm:
            stub.ModelInfer(s.infer_request(x[3:4]), timeout=WAIT_S)
        self.assertEqual(cm.exception.code(), grpc.StatusCode.RESOURCE_EXHAUSTED,
                         cm.exception.details())
        self.assertEqual(list(queued.result().outputs[0].shape), [3, 10])

        # C's deadline (1 s) passes during the 3 s it waits for company.
        with self.assertRaises(grpc.RpcError) as cm:
            stub.ModelInfer(s.infer_request(x[4:6]), timeout=1.0)
        self.assertEqual(cm.exception.code(), grpc.StatusCode.DEADLINE_EXCEEDED)
        self.wait_for_metric(server, counted("DEADLINE_EXCEEDED"),
                             "the expired request to leave the queue")

        # D is cancelled by the client while queued.
        cancelled = stub.ModelInfer.future(s.infer_request(x[6:7]), timeout=WAIT_S)
        self.wait_for_metric(server, depth_is(1), "the request to cancel to be queued")
        self.assertTrue(cancelled.cancel())
        exp = self.wait_for_metric(
            server, lambda e: counted("CANCELLED")(e) and
            e.value("selu_inference_in_flight") == 0 and depth_is(0)(e),
            "the cancelled request to leave the queue")
        text = server.scrape()
        exp = parse_exposition(text)

        self.assert_well_formed(exp)
        self.assert_promtool_clean(text)
        self.assertEqual(requests_by_code(exp, s.BUNDLED_MODEL),
                         {"OK": 1, "RESOURCE_EXHAUSTED": 1, "DEADLINE_EXCEEDED": 1,
                          "CANCELLED": 1})
        self.assertEqual(exp.value("selu_inference_rows_total", **labels), 3)
        expected_counts = {"selu_inference_request_duration_seconds": 4,
                           "selu_inference_queue_duration_seconds": 1,
                           "selu_inference_compute_duration_seconds": 1,
                           "selu_inference_batch_size": 1}
        for family, count in expected_counts.items():
            self.assertEqual(exp.histogram(family, **labels)[1], count, family)
        batch = dict(exp.histogram("selu_inference_batch_size", **labels)[0])
        self.assertEqual((batch[2], batch[4]), (0, 1))
        self.assertEqual(exp.value("selu_inference_in_flight"), 0)
        self.assertEqual(exp.value("selu_inference_queue_depth", **labels), 0)

        infer = {lab["grpc_code"]: v for lab, v in
                 exp.select("grpc_server_handled_total", **infer_labels())}
        self.assertEqual(infer, {"OK": 1, "ResourceExhausted": 1, "DeadlineExceeded": 1,
                                 "Canceled": 1})
        self.assert_grpc_books_balance(exp)

        st = s.statistics(stub)
        self.assertEqual(st.inference_stats.success.count, 1)
        self.assertEqual(st.inference_stats.fail.count, 3)
        self.assertEqual(st.inference_count, 3)
        self.assertEqual(st.execution_count, 1)


# ---- a real Prometheus server

def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Prometheus:
    """/usr/bin/prometheus on 127.0.0.1, scraping one target every second."""

    CONFIG = """global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: selu-serve
    metrics_path: /metrics
    static_configs:
      - targets: ["127.0.0.1:{target_port}"]
"""

    def __init__(self, target_port):
        self.dir = tempfile.mkdtemp(prefix="selu-it-prometheus-")
        self.config_path = os.path.join(self.dir, "prometheus.yml")
        self.data_dir = os.path.join(self.dir, "data")
        self.log_path = os.path.join(self.dir, "prometheus.log")
        with open(self.config_path, "w") as f:
            f.write(self.CONFIG.format(target_port=target_port))
        self.proc = None
        self.port = None

    def start(self):
        for _ in range(3):  # the free port may be taken before Prometheus binds it
            self.port = free_port()
            log = open(self.log_path, "ab")
            try:
                self.proc = subprocess.Popen(
                    [PROMETHEUS_BIN, "--config.file", self.config_path,
                     "--storage.tsdb.path", self.data_dir,
                     "--web.listen-address", "127.0.0.1:%d" % self.port,
                     "--log.level", "warn"],
                    stdout=log, stderr=subprocess.STDOUT, cwd=self.dir,
                    preexec_fn=s._die_with_parent)
            finally:
                log.close()
            deadline = time.monotonic() + WAIT_S
            while self.proc.poll() is None and time.monotonic() < deadline:
                try:
                    with s.http_get(self.url("/-/ready"), timeout=5) as resp:
                        if resp.status == 200:
                            return self
                except OSError:
                    pass
                time.sleep(0.1)
            self.stop()
        raise AssertionError("Prometheus did not become ready:\n" + self.log_text())

    def url(self, path, **params):
        query = ("?" + urllib.parse.urlencode(params)) if params else ""
        return "http://127.0.0.1:%d%s%s" % (self.port, path, query)

    def api(self, path, **params):
        with s.http_get(self.url(path, **params), timeout=30) as resp:
            body = json.loads(resp.read().decode("utf-8"))
        if body.get("status") != "success":
            raise AssertionError("Prometheus %s %s: %s" % (path, params, body))
        return body["data"]

    def query(self, expr, at):
        """The instant vector of `expr` at unix time `at`: [(labels, float)]."""
        data = self.api("/api/v1/query", query=expr, time="%.3f" % at)
        if data["resultType"] != "vector":
            raise AssertionError("%s: %s result" % (expr, data["resultType"]))
        return [(r["metric"], float(r["value"][1])) for r in data["result"]]

    def scalar(self, expr, at):
        """The single value of `expr` at `at`, or None if the vector is empty."""
        result = self.query(expr, at)
        if len(result) > 1:
            raise AssertionError("%s: %d series: %s" % (expr, len(result), result))
        return result[0][1] if result else None

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def log_text(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")[-20000:]
        except OSError:
            return "(no log)"

    def cleanup(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


class PrometheusScrapeTest(s.ServerTestCase):
    REQUESTS = 300

    def wait_for(self, prom, what, predicate):
        """Evaluates predicate(t) at t = now until it holds; returns that t."""
        deadline = time.monotonic() + WAIT_S
        while True:
            at = time.time()
            if predicate(at):
                return at
            if time.monotonic() > deadline:
                raise AssertionError("waited %.0f s for Prometheus: %s\n%s" % (
                    WAIT_S, what, prom.log_text()))
            time.sleep(0.2)

    def test_prometheus_scrapes_and_queries(self):
        server = self.start_server()
        prom = Prometheus(server.metrics_port)
        self.addCleanup(prom.cleanup)

        out = subprocess.run([PROMTOOL_BIN, "check", "config", prom.config_path],
                             capture_output=True, text=True, timeout=WAIT_S)
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)

        prom.start()
        try:
            ok_counter = 'selu_inference_requests_total{job="selu-serve",code="OK"}'
            # Scraped at least once before any load: the OK counter exists at 0.
            self.wait_for(prom, "up == 1 and the OK counter at 0", lambda at: (
                prom.scalar('up{job="selu-serve"}', at) == 1 and
                prom.scalar(ok_counter, at) == 0))

            x, _ = s.load_heldout()
            sizes = [1 + (i * 5) % 8 for i in range(self.REQUESTS)]  # 1..8 rows

            def call(i):
                channel = server.new_channel()
                try:
                    rows = sizes[i]
                    start = (i * 3) % (len(x) - rows)
                    resp = server.inference(channel).ModelInfer(
                        s.infer_request(x[start:start + rows]), timeout=WAIT_S)
                    return len(s.response_output(resp, rows, 10))
                finally:
                    channel.close()

            with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
                answered = sum(pool.map(call, range(self.REQUESTS)))
            rows_sent = sum(sizes)
            self.assertEqual(answered, rows_sent)

            # Until the last scrape holds every row and the OK counter has at
            # least 2 samples in the rate window.
            at = self.wait_for(prom, "sum(selu_inference_rows_total) == %d" % rows_sent,
                               lambda at: (
                                   prom.scalar("sum(selu_inference_rows_total)", at) == rows_sent
                                   and (prom.scalar("count_over_time(%s[30s])" % ok_counter, at)
                                        or 0) >= 2))
            self.assertEqual(prom.scalar('up{job="selu-serve"}', at), 1)
            self.assertEqual(prom.scalar(ok_counter, at), self.REQUESTS)
            p99 = prom.scalar("histogram_quantile(0.99, sum by (le) "
                              "(rate(selu_inference_request_duration_seconds_bucket[30s])))", at)
            self.assertIsNotNone(p99)
            self.assertTrue(math.isfinite(p99) and 0 < p99 < 5, p99)
            rate = prom.scalar("rate(%s[30s])" % ok_counter, at)
            self.assertIsNotNone(rate)
            self.assertGreater(rate, 0)
            batch_p50 = prom.scalar("histogram_quantile(0.5, sum by (le) "
                                    "(rate(selu_inference_batch_size_bucket[30s])))", at)
            self.assertTrue(batch_p50 is not None and 0 < batch_p50 <= 64, batch_p50)
            # The target's health as Prometheus sees it: no scrape error.
            targets = prom.api("/api/v1/targets")["activeTargets"]
            self.assertEqual(len(targets), 1, targets)
            self.assertEqual(targets[0]["health"], "up", targets[0])
            self.assertEqual(targets[0]["lastError"], "", targets[0])
        except BaseException:
            sys.stderr.write("\n==== Prometheus log ====\n%s\n==== end ====\n" % prom.log_text())
            raise


# ---- --metrics-address ""

def listening_tcp_ports(pid):
    """TCP ports the process `pid` listens on (its sockets in LISTEN state)."""
    inodes = set()
    fd_dir = "/proc/%d/fd" % pid
    for fd in os.listdir(fd_dir):
        try:
            target = os.readlink(os.path.join(fd_dir, fd))
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:["):-1])
    ports = set()
    for table in ("tcp", "tcp6"):
        try:
            with open("/proc/%d/net/%s" % (pid, table)) as f:
                lines = f.readlines()[1:]
        except FileNotFoundError:
            continue
        for line in lines:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:  # 0A: TCP_LISTEN
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


class MetricsDisabledTest(s.ServerTestCase):
    def test_metrics_on_listens_on_three_ports(self):
        server = self.start_server()
        self.assertIsNotNone(server.metrics_port)
        self.assertEqual(listening_tcp_ports(server.proc.pid),
                         {server.port, server.http_port, server.metrics_port})

    def test_no_metrics_address_serves_without_an_endpoint(self):
        server = self.start_server("--max-queue-delay-us", "0", metrics=False, http=False)
        stub = server.inference()
        x, _ = s.load_heldout()
        resp = stub.ModelInfer(s.infer_request(x[:5]), timeout=WAIT_S)
        np.testing.assert_allclose(s.response_output(resp, 5, 10), s.bundled_reference()(x[:5]),
                                   rtol=0, atol=s.TOLERANCE)
        with self.assertRaises(grpc.RpcError) as cm:
            stub.ModelInfer(s.infer_request(x[:1], model="no_such_model"), timeout=WAIT_S)
        self.assertEqual(cm.exception.code(), grpc.StatusCode.NOT_FOUND)
        self.assertEqual(s.statistics(stub).inference_count, 5)  # statistics still kept
        self.assertTrue(stub.ServerReady(pb.ServerReadyRequest(), timeout=WAIT_S).ready)

        self.assertEqual(listening_tcp_ports(server.proc.pid), {server.port})
        self.assertIsNone(server.metrics_port)
        self.assertFalse(os.path.exists(os.path.join(server.workdir, "metrics-port")))
        self.assertNotIn("/metrics", server.log_text())


if __name__ == "__main__":
    unittest.main()
