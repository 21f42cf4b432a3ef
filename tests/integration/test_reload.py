"""README claims about the model repository that had no test of their own:
reloads through RepositoryModelLoad under load, an unload that answers once
the queued requests are done, liveness while a model is broken (the probes of
deploy/k8s/base/deployment.yaml), and symlinked version folders, config and
model files (a Kubernetes ConfigMap volume's layout).

Orderings, never times: "answers once it serves" means every request sent
after RepositoryModelLoad answered is computed by the new file; "once the
queued requests are done" means the server counted them answered before it
answered the unload.
"""

import os
import shutil
import tempfile
import time
import unittest

import grpc
import numpy as np
import yaml

import selu_server as s
from selu_server import health_pb2, pb
from test_faults import WAIT_S, Load, gauges, grpc_handled, index_entry, scrape

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
Code = grpc.StatusCode
SIZES = [16, 32, 8]
POLL_S = 0.2
DEPLOYMENT = os.path.join(s.SOURCE_DIR, "deploy", "k8s", "base", "deployment.yaml")


class RepositoryCase(s.ServerTestCase):
    def setUp(self):
        self.parent = tempfile.mkdtemp(prefix="selu-it-reload-")
        self.addCleanup(shutil.rmtree, self.parent, True)
        self.repo = os.path.join(self.parent, "repo")
        self.models = os.path.join(self.parent, "models")  # outside the repository
        os.makedirs(self.repo)
        self.refs = {}

    def model_file(self, seed, sizes=SIZES):
        """A Gemm/Selu MLP for `seed` (made once), its path outside the repository."""
        path = os.path.join(self.models, "seed%d" % seed, "model.onnx")
        if seed not in self.refs:
            s.write_selu_mlp_onnx(path, sizes, seed=seed)
            self.refs[seed] = s.ReferenceModel(path, "seed%d" % seed)
        return path

    def model_bytes(self, seed):
        with open(self.model_file(seed), "rb") as f:
            return f.read()

    def which_seed(self, x, out):
        """The seed whose model computes `out` from x, or None."""
        for seed, ref in self.refs.items():
            if np.allclose(out, ref(x), rtol=0, atol=s.TOLERANCE):
                return seed
        return None

    def infer(self, server, x, model="m", version=""):
        return server.inference().ModelInfer(
            s.infer_request(x, model=model, input_name="x", version=version), timeout=WAIT_S)

    def health(self, server, service):
        return server.health().Check(health_pb2.HealthCheckRequest(service=service),
                                     timeout=5).status


def sample_input(rows=4, seed=7):
    return np.random.default_rng(seed).standard_normal((rows, SIZES[0])).astype(np.float32)


class ExplicitReloadTest(RepositoryCase):
    def test_repository_model_load_reloads_under_load(self):
        """The version's file is replaced, then RepositoryModelLoad: it answers
        once the new file serves, so every request sent after its answer is
        computed by the new file; a corrupt file is refused naming it and the
        last good one keeps serving; no request fails."""
        s.place_version(os.path.join(self.repo, "m"), 1, self.model_bytes(1))
        server = self.start_server("--model-control-mode", "explicit", "--load-model", "m",
                                   repository=self.repo, ready_service="m")
        stub = server.inference()
        x = sample_input()
        path = os.path.join(self.repo, "m", "1", "model.onnx")
        load = Load(server, x, threads=3, model="m", input_name="x",
                    features=SIZES[-1]).start()
        loads = [(0.0, 0.0, 1)]  # (load sent, load answered, seed serving after it)
        try:
            load.wait_for_answers(20, "before any reload")
            for seed in (2, 3, "corrupt", 4, 1):
                t_sent = time.monotonic()
                if seed == "corrupt":
                    s.replace_file(path, b"\x08\x07not an onnx model" * 20)
                    with self.assertRaises(grpc.RpcError) as cm:
                        stub.RepositoryModelLoad(pb.RepositoryModelLoadRequest(model_name="m"),
                                                 timeout=WAIT_S)
                    self.assertEqual(cm.exception.code(), Code.FAILED_PRECONDITION,
                                     cm.exception.details())
                    self.assertIn(path, cm.exception.details())
                    loads.append((t_sent, time.monotonic(), loads[-1][2]))
                else:
                    s.replace_file(path, self.model_bytes(seed))
                    stub.RepositoryModelLoad(pb.RepositoryModelLoadRequest(model_name="m"),
                                             timeout=WAIT_S)
                    loads.append((t_sent, time.monotonic(), seed))
                load.wait_for_answers(20, "after loading %s" % seed)
        finally:
            load.stop()
        failed = [r for r in load.records if r[1] != "OK"]
        self.assertEqual(failed[:3], [], "%d of %d failed" % (len(failed), len(load.records)))
        for i, (_, t_answered, seed) in enumerate(loads):
            t_next = loads[i + 1][0] if i + 1 < len(loads) else float("inf")
            # Sent after this load answered and before the next was sent (no
            # polling: the file written in between changes nothing until then).
            window = [r for r in load.records if t_answered <= r[0] < t_next]
            seeds = {self.which_seed(x, r[3]) for r in window}
            self.assertEqual(seeds, {seed}, "answers after load %d (serving seed %s)" % (i, seed))
        for r in load.records:
            self.assertIsNotNone(self.which_seed(x, r[3]), "an answer no model file computes")
        exp = scrape(server)
        self.assertEqual(sum(v for _, v in exp.select("selu_model_loads_total", model="m",
                                                      result="success")), 5)
        self.assertEqual(sum(v for _, v in exp.select("selu_model_loads_total", model="m",
                                                      result="failure")), 1)


class UnloadWithQueuedRequestsTest(RepositoryCase):
    def test_unload_answers_after_the_queued_requests(self):
        s.place_version(os.path.join(self.repo, "m"), 1, self.model_bytes(1))
        # The batcher waits 2 s for company: the requests are queued when the
        # unload arrives.
        server = self.start_server("--model-control-mode", "explicit", "--load-model", "m",
                                   "--max-queue-delay-us", "2000000", "--batch-execution",
                                   "workers", repository=self.repo, ready_service="m")
        stub = server.inference()
        xs = [sample_input(rows=2, seed=i) for i in range(8)]
        futures = [stub.ModelInfer.future(s.infer_request(x, model="m", input_name="x"),
                                          timeout=WAIT_S) for x in xs]
        s.wait_until(lambda: gauges(server, model="m") == (len(xs), len(xs)), WAIT_S,
                     lambda: "%d queued requests (in flight, queued: %s)"
                     % (len(xs), gauges(server, model="m")))
        stub.RepositoryModelUnload(pb.RepositoryModelUnloadRequest(model_name="m"),
                                   timeout=WAIT_S)
        # The server had answered every queued request when it answered the unload.
        self.assertEqual(grpc_handled(scrape(server)), {"OK": len(xs)})
        for x, future in zip(xs, futures):
            np.testing.assert_allclose(s.response_output(future.result(), 2, SIZES[-1]),
                                       self.refs[1](x), rtol=0, atol=s.TOLERANCE)
        with self.assertRaises(grpc.RpcError) as cm:
            self.infer(server, xs[0])
        self.assertEqual(cm.exception.code(), Code.UNAVAILABLE)
        self.assertEqual(cm.exception.details(), "model 'm' is not loaded (unloaded)")
        self.assertEqual(self.health(server, "m"), NOT_SERVING)


def probe_services():
    """{probe: grpc service} of the selu-serve container in the base Deployment."""
    with open(DEPLOYMENT) as f:
        deployment = yaml.safe_load(f)
    container, = [c for c in deployment["spec"]["template"]["spec"]["containers"]
                  if c["name"] == "selu-serve"]
    return {probe: container[probe]["grpc"].get("service", "")
            for probe in ("startupProbe", "readinessProbe", "livenessProbe")}


class LivenessWithBrokenModelTest(RepositoryCase):
    """A model that does not load keeps the replica unready (readiness probe's
    service NOT_SERVING) but alive (liveness probe's service SERVING), so
    Kubernetes does not restart it over a bad model."""

    def setUp(self):
        super().setUp()
        self.probes = probe_services()
        s.place_version(os.path.join(self.repo, "broken"), 1, b"\x08\x07not an onnx model" * 20)

    def assert_alive_not_ready(self, server):
        stub = server.inference()
        self.assertTrue(stub.ServerLive(pb.ServerLiveRequest(), timeout=5).live)
        self.assertFalse(stub.ServerReady(pb.ServerReadyRequest(), timeout=5).ready)
        self.assertEqual(self.health(server, self.probes["livenessProbe"]), SERVING)
        self.assertEqual(self.health(server, self.probes["readinessProbe"]), NOT_SERVING)
        self.assertEqual(self.health(server, "broken"), NOT_SERVING)

    def test_only_a_broken_model(self):
        server = self.start_server(repository=self.repo, ready_service=None)
        s.wait_until(lambda: index_entry(server, 1, model="broken") is not None, WAIT_S,
                     "the broken model in RepositoryIndex")
        self.assertEqual(index_entry(server, 1, model="broken")[0], "UNAVAILABLE")
        self.assert_alive_not_ready(server)

    def test_a_broken_model_beside_a_good_one(self):
        s.place_version(os.path.join(self.repo, "m"), 1, self.model_bytes(1))
        server = self.start_server(repository=self.repo, ready_service="m")
        self.assert_alive_not_ready(server)
        x = sample_input()
        np.testing.assert_allclose(s.response_output(self.infer(server, x), 4, SIZES[-1]),
                                   self.refs[1](x), rtol=0, atol=s.TOLERANCE)

    def test_a_model_added_later_that_fails_keeps_the_replica_ready(self):
        shutil.rmtree(os.path.join(self.repo, "broken"))
        s.place_version(os.path.join(self.repo, "m"), 1, self.model_bytes(1))
        server = self.start_server("--model-control-mode", "poll", "--repository-poll-seconds",
                                   str(POLL_S), repository=self.repo)
        s.place_version(os.path.join(self.repo, "late"), 1, b"\x08\x07not an onnx model" * 20)
        s.wait_until(lambda: index_entry(server, 1, model="late") is not None, WAIT_S,
                     "the late model in RepositoryIndex")
        self.assertEqual(index_entry(server, 1, model="late")[0], "UNAVAILABLE")
        self.assertEqual(self.health(server, self.probes["readinessProbe"]), SERVING)
        self.assertEqual(self.health(server, self.probes["livenessProbe"]), SERVING)
        self.assertEqual(self.health(server, "late"), NOT_SERVING)


class SymlinkTest(RepositoryCase):
    """Symlinks inside the repository are followed, as a ConfigMap volume
    makes them (config.pbtxt -> ..data/config.pbtxt, ..data -> a timestamped
    folder, swapped atomically on update); a version folder, config or model
    file that resolves outside the repository is refused, naming where."""

    def configmap(self, model, stamp, files):
        """Writes <model>/<stamp>/ with `files` ({name: bytes}) and points
        <model>/..data at it atomically (symlink aside, rename over)."""
        folder = os.path.join(self.repo, model)
        target = os.path.join(folder, stamp)
        os.makedirs(target)
        for name, data in files.items():
            os.makedirs(os.path.dirname(os.path.join(target, name)), exist_ok=True)
            with open(os.path.join(target, name), "wb") as f:
                f.write(data)
        tmp = os.path.join(folder, "..data_tmp")
        os.symlink(stamp, tmp)
        os.rename(tmp, os.path.join(folder, "..data"))

    def test_configmap_layout_loads_and_reloads_on_update(self):
        folder = os.path.join(self.repo, "m")
        self.configmap("m", "..2024_01_01", {
            "config.pbtxt": b'max_batch_size: 8\nversion_policy { all {} }\n',
            "v1/model.onnx": self.model_bytes(1), "v2.onnx": self.model_bytes(2)})
        os.symlink("..data/config.pbtxt", os.path.join(folder, "config.pbtxt"))
        os.symlink("..data/v1", os.path.join(folder, "1"))  # a symlinked version folder
        os.makedirs(os.path.join(folder, "2"))                # a symlinked model file
        os.symlink("../..data/v2.onnx", os.path.join(folder, "2", "model.onnx"))
        server = self.start_server("--model-control-mode", "poll", "--repository-poll-seconds",
                                   str(POLL_S), repository=self.repo, ready_service="m")
        x = sample_input()

        def answers():
            return {v: self.which_seed(x, s.response_output(self.infer(server, x, version=v),
                                                            4, SIZES[-1])) for v in ("1", "2")}

        self.assertEqual(answers(), {"1": 1, "2": 2})
        self.assertEqual(index_entry(server, 1, "m"), ("READY", ""))
        self.assertEqual(index_entry(server, 2, "m"), ("READY", ""))
        config = server.inference().ModelConfig(pb.ModelConfigRequest(name="m"), timeout=10)
        self.assertEqual(config.config.max_batch_size, 8)

        # The update: a new timestamped folder, ..data swapped to it.
        self.configmap("m", "..2024_01_02", {
            "config.pbtxt": b'max_batch_size: 4\nversion_policy { all {} }\n',
            "v1/model.onnx": self.model_bytes(3), "v2.onnx": self.model_bytes(4)})
        s.wait_until(lambda: answers() == {"1": 3, "2": 4}, WAIT_S,
                     lambda: "both versions answering from the new files (%s)" % answers())
        config = server.inference().ModelConfig(pb.ModelConfigRequest(name="m"), timeout=10)
        self.assertEqual(config.config.max_batch_size, 4)

    def test_symlinks_out_of_the_repository_are_refused(self):
        outside = os.path.join(self.parent, "outside")
        os.makedirs(os.path.join(outside, "v1"))
        shutil.copyfile(self.model_file(1), os.path.join(outside, "v1", "model.onnx"))
        with open(os.path.join(outside, "config.pbtxt"), "w") as f:
            f.write("max_batch_size: 8\n")
        # A version folder, a model file and a config that lead outside.
        os.makedirs(os.path.join(self.repo, "folder"))
        os.symlink(os.path.join(outside, "v1"), os.path.join(self.repo, "folder", "1"))
        os.makedirs(os.path.join(self.repo, "file", "1"))
        os.symlink(self.model_file(1), os.path.join(self.repo, "file", "1", "model.onnx"))
        s.place_version(os.path.join(self.repo, "config"), 1, self.model_bytes(1))
        os.symlink(os.path.join(outside, "config.pbtxt"),
                   os.path.join(self.repo, "config", "config.pbtxt"))
        s.place_version(os.path.join(self.repo, "m"), 1, self.model_bytes(2))
        server = self.start_server(repository=self.repo, ready_service="m")

        def reason(model, version):
            entry = index_entry(server, version, model)
            self.assertIsNotNone(entry, (model, s.repository_index(server.inference())))
            self.assertEqual(entry[0], "UNAVAILABLE", entry)
            return entry[1]

        self.assertIn("resolves to '%s'" % os.path.realpath(
            os.path.join(outside, "v1", "model.onnx")), reason("folder", 1))
        self.assertIn("resolves to '%s'" % os.path.realpath(self.model_file(1)),
                      reason("file", 1))
        self.assertIn("resolves to '%s'" % os.path.realpath(
            os.path.join(outside, "config.pbtxt")), reason("config", ""))
        for model in ("folder", "file", "config"):
            with self.subTest(model=model):
                self.assertIn("outside the model repository",
                              reason(model, "" if model == "config" else 1))
                with self.assertRaises(grpc.RpcError) as cm:
                    self.infer(server, sample_input(), model=model)
                self.assertEqual(cm.exception.code(), Code.UNAVAILABLE)
        x = sample_input()
        np.testing.assert_allclose(s.response_output(self.infer(server, x), 4, SIZES[-1]),
                                   self.refs[2](x), rtol=0, atol=s.TOLERANCE)


if __name__ == "__main__":
    unittest.main()
