"""bf16 weights served by the real server (issue 14): config.pbtxt's
weights_precision parameter and the --weights-precision flag.

The bundled digits_snn is copied under several names with different configs:
its bf16 answers must stay within the bf16 bound of the fp32 answers (2^-5
for these probabilities: tests/parity/parity_bf16_test.cc derives
2^-6·√L·S with L = 4 layers, S = 1) without being fp32's, ModelConfig echoes
the parameter, an unknown value keeps the model unavailable with a reason
naming the parameter and the accepted values, the flag sets the default that
a per-model parameter overrides, and a CPU without native bf16 (oneDNN
capped with DNNL_MAX_CPU_ISA) refuses the bf16 model with a clear reason.
"""

import os
import shutil
import tempfile
import unittest

import numpy as np

import selu_server as s
from selu_server import pb

BF16_BOUND = 2.0 ** -5
FP32 = "digits_fp32"
BF16 = "digits_bf16"
DEFAULT = "digits_default"  # no parameter: the server's flag decides
BAD = "digits_bad"


def cpu_has_bf16():
    with open("/proc/cpuinfo") as f:
        flags = next((line for line in f if line.startswith("flags")), "").split()
    return "avx512_bf16" in flags or "amx_bf16" in flags


def write_model(repo, name, precision=None):
    os.makedirs(os.path.join(repo, name, "1"))
    shutil.copyfile(s.BUNDLED_ONNX, os.path.join(repo, name, "1", "model.onnx"))
    if precision is not None:
        with open(os.path.join(repo, name, "config.pbtxt"), "w") as f:
            f.write('name: "%s"\nparameters { key: "weights_precision" '
                    'value: { string_value: "%s" } }\n' % (name, precision))


class Bf16WeightsTest(s.ServerTestCase):
    @classmethod
    def setUpClass(cls):
        cls.repo = tempfile.mkdtemp(prefix="selu-it-bf16-")
        write_model(cls.repo, FP32, "fp32")
        write_model(cls.repo, BF16, "bf16")
        write_model(cls.repo, DEFAULT)
        write_model(cls.repo, BAD, "fp8")
        cls.x, _ = s.load_heldout()

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.repo, ignore_errors=True)

    def start(self, *args, env=None):
        return self.start_server(*args, repository=self.repo, env=env, ready_service=FP32)

    def probabilities(self, server, model):
        stub = server.inference()
        s.wait_until(lambda: stub.ModelReady(pb.ModelReadyRequest(name=model), timeout=10).ready,
                     s.START_TIMEOUT_S, "%s to be ready" % model)
        parts = []
        for first in range(0, len(self.x), 64):  # the server's default max_batch_size
            x = self.x[first:first + 64]
            resp = stub.ModelInfer(s.infer_request(x, model=model), timeout=30)
            parts.append(s.response_output(resp, len(x), 10))
        return np.concatenate(parts)

    def reason(self, server, model):
        def unavailable():
            for name, _, state, reason in s.repository_index(server.inference()):
                if name == model and state == "UNAVAILABLE":
                    return reason
            return None
        return s.wait_until(unavailable, s.START_TIMEOUT_S, "%s to be UNAVAILABLE" % model)

    @unittest.skipUnless(cpu_has_bf16(), "no native bf16 on this CPU")
    def test_bf16_model_answers_within_the_bound_of_fp32(self):
        server = self.start()
        p32 = self.probabilities(server, FP32)
        p16 = self.probabilities(server, BF16)
        diff = float(np.max(np.abs(p16 - p32)))
        print("digits_snn served: max |p_bf16 - p_fp32| = %.3e over %d rows" % (diff, len(self.x)))
        self.assertLessEqual(diff, BF16_BOUND)
        self.assertGreater(diff, 0.0, "the bf16 model answered exactly as fp32")
        # Without the flag the default is fp32.
        np.testing.assert_array_equal(self.probabilities(server, DEFAULT), p32)

        config = server.inference().ModelConfig(pb.ModelConfigRequest(name=BF16),
                                                timeout=10).config
        self.assertEqual(config.parameters["weights_precision"].string_value, "bf16")

        reason = self.reason(server, BAD)
        self.assertIn("parameters['weights_precision'] 'fp8' must be fp32 or bf16", reason)

    @unittest.skipUnless(cpu_has_bf16(), "no native bf16 on this CPU")
    def test_flag_sets_the_default_and_the_parameter_wins(self):
        server = self.start()
        p32 = self.probabilities(server, FP32)
        p16 = self.probabilities(server, BF16)
        flagged = self.start("--weights-precision", "bf16")
        # Same kernels on the same weights and rows: the same bits.
        np.testing.assert_array_equal(self.probabilities(flagged, DEFAULT), p16)
        np.testing.assert_array_equal(self.probabilities(flagged, FP32), p32)
        by_env = self.start(env={"SELU_WEIGHTS_PRECISION": "bf16"})
        np.testing.assert_array_equal(self.probabilities(by_env, DEFAULT), p16)

    def test_refused_without_native_bf16(self):
        server = self.start(env={"DNNL_MAX_CPU_ISA": "AVX512_CORE"})
        reason = self.reason(server, BF16)
        self.assertIn("weights_precision bf16 needs a CPU with native bf16", reason)
        # fp32 models still serve.
        self.assertEqual(self.probabilities(server, FP32).shape, (len(self.x), 10))


if __name__ == "__main__":
    unittest.main()
