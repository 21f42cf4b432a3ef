"""TLS and mutual TLS of the gRPC port (--tls-cert, --tls-key, --tls-client-ca),
certificate rotation without a restart (--tls-reload-seconds), start-up checks
of the TLS files, and selu-client's ghz-style flags (--cacert, --cert, --key).

Certificates are made here with the openssl CLI: a CA, a server certificate
for localhost and 127.0.0.1 (subjectAltName), a client certificate, and a
second, unrelated CA."""

import os
import shutil
import subprocess
import tempfile
import time
import unittest

import grpc
import numpy as np

import selu_server as s
from selu_server import health_pb2, pb

CLIENT_BIN = s._require_env("SELU_CLIENT_BIN")
OPENSSL = shutil.which("openssl")
SERVING = health_pb2.HealthCheckResponse.SERVING
ROTATION_TIMEOUT_S = 30.0


class Certificates:
    """A folder of PEM files made with openssl: CAs and certificates they sign."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="selu-tls-")
        self._serial = 1000

    def path(self, name):
        return os.path.join(self.dir, name)

    def read(self, name):
        with open(self.path(name), "rb") as f:
            return f.read()

    def _openssl(self, *args):
        subprocess.run([OPENSSL] + list(args), check=True, cwd=self.dir,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def make_ca(self, name):
        """<name>.pem, <name>.key: a self-signed CA."""
        self._openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                      "-nodes", "-keyout", name + ".key", "-out", name + ".pem", "-days", "2",
                      "-subj", "/CN=selu test " + name,
                      "-addext", "basicConstraints=critical,CA:TRUE",
                      "-addext", "keyUsage=critical,keyCertSign,cRLSign")
        return self.path(name + ".pem")

    def make_cert(self, name, ca, client=False):
        """<name>.pem, <name>.key signed by CA `ca`: a server certificate for
        localhost/127.0.0.1, or a client certificate. Each gets a new serial."""
        self._serial += 1
        ext = name + ".ext"
        with open(self.path(ext), "w") as f:
            if client:
                f.write("extendedKeyUsage=clientAuth\n")
            else:
                f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\n"
                        "extendedKeyUsage=serverAuth\n")
        self._openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                      "-nodes", "-keyout", name + ".key", "-out", name + ".csr",
                      "-subj", "/CN=" + ("selu test client" if client else "localhost"))
        self._openssl("x509", "-req", "-in", name + ".csr", "-CA", ca + ".pem",
                      "-CAkey", ca + ".key", "-set_serial", str(self._serial), "-days", "2",
                      "-extfile", ext, "-out", name + ".pem")
        return self.path(name + ".pem"), self.path(name + ".key")

    def credentials(self, ca, client=None):
        """grpcio channel credentials trusting only CA `ca` (and presenting
        client certificate `client`)."""
        if client is None:
            return grpc.ssl_channel_credentials(root_certificates=self.read(ca + ".pem"))
        return grpc.ssl_channel_credentials(root_certificates=self.read(ca + ".pem"),
                                            private_key=self.read(client + ".key"),
                                            certificate_chain=self.read(client + ".pem"))

    def cleanup(self):
        shutil.rmtree(self.dir, ignore_errors=True)


def server_ready(channel, timeout=5):
    """ServerReady over `channel`: True, or the grpc.StatusCode it failed with."""
    try:
        return pb_grpc_stub(channel).ServerReady(pb.ServerReadyRequest(), timeout=timeout).ready
    except grpc.RpcError as e:
        return e.code()


def pb_grpc_stub(channel):
    return s.pb_grpc.GRPCInferenceServiceStub(channel)


def run_client(server, *args, timeout=30):
    return subprocess.run([CLIENT_BIN, "--address", "127.0.0.1:%d" % server.port] + list(args),
                          capture_output=True, text=True, timeout=timeout)


@unittest.skipIf(OPENSSL is None, "the openssl command is not installed")
class TlsTestCase(s.ServerTestCase):
    def setUp(self):
        self.certs = Certificates()
        self.addCleanup(self.certs.cleanup)
        self.certs.make_ca("ca")
        self.certs.make_ca("other_ca")
        self.server_cert, self.server_key = self.certs.make_cert("server", "ca")
        self.certs.make_cert("client", "ca", client=True)
        self.certs.make_cert("stranger", "other_ca", client=True)

    def start_tls_server(self, *args, client_ca=None, credentials=None):
        flags = ["--tls-cert", self.server_cert, "--tls-key", self.server_key,
                 "--tls-reload-seconds", "1"]
        if client_ca:
            flags += ["--tls-client-ca", self.certs.path(client_ca + ".pem")]
        return self.start_server(*(flags + list(args)),
                                 credentials=credentials or self.certs.credentials("ca"))

    def assert_refused(self, server, credentials=None, plaintext=False):
        channel = (grpc.insecure_channel("127.0.0.1:%d" % server.port) if plaintext
                   else server.new_channel(credentials))
        self.addCleanup(channel.close)
        self.assertEqual(server_ready(channel), grpc.StatusCode.UNAVAILABLE)


class TlsTest(TlsTestCase):
    def test_infer_over_tls(self):
        server = self.start_tls_server()
        x, _ = s.load_heldout()
        resp = server.inference().ModelInfer(s.infer_request(x[:3]), timeout=10)
        np.testing.assert_allclose(s.response_output(resp, 3, 10), s.bundled_reference()(x[:3]),
                                   rtol=0, atol=s.TOLERANCE)
        self.assertIn("TLS", server.log_text())

    def test_plaintext_refused(self):
        server = self.start_tls_server()
        self.assert_refused(server, plaintext=True)

    def test_wrong_ca_refused(self):
        server = self.start_tls_server()
        self.assert_refused(server, self.certs.credentials("other_ca"))

    def test_client_with_cacert(self):
        server = self.start_tls_server()
        ok = run_client(server, "health", "--cacert", self.certs.path("ca.pem"))
        self.assertEqual((ok.returncode, ok.stdout.strip()), (0, "SERVING"), ok.stderr)
        # The address's host is 127.0.0.1 (an IP SAN); --cname checks another name.
        named = run_client(server, "health", "--cacert", self.certs.path("ca.pem"),
                           "--cname", "localhost")
        self.assertEqual(named.returncode, 0, named.stderr)
        x, _ = s.load_heldout()
        infer = run_client(server, "infer", s.BUNDLED_MODEL, "--cacert",
                           self.certs.path("ca.pem"), "--json", str(x[:2].tolist()), "--argmax")
        self.assertEqual(infer.returncode, 0, infer.stderr)
        expected = np.argmax(s.bundled_reference()(x[:2]), axis=1).tolist()
        for label in expected:
            self.assertIn(str(label), infer.stdout)

    def test_client_fails_cleanly_without_tls_flags(self):
        server = self.start_tls_server()
        plain = run_client(server, "health", "-t", "3s")
        self.assertEqual(plain.returncode, 1)
        self.assertIn("UNAVAILABLE", plain.stderr)
        wrong = run_client(server, "health", "-t", "3s", "--cacert",
                           self.certs.path("other_ca.pem"))
        self.assertEqual(wrong.returncode, 1)
        self.assertIn("UNAVAILABLE", wrong.stderr)
        wrong_name = run_client(server, "health", "-t", "3s", "--cacert",
                                self.certs.path("ca.pem"), "--cname", "not-this-server")
        self.assertEqual(wrong_name.returncode, 1)

    def test_client_skip_tls_does_not_verify(self):
        server = self.start_tls_server()
        skip = run_client(server, "health", "--skipTLS")
        self.assertEqual((skip.returncode, skip.stdout.strip()), (0, "SERVING"), skip.stderr)

    def test_client_flag_conflicts_are_usage_errors(self):
        server = self.start_tls_server()
        for args, message in [
                (["--insecure", "--cacert", self.certs.path("ca.pem")], "--insecure"),
                (["--cacert", self.certs.path("ca.pem"), "--cert", self.certs.path("client.pem")],
                 "--key"),
                (["--cacert", os.path.join(self.certs.dir, "missing.pem")], "missing.pem")]:
            with self.subTest(args=args):
                result = run_client(server, "health", *args)
                self.assertEqual(result.returncode, 2, result.stderr)
                self.assertIn(message, result.stderr)


class MutualTlsTest(TlsTestCase):
    def start_mtls_server(self):
        return self.start_tls_server(client_ca="ca",
                                     credentials=self.certs.credentials("ca", client="client"))

    def test_client_certificate_required(self):
        server = self.start_mtls_server()
        self.assertIs(server_ready(server.channel), True)
        self.assert_refused(server, self.certs.credentials("ca"))

    def test_client_certificate_of_another_ca_refused(self):
        server = self.start_mtls_server()
        self.assert_refused(server, self.certs.credentials("ca", client="stranger"))

    def test_client_with_cert_and_key(self):
        server = self.start_mtls_server()
        ca = self.certs.path("ca.pem")
        ok = run_client(server, "health", "--cacert", ca, "--cert",
                        self.certs.path("client.pem"), "--key", self.certs.path("client.key"))
        self.assertEqual((ok.returncode, ok.stdout.strip()), (0, "SERVING"), ok.stderr)
        x, _ = s.load_heldout()
        infer = run_client(server, "infer", s.BUNDLED_MODEL, "--json", str(x[:1].tolist()),
                           "--cacert", ca, "--cert", self.certs.path("client.pem"),
                           "--key", self.certs.path("client.key"))
        self.assertEqual(infer.returncode, 0, infer.stderr)
        without = run_client(server, "health", "-t", "3s", "--cacert", ca)
        self.assertEqual(without.returncode, 1)
        self.assertIn("UNAVAILABLE", without.stderr)


class RotationTest(TlsTestCase):
    def test_new_certificate_served_without_restart(self):
        # The server reads copies, so that replacing them is the rotation.
        live = tempfile.mkdtemp(prefix="selu-tls-live-")
        self.addCleanup(shutil.rmtree, live, True)
        shutil.copy(self.server_cert, os.path.join(live, "tls.crt"))
        shutil.copy(self.server_key, os.path.join(live, "tls.key"))
        self.server_cert = os.path.join(live, "tls.crt")
        self.server_key = os.path.join(live, "tls.key")
        server = self.start_tls_server()

        old = server.new_channel(self.certs.credentials("ca"))
        self.addCleanup(old.close)
        self.assertIs(server_ready(old), True)

        self.certs.make_ca("new_ca")
        self.certs.make_cert("rotated", "new_ca")
        # As a Secret volume updates: each file replaced whole (key first, so
        # a re-read between the two sees the old pair for one more period at
        # most, never a half-written file).
        s.replace_file(self.server_key, self.certs.read("rotated.key"))
        s.replace_file(self.server_cert, self.certs.read("rotated.pem"))

        def new_certificate_served():
            channel = server.new_channel(self.certs.credentials("new_ca"))
            try:
                return server_ready(channel, timeout=3) is True
            finally:
                channel.close()

        s.wait_until(new_certificate_served, ROTATION_TIMEOUT_S,
                     "the server to present the certificate signed by the new CA", interval=0.2)
        # Only the new certificate now: a fresh connection trusting the old CA fails.
        self.assert_refused(server, self.certs.credentials("ca"))
        # The connection made before the rotation still works: it could not
        # reconnect, as the old CA no longer verifies the server.
        self.assertIs(server_ready(old), True)
        x, _ = s.load_heldout()
        resp = server.inference(old).ModelInfer(s.infer_request(x[:1]), timeout=10)
        self.assertEqual(len(resp.outputs), 1)


@unittest.skipIf(OPENSSL is None, "the openssl command is not installed")
class StartupCheckTest(unittest.TestCase):
    """Bad TLS files stop the start-up with a message naming the file."""

    def setUp(self):
        self.certs = Certificates()
        self.addCleanup(self.certs.cleanup)
        self.certs.make_ca("ca")
        self.cert, self.key = self.certs.make_cert("server", "ca")
        self.other_cert, self.other_key = self.certs.make_cert("other", "ca")
        self.not_pem = self.certs.path("not.pem")
        with open(self.not_pem, "w") as f:
            f.write("this is not a certificate\n")

    def start(self, *args):
        return subprocess.run([s.SERVE_BIN, "--model-repository", s.BUNDLED_REPOSITORY,
                               "--grpc-address", "127.0.0.1:0", "--metrics-address", ""]
                              + list(args), capture_output=True, text=True, timeout=30)

    def test_bad_files_fail_start_up(self):
        missing = self.certs.path("missing.pem")
        cases = [
            (["--tls-cert", missing, "--tls-key", self.key], missing),
            (["--tls-cert", self.cert, "--tls-key", missing], missing),
            (["--tls-cert", self.not_pem, "--tls-key", self.key], self.not_pem),
            (["--tls-cert", self.cert, "--tls-key", self.not_pem], self.not_pem),
            (["--tls-cert", self.cert, "--tls-key", self.other_key], "does not belong"),
            (["--tls-cert", self.cert, "--tls-key", self.key, "--tls-client-ca", self.not_pem],
             self.not_pem),
            (["--tls-cert", self.cert], "--tls-key"),
            (["--tls-client-ca", self.certs.path("ca.pem")], "--tls-client-ca"),
        ]
        for args, message in cases:
            with self.subTest(args=args):
                result = self.start(*args)
                self.assertNotEqual(result.returncode, 0, result.stdout + result.stderr)
                self.assertIn(message, result.stdout + result.stderr)

    def test_flags_from_environment(self):
        result = subprocess.run(
            [s.SERVE_BIN, "--model-repository", s.BUNDLED_REPOSITORY, "--grpc-address",
             "127.0.0.1:0", "--metrics-address", ""],
            env=dict(os.environ, SELU_TLS_CERT=self.cert, SELU_TLS_KEY=self.other_key),
            capture_output=True, text=True, timeout=30)
        self.assertNotEqual(result.returncode, 0)
        self.assertIn("SELU_TLS_KEY", result.stdout + result.stderr)
        self.assertIn("does not belong", result.stdout + result.stderr)


if __name__ == "__main__":
    unittest.main()
