"""Every RPC of the three services on one server with the bundled model:
inference.GRPCInferenceService, grpc.health.v1.Health, server reflection."""

import unittest

import grpc
import numpy as np
from google.protobuf import descriptor_pb2

import selu_server as s
from selu_server import health_pb2, pb, reflection_pb2

SERVING = health_pb2.HealthCheckResponse.SERVING


class InferenceServiceRpcTest(s.SharedServerTestCase):
    def test_server_live(self):
        self.assertTrue(self.stub.ServerLive(pb.ServerLiveRequest(), timeout=5).live)

    def test_server_ready(self):
        self.assertTrue(self.stub.ServerReady(pb.ServerReadyRequest(), timeout=5).ready)

    def test_model_ready(self):
        ready = self.stub.ModelReady(pb.ModelReadyRequest(name=s.BUNDLED_MODEL), timeout=5)
        self.assertTrue(ready.ready)
        ready = self.stub.ModelReady(pb.ModelReadyRequest(name=s.BUNDLED_MODEL, version="1"),
                                     timeout=5)
        self.assertTrue(ready.ready)

    def test_model_ready_unknown_model_or_version_is_not_ready(self):
        for name, version in (("no_such_model", ""), (s.BUNDLED_MODEL, "7")):
            with self.subTest(name=name, version=version):
                ready = self.stub.ModelReady(pb.ModelReadyRequest(name=name, version=version),
                                             timeout=5)
                self.assertFalse(ready.ready)

    def test_server_metadata(self):
        meta = self.stub.ServerMetadata(pb.ServerMetadataRequest(), timeout=5)
        self.assertEqual(meta.name, "selu-serve")
        self.assertRegex(meta.version, r"^\d+\.\d+")

    def test_model_metadata(self):
        for version in ("", "1"):
            with self.subTest(version=version):
                meta = self.stub.ModelMetadata(
                    pb.ModelMetadataRequest(name=s.BUNDLED_MODEL, version=version), timeout=5)
                self.assertEqual(meta.name, s.BUNDLED_MODEL)
                self.assertEqual(list(meta.versions), ["1"])
                self.assertEqual(len(meta.inputs), 1)
                self.assertEqual(meta.inputs[0].name, "input")
                self.assertEqual(meta.inputs[0].datatype, "FP32")
                self.assertEqual(list(meta.inputs[0].shape), [-1, 64])
                self.assertEqual(len(meta.outputs), 1)
                self.assertEqual(meta.outputs[0].name, "probabilities")
                self.assertEqual(meta.outputs[0].datatype, "FP32")
                self.assertEqual(list(meta.outputs[0].shape), [-1, 10])

    def test_model_metadata_unknown_model(self):
        with self.assertRaises(grpc.RpcError) as cm:
            self.stub.ModelMetadata(pb.ModelMetadataRequest(name="no_such_model"), timeout=5)
        self.assertEqual(cm.exception.code(), grpc.StatusCode.NOT_FOUND)
        self.assertIn("no_such_model", cm.exception.details())

    def test_model_infer_echoes_id_and_version(self):
        x, _ = s.load_heldout()
        resp = self.stub.ModelInfer(s.infer_request(x[:3], request_id="req-42"), timeout=10)
        self.assertEqual(resp.id, "req-42")
        self.assertEqual(resp.model_name, s.BUNDLED_MODEL)
        self.assertEqual(resp.model_version, "1")
        self.assertEqual(resp.outputs[0].name, "probabilities")
        out = s.response_output(resp, 3, 10)
        np.testing.assert_allclose(out, s.bundled_reference()(x[:3]), rtol=0, atol=s.TOLERANCE)

    def test_model_infer_requested_output_by_name(self):
        x, _ = s.load_heldout()
        resp = self.stub.ModelInfer(s.infer_request(x[:2], outputs=["probabilities"]), timeout=10)
        np.testing.assert_allclose(s.response_output(resp, 2, 10), s.bundled_reference()(x[:2]),
                                   rtol=0, atol=s.TOLERANCE)

    def test_model_statistics_counts_rows_requests_and_batches(self):
        stub = self.server.inference(self.server.new_channel())
        before = s.statistics(stub)
        x, _ = s.load_heldout()
        rows = [1, 3, 5]
        for n in rows:
            stub.ModelInfer(s.infer_request(x[:n]), timeout=10)
        after = s.statistics(stub)
        self.assertEqual(after.name, s.BUNDLED_MODEL)
        self.assertEqual(after.version, "1")
        self.assertEqual(after.inference_count - before.inference_count, sum(rows))
        # Sequential calls cannot merge: one engine call each.
        self.assertEqual(after.execution_count - before.execution_count, len(rows))
        self.assertEqual(after.inference_stats.success.count
                         - before.inference_stats.success.count, len(rows))
        self.assertGreater(after.inference_stats.success.ns, before.inference_stats.success.ns)
        self.assertGreater(after.inference_stats.compute_infer.count,
                           before.inference_stats.compute_infer.count)
        self.assertGreater(after.last_inference, 0)
        by_size = {b.batch_size: b.compute_infer.count for b in after.batch_stats}
        for n in rows:
            self.assertGreaterEqual(by_size.get(n, 0), 1, "no batch_stats entry for size %d" % n)

    def test_model_statistics_all_models_and_unknown_model(self):
        resp = self.stub.ModelStatistics(pb.ModelStatisticsRequest(), timeout=5)
        self.assertEqual([m.name for m in resp.model_stats], [s.BUNDLED_MODEL])
        with self.assertRaises(grpc.RpcError) as cm:
            self.stub.ModelStatistics(pb.ModelStatisticsRequest(name="no_such_model"), timeout=5)
        self.assertEqual(cm.exception.code(), grpc.StatusCode.NOT_FOUND)
        self.assertIn("no_such_model", cm.exception.details())


class HealthTest(s.SharedServerTestCase):
    def check(self, service):
        return self.server.health().Check(health_pb2.HealthCheckRequest(service=service),
                                          timeout=5).status

    def test_overall_and_per_model_serving(self):
        self.assertEqual(self.check(""), SERVING)
        self.assertEqual(self.check(s.BUNDLED_MODEL), SERVING)
        self.assertEqual(self.check("inference.GRPCInferenceService"), SERVING)

    def test_unknown_service_is_not_found(self):
        with self.assertRaises(grpc.RpcError) as cm:
            self.check("no_such_model")
        self.assertEqual(cm.exception.code(), grpc.StatusCode.NOT_FOUND)

    def test_watch_starts_with_serving(self):
        stream = self.server.health().Watch(health_pb2.HealthCheckRequest(service=""),
                                            timeout=10)
        try:
            self.assertEqual(next(stream).status, SERVING)
        finally:
            stream.cancel()


class ReflectionTest(s.SharedServerTestCase):
    def ask(self, **request):
        responses = list(self.server.reflection().ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(**request)]), timeout=10))
        self.assertEqual(len(responses), 1)
        return responses[0]

    def test_list_services(self):
        resp = self.ask(list_services="")
        names = {svc.name for svc in resp.list_services_response.service}
        self.assertIn("inference.GRPCInferenceService", names)
        self.assertIn("grpc.health.v1.Health", names)

    def test_file_containing_inference_service(self):
        resp = self.ask(file_containing_symbol="inference.GRPCInferenceService")
        self.assertEqual(resp.WhichOneof("message_response"), "file_descriptor_response")
        files = [descriptor_pb2.FileDescriptorProto.FromString(b)
                 for b in resp.file_descriptor_response.file_descriptor_proto]
        services = {f.package + "." + svc.name: svc for f in files for svc in f.service}
        self.assertIn("inference.GRPCInferenceService", services)
        methods = {m.name for m in services["inference.GRPCInferenceService"].method}
        for rpc in ("ServerLive", "ServerReady", "ModelReady", "ServerMetadata",
                    "ModelMetadata", "ModelInfer", "ModelStatistics"):
            self.assertIn(rpc, methods)

    def test_unknown_symbol_is_an_error_response(self):
        resp = self.ask(file_containing_symbol="no.such.Service")
        self.assertEqual(resp.WhichOneof("message_response"), "error_response")
        self.assertEqual(resp.error_response.error_code, grpc.StatusCode.NOT_FOUND.value[0])


if __name__ == "__main__":
    unittest.main()
