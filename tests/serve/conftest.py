"""Fixtures for the rpyc-serve tests: the same service class served by
rpyc's own ThreadedServer (``python``, the reference) and by our
``rpyc-serve`` (``rpycd``), used through the stock ``rpyc.connect`` client.

Select the kinds with ``RPYCD_TEST_SERVERS=python,rpycd`` (the default).
"""

import os
import re
import signal
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

import pytest
import rpyc

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
SERVICES = HERE / "services"
ALL_KINDS = ("python", "rpycd")
START_DEADLINE = 20.0


def pytest_generate_tests(metafunc):
    if "kind" in metafunc.fixturenames:
        raw = os.environ.get("RPYCD_TEST_SERVERS") or ",".join(ALL_KINDS)
        kinds = [k.strip() for k in raw.split(",") if k.strip() in ALL_KINDS]
        metafunc.parametrize("kind", kinds, ids=kinds)


def binary(name):
    path = Path(os.environ.get("RPYCD_BIN_DIR") or REPO / "target" / "debug") / name
    if not path.exists():
        pytest.fail(f"{path} not found: build it with `cargo build --bins` or set RPYCD_BIN_DIR")
    return str(path)


def server_env():
    env = {k: v for k, v in os.environ.items() if not k.startswith("RPYC_SERVE_")}
    # the embedded Python imports the service, which imports rpyc
    paths = [sysconfig.get_paths()["purelib"]]
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env["PYTHONUNBUFFERED"] = "1"
    return env


class Served:
    """A service served on a loopback port by one kind of server."""

    def __init__(self, kind, proc, log_path, port):
        self.kind = kind
        self.proc = proc
        self.log_path = log_path
        self.port = port

    def connect(self, **config):
        return rpyc.connect("127.0.0.1", self.port, config=config or {})

    def log(self):
        try:
            return Path(self.log_path).read_text(errors="replace")
        except OSError:
            return ""

    def alive(self):
        return self.proc.poll() is None

    def stop(self, sig=signal.SIGKILL):
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                pass
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=5)


def start(kind, spec, tmp_path, config=None, args=(), env=None, ssl=None, auth=None):
    """Serves ``spec`` (``module:Class`` in tests/serve/services) with the
    protocol ``config`` (a dict), by rpyc's server or ours, with ``ssl``
    (key, cert, CA files) and the authenticator ``auth``
    (``module:callable``) if given."""
    config = config or {}
    items = [f"{key}={value!r}" for key, value in config.items()]
    log_path = tmp_path / f"{kind}-{spec.replace(':', '-')}-{time.monotonic_ns()}.log"
    if kind == "python":
        command = [sys.executable, str(HERE / "py_serve.py"), spec, str(SERVICES), *items]
        if ssl:
            command.append("ssl:" + ",".join(ssl))
        if auth:
            command.append("auth:" + auth)
        pattern = re.compile(r"^PORT (\d+)$", re.M)
    else:
        command = [binary("rpyc-serve"), "--host", "127.0.0.1", "-p", "0",
                   "--path", str(SERVICES), *args]
        if ssl:
            key, cert, ca = ssl
            command += ["--ssl-keyfile", key, "--ssl-certfile", cert, "--ssl-cafile", ca]
        for item in items:
            command += ["--protocol-config", item]
        if auth:
            command += ["--authenticator", auth]
        command.append(spec)
        pattern = re.compile(r"server started on \[127\.0\.0\.1\]:(\d+)")
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, env={**server_env(), **(env or {})},
                                start_new_session=True)
    deadline = time.monotonic() + START_DEADLINE
    while time.monotonic() < deadline:
        text = log_path.read_text(errors="replace")
        found = pattern.search(text)
        if found:
            return Served(kind, proc, log_path, int(found.group(1)))
        if proc.poll() is not None:
            raise RuntimeError(f"{kind} server exited with {proc.returncode}:\n{text}")
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError(f"{kind} server did not start:\n{log_path.read_text(errors='replace')}")


@pytest.fixture
def serve(kind, tmp_path):
    """``serve(spec, config=None, args=(), env=None)`` starts a server of
    this test's kind; every server is stopped at the end."""
    started = []

    def _serve(spec, config=None, args=(), env=None, ssl=None, auth=None):
        served = start(kind, spec, tmp_path, config, args, env, ssl, auth)
        started.append(served)
        return served

    yield _serve
    for served in started:
        served.stop()


@pytest.fixture
def calc(serve):
    return serve("calculator:CalculatorService")
