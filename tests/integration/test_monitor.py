"""The self-normalization monitor, end to end: selu.monitor.v1.ModelMonitor
(reflection, Check, its errors), the selu_activation_* / selu_input_drift_score
/ selu_monitor_* gauges on /metrics, `selu-client stats`, and models whose
reference statistics are unusable, or whose monitor is off, or whose traffic
drifts.

Exact expectations: the main server samples every batch
(--monitor-sample-rate 1) on one worker thread (--batch-execution workers
--instances 1, so one monitor slot sees every batch in arrival order), with
96-row windows set through SELU_MONITOR_WINDOW_ROWS, and the held-out rows are
sent one 16-row request after another. The windows then hold known rows, and
the test computes with numpy what the last one must report: each tensor's
mean and variance, its excess divergence from the reference in the model's
metadata and the drift score, by the definitions in
server/core/monitor/unit_moments.h and model_monitor.h.
"""

import json
import math
import os
import re
import shutil
import subprocess
import time
import unittest

import grpc
import numpy as np
import onnx
from google.protobuf import descriptor_pb2

import selu_server as s
from selu_server import health_pb2, monitor_pb2, pb, reflection_pb2
from test_metrics import MetricsAssertions, parse_exposition

CLIENT_BIN = s._require_env("SELU_CLIENT_BIN")
MONITOR_SERVICE = "selu.monitor.v1.ModelMonitor"
Response = monitor_pb2.ModelMonitorResponse
WINDOW_ROWS = 96
REQUEST_ROWS = 16
DEFAULT_WINDOW_ROWS = 128  # core::kDefaultMonitorWindowRows


def bundled_reference_stats():
    model = onnx.load(s.BUNDLED_ONNX)
    for prop in model.metadata_props:
        if prop.key == "selu.reference_stats":
            return json.loads(prop.value)
    raise AssertionError("the bundled model has no selu.reference_stats")


def monitored_tensors(x):
    """[input, layer 0 output, ...] of the bundled model on x (float32), each
    dense layer's output after its activations and before a final softmax,
    evaluated by models/onnx_mlp_eval.py."""
    model = onnx.load(s.BUNDLED_ONNX)
    _, values = s.onnx_mlp_eval.run(model, x)
    tensors, current = [np.asarray(x, np.float32)], None
    for node in model.graph.node:
        if node.op_type == "Gemm":
            if current is not None:
                tensors.append(values[current])
            current = node.output[0]
        elif node.op_type == "Softmax":
            break
        else:
            current = node.output[0]
    tensors.append(values[current])
    return tensors


def excess_divergence(live, reference, reference_rows):
    """unit_moments.h ExcessDivergence: mean over units of the Jeffreys
    divergence between normals with the live and the reference moments, minus
    its sampling expectation (1/n + 1/n_ref)(kurtosis + 1)/2."""
    live = np.asarray(live, np.float64)
    n = live.shape[0]
    mean = live.mean(axis=0)
    raw_var = live.var(axis=0)
    ref_mean = np.asarray(reference["unit_mean"], np.float64)
    ref_var = np.asarray(reference["unit_variance"], np.float64)
    floor = max(1e-3 * ref_var.mean(), 1e-12)
    v, rv = np.maximum(raw_var, floor), np.maximum(ref_var, floor)
    d = mean - ref_mean
    jeffreys = 0.5 * (v / rv + rv / v - 2.0) + 0.5 * d * d * (1.0 / rv + 1.0 / v)
    m4 = ((live - mean) ** 4).mean(axis=0)
    kurtosis = np.where(raw_var > 1e-12, m4 / np.maximum(raw_var, 1e-300) ** 2, 3.0)
    kurtosis = np.clip(kurtosis, 1.0, 50.0)
    sampling = (1.0 / n + 1.0 / reference_rows) * (kurtosis + 1.0) / 2.0
    return float(np.mean(jeffreys - sampling))


def run_client(server, *args):
    return subprocess.run([CLIENT_BIN, "--address", "127.0.0.1:%d" % server.port] + list(args),
                          capture_output=True, text=True, timeout=60)


check = s.monitor_check  # shared with test_drift.py


def same_window(a, b):
    """Two answers about the same closed window: equal but for the window's age,
    which only grows."""
    a2, b2 = type(a)(), type(b)()
    a2.CopyFrom(a)
    b2.CopyFrom(b)
    assert a2.last_window_age_seconds > 0 and b2.last_window_age_seconds > 0, (a2, b2)
    a2.ClearField("last_window_age_seconds")
    b2.ClearField("last_window_age_seconds")
    return a2 == b2


def infer_rows(stub, x, model, rows=REQUEST_ROWS):
    for start in range(0, len(x), rows):
        stub.ModelInfer(s.infer_request(x[start:start + rows], model=model), timeout=30)


class MonitorAssertions(MetricsAssertions):
    """assert_promtool_clean (test_metrics.py) and assert_rpc_error."""

    def assert_rpc_error(self, call, code, details=None):
        with self.assertRaises(grpc.RpcError) as caught:
            call()
        self.assertEqual(caught.exception.code(), code, caught.exception.details())
        if details is not None:
            self.assertEqual(caught.exception.details(), details)
        return caught.exception.details()


class MonitorServiceTest(s.SharedServerTestCase, MonitorAssertions):
    """The bundled model with its reference, after a known sequence of rows."""

    SERVER_ARGS = ("--monitor-sample-rate", "1", "--batch-execution", "workers",
                   "--instances", "1", "--max-queue-delay-us", "0")
    SERVER_KWARGS = dict(env={"SELU_MONITOR_WINDOW_ROWS": str(WINDOW_ROWS)})

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.x, _ = s.load_heldout()
        cls.traffic_started = time.time()
        infer_rows(cls.stub, cls.x, s.BUNDLED_MODEL)
        cls.sent_batches = math.ceil(len(cls.x) / REQUEST_ROWS)
        cls.windows = (len(cls.x) // REQUEST_ROWS * REQUEST_ROWS) // WINDOW_ROWS
        cls.last_window = cls.x[(cls.windows - 1) * WINDOW_ROWS:cls.windows * WINDOW_ROWS]
        cls.reference = bundled_reference_stats()
        cls.response = check(cls.server, s.BUNDLED_MODEL)

    # -- (a) the service is discoverable

    def test_reflection_lists_the_monitor_service(self):
        def ask(**request):
            return list(self.server.reflection().ServerReflectionInfo(
                iter([reflection_pb2.ServerReflectionRequest(**request)]), timeout=10))[0]

        names = {svc.name for svc in ask(list_services="").list_services_response.service}
        self.assertIn(MONITOR_SERVICE, names)
        resp = ask(file_containing_symbol=MONITOR_SERVICE)
        files = [descriptor_pb2.FileDescriptorProto.FromString(b)
                 for b in resp.file_descriptor_response.file_descriptor_proto]
        services = {f.package + "." + svc.name: svc for f in files for svc in f.service}
        self.assertEqual([m.name for m in services[MONITOR_SERVICE].method], ["Check"])

    def test_health_knows_the_monitor_service(self):
        status = self.server.health().Check(
            health_pb2.HealthCheckRequest(service=MONITOR_SERVICE), timeout=5).status
        self.assertEqual(status, health_pb2.HealthCheckResponse.SERVING)

    # -- (b) Check after known traffic

    def test_state_counts_and_settings(self):
        r = self.response
        self.assertEqual((r.model, r.version), (s.BUNDLED_MODEL, "1"))
        self.assertEqual(r.state, Response.ACTIVE, Response.State.Name(r.state))
        self.assertEqual(r.problem, "")
        self.assertEqual(r.reference_source, "metadata_props selu.reference_stats")
        self.assertEqual((r.sample_rate, r.window_rows), (1.0, WINDOW_ROWS))
        self.assertGreaterEqual(r.windows, 1)
        self.assertEqual(r.windows, self.windows)
        self.assertEqual(r.sampled_rows, self.windows * WINDOW_ROWS)
        self.assertEqual(r.sampled_batches, self.windows * WINDOW_ROWS // REQUEST_ROWS)
        self.assertEqual(r.last_window_rows, WINDOW_ROWS)
        self.assertEqual(r.alarms, 0)
        self.assertTrue(r.has_score)
        self.assertEqual(r.drift_threshold, 1.0)
        self.assertLess(r.drift_score, 1.0)
        self.assertGreaterEqual(r.drift_score, 0.0)

    def test_tensors_are_the_input_then_every_dense_layer(self):
        r = self.response
        layers = self.reference["layers"]
        self.assertEqual([t.layer for t in r.tensors], [-1] + list(range(len(layers))))
        self.assertEqual([t.name for t in r.tensors[1:]], [l["name"] for l in layers])
        self.assertEqual([t.activation for t in r.tensors[1:]], [l["activation"] for l in layers])
        self.assertEqual([t.features for t in r.tensors], [64] + [l["features"] for l in layers])
        self.assertEqual([t.weight for t in r.tensors],
                         [0.0] + [2.0 ** -k for k in range(len(layers))])
        # The bundled reference has no input statistics.
        self.assertFalse(r.tensors[0].has_reference)
        self.assertFalse(r.tensors[0].has_probe)
        for t, ref in zip(r.tensors[1:], layers):
            with self.subTest(layer=t.layer):
                self.assertTrue(t.has_reference and t.has_probe and t.has_live)
                self.assertAlmostEqual(t.reference_mean, ref["mean"], places=12)
                self.assertAlmostEqual(t.reference_variance, ref["variance"], places=12)

    def test_live_figures_near_the_reference(self):
        # In-distribution rows: loose bounds, far tighter than the gaps between
        # layers (reference variances ~1.1, 1.7, 3.0, 117), which a monitor
        # reading the wrong tensor, or before the activations, would not meet.
        layer0 = self.response.tensors[1]
        self.assertLess(abs(layer0.live_mean - layer0.reference_mean), 0.3)
        for t in self.response.tensors[1:]:
            with self.subTest(layer=t.layer):
                self.assertLess(abs(t.live_mean - t.reference_mean),
                                0.3 * math.sqrt(t.reference_variance))
                self.assertTrue(0.75 < t.live_variance / t.reference_variance < 1.33,
                                (t.live_variance, t.reference_variance))

    def test_live_figures_are_those_of_the_last_window(self):
        # The engine's fp32 activations differ from numpy's in summation order
        # only: about 1e-8 relative in these figures.
        expected = monitored_tensors(self.last_window)
        for t, values in zip(self.response.tensors, expected):
            values = values.astype(np.float64)
            with self.subTest(layer=t.layer):
                self.assertAlmostEqual(t.live_mean, values.mean(),
                                       delta=1e-6 * (1 + abs(values.mean())))
                self.assertAlmostEqual(t.live_variance, values.var(),
                                       delta=1e-6 * values.var())

    def test_divergences_and_score_follow_their_definition(self):
        expected = monitored_tensors(self.last_window)
        score = 0.0
        for t, values, ref in zip(self.response.tensors[1:], expected[1:],
                                  self.reference["layers"]):
            d = excess_divergence(values, ref, self.reference["rows"])
            with self.subTest(layer=t.layer):
                self.assertAlmostEqual(t.divergence, d, delta=1e-6 + 1e-4 * abs(d))
            score = max(score, t.weight * max(0.0, d))
        self.assertAlmostEqual(self.response.drift_score, score, delta=1e-6 + 1e-4 * score)

    def test_explicit_version_is_the_same_answer(self):
        again = check(self.server, s.BUNDLED_MODEL, "1")
        self.assertTrue(same_window(again, self.response), (again, self.response))
        self.assertGreater(again.last_window_age_seconds, self.response.last_window_age_seconds)

    # -- (c) the same figures on /metrics

    def test_metrics_agree_with_check(self):
        text = self.server.scrape()
        exp = parse_exposition(text)
        r = check(self.server, s.BUNDLED_MODEL)  # no traffic since: the same window
        self.assertTrue(same_window(r, self.response), (r, self.response))
        labels = dict(model=s.BUNDLED_MODEL, version="1")

        def close(a, b):
            return abs(a - b) <= 1e-9 * max(abs(a), abs(b), 1e-300)

        score = exp.value("selu_input_drift_score", **labels)
        self.assertTrue(close(score, r.drift_score), (score, r.drift_score))
        for t in r.tensors:
            layer = "input" if t.layer < 0 else str(t.layer)
            with self.subTest(layer=layer):
                for family, value in (("selu_activation_mean", t.live_mean),
                                      ("selu_activation_variance", t.live_variance)):
                    got = exp.value(family, layer=layer, **labels)
                    self.assertTrue(close(got, value), (family, got, value))
                for family, has, value in (
                        ("selu_activation_reference_mean", t.has_reference, t.reference_mean),
                        ("selu_activation_reference_variance", t.has_reference,
                         t.reference_variance),
                        ("selu_activation_divergence", t.has_reference, t.divergence),
                        ("selu_activation_probe_mean", t.has_probe, t.probe_mean),
                        ("selu_activation_probe_variance", t.has_probe, t.probe_variance)):
                    series = exp.select(family, layer=layer, **labels)
                    if not has:
                        self.assertEqual(series, [], family)
                        continue
                    self.assertEqual(len(series), 1, family)
                    self.assertTrue(close(series[0][1], value), (family, series, value))
        self.assertEqual(exp.value("selu_monitor_windows_total", **labels), r.windows)
        self.assertEqual(exp.value("selu_monitor_drift_alarms_total", **labels), r.alarms)
        self.assertEqual(exp.value("selu_monitor_sampled_rows_total", **labels), r.sampled_rows)
        # The window closed before the scrape, no longer ago than the age Check
        # reports, and after the traffic that filled it began.
        closed = exp.value("selu_monitor_last_window_timestamp_seconds", **labels)
        self.assertLessEqual(closed, time.time() - r.last_window_age_seconds + 0.5)
        self.assertGreaterEqual(closed, self.traffic_started)
        states = {lab["state"]: v for lab, v in exp.select("selu_monitor_state", **labels)}
        self.assertEqual(states, {"off": 0, "no_reference": 0, "bad_reference": 0, "active": 1})
        self.assertEqual(exp.value("selu_self_normalizing", **labels),
                         1.0 if r.self_normalizing else 0.0)
        for family, kind in (("selu_activation_mean", "gauge"),
                             ("selu_input_drift_score", "gauge"),
                             ("selu_monitor_state", "gauge"),
                             ("selu_monitor_windows_total", "counter"),
                             ("selu_monitor_drift_alarms_total", "counter"),
                             ("selu_monitor_sampled_rows_total", "counter")):
            self.assertEqual(exp.types.get(family), kind, family)
        self.assert_promtool_clean(text)

    def test_check_calls_are_counted_in_grpc_metrics(self):
        labels = dict(grpc_service=MONITOR_SERVICE, grpc_method="Check", grpc_type="unary")

        def counts():
            exp = parse_exposition(self.server.scrape())
            handled = {lab["grpc_code"]: v
                       for lab, v in exp.select("grpc_server_handled_total", **labels)}
            return (exp.value("grpc_server_started_total", **labels), handled,
                    exp.histogram("grpc_server_handling_seconds", **labels)[1])

        started, handled, timed = counts()
        check(self.server, s.BUNDLED_MODEL)
        with self.assertRaises(grpc.RpcError):
            check(self.server, "no_such_model")
        started2, handled2, timed2 = counts()
        self.assertEqual((started2, timed2), (started + 2, timed + 2))
        self.assertEqual(handled2.get("OK"), handled.get("OK", 0) + 1)
        self.assertEqual(handled2.get("NotFound"), handled.get("NotFound", 0) + 1)

    # -- (d) errors, with ModelMetadata's codes and messages

    def test_errors_are_those_of_model_metadata(self):
        for name, version, code in (("no_such_model", "", grpc.StatusCode.NOT_FOUND),
                                    (s.BUNDLED_MODEL, "7", grpc.StatusCode.NOT_FOUND),
                                    (s.BUNDLED_MODEL, "latest",
                                     grpc.StatusCode.INVALID_ARGUMENT)):
            with self.subTest(name=name, version=version):
                metadata = self.assert_rpc_error(
                    lambda: self.stub.ModelMetadata(
                        pb.ModelMetadataRequest(name=name, version=version), timeout=10), code)
                details = self.assert_rpc_error(lambda: check(self.server, name, version),
                                                code, metadata)
                self.assertIn(name if not version else version, details)
        details = self.assert_rpc_error(lambda: check(self.server, "no_such_model"),
                                        grpc.StatusCode.NOT_FOUND)
        self.assertIn("'no_such_model'", details)

    # -- (e) selu-client stats

    def test_client_stats_prints_the_table(self):
        r = check(self.server, s.BUNDLED_MODEL)
        out = run_client(self.server, "stats", s.BUNDLED_MODEL)
        self.assertEqual(out.returncode, 0, out.stderr)
        text = out.stdout
        self.assertIn("model digits_snn version 1: monitor ACTIVE", text)
        self.assertIn("drift score %.4f < threshold 1: ok" % r.drift_score, text)
        self.assertIn("windows %d, alarms 0; sampled rows %d in %d batches, last window %d rows"
                      % (r.windows, r.sampled_rows, r.sampled_batches, WINDOW_ROWS), text)
        self.assertIn("sample rate 1, window %d rows" % WINDOW_ROWS, text)
        verdict = "self-normalizing" if r.self_normalizing else "NOT self-normalizing"
        self.assertIn("probe: %s on N(0,1) inputs (%d rows)" % (verdict, r.probe_rows), text)
        lines = text.splitlines()
        header = [i for i, l in enumerate(lines) if l.startswith("LAYER")]
        self.assertEqual(len(header), 1, text)
        self.assertEqual(lines[header[0]].split(),
                         ["LAYER", "NAME", "ACTIVATION", "FEATURES", "LIVE_MEAN", "LIVE_VAR",
                          "REF_MEAN", "REF_VAR", "DIVERGENCE", "WEIGHT"])
        rows = [l.split() for l in lines[header[0] + 1:] if l.strip()]
        self.assertEqual(len(rows), len(r.tensors), text)
        for row, t in zip(rows, r.tensors):
            with self.subTest(layer=t.layer):
                self.assertEqual(row[0], "input" if t.layer < 0 else str(t.layer))
                self.assertEqual(row[1:4], [t.name, t.activation or "-", str(t.features)])
                self.assertEqual(row[4:6], ["%.4f" % t.live_mean, "%.4f" % t.live_variance])
                if t.has_reference:
                    self.assertEqual(row[6:9], ["%.4f" % t.reference_mean,
                                                "%.4f" % t.reference_variance,
                                                "%.4f" % t.divergence])
                    self.assertEqual(float(row[9]), t.weight)
                else:
                    self.assertEqual(row[6:], ["-"] * 4)

    def test_client_stats_json(self):
        out = run_client(self.server, "stats", s.BUNDLED_MODEL, "--json")
        self.assertEqual(out.returncode, 0, out.stderr)
        doc = json.loads(out.stdout)
        r = check(self.server, s.BUNDLED_MODEL)
        self.assertEqual(doc["state"], "ACTIVE")
        self.assertEqual(doc["model"], s.BUNDLED_MODEL)
        self.assertEqual(doc["drift_score"], r.drift_score)
        self.assertEqual(int(doc["windows"]), r.windows)
        self.assertEqual([t["layer"] for t in doc["tensors"]], [t.layer for t in r.tensors])
        # Every field is printed, those at their default value too.
        self.assertEqual(doc["tensors"][0]["has_reference"], False)
        self.assertEqual(doc["problem"], "")

    def test_client_stats_unknown_model(self):
        out = run_client(self.server, "stats", "no_such_model")
        self.assertEqual(out.returncode, 1)
        self.assertIn("NOT_FOUND", out.stderr)
        self.assertIn("'no_such_model'", out.stderr)


def reference_with(change):
    ref = bundled_reference_stats()
    change(ref)
    return json.dumps(ref)


class MonitorStatesTest(s.SharedRepositoryTestCase, MonitorAssertions):
    """(f) Models beside each other in one repository: two whose
    reference_stats.json is unusable, one with the monitor off in its
    config.pbtxt, one that receives drifted inputs, one that fails to load."""

    BAD = {  # model: (reference_stats.json, what the problem must name)
        "bad_variance": (reference_with(lambda r: r["layers"][1].update(variance=-0.5)),
                         "layers[1].variance is negative"),
        "bad_layers": (reference_with(lambda r: r["layers"].pop()),
                       "'layers' has 3 entries, the model has 4 dense layers"),
    }
    OFF, DRIFT, BROKEN = "monitor_off", "drifting", "broken"
    SERVER_ARGS = ("--monitor-sample-rate", "1", "--batch-execution", "workers",
                   "--instances", "1")
    # Every model loads before health turns SERVING for any of them.
    SERVER_KWARGS = dict(ready_service=DRIFT)

    @classmethod
    def fill_repository(cls, repo):
        for name in list(cls.BAD) + [cls.OFF, cls.DRIFT]:
            version = os.path.join(repo, name, "1")
            os.makedirs(version)
            shutil.copyfile(s.BUNDLED_ONNX, os.path.join(version, "model.onnx"))
        for name, (text, _) in cls.BAD.items():
            with open(os.path.join(repo, name, "1", "reference_stats.json"), "w") as f:
                f.write(text)
        with open(os.path.join(repo, cls.OFF, "config.pbtxt"), "w") as f:
            f.write('parameters { key: "monitor_sample_rate" value { string_value: "0" } }\n')
        os.makedirs(os.path.join(repo, cls.BROKEN, "1"))
        with open(os.path.join(repo, cls.BROKEN, "1", "model.onnx"), "wb") as f:
            f.write(b"not an onnx model" * 10)

    @classmethod
    def run_workload(cls):
        cls.x, _ = s.load_heldout()
        for name in list(cls.BAD) + [cls.OFF]:
            infer_rows(cls.stub, cls.x[:DEFAULT_WINDOW_ROWS], name)
        # Far outside the pixel range the model was trained on (0..16).
        infer_rows(cls.stub, cls.x[:2 * REQUEST_ROWS] * 3 + 8, cls.DRIFT)

    def test_bad_reference_serves_and_says_why(self):
        ref = s.bundled_reference()
        log = self.server.log_text()
        for name, (_, problem) in self.BAD.items():
            with self.subTest(model=name):
                resp = self.stub.ModelInfer(s.infer_request(self.x[:4], model=name), timeout=10)
                np.testing.assert_allclose(s.response_output(resp, 4, 10), ref(self.x[:4]),
                                           rtol=0, atol=s.TOLERANCE)
                r = check(self.server, name)
                self.assertEqual(r.state, Response.BAD_REFERENCE, Response.State.Name(r.state))
                self.assertIn(problem, r.problem)
                source = os.path.join(self.repo, name, "1", "reference_stats.json")
                self.assertEqual(r.reference_source, source)
                self.assertTrue(r.problem.startswith(source), r.problem)
                self.assertFalse(r.has_score)
                # Live figures only.
                self.assertEqual(r.windows, 1)
                self.assertTrue(all(t.has_live and not t.has_reference and t.weight == 0
                                    for t in r.tensors))
                self.assertRegex(log, r"\bW model '%s' version 1: bad reference statistics.*%s"
                                 % (name, re.escape(problem)))

    def test_monitor_off_by_config(self):
        r = check(self.server, self.OFF)
        self.assertEqual(r.state, Response.OFF, Response.State.Name(r.state))
        self.assertEqual(r.sample_rate, 0.0)
        self.assertEqual((r.windows, r.sampled_rows, r.has_score), (0, 0, False))
        self.assertFalse(any(t.has_live for t in r.tensors))
        # Off is not a problem: the reference is still there to compare with.
        self.assertTrue(all(t.has_reference for t in r.tensors[1:]))

    def test_drift_alarms_within_a_few_requests(self):
        r = check(self.server, self.DRIFT)
        self.assertEqual(r.state, Response.ACTIVE)
        self.assertTrue(r.has_score)
        self.assertGreaterEqual(r.drift_score, 1.0)
        self.assertGreaterEqual(r.alarms, 1)
        # Closed early: the first check after the first request already scored >= 1.
        self.assertEqual(r.last_window_rows, REQUEST_ROWS)
        out = run_client(self.server, "stats", self.DRIFT)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertIn("drift score %.4f >= threshold 1: DRIFT" % r.drift_score, out.stdout)

    def test_model_that_failed_to_load_is_unavailable(self):
        self.assert_rpc_error(lambda: check(self.server, self.BROKEN),
                              grpc.StatusCode.UNAVAILABLE)

    def test_metrics_show_each_state(self):
        text = self.server.scrape()
        exp = parse_exposition(text)
        expected = dict({name: "bad_reference" for name in self.BAD},
                        **{self.OFF: "off", self.DRIFT: "active"})
        for name, state in expected.items():
            with self.subTest(model=name):
                labels = dict(model=name, version="1")
                states = {lab["state"]: v for lab, v in exp.select("selu_monitor_state", **labels)}
                self.assertEqual(states, {k: 1.0 if k == state else 0.0 for k in
                                          ("off", "no_reference", "bad_reference", "active")})
                has_score = bool(exp.select("selu_input_drift_score", **labels))
                self.assertEqual(has_score, state == "active")
                has_ref = bool(exp.select("selu_activation_reference_mean", **labels))
                self.assertEqual(has_ref, state in ("active", "off"))
                has_live = bool(exp.select("selu_activation_mean", **labels))
                self.assertEqual(has_live, state != "off")
        self.assertGreaterEqual(exp.value("selu_monitor_drift_alarms_total", model=self.DRIFT,
                                          version="1"), 1)
        self.assertEqual(exp.select("selu_monitor_state", model=self.BROKEN), [])
        self.assert_promtool_clean(text)


class MonitorFlagsTest(unittest.TestCase):
    def test_out_of_range_values_stop_start_up_naming_the_flag(self):
        for args, env, named in (
                (["--monitor-sample-rate", "1.5"], {}, "--monitor-sample-rate"),
                (["--monitor-sample-rate", "-0.1"], {}, "--monitor-sample-rate"),
                ([], {"SELU_MONITOR_WINDOW_ROWS": "8"}, "SELU_MONITOR_WINDOW_ROWS"),
                (["--monitor-window-rows", "2000000"], {}, "--monitor-window-rows")):
            with self.subTest(args=args, env=env):
                out = subprocess.run([s.SERVE_BIN, "--model-repository", s.BUNDLED_REPOSITORY,
                                      "--grpc-address", "127.0.0.1:0", "--metrics-address", ""]
                                     + args, env=dict(os.environ, **env), capture_output=True,
                                     text=True, timeout=30)
                self.assertNotEqual(out.returncode, 0)
                self.assertIn(named, out.stderr)
                self.assertIn("monitor", out.stderr)
                self.assertNotIn("listening", out.stdout + out.stderr)


if __name__ == "__main__":
    unittest.main()
