"""The monitor's acceptance scenarios: the real selu-serve, gRPC clients sending
real rows, and every verdict taken from the server's side (the Check rpc of
selu.monitor.v1.ModelMonitor, cross-checked on /metrics).

  a. digits_snn, its raw held-out rows as clients send them: at least 100
     closed windows of the default size and no alarm.
  b. the same rows with every pixel +0.25 (the model's accuracy drops by more
     than 5 points): an alarm within 1,000 batch-1 requests at the default
     sample rate and window.
  c. the same rows x16 (unscaled inputs): an alarm within 100.
  d. an SNN generated here, calibrated by the real `selu-serve calibrate` on
     its own data, then served: fresh rows of that data's distribution raise
     no alarm over 100 windows; +1 in every feature alarms within 1,000 batch-1
     requests and x16 within 100; +0.5 scores about 0.25 (d^2 nats: a quarter of
     the threshold) and does not alarm.

test_monitor.py checks one window's figures against numpy and test_calibrate.py
the calibration itself; this file is about the verdicts over many windows.

Each drift scenario runs on a fresh server that first gets clean traffic at
least as long as the drift's bound, and must show a closed window and no
alarm for it: a monitor whose score were always >= 1 (or never computed)
fails there. The clean traffic then runs on, one request at a time, until a
window has just closed, so the drifted rows start a window of their own and
the count of requests until the alarm is the monitor's latency, not an
accident of where the last clean window stood (models/drift_demo.py shows the
case of a drift that starts mid-window). The monitor seeds its sampling
generators the same way at every start, so the counts printed repeat from run
to run.
"""

import json
import os
import shutil
import tempfile
import unittest

import numpy as np

import selu_server as s
from selu_server import monitor_pb2
from test_metrics import parse_exposition

Response = monitor_pb2.ModelMonitorResponse
DEFAULT_SAMPLE_RATE = 0.25  # core::kDefaultMonitorSampleRate
DEFAULT_WINDOW_ROWS = 128  # core::kDefaultMonitorWindowRows
REQUEST_ROWS = 4  # rows per request where a scenario does not ask for batch-1
QUIET_WINDOWS = 100
# Clean batch-1 requests before any drift: at the default rate ~250 sampled
# rows, so at least one full window closes (and the early checks at 8, 16, 32
# and 64 rows of the open window run too).
CONTROL_REQUESTS = 1000
# The sample rate of 1 in the quiet scenarios is for speed only (100 windows
# of 128 rows in 3,200 four-row requests instead of 12,800): a window's score
# is a function of its rows alone; the rate only decides which rows those are.
FAST_SAMPLING = ("--monitor-sample-rate", "1")


class Cycle:
    """The rows of x, over and over."""

    def __init__(self, x, transform=None):
        self.x = np.asarray(x, np.float32)
        self.transform = transform
        self.next = 0

    def take(self, n):
        rows = self.x[(self.next + np.arange(n)) % len(self.x)]
        self.next += n
        return rows if self.transform is None else self.transform(rows).astype(np.float32)


class Fresh:
    """New N(0, 1) rows from a seeded generator, optionally transformed."""

    def __init__(self, seed, features, transform=None):
        self.rng = np.random.default_rng(seed)
        self.features = features
        self.transform = transform

    def take(self, n):
        rows = self.rng.standard_normal((n, self.features)).astype(np.float32)
        return rows if self.transform is None else self.transform(rows).astype(np.float32)


class Client:
    """ModelInfer calls to one model, counted."""

    def __init__(self, server, model, input_name, output_features):
        self.server = server
        self.stub = server.inference()
        self.model = model
        self.input_name = input_name
        self.output_features = output_features
        self.requests = 0

    def infer(self, x):
        resp = self.stub.ModelInfer(
            s.infer_request(x, model=self.model, input_name=self.input_name), timeout=10)
        self.requests += 1
        return s.response_output(resp, len(x), self.output_features)

    def check(self):
        return s.monitor_check(self.server, self.model)

    def accuracy(self, x, labels, transform=None):
        """Accuracy of the server's answers on x (REQUEST_ROWS a request)."""
        x = np.asarray(x, np.float32)
        if transform is not None:
            x = transform(x).astype(np.float32)
        predicted = np.concatenate([self.infer(x[i:i + REQUEST_ROWS]).argmax(axis=1)
                                    for i in range(0, len(x), REQUEST_ROWS)])
        return float(np.mean(predicted == labels))


def monitor_metrics(server, model):
    """(windows, alarms, drift score or None) as /metrics exports them."""
    exp = parse_exposition(server.scrape())
    labels = dict(model=model, version="1")
    score = exp.select("selu_input_drift_score", **labels)
    return (exp.value("selu_monitor_windows_total", **labels),
            exp.value("selu_monitor_drift_alarms_total", **labels),
            score[0][1] if score else None)


class DriftAssertions(s.ServerTestCase):
    """The two kinds of scenario, on a server the test has started."""

    def assert_state(self, r, sample_rate, reference_source=None):
        self.assertEqual(r.state, Response.ACTIVE, Response.State.Name(r.state))
        self.assertEqual((r.sample_rate, r.window_rows), (sample_rate, DEFAULT_WINDOW_ROWS))
        self.assertEqual(r.drift_threshold, 1.0)
        if reference_source is not None:
            self.assertEqual(r.reference_source, reference_source)

    def assert_metrics_agree(self, client, r):
        """/metrics shows the window Check `r` reported (no traffic since)."""
        windows, alarms, score = monitor_metrics(client.server, client.model)
        self.assertEqual((windows, alarms), (r.windows, r.alarms))
        self.assertIsNotNone(score)
        self.assertAlmostEqual(score, r.drift_score, delta=1e-9 * max(1.0, r.drift_score))

    def run_quiet(self, client, source, what, reference_source=None):
        """In-distribution traffic (REQUEST_ROWS a request, every batch sampled)
        until QUIET_WINDOWS windows closed: no alarm. Returns the scores seen."""
        per_window = DEFAULT_WINDOW_ROWS // REQUEST_ROWS
        limit = 2 * QUIET_WINDOWS * per_window
        scores, seen = [], 0
        while True:
            for _ in range(per_window):
                client.infer(source.take(REQUEST_ROWS))
            # Polled after every window's worth of rows: each closed window's
            # score is seen (it is only the last window's that Check reports).
            r = client.check()
            if r.windows > seen:
                self.assertTrue(r.has_score)
                scores.append(r.drift_score)
                seen = r.windows
            if r.windows >= QUIET_WINDOWS or client.requests >= limit:
                break
        self.assert_state(r, 1.0, reference_source)
        self.assertGreaterEqual(r.windows, QUIET_WINDOWS, "%d requests" % client.requests)
        self.assertEqual(r.alarms, 0, "false alarms: %d of %d windows; scores seen %s"
                         % (r.alarms, r.windows, scores))
        # No window closed early: every one held the full 128 sampled rows.
        self.assertEqual(r.sampled_rows, r.windows * DEFAULT_WINDOW_ROWS)
        self.assertEqual(r.last_window_rows, DEFAULT_WINDOW_ROWS)
        self.assertLess(max(scores), 1.0)
        self.assert_metrics_agree(client, r)
        print("\n[drift] %s: %d windows of %d rows in %d requests of %d rows, alarms %d; "
              "largest score %.4f (median %.4f) over the %d windows polled"
              % (what, r.windows, DEFAULT_WINDOW_ROWS, client.requests, REQUEST_ROWS, r.alarms,
                 max(scores), float(np.median(scores)), len(scores)), flush=True)
        return scores

    def run_drift(self, client, clean, drifted, bound, what, reference_source=None):
        """Clean batch-1 traffic on a fresh server (no alarm), then drifted
        batch-1 requests, Check after each, until the first alarm: within
        `bound` requests. Returns (requests until the alarm, its Check)."""
        r = client.check()
        self.assert_state(r, DEFAULT_SAMPLE_RATE, reference_source)
        self.assertEqual((r.windows, r.alarms), (0, 0), "not a fresh server")
        for _ in range(max(CONTROL_REQUESTS, bound)):
            client.infer(clean.take(1))
        control = client.check()
        self.assertGreaterEqual(control.windows, 1)
        self.assertEqual(control.alarms, 0, "an alarm on clean traffic: %s" % control)
        self.assertTrue(control.has_score)
        self.assertLess(control.drift_score, 1.0)
        self.assert_metrics_agree(client, control)
        control_requests = client.requests
        # Until a window closes: the drift then starts an empty window.
        while True:
            client.infer(clean.take(1))
            r = client.check()
            self.assertEqual(r.alarms, 0, "an alarm on clean traffic: %s" % r)
            if r.windows > control.windows:
                break
            self.assertLess(client.requests, control_requests + 20 * DEFAULT_WINDOW_ROWS,
                            "no window closed")
        windows_before = seen = r.windows
        aligned = client.requests - control_requests
        # Past the bound, on to 4x it, only to say in the failure how late it came.
        alarm_at, scores = None, []
        for n in range(1, 4 * bound + 1):
            client.infer(drifted.take(1))
            r = client.check()
            if r.windows > seen:
                scores.append(r.drift_score)
                seen = r.windows
            if r.alarms >= 1:
                alarm_at = n
                break
        if alarm_at is None or alarm_at > bound:
            message = ("%s: no alarm within %d batch-1 requests (first alarm: %s); the %d "
                       "windows closed since the drift began scored %s"
                       % (what, bound, "none in %d" % (4 * bound) if alarm_at is None
                          else "after %d" % alarm_at, len(scores),
                          ", ".join("%.3f" % x for x in scores)))
            print("\n[drift] " + message, flush=True)
            self.fail(message)
        self.assertEqual(r.alarms, 1)
        self.assertTrue(r.has_score)
        self.assertGreaterEqual(r.drift_score, 1.0)
        self.assert_metrics_agree(client, r)
        print("\n[drift] %s: clean control %d batch-1 requests, %d windows, no alarm "
              "(score %.4f; %d more until a window closed); first alarm after %d drifted "
              "batch-1 requests (window of %d sampled rows, score %.2f, %d windows closed "
              "since the drift began)"
              % (what, control_requests, control.windows, control.drift_score, aligned,
                 alarm_at, r.last_window_rows, r.drift_score, r.windows - windows_before),
              flush=True)
        return alarm_at, r


class DigitsTest(DriftAssertions):
    """The bundled model and its held-out rows (raw pixel values 0..16)."""

    @classmethod
    def setUpClass(cls):
        cls.x, cls.labels = s.load_heldout()
        with open(os.path.join(s.BUNDLED_REPOSITORY, s.BUNDLED_MODEL, "1",
                               "accuracy.json")) as f:
            cls.heldout_accuracy = json.load(f)["heldout_accuracy"]  # 0.9806

    def client(self, server):
        return Client(server, s.BUNDLED_MODEL, "input", 10)

    def test_a_heldout_traffic_raises_no_false_alarm(self):
        client = self.client(self.start_server(*FAST_SAMPLING))
        self.run_quiet(client, Cycle(self.x), "(a) digits_snn held-out rows")

    def test_b_quarter_pixel_shift_alarms_within_1000_requests(self):
        client = self.client(self.start_server())

        def shift(x):
            return x + 0.25

        self.run_drift(client, Cycle(self.x), Cycle(self.x, shift), 1000,
                       "(b) digits_snn pixels +0.25")
        clean = client.accuracy(self.x, self.labels)
        shifted = client.accuracy(self.x, self.labels, shift)
        print("[drift] (b) accuracy of the server's answers: held-out %.4f, +0.25 %.4f"
              % (clean, shifted), flush=True)
        self.assertAlmostEqual(clean, self.heldout_accuracy, delta=0.5 / len(self.x))
        self.assertLessEqual(shifted, clean - 0.05)

    def test_c_unscaled_inputs_alarm_within_100_requests(self):
        client = self.client(self.start_server())

        def unscaled(x):
            return x * 16

        self.run_drift(client, Cycle(self.x), Cycle(self.x, unscaled), 100,
                       "(c) digits_snn pixels x16")
        print("[drift] (c) accuracy of the server's answers: held-out %.4f, x16 %.4f"
              % (client.accuracy(self.x, self.labels),
                 client.accuracy(self.x, self.labels, unscaled)), flush=True)


SNN_SIZES = (20, 64, 64, 64, 4)
SNN_MODEL = "generated_snn"
CALIBRATION_ROWS = 2000


class GeneratedSnnTest(DriftAssertions):
    """(d) A PyTorch SNN made here (20 -> 64 -> 64 -> 64 -> 4, SELU, LeCun
    normal), calibrated on 2,000 rows of N(0, 1) features by the real
    `selu-serve calibrate`, served from a temporary repository."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="selu-it-drift-")
        try:
            cls.repo = os.path.join(cls.tmp, "repo")
            model = os.path.join(cls.repo, SNN_MODEL, "1", "model.onnx")
            s.export_lecun_snn(model, SNN_SIZES, seed=11)
            data = os.path.join(cls.tmp, "calibration.csv")
            s.write_csv(data, np.random.default_rng(12).standard_normal(
                (CALIBRATION_ROWS, SNN_SIZES[0])).astype(np.float32))
            out = s.run_calibrate("--model", model, "--data", data)
            if out.returncode != 0:
                raise AssertionError("calibrate failed: %s%s" % (out.stdout, out.stderr))
            cls.reference = os.path.join(os.path.dirname(model), "reference_stats.json")
            with open(cls.reference) as f:
                ref = json.load(f)
            assert ref["rows"] == CALIBRATION_ROWS and "input" in ref, ref.keys()
        except BaseException:
            shutil.rmtree(cls.tmp, ignore_errors=True)
            raise

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def client(self, *args):
        return Client(self.start_server(*args, repository=self.repo), SNN_MODEL, "x",
                      SNN_SIZES[-1])

    def fresh(self, seed, transform=None):
        # Seeds other than the calibration's: new rows of the same distribution.
        return Fresh(seed, SNN_SIZES[0], transform)

    def test_d_fresh_data_raises_no_false_alarm(self):
        client = self.client(*FAST_SAMPLING)
        r = client.check()
        # The input has a reference too (calibrate writes one): weight 1.
        self.assertTrue(r.tensors[0].has_reference)
        self.assertEqual([t.weight for t in r.tensors], [1.0, 1.0, 0.5, 0.25, 0.125])
        self.run_quiet(client, self.fresh(21), "(d) generated SNN, fresh N(0,1) rows",
                       reference_source=self.reference)

    # The score's scale: 1 nat of Jeffreys divergence. For a unit of variance 1
    # a mean shift d gives d^2 nats, so +0.5 in every input feature scores about
    # 0.25 on the input tensor, a quarter of the threshold: a drift that small is
    # shown (the score and the divergences move) but does not alarm. This checks
    # that scale on full windows of shifted rows, every batch sampled.
    def test_d_half_sigma_shift_scores_a_quarter_and_does_not_alarm(self):
        client = self.client(*FAST_SAMPLING)
        shifted = self.fresh(23, lambda x: x + 0.5)
        scores = []
        while len(scores) < 10:
            for _ in range(DEFAULT_WINDOW_ROWS // REQUEST_ROWS):
                client.infer(shifted.take(REQUEST_ROWS))
            r = client.check()
            self.assertTrue(r.has_score)
            scores.append(r.drift_score)
            self.assertAlmostEqual(r.tensors[0].divergence, 0.25, delta=0.1, msg=str(r.tensors[0]))
        self.assertEqual(r.alarms, 0, scores)
        self.assertTrue(all(0.15 < x < 0.6 for x in scores), scores)
        print("(d) generated SNN, features +0.5: %d windows, scores %.3f-%.3f, no alarm"
              % (r.windows, min(scores), max(scores)))

    def test_d_one_sigma_shift_alarms_within_1000_requests(self):
        # What the threshold is made for: +1 in every feature is 1 nat on the
        # input (about 1.5-2 on the first layer).
        client = self.client()
        self.run_drift(client, self.fresh(26), self.fresh(27, lambda x: x + 1.0), 1000,
                       "(d) generated SNN, features +1", reference_source=self.reference)

    def test_d_unscaled_inputs_alarm_within_100_requests(self):
        client = self.client()
        self.run_drift(client, self.fresh(24), self.fresh(25, lambda x: x * 16), 100,
                       "(d) generated SNN, features x16", reference_source=self.reference)


if __name__ == "__main__":
    unittest.main()
