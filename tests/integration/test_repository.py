"""The model repository: version policy and polling (new, removed, corrupt and
half-written versions swapped under load without a failed request), explicit
load/unload over gRPC (Triton's repository extension), names that escape the
repository, config.pbtxt (Triton fields we do not use, contradictions, the
"config" load parameter, the ModelConfig rpc), and memory given back after an
unload.

Every test starts its own server on a repository made in a temporary folder.
Small models are exported with torch (distinct seeds, distinct outputs) once
per run and copied in; outputs are compared with the numpy reference.
"""

import atexit
import json
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
import unittest

import grpc
import numpy as np

import selu_server as s
from selu_server import health_pb2, pb
import model_config_pb2  # noqa: E402  (found through selu_server's path)

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
Code = grpc.StatusCode

POLL_S = 0.2
SIZES = [16, 32, 8]
MODEL = "m"
# A swap needs a poll, a load and a warm-up: seconds at most, on 2 cores.
SWAP_TIMEOUT_S = 15.0 * s.SLOWDOWN
# ~152 MB of fp32 weights (4 of them 3072 x 3072).
LARGE_SIZES = [64, 3072, 3072, 3072, 3072, 3072, 10]
MEMORY_RETURN_S = 5.0 * s.SLOWDOWN

# ---- What the server answers where the spec leaves a choice.
# A model unloaded on request is known but not wanted: ModelRegistry::Find
# answers UNAVAILABLE "model '<name>' is not loaded (<reason>)" (NOT_FOUND is
# for names the repository does not have).
NOT_SERVED_CODE = Code.UNAVAILABLE
# A model folder that is a symlink out of the repository: CheckInside
# (model_folder.cc) refuses it FAILED_PRECONDITION "... resolves to ...,
# outside the model repository ...".
SYMLINK_REFUSED_CODE = Code.FAILED_PRECONDITION
# The reason RepositoryIndex gives for a model unloaded on request.
UNLOADED_REASON = "unloaded"
# How a failed version load is named in reasons and in the log: its file,
# as <model>/<version>/model.onnx (the log may give the full path).
MODEL_FILE = "model.onnx"


def failed_version_path(model, version):
    return os.path.join(model, str(version), MODEL_FILE)


# ---- Models, exported once per run.

_models_dir = None
_exported = {}


def exported_model(seed, sizes=SIZES):
    """Path of a torch-exported SELU MLP for `seed` (made on first use)."""
    global _models_dir
    key = (seed, tuple(sizes))
    if key not in _exported:
        if _models_dir is None:
            _models_dir = tempfile.mkdtemp(prefix="selu-it-models-")
            atexit.register(shutil.rmtree, _models_dir, True)
        path = os.path.join(_models_dir, "seed%d-%s" % (seed, "x".join(map(str, sizes))),
                            "model.onnx")
        _exported[key] = s.export_selu_mlp(path, list(sizes), seed)
    return _exported[key]


def model_bytes(seed):
    with open(exported_model(seed), "rb") as f:
        return f.read()


def reference(seed):
    return s.ReferenceModel(exported_model(seed), "seed%d" % seed)


def sample_input(rows=4, features=SIZES[0], seed=7):
    return np.random.default_rng(seed).standard_normal((rows, features)).astype(np.float32)


# ---- Prometheus text, just enough to read one counter.

_SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)')
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def metric_sum(text, name, **labels):
    """Sum of the samples `name` whose labels include `labels` (0 if none)."""
    total = 0.0
    for line in text.splitlines():
        m = _SAMPLE.match(line)
        if not m or m.group(1) != name:
            continue
        have = dict(_LABEL.findall(m.group(2) or ""))
        if all(have.get(k) == v for k, v in labels.items()):
            total += float(m.group(3))
    return total


# ---- Load in the background.

class InferenceLoad:
    """Threads sending ModelInfer for one model (no version) back to back,
    recording every answer as (sent, received, code name, version, output or
    error details)."""

    def __init__(self, server, model, x, threads=2):
        self.server = server
        self.model = model
        self.x = x
        self.records = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, daemon=True)
                         for _ in range(threads)]

    def start(self):
        for t in self._threads:
            t.start()
        return self

    def stop(self):
        self._stop.set()
        for t in self._threads:
            t.join(timeout=30)

    def _run(self):
        stub = self.server.inference()
        request = s.infer_request(self.x, model=self.model, input_name="x")
        rows = self.x.shape[0]
        while not self._stop.is_set():
            sent = time.monotonic()
            try:
                resp = stub.ModelInfer(request, timeout=10)
                record = (sent, time.monotonic(), "OK", resp.model_version,
                          s.response_output(resp, rows, SIZES[-1]))
            except grpc.RpcError as e:
                record = (sent, time.monotonic(), e.code().name, None, e.details())
            except AssertionError as e:  # a malformed response
                record = (sent, time.monotonic(), "BAD_RESPONSE", None, str(e))
            self.records.append(record)  # list.append is atomic

    def first_answer_from(self, version, sent_after):
        """Receive time of the first OK answer by `version` to a request sent
        after `sent_after`, or None."""
        times = [r[1] for r in list(self.records)
                 if r[2] == "OK" and r[3] == version and r[0] >= sent_after]
        return min(times) if times else None

    def count_from(self, version, sent_after):
        return sum(1 for r in list(self.records)
                   if r[2] == "OK" and r[3] == version and r[0] >= sent_after)

    def versions_between(self, sent_after, sent_before):
        """{version: count} of the answers to requests sent in the window."""
        out = {}
        for r in list(self.records):
            if sent_after <= r[0] < sent_before:
                out[r[3]] = out.get(r[3], 0) + 1
        return out

    def failures(self):
        return [r for r in list(self.records) if r[2] != "OK"]


class RepositoryTestCase(s.ServerTestCase):
    def setUp(self):
        self.root = tempfile.mkdtemp(prefix="selu-it-repository-")
        self.addCleanup(shutil.rmtree, self.root, True)
        self.repo = os.path.join(self.root, "repo")
        os.makedirs(self.repo)

    def model_dir(self, name):
        return os.path.join(self.repo, name)

    def add_version(self, name, version, seed):
        """Copies the model for `seed` in as <name>/<version> (atomically)."""
        s.place_version(self.model_dir(name), version, model_bytes(seed))
        return reference(seed)

    def write_config(self, name, text):
        os.makedirs(self.model_dir(name), exist_ok=True)
        s.replace_file(os.path.join(self.model_dir(name), "config.pbtxt"), text.encode())

    def start(self, *args, ready_service=MODEL, **kwargs):
        return self.start_server(*args, repository=self.repo, ready_service=ready_service,
                                 **kwargs)

    # ---- rpcs

    def infer(self, server, x, model=MODEL, version=""):
        return server.inference().ModelInfer(
            s.infer_request(x, model=model, input_name="x", version=version), timeout=10)

    def assert_output(self, resp, x, ref, features=SIZES[-1]):
        np.testing.assert_allclose(s.response_output(resp, x.shape[0], features), ref(x),
                                   rtol=0, atol=s.TOLERANCE)

    def assert_no_failures(self, load, t0):
        """Every request of `load` (an InferenceLoad started at t0) was answered OK."""
        failed = load.failures()
        self.assertFalse(failed, "%d of %d requests failed, first: %s"
                         % (len(failed), len(load.records),
                            ["%s at +%.3f s: %s" % (r[2], r[0] - t0, r[4]) for r in failed[:3]]))

    def assert_rpc_fails(self, code, call, *args, **kwargs):
        """Runs call(*args) and asserts it fails with `code`; returns the error."""
        with self.assertRaises(grpc.RpcError) as cm:
            call(*args, timeout=kwargs.pop("timeout", 30), **kwargs)
        self.assertEqual(cm.exception.code(), code, cm.exception.details())
        return cm.exception

    def load(self, server, name, config=None, timeout=60):
        req = pb.RepositoryModelLoadRequest(model_name=name)
        if config is not None:
            req.parameters["config"].string_param = config
        return server.inference().RepositoryModelLoad(req, timeout=timeout)

    def unload(self, server, name, timeout=60):
        return server.inference().RepositoryModelUnload(
            pb.RepositoryModelUnloadRequest(model_name=name), timeout=timeout)

    def model_ready(self, server, name, version=""):
        return server.inference().ModelReady(pb.ModelReadyRequest(name=name, version=version),
                                             timeout=5).ready

    def not_ready(self, server, name):
        """ModelReady says false, or refuses the name."""
        try:
            return not self.model_ready(server, name)
        except grpc.RpcError:
            return True

    def health(self, server, name):
        return server.health().Check(health_pb2.HealthCheckRequest(service=name),
                                     timeout=5).status

    def index(self, server, name=None, ready=False):
        """RepositoryIndex entries, of one model if `name` is given."""
        return [e for e in s.repository_index(server.inference(), ready=ready)
                if name is None or e[0] == name]

    def ready_entries(self, server):
        """(name, version) of the READY entries of RepositoryIndex(ready=True)."""
        entries = self.index(server, ready=True)
        for e in entries:
            self.assertEqual(e[2], "READY", "RepositoryIndex(ready=True) lists %s" % (e,))
        return sorted((name, version) for name, version, _, _ in entries)

    def version_state(self, server, name, version):
        """(state, reason) of one version in RepositoryIndex, or None."""
        for _, v, state, reason in self.index(server, name):
            if v == str(version):
                return state, reason
        return None

    def wait_for_state(self, server, name, version, state, timeout=SWAP_TIMEOUT_S):
        def reached():
            got = self.version_state(server, name, version)
            return got if got and got[0] == state else None
        return s.wait_until(reached, timeout,
                            lambda: "%s/%s to be %s in RepositoryIndex (index: %s)"
                            % (name, version, state, self.index(server)))

    def model_config(self, server, name):
        return server.inference().ModelConfig(pb.ModelConfigRequest(name=name),
                                              timeout=10).config


class PollModeTest(RepositoryTestCase):
    def test_poll_swaps_versions_under_load(self):
        refs = {"1": self.add_version(MODEL, 1, seed=1)}
        refs["2"] = reference(2)
        x = sample_input()
        self.assertGreater(np.abs(refs["1"](x) - refs["2"](x)).max(), 1e-3,
                           "versions 1 and 2 must answer differently")
        server = self.start("--model-control-mode", "poll",
                            "--repository-poll-seconds", str(POLL_S))
        load = InferenceLoad(server, MODEL, x).start()
        try:
            t0 = time.monotonic()
            s.wait_until(lambda: load.count_from("1", t0) >= 20, 10,
                         "20 answers from version 1 before any swap")

            # A new version is loaded beside the serving one and swapped in.
            t_add2 = time.monotonic()
            self.add_version(MODEL, 2, seed=2)
            t_v2 = s.wait_until(lambda: load.first_answer_from("2", t_add2), SWAP_TIMEOUT_S,
                                "an answer from version 2 after adding folder 2")

            # A corrupt newer version is refused and never replaces version 2.
            s.place_version(self.model_dir(MODEL), 3,
                            np.random.default_rng(3).bytes(4096))
            state, reason = self.wait_for_state(server, MODEL, 3, "UNAVAILABLE")
            self.assertIn(MODEL_FILE, reason)
            time.sleep(3 * POLL_S)  # three more polls must not change anything
            t_v3_refused = time.monotonic()
            s.wait_until(lambda: load.count_from("2", t_v3_refused) >= 20, 10,
                         "20 answers from version 2 after version 3 was refused")
            self.assertEqual(self.version_state(server, MODEL, 3)[0], "UNAVAILABLE")
            self.assertEqual(self.version_state(server, MODEL, 2)[0], "READY")
            self.assertTrue(self.model_ready(server, MODEL, "2"))
            self.assertFalse(self.model_ready(server, MODEL, "3"))
            failures = metric_sum(server.scrape(), "selu_model_loads_total", model=MODEL,
                                  result="failure")
            self.assertGreaterEqual(failures, 1, "selu_model_loads_total failure for m/3")
            self.assertIn(failed_version_path(MODEL, 3), server.log_text())

            # Removing version 2 falls back past the corrupt 3 to version 1.
            t_rm2 = time.monotonic()
            shutil.rmtree(os.path.join(self.model_dir(MODEL), "2"))
            t_v1 = s.wait_until(lambda: load.first_answer_from("1", t_rm2), SWAP_TIMEOUT_S,
                                "an answer from version 1 after removing folder 2")
            s.wait_until(lambda: load.count_from("1", t_v1) >= 20, 10,
                         "20 answers from version 1 after the fallback")
            self.wait_for_state(server, MODEL, 1, "READY")
        finally:
            load.stop()
        t_end = time.monotonic()

        self.assert_no_failures(load, t0)
        # Once a version answered, every later request goes to it until the next change.
        self.assertEqual(set(load.versions_between(t_v2, t_rm2)), {"2"})
        self.assertEqual(set(load.versions_between(t_v1, t_end)), {"1"})
        for sent, _, _, version, out in load.records:
            np.testing.assert_allclose(out, refs[version](x), rtol=0, atol=s.TOLERANCE,
                                       err_msg="answer by version %s sent at %.3f"
                                       % (version, sent - t0))

    def test_poll_reloads_changed_config_and_file_under_load(self):
        ref1 = self.add_version(MODEL, 1, seed=1)
        ref2 = reference(2)
        self.write_config(MODEL, 'max_batch_size: 8\n')
        server = self.start("--model-control-mode", "poll",
                            "--repository-poll-seconds", str(POLL_S))
        self.assertEqual(self.model_config(server, MODEL).max_batch_size, 8)
        x = sample_input()
        load = InferenceLoad(server, MODEL, x).start()
        try:
            t0 = time.monotonic()
            s.wait_until(lambda: load.count_from("1", t0) >= 20, 10, "20 answers before changes")

            # A changed config.pbtxt reloads the model with it.
            self.write_config(MODEL, 'max_batch_size: 16\n'
                              'dynamic_batching { preferred_batch_size: [ 4 ] }\n')
            s.wait_until(lambda: self.model_config(server, MODEL).max_batch_size == 16,
                         SWAP_TIMEOUT_S, "ModelConfig to report max_batch_size 16")
            config = self.model_config(server, MODEL)
            self.assertEqual(list(config.dynamic_batching.preferred_batch_size), [4])
            resp = self.infer(server, sample_input(rows=12))
            self.assertEqual(resp.model_version, "1")

            # A model file replaced in place (same version) is reloaded.
            t_replace = time.monotonic()
            s.replace_file(os.path.join(self.model_dir(MODEL), "1", "model.onnx"),
                           model_bytes(2))

            def answers_like_seed_2():
                recent = [r for r in list(load.records) if r[0] >= t_replace and r[2] == "OK"]
                return any(np.allclose(r[4], ref2(x), rtol=0, atol=s.TOLERANCE)
                           for r in recent)
            s.wait_until(answers_like_seed_2, SWAP_TIMEOUT_S,
                         "answers computed by the replaced model file")
            t_new = time.monotonic()
            s.wait_until(lambda: load.count_from("1", t_new) >= 20, 10,
                         "20 answers after the file was replaced")
        finally:
            load.stop()

        self.assert_no_failures(load, t0)
        # Every answer is one model's or the other's, and after the swap only
        # the new file's.
        for sent, _, _, version, out in load.records:
            self.assertEqual(version, "1")
            old = np.allclose(out, ref1(x), rtol=0, atol=s.TOLERANCE)
            new = np.allclose(out, ref2(x), rtol=0, atol=s.TOLERANCE)
            self.assertTrue(old or new, "answer sent at +%.3f s matches neither file"
                            % (sent - t0))
            if sent >= t_new:
                self.assertTrue(new, "answer sent at +%.3f s after the swap came from the "
                                "old file" % (sent - t0))

    def test_request_that_finds_a_retiring_version_is_resent(self):
        """A request that looked up a version just before it was swapped out
        reaches a draining queue; the server re-sends it to the new version.
        A test-only pause between lookup and queuing (SELU_TEST_SUBMIT_DELAY_US)
        makes that window wide enough to hit on every swap."""
        refs = {"1": self.add_version(MODEL, 1, seed=1), "2": reference(2), "3": reference(3)}
        x = sample_input()
        server = self.start("--model-control-mode", "poll",
                            "--repository-poll-seconds", str(POLL_S),
                            env={"SELU_TEST_SUBMIT_DELAY_US": "5000"})
        load = InferenceLoad(server, MODEL, x, threads=6).start()
        try:
            t0 = time.monotonic()
            s.wait_until(lambda: load.count_from("1", t0) >= 20, 10, "20 answers from version 1")
            for version in (2, 3):
                t_add = time.monotonic()
                self.add_version(MODEL, version, seed=version)
                t_new = s.wait_until(lambda: load.first_answer_from(str(version), t_add),
                                     SWAP_TIMEOUT_S, "an answer from version %d" % version)
                s.wait_until(lambda: load.count_from(str(version), t_new) >= 20, 10,
                             "20 answers from version %d" % version)
        finally:
            load.stop()
        self.assert_no_failures(load, t0)
        for sent, _, _, version, out in load.records:
            np.testing.assert_allclose(out, refs[version](x), rtol=0, atol=s.TOLERANCE)
        resends = metric_sum(server.scrape(), "selu_inference_swap_resends_total")
        self.assertGreater(resends, 0, "no request was re-sent: the swap window was never hit")

    def test_poll_half_written_file(self):
        ref1 = self.add_version(MODEL, 1, seed=1)
        ref2 = reference(2)
        server = self.start("--model-control-mode", "poll",
                            "--repository-poll-seconds", str(POLL_S))
        full = model_bytes(2)
        s.place_version(self.model_dir(MODEL), 2, full[:len(full) // 2])
        _, reason = self.wait_for_state(server, MODEL, 2, "UNAVAILABLE")
        self.assertIn(MODEL_FILE, reason)
        x = sample_input()
        for _ in range(3):
            resp = self.infer(server, x)
            self.assertEqual(resp.model_version, "1")
            self.assert_output(resp, x, ref1)
            time.sleep(POLL_S)

        # The file completes (size and mtime change): the next polls load it.
        s.replace_file(os.path.join(self.model_dir(MODEL), "2", "model.onnx"), full)
        self.wait_for_state(server, MODEL, 2, "READY")
        def answer_from_2():
            r = self.infer(server, x)
            return r if r.model_version == "2" else None
        resp = s.wait_until(answer_from_2, SWAP_TIMEOUT_S, "ModelInfer answered by version 2")
        self.assert_output(resp, x, ref2)

    def test_load_and_unload_refused_unless_explicit(self):
        self.add_version(MODEL, 1, seed=1)
        for args in (["--model-control-mode", "none"], [],
                     ["--model-control-mode", "poll", "--repository-poll-seconds", str(POLL_S)]):
            with self.subTest(args=args):
                server = self.start(*args)
                for call in (self.load, self.unload):
                    with self.assertRaises(grpc.RpcError) as cm:
                        call(server, MODEL)
                    self.assertEqual(cm.exception.code(), Code.FAILED_PRECONDITION,
                                     cm.exception.details())
                self.assertTrue(self.model_ready(server, MODEL))
                self.assertEqual(self.health(server, MODEL), SERVING)


class ExplicitModeTest(RepositoryTestCase):
    def test_explicit_load_unload(self):
        ref = self.add_version(MODEL, 1, seed=1)
        ref_other = self.add_version("other", 1, seed=2)
        s.place_version(self.model_dir("corrupt"), 1, b"\x08\x07not an onnx model" * 20)
        server = self.start("--model-control-mode", "explicit", "--load-model", MODEL)
        stub = server.inference()
        x = sample_input()

        self.assertEqual(self.ready_entries(server), [(MODEL, "1")])
        everything = self.index(server)
        self.assertEqual(self.version_state(server, MODEL, 1)[0], "READY", everything)
        for name in ("other", "corrupt"):
            entries = self.index(server, name)
            self.assertEqual([(v, st) for _, v, st, _ in entries], [("", "UNAVAILABLE")],
                             "never-loaded model %r: %s" % (name, everything))
        self.assertFalse(self.model_ready(server, "other"))
        self.assertEqual(self.health(server, MODEL), SERVING)
        self.assert_output(self.infer(server, x), x, ref)

        # Unload: not ready, not served, unavailable "unloaded", health NOT_SERVING.
        self.unload(server, MODEL)
        self.assertFalse(self.model_ready(server, MODEL))
        self.assertFalse(self.model_ready(server, MODEL, "1"))
        self.assertEqual(self.health(server, MODEL), NOT_SERVING)
        err = self.assert_rpc_fails(NOT_SERVED_CODE, stub.ModelInfer,
                                    s.infer_request(x, model=MODEL, input_name="x"))
        self.assertEqual(err.details(), "model '%s' is not loaded (%s)" % (MODEL, UNLOADED_REASON))
        entries = self.index(server, MODEL)
        self.assertTrue(entries, "unloaded model %r missing from the index" % MODEL)
        for _, _, state, reason in entries:
            self.assertEqual(state, "UNAVAILABLE", entries)
            self.assertIn(UNLOADED_REASON, reason)
        self.assertEqual(self.ready_entries(server), [])

        # Load again: ready, serving, correct.
        self.load(server, MODEL)
        self.assertTrue(self.model_ready(server, MODEL))
        self.assertEqual(self.health(server, MODEL), SERVING)
        self.assertEqual(self.version_state(server, MODEL, 1)[0], "READY")
        resp = self.infer(server, x)
        self.assertEqual(resp.model_version, "1")
        self.assert_output(resp, x, ref)

        # A model never loaded before loads on request.
        self.load(server, "other")
        self.assertTrue(self.model_ready(server, "other"))
        self.assert_output(self.infer(server, x, model="other"), x, ref_other)
        self.assertEqual(self.ready_entries(server), [(MODEL, "1"), ("other", "1")])

        # No such folder; a folder whose only version does not load.
        err = self.assert_rpc_fails(Code.NOT_FOUND, stub.RepositoryModelLoad,
                                    pb.RepositoryModelLoadRequest(model_name="no_such_model"))
        self.assertIn("no_such_model", err.details())
        err = self.assert_rpc_fails(Code.FAILED_PRECONDITION, stub.RepositoryModelLoad,
                                    pb.RepositoryModelLoadRequest(model_name="corrupt"))
        self.assertIn(MODEL_FILE, err.details())
        self.assertFalse(self.model_ready(server, "corrupt"))
        state, reason = self.version_state(server, "corrupt", 1)
        self.assertEqual(state, "UNAVAILABLE")
        self.assertIn(MODEL_FILE, reason)
        self.assertGreaterEqual(metric_sum(server.scrape(), "selu_model_loads_total",
                                           model="corrupt", result="failure"), 1)
        # The good models are untouched.
        self.assert_output(self.infer(server, x), x, ref)

    def test_load_model_naming_no_folder_stops_start_up(self):
        self.add_version(MODEL, 1, seed=1)
        for name in ("nope", "../" + MODEL):
            with self.subTest(name=name):
                out = subprocess.run(
                    [s.SERVE_BIN, "--model-repository", self.repo, "--grpc-address",
                     "127.0.0.1:0", "--metrics-address", "", "--model-control-mode",
                     "explicit", "--load-model", MODEL, "--load-model", name],
                    capture_output=True, text=True, timeout=60)
                self.assertNotEqual(out.returncode, 0)
                self.assertIn("--load-model", out.stdout + out.stderr)
                self.assertIn(name, out.stdout + out.stderr)

    def test_path_traversal_refused(self):
        self.add_version(MODEL, 1, seed=1)
        # Real models where an escaping name would lead, so a server that
        # follows it would load something.
        outside = os.path.join(self.root, "x")
        s.place_version(outside, 1, model_bytes(2))
        s.place_version(os.path.join(self.repo, "a", "b"), 1, model_bytes(2))
        elsewhere = tempfile.mkdtemp(prefix="selu-it-outside-")
        self.addCleanup(shutil.rmtree, elsewhere, True)
        s.place_version(os.path.join(elsewhere, "linked"), 1, model_bytes(2))
        os.symlink(os.path.join(elsewhere, "linked"), os.path.join(self.repo, "linked"))

        server = self.start("--model-control-mode", "explicit", "--load-model", MODEL)
        stub = server.inference()
        for name in ("../x", "/etc", "a/b", ".", "..", "", "../repo/" + MODEL):
            with self.subTest(name=name):
                err = self.assert_rpc_fails(Code.INVALID_ARGUMENT, stub.RepositoryModelLoad,
                                            pb.RepositoryModelLoadRequest(model_name=name))
                self.assertEqual(err.details(), "model name '%s' is not a plain folder name "
                                 "of the model repository" % name if name else
                                 "model name is empty")
                self.assertTrue(self.not_ready(server, name))
        with self.subTest(name="linked"):
            err = self.assert_rpc_fails(SYMLINK_REFUSED_CODE, stub.RepositoryModelLoad,
                                        pb.RepositoryModelLoadRequest(model_name="linked"))
            self.assertIn("resolves to '%s'" % os.path.realpath(
                os.path.join(elsewhere, "linked")), err.details())
            self.assertIn("outside the model repository", err.details())
            self.assertTrue(self.not_ready(server, "linked"))
            self.assertEqual(
                [e for e in self.index(server, "linked") if e[2] == "READY"], [])
        self.assertEqual(self.ready_entries(server), [(MODEL, "1")])
        self.assertTrue(self.model_ready(server, MODEL))

    def test_load_with_config_parameter(self):
        ref = self.add_version(MODEL, 1, seed=1)
        server = self.start("--model-control-mode", "explicit", "--load-model", MODEL)
        self.assertEqual(self.model_config(server, MODEL).max_batch_size, 64)  # the flag default
        self.load(server, MODEL, config=json.dumps({"max_batch_size": 4}))
        self.assertTrue(self.model_ready(server, MODEL))
        self.assertEqual(self.model_config(server, MODEL).max_batch_size, 4)
        x = sample_input(rows=5)
        self.assert_output(self.infer(server, x[:4]), x[:4], ref)
        err = self.assert_rpc_fails(Code.INVALID_ARGUMENT, server.inference().ModelInfer,
                                    s.infer_request(x, model=MODEL, input_name="x"))
        self.assertIn("4", err.details())
        # Triton fields we do not use are accepted from JSON too, and named in the log.
        self.load(server, MODEL, config=json.dumps(
            {"max_batch_size": 8, "response_cache": {"enable": True}}))
        self.assertEqual(self.model_config(server, MODEL).max_batch_size, 8)
        s.wait_until(lambda: "response_cache" in server.log_text(), 5,
                     "a warning naming 'response_cache' in the server log")

    def test_malformed_repository_requests_are_refused(self):
        self.add_version(MODEL, 1, seed=1)
        server = self.start("--model-control-mode", "explicit", "--load-model", MODEL)
        stub = server.inference()

        def load_request(key, **param):
            req = pb.RepositoryModelLoadRequest(model_name=MODEL)
            req.parameters[key].CopyFrom(pb.ModelRepositoryParameter(**param))
            return req

        for code, fragment, req in (
                (Code.INVALID_ARGUMENT, "parameter 'config'",
                 load_request("config", string_param="{max_batch_size: ")),
                (Code.INVALID_ARGUMENT, "parameter 'config' must be a string_param",
                 load_request("config", bool_param=True)),
                (Code.INVALID_ARGUMENT, "unknown parameter 'priority'",
                 load_request("priority", string_param="1")),
                (Code.UNIMPLEMENTED, "parameter 'file:1/model.onnx'",
                 load_request("file:1/model.onnx", bytes_param=b"\x08\x07"))):
            with self.subTest(fragment=fragment):
                err = self.assert_rpc_fails(code, stub.RepositoryModelLoad, req)
                self.assertIn(fragment, err.details())
        for call, req in (
                (stub.RepositoryModelLoad,
                 pb.RepositoryModelLoadRequest(repository_name="other", model_name=MODEL)),
                (stub.RepositoryModelUnload,
                 pb.RepositoryModelUnloadRequest(repository_name="other", model_name=MODEL)),
                (stub.RepositoryIndex, pb.RepositoryIndexRequest(repository_name="other"))):
            err = self.assert_rpc_fails(Code.NOT_FOUND, call, req)
            self.assertIn("unknown model repository 'other'", err.details())
        err = self.assert_rpc_fails(Code.NOT_FOUND, stub.ModelConfig,
                                    pb.ModelConfigRequest(name="nope"))
        self.assertIn("unknown model 'nope'", err.details())
        err = self.assert_rpc_fails(Code.INVALID_ARGUMENT, stub.ModelConfig,
                                    pb.ModelConfigRequest(name=MODEL, version="x"))
        self.assertIn("model version 'x' is not a positive integer", err.details())
        # Nothing refused changed what serves.
        self.assertTrue(self.model_ready(server, MODEL))
        self.assertEqual(self.model_config(server, MODEL).max_batch_size, 64)


class ModelConfigTest(RepositoryTestCase):
    TRITON_CONFIG = """
name: "m"
platform: "onnxruntime_onnx"
max_batch_size: 16
input [ { name: "x" data_type: TYPE_FP32 dims: [ 16 ] } ]
output [ { name: "y" data_type: TYPE_FP32 dims: [ 8 ] } ]
dynamic_batching {
  preferred_batch_size: [ 4, 8 ]
  max_queue_delay_microseconds: 100
}
instance_group [ { count: 1 kind: KIND_CPU } ]
optimization { execution_accelerators {
  cpu_execution_accelerator : [ { name : "openvino" } ]
} }
model_warmup [ {
  name: "zeros"
  batch_size: 1
  inputs { key: "x" value { data_type: TYPE_FP32 dims: [ 16 ] zero_data: true } }
} ]
response_cache { enable: true }
"""
    UNUSED_FIELDS = ("optimization", "model_warmup", "response_cache")

    def test_triton_config_loads(self):
        ref = self.add_version(MODEL, 1, seed=1)
        self.write_config(MODEL, self.TRITON_CONFIG)
        server = self.start()  # default mode: none
        x = sample_input(rows=17)
        self.assert_output(self.infer(server, x[:16]), x[:16], ref)
        err = self.assert_rpc_fails(Code.INVALID_ARGUMENT, server.inference().ModelInfer,
                                    s.infer_request(x, model=MODEL, input_name="x"))
        self.assertIn("16", err.details())

        config = self.model_config(server, MODEL)
        self.assertEqual(config.name, MODEL)
        self.assertEqual(config.platform, "onnxruntime_onnx")
        self.assertEqual(config.backend, "onnxruntime")
        self.assertEqual(config.max_batch_size, 16)
        self.assertEqual([(i.name, i.data_type, list(i.dims)) for i in config.input],
                         [("x", model_config_pb2.TYPE_FP32, [16])])
        self.assertEqual([(o.name, o.data_type, list(o.dims)) for o in config.output],
                         [("y", model_config_pb2.TYPE_FP32, [8])])
        self.assertEqual(config.WhichOneof("scheduling_choice"), "dynamic_batching")
        self.assertEqual(list(config.dynamic_batching.preferred_batch_size), [4, 8])
        self.assertEqual(config.dynamic_batching.max_queue_delay_microseconds, 100)
        self.assertEqual([(g.kind, g.count) for g in config.instance_group],
                         [(model_config_pb2.ModelInstanceGroup.KIND_CPU, 1)])
        self.assertEqual(config.version_policy.WhichOneof("policy_choice"), "latest")
        self.assertEqual(config.version_policy.latest.num_versions, 1)

        log = server.log_text()
        for field in self.UNUSED_FIELDS:
            with self.subTest(field=field):
                self.assertIn(field, log, "no warning naming the unused field %r" % field)

    CONTRADICTIONS = {
        # model name: (config.pbtxt input, the field the refusal names)
        "wrong_dims": ('input [ { name: "x" data_type: TYPE_FP32 dims: [ 15 ] } ]',
                       "input[0].dims"),
        "wrong_name": ('input [ { name: "z" data_type: TYPE_FP32 dims: [ 16 ] } ]',
                       "input[0].name"),
    }

    def add_contradicting_models(self):
        for i, (name, (input_text, _)) in enumerate(sorted(self.CONTRADICTIONS.items())):
            self.add_version(name, 1, seed=3 + i)
            self.write_config(name, 'name: "%s"\nmax_batch_size: 8\n%s\n' % (name, input_text))

    def test_contradictory_config_refused(self):
        ref = self.add_version(MODEL, 1, seed=1)
        self.add_contradicting_models()
        server = self.start()  # default mode: none; "m" is ready, the others are not
        self.assert_output(self.infer(server, sample_input()), sample_input(), ref)
        for name, (_, field) in self.CONTRADICTIONS.items():
            with self.subTest(name=name):
                self.assertFalse(self.model_ready(server, name))
                entries = self.index(server, name)
                self.assertTrue(entries, "%r missing from the index" % name)
                for _, _, state, reason in entries:
                    self.assertEqual(state, "UNAVAILABLE")
                    self.assertIn(field, reason)

    def test_contradictory_config_refused_by_explicit_load(self):
        self.add_version(MODEL, 1, seed=1)
        self.add_contradicting_models()
        server = self.start("--model-control-mode", "explicit", "--load-model", MODEL)
        stub = server.inference()
        for name, (_, field) in self.CONTRADICTIONS.items():
            with self.subTest(name=name):
                err = self.assert_rpc_fails(Code.FAILED_PRECONDITION, stub.RepositoryModelLoad,
                                            pb.RepositoryModelLoadRequest(model_name=name))
                self.assertIn(field, err.details())
                self.assertFalse(self.model_ready(server, name))
        # The same contradiction given as the "config" parameter.
        err = self.assert_rpc_fails(
            Code.FAILED_PRECONDITION, stub.RepositoryModelLoad,
            self._load_request(MODEL, {"input": [{"name": "x", "data_type": "TYPE_FP32",
                                                  "dims": [15]}]}))
        self.assertIn("input[0].dims", err.details())
        # A refused reload leaves the serving model alone.
        self.assertTrue(self.model_ready(server, MODEL))

    @staticmethod
    def _load_request(name, config):
        req = pb.RepositoryModelLoadRequest(model_name=name)
        req.parameters["config"].string_param = json.dumps(config)
        return req


class MemoryTest(RepositoryTestCase):
    # Measured against the tsan build: RSS 55 MB before the load, 355 MB
    # loaded, 231 MB a minute after the unload (58 MB of it TSan's shadow).
    @unittest.skipIf(os.environ.get("SELU_TEST_SANITIZER") == "thread",
                     "ThreadSanitizer's allocator and shadow memory keep RSS up after a free")
    def test_memory_returns_after_unload(self):
        self.add_version(MODEL, 1, seed=1)
        large = os.path.join(self.model_dir("large"), "1", "model.onnx")
        weight_bytes = s.write_selu_mlp_onnx(large, LARGE_SIZES, seed=11)
        # Under ASan, freed blocks wait in its quarantine (256 MB) before they
        # are given back; without one, freeing the weights unmaps them as
        # glibc's malloc does (ignored by every other build).
        asan = ":".join(filter(None, [os.environ.get("ASAN_OPTIONS"), "quarantine_size_mb=0"]))
        server = self.start("--model-control-mode", "explicit", "--load-model", MODEL,
                            env={"ASAN_OPTIONS": asan})
        pid = server.proc.pid
        x = np.random.default_rng(5).standard_normal((2, LARGE_SIZES[0])).astype(np.float32)

        before = s.rss_bytes(pid)
        self.load(server, "large")
        resp = self.infer(server, x, model="large")
        self.assertEqual(list(resp.outputs[0].shape), [2, LARGE_SIZES[-1]])
        loaded = s.rss_bytes(pid)
        increase = loaded - before
        # The weights must be resident, or the test below proves nothing.
        self.assertGreater(increase, weight_bytes // 2,
                           "RSS grew by %.0f MB loading %.0f MB of weights"
                           % (increase / 1e6, weight_bytes / 1e6))

        self.unload(server, "large")
        target = before + increase // 5  # at least 80 % of the increase given back
        s.wait_until(lambda: s.rss_bytes(pid) <= target, MEMORY_RETURN_S,
                     lambda: "RSS back to <= %.0f MB after the unload (%.0f MB before the "
                     "load, %.0f MB loaded, %.0f MB now)" % (target / 1e6, before / 1e6,
                                                             loaded / 1e6, s.rss_bytes(pid) / 1e6))
        self.assertFalse(self.model_ready(server, "large"))
        self.assertTrue(self.model_ready(server, MODEL))


if __name__ == "__main__":
    unittest.main()
