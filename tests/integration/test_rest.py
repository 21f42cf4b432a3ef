"""The KServe v2 REST binding (--http-address) through the real server, with
the standard library's http.client as the client and grpcio for parity: every
endpoint, the same answers and refusal messages as gRPC on the bundled and a
generated model (typed JSON and Triton's binary tensor extension), the error
codes, oversized and slow bodies, restricted APIs, TLS and mutual TLS, and
the per-endpoint metrics."""

import http.client
import json
import os
import shutil
import socket
import ssl
import re
import subprocess
import sys
import tempfile
import threading
import time
import unittest

import grpc
import numpy as np

import selu_server as s
from selu_server import pb
from test_metrics import parse_exposition
from test_tls import OPENSSL, Certificates

M = s.BUNDLED_MODEL


def request(port, method, path, body=None, headers=None, context=None, timeout=10):
    """(status, headers dict (lowercase), body bytes)."""
    if context is None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    else:
        conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=timeout, context=context)
    try:
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def infer_json(x, datatype="FP32", nested=False, outputs=None, input_name="input", request_id=None,
               **params):
    x = np.asarray(x)
    data = x.tolist() if nested else x.ravel().tolist()
    body = {"inputs": [{"name": input_name, "datatype": datatype, "shape": list(x.shape),
                        "data": data}]}
    if outputs is not None:
        body["outputs"] = outputs
    if params:
        body["parameters"] = params
    if request_id is not None:
        body["id"] = request_id
    return body


def binary_body(x, datatype="FP32", outputs=None, **params):
    """(body, json length) of a binary-extension request."""
    raw = s.encode_raw(x, datatype)
    header = {"inputs": [{"name": "input", "datatype": datatype, "shape": list(np.shape(x)),
                          "parameters": {"binary_data_size": len(raw)}}]}
    if outputs is not None:
        header["outputs"] = outputs
    if params:
        header["parameters"] = params
    text = json.dumps(header).encode()
    return text + raw, len(text)


def grpc_details(stub, req):
    try:
        stub.ModelInfer(req, timeout=10)
    except grpc.RpcError as e:
        return e.code(), e.details()
    raise AssertionError("gRPC accepted the request")


def generated_repository():
    repo = tempfile.mkdtemp(prefix="selu-it-rest-")
    s.link_bundled_model(repo)
    # With its config.pbtxt and class labels (the classification test).
    bundled = os.path.dirname(os.path.dirname(s.BUNDLED_ONNX))
    for name in ("config.pbtxt", "labels.txt"):
        shutil.copyfile(os.path.join(bundled, name), os.path.join(repo, M, name))
    os.makedirs(os.path.join(repo, "gen", "1"))
    s.write_selu_mlp_onnx(os.path.join(repo, "gen", "1", "model.onnx"), [7, 16, 16, 3], seed=5)
    return repo


class RestTest(s.SharedServerTestCase):
    """One server for the endpoints, parity and error cases."""

    @classmethod
    def setUpClass(cls):
        cls.repo = generated_repository()
        cls.SERVER_ARGS = ("--max-batch-size", "16", "--http-max-body-bytes", "65536",
                           "--http-read-timeout-ms", "400")
        cls.SERVER_KWARGS = {"repository": cls.repo}
        super().setUpClass()
        cls.port = cls.server.http_port
        cls.x, _ = s.load_heldout()

    @classmethod
    def tearDownClass(cls):
        try:
            super().tearDownClass()
        finally:
            shutil.rmtree(cls.repo, ignore_errors=True)

    def get(self, path, **kw):
        return request(self.port, "GET", path, **kw)

    def post(self, path, body, **kw):
        return request(self.port, "POST", path, body=body, **kw)

    def infer_ok(self, body, model=M, **kw):
        status, headers, data = self.post("/v2/models/%s/infer" % model, body, **kw)
        self.assertEqual(status, 200, data)
        return headers, data

    def grpc_output(self, x, model=M, input_name="input"):
        resp = self.stub.ModelInfer(s.infer_request(x, model=model, input_name=input_name),
                                    timeout=10)
        return s.response_output(resp, len(x), resp.outputs[0].shape[1])

    # ---- health, metadata, config, statistics, repository

    def test_health(self):
        self.assertEqual(self.get("/v2/health/live")[0], 200)
        self.assertEqual(self.get("/v2/health/ready")[0], 200)
        self.assertEqual(self.get("/v2/models/%s/ready" % M)[0], 200)
        self.assertEqual(self.get("/v2/models/%s/versions/1/ready" % M)[0], 200)
        self.assertEqual(self.get("/v2/models/nope/ready")[0], 400)
        self.assertEqual(self.get("/v2/models/%s/versions/7/ready" % M)[0], 400)

    def test_server_and_model_metadata_match_grpc(self):
        status, _, body = self.get("/v2")
        self.assertEqual(status, 200)
        meta = self.stub.ServerMetadata(pb.ServerMetadataRequest(), timeout=10)
        doc = json.loads(body)
        self.assertEqual((doc["name"], doc["version"]), (meta.name, meta.version))
        for model in (M, "gen"):
            for path in ("/v2/models/%s" % model, "/v2/models/%s/versions/1" % model):
                status, headers, body = self.get(path)
                self.assertEqual(status, 200, body)
                self.assertEqual(headers["content-type"], "application/json")
                g = self.stub.ModelMetadata(pb.ModelMetadataRequest(name=model), timeout=10)
                doc = json.loads(body)
                self.assertEqual(doc["name"], g.name)
                self.assertEqual(doc["versions"], list(g.versions))
                self.assertEqual(doc["platform"], g.platform)
                self.assertEqual(doc["inputs"], [{"name": t.name, "datatype": t.datatype,
                                                  "shape": list(t.shape)} for t in g.inputs])
                self.assertEqual(doc["outputs"], [{"name": t.name, "datatype": t.datatype,
                                                   "shape": list(t.shape)} for t in g.outputs])

    def test_config_and_statistics(self):
        status, _, body = self.get("/v2/models/%s/config" % M)
        self.assertEqual(status, 200, body)
        self.assertEqual(json.loads(body)["name"], M)
        self.infer_ok(infer_json(self.x[:3]))
        status, _, body = self.get("/v2/models/%s/stats" % M)
        self.assertEqual(status, 200, body)
        stats = json.loads(body)["model_stats"]
        self.assertEqual([e["name"] for e in stats], [M])
        g = s.statistics(self.stub)
        # Numbers, not protobuf's strings; REST inference counts as gRPC's does.
        self.assertIsInstance(stats[0]["inference_count"], int)
        self.assertGreaterEqual(g.inference_count, stats[0]["inference_count"])
        self.assertGreaterEqual(stats[0]["inference_count"], 3)
        status, _, body = self.get("/v2/models/stats")
        self.assertEqual(sorted(e["name"] for e in json.loads(body)["model_stats"]), ["digits_snn", "gen"])
        self.assertEqual(self.get("/v2/models/nope/stats")[0], 404)

    def test_repository_index(self):
        status, _, body = self.post("/v2/repository/index", b"")
        self.assertEqual(status, 200, body)
        index = json.loads(body)
        self.assertEqual(sorted(e["name"] for e in index), ["digits_snn", "gen"])
        self.assertEqual({e["state"] for e in index}, {"READY"})
        # Load and unload need --model-control-mode=explicit: gRPC's refusal.
        status, _, body = self.post("/v2/repository/models/gen/unload", b"")
        self.assertEqual(status, 400, body)
        self.assertIn("explicit", json.loads(body)["error"])

    # ---- inference parity

    def test_json_flat_and_nested_equal_grpc(self):
        want = self.grpc_output(self.x[:5])
        for nested in (False, True):
            with self.subTest(nested=nested):
                headers, body = self.infer_ok(infer_json(self.x[:5], nested=nested, request_id="r1"))
                doc = json.loads(body)
                self.assertEqual(doc["model_name"], M)
                self.assertEqual(doc["model_version"], "1")
                self.assertEqual(doc["id"], "r1")
                (out,) = doc["outputs"]
                self.assertEqual((out["name"], out["datatype"], out["shape"]),
                                 ("probabilities", "FP32", [5, 10]))
                got = np.asarray(out["data"], dtype=np.float32).reshape(5, 10)
                np.testing.assert_array_equal(got, want)  # floats print exactly

    def test_generated_model_and_other_datatypes_equal_grpc(self):
        x = np.random.default_rng(3).standard_normal((4, 7)).astype(np.float32)
        want = self.grpc_output(x, model="gen", input_name="x")
        _, body = self.infer_ok(infer_json(x, input_name="x"), model="gen")
        got = np.asarray(json.loads(body)["outputs"][0]["data"], np.float32).reshape(4, 3)
        np.testing.assert_array_equal(got, want)
        for datatype in ("FP64", "FP16", "BF16"):
            with self.subTest(datatype=datatype):
                g = self.stub.ModelInfer(s.infer_request(x, model="gen", input_name="x",
                                                         datatype=datatype), timeout=10)
                grpc_out = s.response_output(g, 4, 3)
                _, body = self.infer_ok(infer_json(x.astype(np.float64), datatype=datatype,
                                                   input_name="x"), model="gen")
                got = np.asarray(json.loads(body)["outputs"][0]["data"], np.float32)
                np.testing.assert_array_equal(got.reshape(4, 3), grpc_out)

    def test_binary_extension_in_and_out(self):
        want = self.grpc_output(self.x[:4])
        cases = [({}, None), ({"binary_data_output": True}, None),
                 ({}, [{"name": "probabilities", "parameters": {"binary_data": True}}])]
        for params, outputs in cases:
            with self.subTest(params=params, outputs=outputs):
                body, n = binary_body(self.x[:4], outputs=outputs, **params)
                headers, data = self.infer_ok(
                    body, headers={"Inference-Header-Content-Length": str(n),
                                   "Content-Type": "application/octet-stream"})
                if not params and outputs is None:
                    got = json.loads(data)["outputs"][0]["data"]
                    np.testing.assert_array_equal(np.asarray(got, np.float32).reshape(4, 10), want)
                    continue
                hl = int(headers["inference-header-content-length"])
                doc = json.loads(data[:hl])
                (out,) = doc["outputs"]
                self.assertEqual(out["parameters"]["binary_data_size"], 4 * 10 * 4)
                self.assertNotIn("data", out)
                got = np.frombuffer(data[hl:], "<f4").reshape(4, 10)
                np.testing.assert_array_equal(got, want)
        # JSON in, binary out for one output only; binary_data false wins.
        _, data = self.infer_ok(infer_json(self.x[:2], binary_data_output=True, outputs=[
            {"name": "probabilities", "parameters": {"binary_data": False}}]))
        self.assertIn("data", json.loads(data)["outputs"][0])

    def grpc_classification(self, x, k, model=M, output="probabilities", input_name="input"):
        req = s.infer_request(x, model=model, input_name=input_name, raw=False)
        req.outputs.add(name=output).parameters["classification"].int64_param = k
        resp = self.stub.ModelInfer(req, timeout=10)
        self.assertEqual(resp.outputs[0].datatype, "BYTES")
        return [b.decode() for b in resp.outputs[0].contents.bytes_contents]

    def test_classification_json_and_binary_equal_grpc(self):
        """Triton's classification extension over REST: the bundled model's
        labels (models/digits_snn/labels.txt) and a generated model without
        labels, as JSON strings and as the binary extension's length-prefixed
        BYTES, each equal to the gRPC answer of the same request."""
        cases = [(M, "probabilities", "input", self.x[:3], 3),
                 ("gen", None, "x", np.random.default_rng(9).standard_normal((2, 7)), 2)]
        for model, output, input_name, x, k in cases:
            x = np.asarray(x, np.float32)
            if output is None:
                output = json.loads(self.get("/v2/models/gen")[2])["outputs"][0]["name"]
            with self.subTest(model=model):
                want = self.grpc_classification(x, k, model, output, input_name)
                self.assertEqual(len(want), len(x) * k)
                if model == M:  # labelled: score:index:label
                    self.assertRegex(want[0], r"^[0-9.]+:[0-9]:[a-z]+$")
                else:
                    self.assertRegex(want[0], r"^-?[0-9.]+:[0-9]$")
                outputs = [{"name": output, "parameters": {"classification": k}}]
                _, body = self.infer_ok(infer_json(x, input_name=input_name, outputs=outputs),
                                        model=model)
                (out,) = json.loads(body)["outputs"]
                self.assertEqual((out["datatype"], out["shape"]), ("BYTES", [len(x), k]))
                self.assertEqual(out["data"], want)
                outputs[0]["parameters"]["binary_data"] = True
                headers, data = self.infer_ok(
                    infer_json(x, input_name=input_name, outputs=outputs), model=model)
                hl = int(headers["inference-header-content-length"])
                (out,) = json.loads(data[:hl])["outputs"]
                self.assertEqual(out["datatype"], "BYTES")
                raw, got = data[hl:], []
                self.assertEqual(out["parameters"]["binary_data_size"], len(raw))
                while raw:
                    n = int.from_bytes(raw[:4], "little")
                    got.append(raw[4:4 + n].decode())
                    raw = raw[4 + n:]
                self.assertEqual(got, want)
        # A bad k: 400 with the message gRPC gives.
        req = s.infer_request(self.x[:1], raw=False)
        req.outputs.add(name="probabilities").parameters["classification"].int64_param = 0
        code, message = grpc_details(self.stub, req)
        self.assertEqual(code, grpc.StatusCode.INVALID_ARGUMENT)
        status, _, body = self.post("/v2/models/%s/infer" % M, infer_json(
            self.x[:1], outputs=[{"name": "probabilities", "parameters": {"classification": 0}}]))
        self.assertEqual(status, 400, body)
        self.assertEqual(json.loads(body)["error"], message)
        self.assertIn("classification", message)

    def test_keep_alive_serves_many_requests_on_one_connection(self):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            for _ in range(20):
                conn.request("POST", "/v2/models/%s/infer" % M,
                             body=json.dumps(infer_json(self.x[:1])))
                resp = conn.getresponse()
                self.assertEqual(resp.status, 200)
                resp.read()
        finally:
            conn.close()

    # ---- refusals: gRPC's messages, Triton's codes

    def test_refusals_carry_grpc_messages(self):
        x = self.x
        wrong_features = np.zeros((1, 63), np.float32)
        cases = [
            ("no_such_model", "", infer_json(x[:1]), s.infer_request(x[:1], model="no_such_model"),
             404),
            (M, "3", infer_json(x[:1]), s.infer_request(x[:1], version="3"), 404),
            (M, "latest", infer_json(x[:1]), s.infer_request(x[:1], version="latest"), 400),
            (M, "", infer_json(x[:1], input_name="pixels"),
             s.infer_request(x[:1], input_name="pixels"), 400),
            (M, "", infer_json(wrong_features), s.infer_request(wrong_features), 400),
            (M, "", infer_json(x[:17]), s.infer_request(x[:17]), 400),
            (M, "", infer_json(x[:1], datatype="INT32"),
             s.infer_request(x[:1].astype(np.int32), datatype="FP32", raw=False), 400),
            (M, "", infer_json(x[:1], outputs=[{"name": "nope"}]),
             s.infer_request(x[:1], outputs=("nope",)), 400),
        ]
        for model, version, body, req, code in cases:
            with self.subTest(model=model, version=version, code=code):
                path = "/v2/models/%s%s/infer" % (model, "/versions/" + version if version else "")
                status, headers, data = self.post(path, body)
                self.assertEqual(status, code, data)
                self.assertEqual(headers["content-type"], "application/json")
                message = json.loads(data)["error"]
                if "INT32" in json.dumps(body):
                    self.assertIn("'INT32'", message)
                    continue
                self.assertEqual(message, grpc_details(self.stub, req)[1])

    def test_non_finite_values_are_refused_as_on_grpc(self):
        x = self.x[:2].copy()
        x[1, 5] = np.inf
        body, n = binary_body(x)
        status, _, data = self.post("/v2/models/%s/infer" % M, body,
                                    headers={"Inference-Header-Content-Length": str(n)})
        self.assertEqual(status, 400, data)
        self.assertEqual(json.loads(data)["error"], grpc_details(self.stub, s.infer_request(x))[1])
        # JSON cannot say Infer; a value beyond fp32 becomes it.
        status, _, data = self.post("/v2/models/%s/infer" % M,
                                    b'{"inputs":[{"name":"input","datatype":"FP32","shape":[1,64],'
                                    b'"data":[1e39' + b',0' * 63 + b']}]}')
        self.assertEqual(status, 400, data)
        self.assertIn("non-finite", json.loads(data)["error"])

    def test_malformed_bodies(self):
        path = "/v2/models/%s/infer" % M
        cases = [
            (b"{not json", {}, "malformed JSON"),
            (b"[]", {}, "JSON object"),
            (b'{"inputs": 3}', {}, "'inputs' array"),
            (b'{"inputs":[{"name":"input","datatype":"FP32","shape":[1,2],"data":["a","b"]}]}',
             {}, "data element 0 is string"),
            (b'{"inputs":[{"name":"input","datatype":"FP32","shape":[1,64]}]}', {}, "needs 'data'"),
            (b"[" * 100 + b"]" * 100, {}, "nests deeper"),
            (b'{"inputs":[]}', {"Inference-Header-Content-Length": "x"}, "non-negative integer"),
            (b'{"inputs":[]}', {"Inference-Header-Content-Length": "999"}, "exceeds the body"),
            (b'{"inputs":[]}xyz', {"Inference-Header-Content-Length": "13"}, "no input's"),
            (b'{"inputs":[{"name":"input","datatype":"FP32","shape":[1,64],'
             b'"parameters":{"binary_data_size":256}}]}', {}, "exceeds the 0 bytes"),
        ]
        for body, headers, fragment in cases:
            with self.subTest(body=body[:40], headers=headers):
                status, _, data = self.post(path, body, headers=headers)
                self.assertEqual(status, 400, data)
                self.assertIn(fragment, json.loads(data)["error"])

    def test_routes_and_methods(self):
        status, _, data = self.get("/v2/nothing/here")
        self.assertEqual(status, 404)
        self.assertIn("error", json.loads(data))
        self.assertEqual(self.get("/v1/models")[0], 404)
        status, headers, _ = self.get("/v2/models/%s/infer" % M)
        self.assertEqual((status, headers.get("allow")), (405, "POST"))
        self.assertEqual(request(self.port, "DELETE", "/v2/health/live")[0], 405)

    def test_oversized_body_is_413(self):
        status, _, data = self.post("/v2/models/%s/infer" % M, b" " * 70000)
        self.assertEqual(status, 413, data)
        self.assertIn("--http-max-body-bytes", json.loads(data)["error"])

    def test_slow_and_half_sent_bodies_time_out(self):
        start = time.monotonic()
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as sock:
            sock.sendall(b"POST /v2/models/%s/infer HTTP/1.1\r\nHost: x\r\n"
                         b"Content-Length: 1000\r\n\r\n{\"inputs\":" % M.encode())
            # Meanwhile another client is served at once.
            before = time.monotonic()
            self.assertEqual(self.infer_ok(infer_json(self.x[:1]))[0]["content-type"],
                             "application/json")
            self.assertLess(time.monotonic() - before, 0.3 * s.SLOWDOWN)
            answer = b""
            while True:
                chunk = sock.recv(4096)
                if not chunk:
                    break
                answer += chunk
        took = time.monotonic() - start
        self.assertLess(took, 3.0 * s.SLOWDOWN)
        self.assertTrue(answer.startswith(b"HTTP/1.1 408"), answer[:200])
        # A client that sends headers and nothing more is closed as well.
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as sock:
            sock.sendall(b"GET /v2/health/live HTTP/1.1\r\n")
            self.assertEqual(sock.recv(4096)[:0], b"")  # closed (or answered) in time
        # Meanwhile the others were served.
        self.assertEqual(self.get("/v2/health/live")[0], 200)

    def test_post_without_content_length_is_an_empty_body(self):
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as sock:
            sock.sendall(b"POST /v2/repository/index HTTP/1.1\r\nHost: x\r\n"
                         b"Connection: close\r\n\r\n")
            answer = b""
            while chunk := sock.recv(4096):
                answer += chunk
        self.assertTrue(answer.startswith(b"HTTP/1.1 200"), answer[:200])
        self.assertIn(b'"digits_snn"', answer)

    def test_python_rest_client_example(self):
        client = os.path.join(s.SOURCE_DIR, "client", "python", "digits_rest_client.py")
        for extra in ([], ["--binary"]):
            with self.subTest(extra=extra):
                run = subprocess.run([sys.executable, client, "--address",
                                      "127.0.0.1:%d" % self.port, "--quiet", "--batch", "16"] + extra,
                                     capture_output=True, text=True, timeout=60)
                self.assertEqual(run.returncode, 0, run.stderr)
                accuracy = float(re.search(r"accuracy ([0-9.]+)", run.stdout).group(1))
                self.assertGreater(accuracy, 0.95, run.stdout)

    def test_metrics_per_endpoint(self):
        self.infer_ok(infer_json(self.x[:1]))
        self.post("/v2/models/nope/infer", infer_json(self.x[:1]))
        page = parse_exposition(self.server.scrape())
        self.assertEqual(page.types["selu_http_requests_total"], "counter")
        self.assertGreaterEqual(
            page.value("selu_http_requests_total", endpoint="model_infer", code="200"), 1)
        self.assertGreaterEqual(
            page.value("selu_http_requests_total", endpoint="model_infer", code="404"), 1)
        _, count, _ = page.histogram("selu_http_request_duration_seconds", endpoint="model_infer")
        self.assertGreaterEqual(count, 2)


class RestQueueFullTest(s.ServerTestCase):
    def test_queue_full_is_429_with_grpcs_message(self):
        server = self.start_server("--max-queue-size", "2", "--max-queue-delay-us", "1000000",
                                   "--max-batch-size", "64")
        x, _ = s.load_heldout()
        results = [None] * 8

        def send(i):
            results[i] = request(server.http_port, "POST", "/v2/models/%s/infer" % M,
                                 body=infer_json(x[i:i + 1]), timeout=30)

        threads = [threading.Thread(target=send, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        codes = sorted(status for status, _, _ in results)
        ok = codes.count(200)
        self.assertGreaterEqual(ok, 2)
        self.assertLessEqual(ok, 3)
        self.assertEqual(codes.count(429), 8 - ok, codes)
        for status, _, data in results:
            if status == 429:
                self.assertIn("queue full", json.loads(data)["error"])


class RestRepositoryTest(s.ServerTestCase):
    def test_load_infer_unload(self):
        repo = generated_repository()
        self.addCleanup(shutil.rmtree, repo, True)
        server = self.start_server("--model-control-mode", "explicit", "--load-model", M,
                                   repository=repo)
        port = server.http_port
        x = np.ones((2, 7), np.float32)
        path = "/v2/models/gen/infer"
        status, _, data = request(port, "POST", path, body=infer_json(x, input_name="x"))
        self.assertEqual(status, 404, data)  # never loaded: gRPC's NOT_FOUND
        self.assertEqual(json.loads(data)["error"], "unknown model 'gen'")
        status, _, data = request(port, "POST", "/v2/repository/models/gen/load", body=b"")
        self.assertEqual((status, data), (200, b""))
        status, _, data = request(port, "POST", path, body=infer_json(x, input_name="x"))
        self.assertEqual(status, 200, data)
        index = json.loads(request(port, "POST", "/v2/repository/index", body=b"")[2])
        self.assertIn({"name": "gen", "version": "1", "state": "READY", "reason": ""}, index)
        status, _, data = request(port, "POST", "/v2/repository/models/nope/load",
                                  body={"parameters": {"config": "{}"}})
        self.assertEqual(status, 404, data)
        self.assertIn("no model folder 'nope'", json.loads(data)["error"])
        status, _, data = request(port, "POST", "/v2/repository/models/gen/load",
                                  body={"parameters": {"file:1/model.onnx": "AAAA"}})
        self.assertEqual(status, 501, data)
        status, _, data = request(port, "POST", "/v2/repository/models/gen/unload", body=b"")
        self.assertEqual((status, data), (200, b""))
        self.assertEqual(request(port, "GET", "/v2/models/gen/ready")[0], 400)
        status, _, data = request(port, "POST", path, body=infer_json(x, input_name="x"))
        self.assertEqual(status, 503, data)
        # Draining: readiness 400, inference 503 with gRPC's message.
        server.terminate()
        deadline = time.monotonic() + 5 * s.SLOWDOWN
        seen = None
        while time.monotonic() < deadline and seen is None:
            try:
                if request(port, "GET", "/v2/health/ready", timeout=2)[0] == 400:
                    seen = "not ready"
            except OSError:
                seen = "closed"
            time.sleep(0.005)
        self.assertIsNotNone(seen, "still ready 5 s after SIGTERM")
        self.assertEqual(server.wait(10 * s.SLOWDOWN), 0)


@unittest.skipIf(OPENSSL is None, "the openssl command is not installed")
class RestTlsAndRestrictedTest(s.ServerTestCase):
    def test_mutual_tls_and_restricted_inference(self):
        certs = Certificates()
        self.addCleanup(certs.cleanup)
        certs.make_ca("ca")
        cert, key = certs.make_cert("server", "ca")
        certs.make_cert("client", "ca", client=True)
        server = self.start_server(
            "--tls-cert", cert, "--tls-key", key, "--tls-client-ca", certs.path("ca.pem"),
            "--http-restricted-api", "inference:x-infer-key=s3cret",
            credentials=certs.credentials("ca", "client"))
        ctx = ssl.create_default_context(cafile=certs.path("ca.pem"))
        ctx.load_cert_chain(certs.path("client.pem"), certs.path("client.key"))
        port = server.http_port
        self.assertEqual(request(port, "GET", "/v2/health/ready", context=ctx)[0], 200)
        x, _ = s.load_heldout()
        status, _, data = request(port, "POST", "/v2/models/%s/infer" % M,
                                  body=infer_json(x[:1]), context=ctx)
        self.assertEqual(status, 403, data)
        self.assertIn("x-infer-key", json.loads(data)["error"])
        status, _, data = request(port, "POST", "/v2/models/%s/infer" % M,
                                  body=infer_json(x[:1]), context=ctx,
                                  headers={"x-infer-key": "s3cret"})
        self.assertEqual(status, 200, data)
        # No client certificate: the handshake fails.
        bare = ssl.create_default_context(cafile=certs.path("ca.pem"))
        with self.assertRaises((ssl.SSLError, ConnectionError, OSError)):
            request(port, "GET", "/v2/health/live", context=bare)
        # Plaintext to the TLS port gets no HTTP answer.
        with self.assertRaises((http.client.HTTPException, ConnectionError, OSError)):
            request(port, "GET", "/v2/health/live")


if __name__ == "__main__":
    unittest.main()
