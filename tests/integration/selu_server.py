"""Shared helpers for the integration tests: start the real selu-serve, talk to it.

Environment (set by ctest, see CMakeLists.txt):
  SELU_SERVE_BIN   the selu-serve binary
  SELU_STUBS_DIR   Python stubs generated from proto/grpc_service.proto,
                   proto/monitor.proto and protos/grpc/{health,reflection}
                   (grpc_service_pb2, monitor_pb2, health_pb2, ...)
  SELU_SOURCE_DIR  the repository root (bundled model, models/onnx_mlp_eval.py)

`SeluServer` starts the binary on port 0 with --port-file, waits until health
says SERVING, and on stop() sends SIGTERM and checks the exit code. Its
Prometheus endpoint is on a free port too (--metrics-port-file; `metrics_port`,
`scrape()`), or off with metrics=False. Servers are killed on every failure
path: the child gets SIGKILL if this process dies (PR_SET_PDEATHSIG), and an
atexit hook kills any still running.
"""

import os

# Before grpc is imported anywhere: this process forks (subprocess) while
# channels are busy; grpcio's fork handlers can deadlock in fork() then
# (tests/integration/CMakeLists.txt sets the same for ctest).
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")

import atexit  # noqa: E402
import ctypes
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.request

import numpy as np


def _require_env(name):
    value = os.environ.get(name)
    if not value:
        raise RuntimeError("environment variable %s is not set (run through ctest)" % name)
    return value


SERVE_BIN = _require_env("SELU_SERVE_BIN")
STUBS_DIR = _require_env("SELU_STUBS_DIR")
SOURCE_DIR = _require_env("SELU_SOURCE_DIR")
sys.path.insert(0, STUBS_DIR)
sys.path.insert(0, os.path.join(SOURCE_DIR, "models"))

import grpc  # noqa: E402
import onnx  # noqa: E402

import grpc_service_pb2 as pb  # noqa: E402,F401
import grpc_service_pb2_grpc as pb_grpc  # noqa: E402
import health_pb2  # noqa: E402,F401
import health_pb2_grpc  # noqa: E402
import monitor_pb2  # noqa: E402,F401  (re-exported for the tests)
import monitor_pb2_grpc  # noqa: E402
import onnx_mlp_eval  # noqa: E402
import reflection_pb2  # noqa: E402,F401  (re-exported for the tests)
import reflection_pb2_grpc  # noqa: E402

BUNDLED_REPOSITORY = os.path.join(SOURCE_DIR, "models")
BUNDLED_MODEL = "digits_snn"
BUNDLED_ONNX = os.path.join(BUNDLED_REPOSITORY, BUNDLED_MODEL, "1", "model.onnx")
HELDOUT_CSV = os.path.join(BUNDLED_REPOSITORY, BUNDLED_MODEL, "heldout.csv")

# Outputs must equal the numpy reference (models/onnx_mlp_eval.py) this closely:
# oneDNN's fp32 kernels and numpy's fp32 matmul differ only in summation order.
TOLERANCE = 1e-5
# Sanitizer builds run the server several times slower: their test presets set
# SELU_TEST_SLOWDOWN (CMakePresets.json), which scales the waits here and the
# tests' own safety-net timeouts. Never what a test measures; 1 in release.
SLOWDOWN = float(os.environ.get("SELU_TEST_SLOWDOWN") or 1)
START_TIMEOUT_S = 60.0 * SLOWDOWN

# A line that starts a sanitizer report in the server's log (ASan, LSan, UBSan
# with -fno-sanitize-recover, TSan). Any of them fails the test that ran the
# server, whatever the exit code (TSan goes on running after a report).
SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", ": runtime error: ",
                     "WARNING: ThreadSanitizer", "ERROR: ThreadSanitizer")

_running = set()


def _kill_leftovers():
    for proc in list(_running):
        if proc.poll() is None:
            proc.kill()
            proc.wait()


atexit.register(_kill_leftovers)

_libc = ctypes.CDLL(None, use_errno=True)
_PR_SET_PDEATHSIG = 1


def _die_with_parent():
    _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def _preexec(user):
    """The child's set-up: another user first (a change of credentials
    clears the parent-death signal), then die with the parent."""
    if user is None:
        return _die_with_parent

    def run():
        os.setgroups([])
        os.setgid(user[1])
        os.setuid(user[0])
        _die_with_parent()
    return run


class ServerStartError(RuntimeError):
    pass


class SeluServer:
    """One selu-serve process on a free port, with its log in a file.

    ready_service: the health service name that must be SERVING before start()
    returns ("" = every model ready; a model name for repositories where some
    model is expected to fail). None: wait for the port only.
    metrics: serve /metrics on a free port of 127.0.0.1 (its port is in
    `metrics_port` once started); False passes --metrics-address "" (none).
    credentials: grpc.ChannelCredentials for a server started with --tls-cert
    (the start-up wait, `channel` and new_channel() use them); None: plaintext.
    user: (uid, gid) to run the server as (this process must be root), so that
    file permissions apply to it; None: this process's user.
    grpc_address: --grpc-address (a free port of 127.0.0.1 by default).
    http: serve the REST binding on a free port of 127.0.0.1 (its port is in
    `http_port` once started, written just after the gRPC port); False passes
    --http-address "" (none).
    """

    def __init__(self, *args, repository=BUNDLED_REPOSITORY, env=None, ready_service="",
                 grace_s=10.0, metrics=True, credentials=None, user=None,
                 grpc_address="127.0.0.1:0", http=True):
        self.args = list(args)
        self.http = http
        self.http_port = None
        self.user = user
        self.grpc_address = grpc_address
        self.credentials = credentials
        self.repository = repository
        self.env = dict(os.environ)
        self.env.update(env or {})
        self.ready_service = ready_service
        self.grace_s = grace_s
        self.proc = None
        self.port = None
        self.metrics = metrics
        self.metrics_port = None
        self.channel = None
        self.workdir = tempfile.mkdtemp(prefix="selu-it-")
        if user is not None:
            os.chown(self.workdir, *user)  # the port files
        self.log_path = os.path.join(self.workdir, "server.log")
        self._sanitizer_checked = False

    # ---- lifecycle

    def start(self):
        port_file = os.path.join(self.workdir, "port")
        metrics_port_file = os.path.join(self.workdir, "metrics-port")
        if self.metrics:
            metrics_args = ["--metrics-address", "127.0.0.1:0",
                            "--metrics-port-file", metrics_port_file]
        else:
            metrics_args = ["--metrics-address", ""]
        http_port_file = os.path.join(self.workdir, "http-port")
        if self.http:
            http_args = ["--http-address", "127.0.0.1:0", "--http-port-file", http_port_file]
        else:
            http_args = ["--http-address", ""]
        cmd = [SERVE_BIN, "--model-repository", self.repository,
               "--grpc-address", self.grpc_address] + metrics_args + http_args + [
               "--port-file", port_file, "--shutdown-grace", str(self.grace_s)] + self.args
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT,
                                     env=self.env, preexec_fn=_preexec(self.user))
        _running.add(self.proc)
        try:
            self.port = self._wait_for_port(port_file)
            if self.http:
                self.http_port = self._wait_for_port(http_port_file)
            if self.metrics:
                # Written just after the gRPC port file, before models load.
                self.metrics_port = self._wait_for_port(metrics_port_file)
            self.channel = self.new_channel()
            grpc.channel_ready_future(self.channel).result(timeout=START_TIMEOUT_S)
            if self.ready_service is not None:
                self.wait_for_health(self.ready_service, health_pb2.HealthCheckResponse.SERVING)
        except BaseException:
            self.kill()
            sys.stderr.write(self.describe_failure("server did not start"))
            raise
        return self

    def _wait_for_port(self, port_file):
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ServerStartError("selu-serve exited with %d before listening"
                                       % self.proc.returncode)
            try:
                with open(port_file) as f:
                    text = f.read().strip()
                if text:
                    return int(text)
            except FileNotFoundError:
                pass
            time.sleep(0.02)
        raise ServerStartError("no port file after %.0f s" % START_TIMEOUT_S)

    def wait_for_health(self, service, status, timeout=START_TIMEOUT_S):
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ServerStartError("selu-serve exited with %d" % self.proc.returncode)
            try:
                last = self.health().Check(health_pb2.HealthCheckRequest(service=service),
                                           timeout=5).status
                if last == status:
                    return
            except grpc.RpcError as e:
                last = e.code()
            time.sleep(0.02)
        raise ServerStartError("health of %r is %s after %.0f s, wanted %s"
                               % (service, last, timeout, status))

    def terminate(self):
        """Sends SIGTERM (the graceful drain starts)."""
        self.proc.send_signal(signal.SIGTERM)

    def wait(self, timeout):
        """Waits for exit and returns the exit code (kills on timeout and raises)."""
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError("selu-serve did not exit within %.1f s of SIGTERM" % timeout)

    def stop(self):
        """Closes `channel` (calls still on it are cancelled), sends SIGTERM,
        returns the exit code (must be 0, checked by the caller)."""
        if self.proc is None:
            return 0
        # A client that is done closes its channel. Left open, it holds the
        # connection past GOAWAY, and a sanitizer build's server then takes
        # ~5 s (or the grace period, if shorter) to exit; release: 0.2 s.
        if self.channel is not None:
            self.channel.close()
            self.channel = None
        if self.proc.poll() is None:
            self.terminate()
        code = self.wait(self.grace_s + 15 * SLOWDOWN)
        self._close()
        self.check_sanitizer_report()
        return code

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._close()

    def _close(self):
        if self.channel is not None:
            self.channel.close()
            self.channel = None
        if self.proc is not None:
            _running.discard(self.proc)
        if getattr(self, "_log", None) is not None:
            self._log.close()
            self._log = None

    def cleanup_files(self):
        shutil.rmtree(self.workdir, ignore_errors=True)

    # ---- logs

    def log_text(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return "(no log)"

    def sanitizer_report(self):
        """The server log from its first sanitizer report on, or None."""
        text = self.log_text()
        starts = [i for i in (text.find(m) for m in SANITIZER_MARKERS) if i >= 0]
        if not starts:
            return None
        start = text.rfind("\n", 0, min(starts)) + 1
        return text[start:start + 30000]

    def check_sanitizer_report(self):
        """Raises AssertionError carrying the report if the log holds one
        (once per server: a second call after a failure passes)."""
        if self._sanitizer_checked:
            return
        self._sanitizer_checked = True
        report = self.sanitizer_report()
        if report is not None:
            sys.stderr.write("\n==== sanitizer report from selu-serve %s (%s) ====\n%s\n"
                             "==== end of report ====\n" % (" ".join(self.args),
                                                             self.log_path, report))
            raise AssertionError("selu-serve printed a sanitizer report:\n" + report[:4000])

    def describe_failure(self, what):
        text = self.log_text()
        if len(text) > 20000:
            text = "...\n" + text[-20000:]
        return "\n==== %s; selu-serve %s log (%s) ====\n%s\n==== end of log ====\n" % (
            what, " ".join(self.args), self.log_path, text)

    # ---- metrics

    def metrics_url(self):
        if self.metrics_port is None:
            raise AssertionError("this server has no metrics endpoint")
        return "http://127.0.0.1:%d/metrics" % self.metrics_port

    def scrape(self, timeout=10):
        """The Prometheus text exposition served on /metrics, as str."""
        with http_get(self.metrics_url(), timeout=timeout) as resp:
            if resp.status != 200:
                raise AssertionError("GET /metrics: HTTP %d" % resp.status)
            return resp.read().decode("utf-8")

    # ---- stubs

    def inference(self, channel=None):
        return pb_grpc.GRPCInferenceServiceStub(channel or self.channel)

    def health(self):
        return health_pb2_grpc.HealthStub(self.channel)

    def reflection(self):
        return reflection_pb2_grpc.ServerReflectionStub(self.channel)

    def monitor(self):
        return monitor_pb2_grpc.ModelMonitorStub(self.channel)

    def new_channel(self, credentials=None):
        """A channel to the server: with `credentials`, else the server's own
        (TLS when it was started with them), else plaintext."""
        target = "127.0.0.1:%d" % self.port
        credentials = credentials or self.credentials
        if credentials is not None:
            return grpc.secure_channel(target, credentials)
        return grpc.insecure_channel(target)


def http_get(url, timeout=10):
    """urlopen without any proxy from the environment (the servers are local)."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    return opener.open(url, timeout=timeout)


def test_has_failed(test):
    """Whether `test` (running now) has already failed: unittest records
    failures in the result as they happen (sub-tests included)."""
    outcome = getattr(test, "_outcome", None)
    result = getattr(outcome, "result", None)
    if result is None:
        return False
    return any(getattr(t, "test_case", t) is test for t, _ in result.errors + result.failures)


class ServerTestCase(unittest.TestCase):
    """Base class: start_server() starts a server that is stopped (SIGTERM,
    exit code 0 asserted) after the test, and whose log is printed if the
    test failed."""

    def start_server(self, *args, **kwargs):
        server = SeluServer(*args, **kwargs)
        server.start()
        self.addCleanup(self._stop_server, server)
        return server

    def _test_failed(self):
        return test_has_failed(self)

    def _stop_server(self, server):
        try:
            if server.proc.poll() is None:
                code = server.stop()
                if code != 0:
                    sys.stderr.write(server.describe_failure("exit code %d" % code))
                    raise AssertionError("selu-serve exited with %d after SIGTERM, wanted 0"
                                         % code)
            else:
                server._close()
                server.check_sanitizer_report()
            if self._test_failed():
                sys.stderr.write(server.describe_failure("test failed"))
        finally:
            server.kill()
            server.cleanup_files()


class SharedServerTestCase(unittest.TestCase):
    """One server for the whole class (fast tests that do not change server
    state). SERVER_ARGS / SERVER_KWARGS configure it."""

    SERVER_ARGS = ()
    SERVER_KWARGS = {}

    @classmethod
    def setUpClass(cls):
        cls.server = SeluServer(*cls.SERVER_ARGS, **cls.SERVER_KWARGS).start()
        cls.stub = cls.server.inference()
        cls._any_failed = False

    @classmethod
    def tearDownClass(cls):
        server = cls.server
        try:
            code = server.stop()
            if code != 0 or cls._any_failed:
                sys.stderr.write(server.describe_failure(
                    "exit code %d" % code if code != 0 else "a test failed"))
            if code != 0:
                raise AssertionError("selu-serve exited with %d after SIGTERM, wanted 0" % code)
        finally:
            server.kill()
            server.cleanup_files()

    def tearDown(self):
        if test_has_failed(self):
            type(self)._any_failed = True


class SharedRepositoryTestCase(SharedServerTestCase):
    """SharedServerTestCase on a temporary model repository (`repo`) that the
    class fills in fill_repository(repo), where it may also set SERVER_ARGS
    and SERVER_KWARGS; run_workload() then runs against the started server.
    If either fails, the server's log is printed and everything is removed."""

    @classmethod
    def fill_repository(cls, repo):
        raise NotImplementedError

    @classmethod
    def run_workload(cls):
        pass

    @classmethod
    def setUpClass(cls):
        cls.repo = tempfile.mkdtemp(prefix="selu-it-%s-" % cls.__name__.lower())
        try:
            cls.fill_repository(cls.repo)
            cls.SERVER_KWARGS = dict(cls.SERVER_KWARGS, repository=cls.repo)
            super().setUpClass()
            cls.run_workload()
        except BaseException:
            if getattr(cls, "server", None) is not None:
                sys.stderr.write(cls.server.describe_failure("set-up failed"))
                cls.server.kill()
                cls.server.cleanup_files()
            shutil.rmtree(cls.repo, ignore_errors=True)
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            super().tearDownClass()
        finally:
            shutil.rmtree(cls.repo, ignore_errors=True)


# ---- models and reference outputs

def load_heldout():
    """(x float32 [n,64] pixel values 0..16, labels int64 [n])."""
    return onnx_mlp_eval.read_heldout_csv(HELDOUT_CSV)


class ReferenceModel:
    """An ONNX MLP and its numpy evaluation (models/onnx_mlp_eval.py)."""

    def __init__(self, path, name):
        self.path = path
        self.name = name
        self.model = onnx.load(path)
        g = self.model.graph
        inits = {i.name for i in g.initializer}
        self.input_name = [i.name for i in g.input if i.name not in inits][0]
        self.output_name = g.output[0].name

    def __call__(self, x):
        outputs, _ = onnx_mlp_eval.run(self.model, np.asarray(x, dtype=np.float32))
        return outputs[self.output_name]


def bundled_reference():
    return ReferenceModel(BUNDLED_ONNX, BUNDLED_MODEL)


def export_selu_mlp(path, sizes, seed, softmax=False):
    """Writes an nn.Sequential(Linear, SELU, ..., Linear[, Softmax]) with a
    dynamic batch axis to `path` (input 'x', output 'y')."""
    import torch  # slow import: only where a model is made

    torch.manual_seed(seed)
    layers = []
    for i in range(len(sizes) - 1):
        layers.append(torch.nn.Linear(sizes[i], sizes[i + 1]))
        if i < len(sizes) - 2:
            layers.append(torch.nn.SELU())
    if softmax:
        layers.append(torch.nn.Softmax(dim=-1))
    net = torch.nn.Sequential(*layers).eval()
    os.makedirs(os.path.dirname(path), exist_ok=True)
    torch.onnx.export(net, torch.zeros(2, sizes[0]), path, input_names=["x"],
                      output_names=["y"], dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}},
                      opset_version=13)
    return path


def export_lecun_snn(path, sizes, seed):
    """An nn.Sequential(Linear, SELU, ..., Linear) with LeCun-normal weights
    (std 1/sqrt(fan_in)) and zero biases, as SNNs are initialised, exported
    with a dynamic batch axis (opset 13; input 'x', output 'y'). Returns the
    float64 torch model."""
    import torch  # slow import: only where a model is made

    torch.manual_seed(seed)
    layers = []
    for i in range(len(sizes) - 1):
        linear = torch.nn.Linear(sizes[i], sizes[i + 1])
        torch.nn.init.normal_(linear.weight, 0.0, 1.0 / np.sqrt(sizes[i]))
        torch.nn.init.zeros_(linear.bias)
        layers.append(linear)
        if i < len(sizes) - 2:
            layers.append(torch.nn.SELU())
    net = torch.nn.Sequential(*layers).eval()
    os.makedirs(os.path.dirname(path), exist_ok=True)
    torch.onnx.export(net, torch.zeros(2, sizes[0]), path, input_names=["x"],
                      output_names=["y"], dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}},
                      opset_version=13)
    return net.double()


def write_csv(path, x, header=True):
    """x [rows, features] as CSV (header f0,f1,..., 9 significant digits)."""
    with open(path, "w") as f:
        if header:
            f.write(",".join("f%d" % j for j in range(x.shape[1])) + "\n")
        for row in x:
            f.write(",".join("%.9g" % v for v in row) + "\n")


def run_calibrate(*args, timeout=120):
    """`selu-serve calibrate ARGS...` (the real binary), its CompletedProcess."""
    return subprocess.run([SERVE_BIN, "calibrate"] + list(args), capture_output=True,
                          text=True, timeout=timeout)


def link_bundled_model(repository):
    """Puts the bundled digits_snn model (version 1) into `repository`."""
    dst = os.path.join(repository, BUNDLED_MODEL, "1")
    os.makedirs(dst, exist_ok=True)
    shutil.copyfile(BUNDLED_ONNX, os.path.join(dst, "model.onnx"))


# ---- requests and responses

def infer_request(x, model=BUNDLED_MODEL, input_name="input", datatype="FP32", raw=True,
                  request_id="", version="", outputs=()):
    """A ModelInferRequest carrying x ([rows, features]) as `datatype`.

    raw: raw_input_contents (little-endian) instead of typed contents. For
    FP16/BF16 (raw only) x is rounded to that type here.
    """
    x = np.asarray(x)
    req = pb.ModelInferRequest(model_name=model, model_version=version, id=request_id)
    tensor = req.inputs.add(name=input_name, datatype=datatype, shape=list(x.shape))
    for name in outputs:
        req.outputs.add(name=name)
    if raw:
        req.raw_input_contents.append(encode_raw(x, datatype))
    elif datatype == "FP32":
        tensor.contents.fp32_contents.extend(np.asarray(x, np.float32).ravel().tolist())
    elif datatype == "FP64":
        tensor.contents.fp64_contents.extend(np.asarray(x, np.float64).ravel().tolist())
    else:
        raise ValueError("no typed contents for " + datatype)
    return req


def encode_raw(x, datatype):
    x = np.asarray(x)
    if datatype == "FP32":
        return np.ascontiguousarray(x, dtype="<f4").tobytes()
    if datatype == "FP64":
        return np.ascontiguousarray(x, dtype="<f8").tobytes()
    if datatype == "FP16":
        return np.ascontiguousarray(x, dtype="<f2").tobytes()
    if datatype == "BF16":
        return np.ascontiguousarray(to_bf16_bits(x), dtype="<u2").tobytes()
    raise ValueError(datatype)


def to_bf16_bits(x):
    """Round-to-nearest-even float32 → bfloat16 bit patterns (finite x)."""
    bits = np.asarray(x, dtype=np.float32).view(np.uint32).astype(np.uint64)
    rounded = (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16
    return rounded.astype(np.uint16)


def bf16_bits_to_float(b):
    return (np.asarray(b, dtype=np.uint32) << 16).view(np.float32)


def response_output(resp, rows, features):
    """The single output of `resp` as float32 [rows, features], raw or typed."""
    if len(resp.outputs) != 1:
        raise AssertionError("expected 1 output, got %d" % len(resp.outputs))
    out = resp.outputs[0]
    if list(out.shape) != [rows, features]:
        raise AssertionError("output shape %s, wanted %s" % (list(out.shape), [rows, features]))
    if out.datatype != "FP32":
        raise AssertionError("output datatype %r, wanted FP32" % out.datatype)
    if len(resp.raw_output_contents):
        if len(out.contents.fp32_contents):
            raise AssertionError("output has both raw and typed contents")
        data = np.frombuffer(resp.raw_output_contents[0], dtype="<f4")
    else:
        data = np.asarray(out.contents.fp32_contents, dtype=np.float32)
    if data.size != rows * features:
        raise AssertionError("output holds %d values, wanted %d" % (data.size, rows * features))
    return data.reshape(rows, features)


def monitor_check(server, name, version=""):
    """selu.monitor.v1.ModelMonitor/Check of one model version."""
    return server.monitor().Check(monitor_pb2.ModelMonitorRequest(name=name, version=version),
                                  timeout=10)


def statistics(stub, model=BUNDLED_MODEL, version=""):
    """The ModelStatistics entry for one model (asserts there is exactly one)."""
    resp = stub.ModelStatistics(pb.ModelStatisticsRequest(name=model, version=version),
                                timeout=10)
    entries = [s for s in resp.model_stats if s.name == model]
    if len(entries) != 1:
        raise AssertionError("ModelStatistics for %r: %d entries: %s" % (model, len(entries),
                                                                          resp))
    return entries[0]


# ---- model repositories (tests/integration/test_repository.py)

def wait_until(predicate, timeout, what, interval=0.05):
    """Calls predicate() until it returns something truthy and returns that;
    fails naming `what` (what was awaited: a str, or a callable returning one
    at the time of the failure) after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError("timed out after %.1f s waiting for %s"
                                 % (timeout, what() if callable(what) else what))
        time.sleep(interval)


def write_selu_mlp_onnx(path, sizes, seed=0):
    """Writes a Gemm/Selu MLP (input 'x', output 'y', dynamic batch axis,
    opset 13) with LeCun-normal random weights, built with onnx.helper: fast
    for sizes far beyond what torch.onnx.export writes in seconds. Returns the
    number of weight and bias bytes."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    nodes, inits, current, nbytes = [], [], "x", 0
    for i in range(len(sizes) - 1):
        fan_in, fan_out = sizes[i], sizes[i + 1]
        w = rng.standard_normal((fan_out, fan_in), dtype=np.float32)
        w *= np.float32(1.0 / np.sqrt(fan_in))
        b = rng.standard_normal(fan_out, dtype=np.float32) * np.float32(0.1)
        inits += [numpy_helper.from_array(w, "w%d" % i), numpy_helper.from_array(b, "b%d" % i)]
        nbytes += w.nbytes + b.nbytes
        last = i == len(sizes) - 2
        gemm_out = "y" if last else "g%d" % i
        nodes.append(helper.make_node("Gemm", [current, "w%d" % i, "b%d" % i], [gemm_out],
                                      name="gemm%d" % i, transB=1))
        current = gemm_out
        if not last:
            nodes.append(helper.make_node("Selu", [gemm_out], ["s%d" % i], name="selu%d" % i))
            current = "s%d" % i
    graph = helper.make_graph(
        nodes, "selu_mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", sizes[0]])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", sizes[-1]])],
        initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)],
                              producer_name="selu-serve integration tests")
    model.ir_version = 8
    os.makedirs(os.path.dirname(path), exist_ok=True)
    onnx.save(model, path)
    return nbytes


def place_version(model_dir, version, data):
    """Puts `data` (bytes) as <model_dir>/<version>/model.onnx atomically: it
    is written into a hidden sibling folder that is then renamed, so a
    repository poll never sees a half-made version folder."""
    os.makedirs(model_dir, exist_ok=True)
    tmp = os.path.join(model_dir, ".tmp-%s" % version)
    os.makedirs(tmp)
    with open(os.path.join(tmp, "model.onnx"), "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.rename(tmp, os.path.join(model_dir, str(version)))


def replace_file(path, data):
    """Replaces the file `path` by `data` atomically (write aside, rename)."""
    tmp = os.path.join(os.path.dirname(path), "." + os.path.basename(path) + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def repository_index(stub, ready=False):
    """RepositoryIndex as [(name, version, state, reason)]."""
    resp = stub.RepositoryIndex(pb.RepositoryIndexRequest(ready=ready), timeout=10)
    return [(m.name, m.version, m.state, m.reason) for m in resp.models]


def rss_bytes(pid):
    """VmRSS of process `pid` in bytes."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS in /proc/%d/status" % pid)
