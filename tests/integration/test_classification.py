"""Triton's classification extension over gRPC with the real server.

A requested output with parameter classification = k (int64_param, as
tritonclient sends it) comes back BYTES [N, min(k, classes)], per row the k
best classes as "<score>:<index>" or "<score>:<index>:<label>", the score
printed as Triton prints it (std::to_string of the float: "%f"), labels from
the output's label_filename in config.pbtxt (one per line, relative to the
model folder). Typed requests get the strings in bytes_contents, raw ones in
raw_output_contents as Triton serializes BYTES (4-byte little-endian length,
then the bytes). Ties: lower index first.

Scores are compared with a float64 numpy evaluation of the model (the
bundled digits_snn through models/onnx_mlp_eval.py; the two-head model here
by hand), never with the server's own FP32 output. Also: several outputs
with classification on some, k past the classes, refused parameters, label
files that are missing or escape the model folder (the load fails naming
them), a changed label file picked up by a reload, ModelConfig reporting
label_filename, and ModelStreamInfer.
"""

import os
import shutil
import struct

import grpc
import numpy as np
from onnx import TensorProto, helper, numpy_helper

import selu_server as s
from selu_server import pb

INVALID = grpc.StatusCode.INVALID_ARGUMENT
# The server's FP32 against float64 (selu_server.TOLERANCE), plus "%f"'s
# rounding to six decimals.
SCORE_TOLERANCE = s.TOLERANCE + 5e-7
DIGIT_LABELS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
TIE_BIAS = [0.5, 0.5, 0.25, 0.5, 0.125]


def config_with_labels(output, dims, label_filename):
    return ('output [ { name: "%s" data_type: TYPE_FP32 dims: [ %d ] label_filename: "%s" } ]\n'
            % (output, dims, label_filename))


def write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


def save_gemm_model(path, nodes, inits, inputs, outputs):
    graph = helper.make_graph(
        nodes, "classification_test",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, ["batch", f]) for n, f in inputs],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, ["batch", f]) for n, f in outputs],
        initializer=[numpy_helper.from_array(np.asarray(v, np.float32), k)
                     for k, v in inits.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    os.makedirs(os.path.dirname(path), exist_ok=True)
    s.onnx.save(model, path)


def gemm(x, w, b, name, out):
    return helper.make_node("Gemm", [x, w, b], [out], name=name, transB=1)


class TwoHeads:
    """x [N,6] -> SELU trunk (6->8) -> heads "scores" (8->5) and "aux" (8->3)."""

    def __init__(self, seed):
        rng = np.random.default_rng(seed)
        self.p = {"w1": rng.normal(0, 0.5, (8, 6)), "b1": rng.normal(0, 0.1, 8),
                  "wa": rng.normal(0, 0.5, (5, 8)), "ba": rng.normal(0, 0.1, 5),
                  "wb": rng.normal(0, 0.5, (3, 8)), "bb": rng.normal(0, 0.1, 3)}
        self.p = {k: v.astype(np.float32) for k, v in self.p.items()}

    def save(self, path):
        nodes = [gemm("x", "w1", "b1", "trunk", "t"),
                 helper.make_node("Selu", ["t"], ["h"], name="selu", alpha=1.6732632423543772,
                                  gamma=1.0507009873554805),
                 gemm("h", "wa", "ba", "head_a", "scores"),
                 gemm("h", "wb", "bb", "head_b", "aux")]
        save_gemm_model(path, nodes, self.p, [("x", 6)], [("scores", 5), ("aux", 3)])

    def __call__(self, x):
        p = {k: v.astype(np.float64) for k, v in self.p.items()}
        h = s.onnx_mlp_eval.selu(np.asarray(x, np.float64) @ p["w1"].T + p["b1"])
        return h @ p["wa"].T + p["ba"], h @ p["wb"].T + p["bb"]


def classify(req, output, k):
    """Asks for `output` with classification k (an int64_param unless k is
    an InferParameter-setting callable)."""
    o = req.outputs.add(name=output)
    if callable(k):
        k(o.parameters["classification"])
    else:
        o.parameters["classification"].int64_param = k
    return req


def strings_of(resp, index):
    """Output `index` of `resp` as a list of str, from bytes_contents or from
    Triton's raw BYTES serialization."""
    out = resp.outputs[index]
    if not len(resp.raw_output_contents):
        return [b.decode() for b in out.contents.bytes_contents]
    data = resp.raw_output_contents[index]
    strings, at = [], 0
    while at < len(data):
        (size,) = struct.unpack_from("<I", data, at)
        strings.append(data[at + 4:at + 4 + size].decode())
        at += 4 + size
    assert at == len(data), "raw BYTES entry is not a whole number of elements"
    assert not len(out.contents.bytes_contents), "output has both raw and typed contents"
    return strings


def floats_of(resp, index):
    if len(resp.raw_output_contents):
        return np.frombuffer(resp.raw_output_contents[index], dtype="<f4")
    return np.asarray(resp.outputs[index].contents.fp32_contents, np.float32)


class ClassificationTest(s.SharedRepositoryTestCase):
    @classmethod
    def fill_repository(cls, repo):
        for name in ("digits", "digits_plain", "digits_partial", "missing_labels",
                     "escaping_labels", "reloaded"):
            os.makedirs(os.path.join(repo, name, "1"))
            shutil.copyfile(s.BUNDLED_ONNX, os.path.join(repo, name, "1", "model.onnx"))
        write(os.path.join(repo, "digits", "config.pbtxt"),
              config_with_labels("probabilities", 10, "labels.txt"))
        write(os.path.join(repo, "digits", "labels.txt"), "\n".join(DIGIT_LABELS) + "\n")
        # Labels for classes 0..2 only, class 1's line empty: no label for 1 and 3..9.
        write(os.path.join(repo, "digits_partial", "config.pbtxt"),
              config_with_labels("probabilities", 10, "partial/labels.txt"))
        write(os.path.join(repo, "digits_partial", "partial", "labels.txt"), "zero\n\ntwo")
        write(os.path.join(repo, "missing_labels", "config.pbtxt"),
              config_with_labels("probabilities", 10, "no_such_labels.txt"))
        write(os.path.join(repo, "escaping_labels", "config.pbtxt"),
              config_with_labels("probabilities", 10, "../digits/labels.txt"))
        write(os.path.join(repo, "reloaded", "config.pbtxt"),
              config_with_labels("probabilities", 10, "labels.txt"))
        write(os.path.join(repo, "reloaded", "labels.txt"),
              "".join("old%d\n" % i for i in range(10)))

        cls.heads = TwoHeads(seed=16)
        cls.heads.save(os.path.join(repo, "heads", "1", "model.onnx"))
        write(os.path.join(repo, "heads", "config.pbtxt"),
              config_with_labels("scores", 5, "scores.txt"))
        write(os.path.join(repo, "heads", "scores.txt"), "a\nb\nc\nd\ne\n")

        save_gemm_model(os.path.join(repo, "ties", "1", "model.onnx"),
                        [gemm("x", "w", "b", "gemm", "y")],
                        {"w": np.zeros((5, 4)), "b": TIE_BIAS}, [("x", 4)], [("y", 5)])

        startup = ("digits", "digits_plain", "digits_partial", "reloaded", "heads", "ties")
        cls.SERVER_ARGS = ("--model-control-mode", "explicit") + sum(
            (("--load-model", name) for name in startup), ())
        cls.x, cls.y = s.load_heldout()
        cls.x = cls.x[:64]
        cls.y = cls.y[:64]
        cls.reference = s.onnx_mlp_eval.run(s.onnx.load(s.BUNDLED_ONNX), cls.x,
                                            dtype=np.float64)[0]["probabilities"]

    # ---- helpers

    def infer(self, req):
        return self.stub.ModelInfer(req, timeout=30 * s.SLOWDOWN)

    def digits_request(self, model, k, raw, rows=slice(None)):
        return classify(s.infer_request(self.x[rows], model=model, raw=raw), "probabilities", k)

    def assert_refused(self, req, *fragments):
        with self.assertRaises(grpc.RpcError) as cm:
            self.infer(req)
        self.assertEqual(cm.exception.code(), INVALID, cm.exception.details())
        for fragment in fragments:
            self.assertIn(fragment, cm.exception.details())

    def assert_top_k(self, strings, reference, k, labels=None):
        """strings: N·k "<score>:<index>[:<label>]" of rows whose float64
        scores are `reference` [N, classes]; checks the format, that each
        score is its class's, and that the classes are the k best (a near-tie
        may swap within the tolerance)."""
        rows, classes = reference.shape
        self.assertEqual(len(strings), rows * k)
        for r in range(rows):
            best = np.sort(reference[r])[::-1]
            seen = set()
            for j in range(k):
                text = strings[r * k + j]
                parts = text.split(":")
                index = int(parts[1])
                label = labels[index] if labels and index < len(labels) else ""
                self.assertEqual(len(parts), 3 if label else 2, text)
                if label:
                    self.assertEqual(parts[2], label, text)
                # The server's float printed with "%f": six decimals.
                self.assertRegex(parts[0], r"^-?\d+\.\d{6}$", text)
                score = float(parts[0])
                self.assertLessEqual(abs(score - reference[r, index]), SCORE_TOLERANCE, text)
                self.assertLessEqual(abs(reference[r, index] - best[j]), 2 * SCORE_TOLERANCE,
                                     "row %d: %s is not the %d-th best (%r)" % (r, text, j, best))
                self.assertNotIn(index, seen)
                seen.add(index)

    # ---- tests

    def test_top_k_with_labels_typed_and_raw(self):
        for raw in (False, True):
            with self.subTest(raw=raw):
                resp = self.infer(self.digits_request("digits", 3, raw))
                self.assertEqual(len(resp.outputs), 1)
                out = resp.outputs[0]
                self.assertEqual((out.name, out.datatype, list(out.shape)),
                                 ("probabilities", "BYTES", [len(self.x), 3]))
                self.assertEqual(len(resp.raw_output_contents), 1 if raw else 0)
                strings = strings_of(resp, 0)
                self.assert_top_k(strings, self.reference, 3, DIGIT_LABELS)
                top1 = np.array([int(strings[r * 3].split(":")[1]) for r in range(len(self.x))])
                self.assertGreaterEqual(np.mean(top1 == self.y), 0.95)

    def test_without_labels(self):
        for raw in (False, True):
            with self.subTest(raw=raw):
                resp = self.infer(self.digits_request("digits_plain", 2, raw))
                strings = strings_of(resp, 0)
                self.assertTrue(all(t.count(":") == 1 for t in strings), strings[:4])
                self.assert_top_k(strings, self.reference, 2)

    def test_fewer_labels_than_classes(self):
        resp = self.infer(self.digits_request("digits_partial", 10, raw=False))
        self.assert_top_k(strings_of(resp, 0), self.reference, 10, ["zero", "", "two"])
        # The load says so (an info line, not an error: Triton accepts it too).
        self.assertIn("model 'digits_partial' version 1: output 'probabilities': 3 class labels "
                      "for its 10 classes (classes 3..9 get no label)", self.server.log_text())

    def test_k_larger_than_classes_gives_every_class(self):
        resp = self.infer(self.digits_request("digits", 1000, raw=True, rows=slice(0, 5)))
        self.assertEqual(list(resp.outputs[0].shape), [5, 10])
        strings = strings_of(resp, 0)
        self.assert_top_k(strings, self.reference[:5], 10, DIGIT_LABELS)
        for r in range(5):
            self.assertEqual(sorted(int(t.split(":")[1]) for t in strings[r * 10:r * 10 + 10]),
                             list(range(10)))

    def test_ties_take_the_lower_index_first(self):
        req = classify(s.infer_request(np.ones((2, 4), np.float32), model="ties", input_name="x",
                                       raw=False), "y", 4)
        self.assertEqual(strings_of(self.infer(req), 0),
                         ["0.500000:0", "0.500000:1", "0.500000:3", "0.250000:2"] * 2)

    def test_several_outputs_classified_or_not(self):
        x = np.random.default_rng(7).normal(0, 1.5, (12, 6)).astype(np.float32)
        scores, aux = self.heads(x)
        for raw in (False, True):
            with self.subTest(raw=raw, classified="scores"):
                req = s.infer_request(x, model="heads", input_name="x", raw=raw, outputs=["aux"])
                resp = self.infer(classify(req, "scores", 2))
                self.assertEqual([(o.name, o.datatype, list(o.shape)) for o in resp.outputs],
                                 [("aux", "FP32", [12, 3]), ("scores", "BYTES", [12, 2])])
                np.testing.assert_allclose(floats_of(resp, 0).reshape(12, 3), aux, rtol=0,
                                           atol=s.TOLERANCE)
                self.assert_top_k(strings_of(resp, 1), scores, 2, list("abcde"))
            with self.subTest(raw=raw, classified="both"):
                req = s.infer_request(x, model="heads", input_name="x", raw=raw)
                resp = self.infer(classify(classify(req, "scores", 5), "aux", 1))
                self.assertEqual([(o.name, o.datatype, list(o.shape)) for o in resp.outputs],
                                 [("scores", "BYTES", [12, 5]), ("aux", "BYTES", [12, 1])])
                self.assert_top_k(strings_of(resp, 0), scores, 5, list("abcde"))
                self.assert_top_k(strings_of(resp, 1), aux, 1)  # aux has no label file

    def test_requests_without_classification_are_unchanged(self):
        resp = self.infer(s.infer_request(self.x[:4], model="digits", raw=True))
        got = s.response_output(resp, 4, 10)
        np.testing.assert_allclose(got, self.reference[:4], rtol=0, atol=s.TOLERANCE)

    def test_bad_parameter_values_are_refused_naming_the_output(self):
        where = "output 'probabilities': parameter 'classification'"
        for k in (0, -2):
            with self.subTest(k=k):
                self.assert_refused(self.digits_request("digits", k, raw=True),
                                    where + " is %d; it must be at least 1" % k)
        wrong = {"a string_param": lambda p: setattr(p, "string_param", "3"),
                 "a double_param": lambda p: setattr(p, "double_param", 3.0),
                 "a bool_param": lambda p: setattr(p, "bool_param", True)}
        for name, setter in wrong.items():
            with self.subTest(value=name):
                self.assert_refused(self.digits_request("digits", setter, raw=False),
                                    where + " must be an int64_param", "not " + name)
        # uint64_param (which Triton refuses) means the same number here.
        resp = self.infer(self.digits_request(
            "digits", lambda p: setattr(p, "uint64_param", 2), raw=False, rows=slice(0, 3)))
        self.assertEqual(list(resp.outputs[0].shape), [3, 2])
        req = classify(s.infer_request(self.x[:2], model="digits"), "logits", 3)
        self.assert_refused(req, "unknown output 'logits'")

    def test_server_metadata_lists_the_extension(self):
        meta = self.stub.ServerMetadata(pb.ServerMetadataRequest(), timeout=5)
        self.assertIn("classification", meta.extensions)

    def test_model_config_reports_label_filename(self):
        def outputs(name):
            config = self.stub.ModelConfig(pb.ModelConfigRequest(name=name), timeout=10).config
            return [(o.name, o.label_filename) for o in config.output]
        self.assertEqual(outputs("digits"), [("probabilities", "labels.txt")])
        self.assertEqual(outputs("digits_plain"), [("probabilities", "")])
        self.assertEqual(outputs("heads"), [("scores", "scores.txt"), ("aux", "")])

    def test_missing_label_file_fails_the_load_naming_it(self):
        with self.assertRaises(grpc.RpcError) as cm:
            self.stub.RepositoryModelLoad(pb.RepositoryModelLoadRequest(
                model_name="missing_labels"), timeout=60)
        self.assertEqual(cm.exception.code(), grpc.StatusCode.FAILED_PRECONDITION)
        details = cm.exception.details()
        self.assertIn("label file of output 'probabilities'", details)
        self.assertIn(os.path.join(self.repo, "missing_labels", "no_such_labels.txt"), details)

    def test_label_file_outside_the_model_folder_is_refused(self):
        with self.assertRaises(grpc.RpcError) as cm:
            self.stub.RepositoryModelLoad(pb.RepositoryModelLoadRequest(
                model_name="escaping_labels"), timeout=60)
        self.assertEqual(cm.exception.code(), grpc.StatusCode.FAILED_PRECONDITION)
        self.assertIn("output[0].label_filename '../digits/labels.txt' must be a path inside "
                      "the model folder", cm.exception.details())

    def test_changed_label_file_is_picked_up_by_a_reload(self):
        req = self.digits_request("reloaded", 1, raw=False, rows=slice(0, 2))
        before = strings_of(self.infer(req), 0)
        self.assertTrue(all(t.split(":")[2].startswith("old") for t in before), before)
        path = os.path.join(self.repo, "reloaded", "labels.txt")
        write(path + ".new", "".join("new%d\n" % i for i in range(10)))
        os.replace(path + ".new", path)
        self.stub.RepositoryModelLoad(pb.RepositoryModelLoadRequest(model_name="reloaded"),
                                      timeout=60)
        after = strings_of(self.infer(req), 0)
        self.assertTrue(all(t.split(":")[2].startswith("new") for t in after), after)
        self.assertEqual([t.replace("new", "old") for t in after], before)

    def test_stream_messages_of_different_models(self):
        # One stream, its pooled messages reused across models and forms.
        x = self.x[:3]
        requests = [self.digits_request("digits", 2, raw=True, rows=slice(0, 3)),
                    s.infer_request(x, model="digits_plain", raw=True),
                    classify(s.infer_request(np.zeros((3, 6), np.float32), model="heads",
                                             input_name="x", raw=False), "scores", 1),
                    s.infer_request(x, model="digits_plain", raw=False)]
        for i, req in enumerate(requests):
            req.id = str(i)
        by_id = {}
        for item in self.stub.ModelStreamInfer(iter(requests), timeout=30 * s.SLOWDOWN):
            self.assertEqual(item.error_message, "")
            by_id[item.infer_response.id] = item.infer_response
        self.assertEqual(sorted(by_id), ["0", "1", "2", "3"])
        responses = [by_id[str(i)] for i in range(4)]
        self.assert_top_k(strings_of(responses[0], 0), self.reference[:3], 2, DIGIT_LABELS)
        for resp in (responses[1], responses[3]):
            np.testing.assert_allclose(s.response_output(resp, 3, 10), self.reference[:3],
                                       rtol=0, atol=s.TOLERANCE)
        self.assertEqual(responses[2].outputs[0].datatype, "BYTES")
        self.assertEqual(len(strings_of(responses[2], 0)), 3)
