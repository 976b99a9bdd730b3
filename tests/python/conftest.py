"""Fixtures for testing a classic RPyC server through the real rpyc client.

Every test that uses the ``server`` fixture (or ``conn``, ``fresh_server``)
runs once per server kind:

* ``python``: rpyc's own ``rpyc_classic`` script (the reference behaviour);
* ``rpycd``:  our ``rpyc-classic`` binary from ``$RPYCD_BIN_DIR``.

Select the kinds with ``RPYCD_TEST_SERVERS=python,rpycd`` (the default) or
``pytest --servers=python``.  See README.md.
"""

import faulthandler
import os
import signal
import socket
import subprocess
import sys
import sysconfig
import threading
import time
from pathlib import Path

import pytest
import rpyc

REPO = Path(__file__).resolve().parents[2]
# the client's rpyc major version (rpyc 4 gives __version__ as a tuple)
CLIENT_MAJOR = int(rpyc.__version__[0] if isinstance(rpyc.__version__, tuple)
                   else rpyc.__version__.split(".")[0])
ALL_KINDS = ("python", "rpycd")
START_DEADLINE = 20.0  # seconds for a server to accept connections
TEST_TIMEOUT = int(os.environ.get("RPYCD_TEST_TIMEOUT", "120"))


# --------------------------------------------------------------------------
# server selection
# --------------------------------------------------------------------------

def pytest_addoption(parser):
    parser.addoption(
        "--servers",
        default=None,
        help="comma-separated server kinds to test: python, rpycd "
             "(default: $RPYCD_TEST_SERVERS or 'python,rpycd')",
    )


def _selected_kinds(config):
    raw = config.getoption("--servers") or os.environ.get("RPYCD_TEST_SERVERS") or ",".join(ALL_KINDS)
    kinds = [k.strip() for k in raw.split(",") if k.strip()]
    unknown = [k for k in kinds if k not in ALL_KINDS]
    if unknown or not kinds:
        raise pytest.UsageError(f"unknown server kind(s) {unknown!r}; choose from {ALL_KINDS}")
    return kinds


def pytest_generate_tests(metafunc):
    if "server_kind" in metafunc.fixturenames:
        kinds = _selected_kinds(metafunc.config)
        metafunc.parametrize("server_kind", kinds, ids=kinds, scope="module")


# --------------------------------------------------------------------------
# starting and stopping servers
# --------------------------------------------------------------------------

def venv_site_packages():
    """Where the running interpreter finds rpyc: the server's PYTHONPATH."""
    return sysconfig.get_paths()["purelib"]


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_command(kind, port):
    if kind == "python":
        script = os.path.join(sysconfig.get_paths()["scripts"], "rpyc_classic")
        if not os.path.exists(script):
            script = os.path.join(os.path.dirname(sys.executable), "rpyc_classic")
        return [sys.executable, script, "--mode", "threaded", "--host", "127.0.0.1", "-p", str(port)]
    bin_dir = os.environ.get("RPYCD_BIN_DIR") or str(REPO / "target" / "debug")
    binary = os.path.join(bin_dir, "rpyc-classic")
    if not os.path.exists(binary):
        pytest.fail(f"{binary} not found: build it with `cargo build --bins` or set RPYCD_BIN_DIR")
    return [binary, "--host", "127.0.0.1", "-p", str(port)]


def server_env():
    env = {k: v for k, v in os.environ.items() if not k.startswith("RPYC_CLASSIC_")}
    # the rpyc the server's Python imports (teleportation) may differ from
    # the client's: an rpyc 5 client runs against a server with rpyc 6
    paths = [os.environ.get("RPYCD_SERVER_PYTHONPATH") or venv_site_packages()]
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env["PYTHONUNBUFFERED"] = "1"
    return env


class Server:
    """A classic RPyC server running as a subprocess on a loopback port."""

    def __init__(self, kind, workdir, env=None):
        self.kind = kind
        self.env = env or {}
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.host = "127.0.0.1"
        self.port = None
        self.proc = None
        self.log_path = None

    # -- lifecycle --------------------------------------------------------

    def start(self):
        last_error = None
        for attempt in range(3):
            port = free_port()
            self.log_path = self.workdir / f"server-{self.kind}-{port}.log"
            with open(self.log_path, "wb") as log:
                self.proc = subprocess.Popen(
                    server_command(self.kind, port),
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    cwd=self.workdir,
                    env={**server_env(), **self.env},
                    start_new_session=True,
                )
            self.port = port
            try:
                self._wait_accepting()
                return self
            except RuntimeError as e:
                last_error = e
                self.stop()
                # The port may have been taken between free_port() and bind(): retry.
                if "in use" not in (str(e) + self.log()).lower():
                    break
        raise RuntimeError(f"{last_error}\n--- server log ---\n{self.log()}")

    def _wait_accepting(self):
        deadline = time.monotonic() + START_DEADLINE
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.kind} server exited with status {self.proc.returncode} before accepting")
            try:
                with socket.create_connection((self.host, self.port), timeout=1):
                    pass
            except OSError:
                time.sleep(0.05)
                continue
            if self._owns_listener() is False:
                # Someone else grabbed the port between free_port() and our bind.
                raise RuntimeError(f"port {self.port} is in use by another process")
            return
        raise RuntimeError(f"{self.kind} server did not accept on port {self.port} within {START_DEADLINE}s")

    def _owns_listener(self):
        """Whether our process holds the socket listening on self.port
        (None when /proc cannot tell)."""
        try:
            inodes = set()
            for table in ("/proc/net/tcp", "/proc/net/tcp6"):
                with open(table) as f:
                    next(f)
                    for line in f:
                        fields = line.split()
                        if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == self.port:
                            inodes.add(fields[9])
            fd_dir = f"/proc/{self.proc.pid}/fd"
            for fd in os.listdir(fd_dir):
                try:
                    link = os.readlink(os.path.join(fd_dir, fd))
                except OSError:
                    continue
                if link.startswith("socket:[") and link[8:-1] in inodes:
                    return True
            return False
        except (OSError, IndexError, ValueError, StopIteration):
            return None

    def stop(self):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def log(self):
        try:
            return self.log_path.read_text(errors="replace")
        except (OSError, AttributeError):
            return ""

    # -- clients ----------------------------------------------------------

    def connect(self):
        return rpyc.classic.connect(self.host, self.port)

    def __repr__(self):
        return f"<Server {self.kind} {self.host}:{self.port} pid={self.proc and self.proc.pid}>"


@pytest.fixture(scope="module")
def server(server_kind, tmp_path_factory):
    """One server per test module and server kind."""
    srv = Server(server_kind, tmp_path_factory.mktemp(f"srv-{server_kind}")).start()
    yield srv
    srv.stop()


@pytest.fixture
def fresh_server(server_kind, tmp_path_factory):
    """A server of its own, for tests that may disturb other tests."""
    srv = Server(server_kind, tmp_path_factory.mktemp(f"fresh-{server_kind}")).start()
    yield srv
    died = not srv.alive()
    srv.stop()
    assert not died, f"{srv.kind} server died (status {srv.proc.returncode})"


def close_quietly(c):
    """Close a client connection at teardown without waiting the default 30 s
    for the CLOSE to be acknowledged if the test left the server busy."""
    try:
        c._config["sync_request_timeout"] = 5
        c.close()
    except Exception:
        pass


@pytest.fixture
def conn(server):
    c = server.connect()
    yield c
    close_quietly(c)


@pytest.fixture
def connect(server):
    """A factory of extra connections, all closed at teardown."""
    conns = []

    def make():
        c = server.connect()
        conns.append(c)
        return c

    yield make
    for c in conns:
        close_quietly(c)


# --------------------------------------------------------------------------
# guards: server still alive, per-test timeout, server log on failure
# --------------------------------------------------------------------------

@pytest.fixture(autouse=True)
def _server_survives(request):
    yield
    srv = request.node.funcargs.get("server")
    if isinstance(srv, Server):
        assert srv.alive(), f"{srv.kind} server died (status {srv.proc.returncode})"


class PerTestTimeout(Exception):
    pass


@pytest.fixture(autouse=True)
def _per_test_timeout(request):
    """Fail a test that runs longer than TEST_TIMEOUT seconds.

    SIGALRM interrupts the main thread (socket waits included); as a last
    resort, faulthandler dumps all stacks and exits the process.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_alarm(signum, frame):
        raise PerTestTimeout(f"test exceeded {TEST_TIMEOUT}s")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(TEST_TIMEOUT)
    faulthandler.dump_traceback_later(TEST_TIMEOUT + 30, exit=True)
    try:
        yield
    finally:
        signal.alarm(0)
        faulthandler.cancel_dump_traceback_later()
        signal.signal(signal.SIGALRM, previous)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.failed:
        for name in ("server", "fresh_server"):
            srv = getattr(item, "funcargs", {}).get(name)
            if isinstance(srv, Server):
                rep.sections.append((f"{srv.kind} server log ({srv.log_path})", srv.log()[-8000:]))


# --------------------------------------------------------------------------
# helpers shared by the test modules
# --------------------------------------------------------------------------

def wait_until(predicate, timeout=10.0, interval=0.05, message="condition"):
    """Poll predicate() until it is true; fail after timeout seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message}")
        time.sleep(interval)
