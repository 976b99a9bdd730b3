"""Helpers for the daemon tests: the real rpyc-classic binary, started the
ways a system starts it, and the real rpyc client talking to it."""

import faulthandler
import os
import signal
import socket
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DEADLINE = 20.0


@pytest.fixture(autouse=True)
def per_test_timeout():
    """No test may hang: dump the stacks and fail after two minutes."""
    faulthandler.dump_traceback_later(120, exit=True)
    yield
    faulthandler.cancel_dump_traceback_later()


def binary(name="rpyc-classic"):
    path = Path(os.environ.get("RPYCD_BIN_DIR") or REPO / "target" / "debug") / name
    if not path.exists():
        pytest.fail(f"{path} not found: build it with `cargo build --workspace --bins` or set RPYCD_BIN_DIR")
    return str(path)


def server_env(**extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RPYC_", "LISTEN_", "NOTIFY_"))}
    env["PYTHONPATH"] = sysconfig.get_paths()["purelib"]
    env.update(extra)
    return env


def free_port(family=socket.AF_INET, host="127.0.0.1"):
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def free_udp_and_tcp_port(host="127.0.0.1"):
    """A port free for both UDP and TCP on the loopback address (a
    registry's, either way)."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind((host, 0))
            port = udp.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
                try:
                    tcp.bind((host, port))
                except OSError:
                    continue
                return port


def held(port):
    """(open sessions, objects held) in a classic server (threaded: one
    process), seen from a new client that does not count itself."""
    import rpyc
    probe = rpyc.classic.connect("127.0.0.1", port)
    try:
        sessions, objects = probe.modules.rpycd_classic.stats()
        own = probe.modules.rpycd_classic.stats()[1]
        return sessions - 1, objects - own
    finally:
        probe.close()


def wait_until(predicate, what, deadline=DEADLINE):
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def accepts(host, port, family=socket.AF_INET):
    try:
        with socket.socket(family, socket.SOCK_STREAM) as s:
            s.settimeout(1)
            s.connect((host, port))
            return True
    except OSError:
        return False


class Daemon:
    """A daemon process whose stderr goes to a file the test can read."""

    def __init__(self, argv, tmp_path, env=None, **popen):
        self.log_path = tmp_path / f"daemon-{time.monotonic_ns()}.log"
        self.log_file = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            argv,
            stdin=popen.pop("stdin", subprocess.DEVNULL),
            stdout=popen.pop("stdout", subprocess.DEVNULL),
            stderr=self.log_file,
            env=env or server_env(),
            start_new_session=True,
            **popen,
        )

    def log(self):
        return self.log_path.read_text(errors="replace")

    def wait_log(self, text, deadline=DEADLINE):
        return wait_until(lambda: text in self.log(), f"{text!r} in the log:\n{self.log()}", deadline)

    def signal(self, signum):
        self.proc.send_signal(signum)

    def wait(self, timeout=DEADLINE):
        return self.proc.wait(timeout)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(DEADLINE)
        self.log_file.close()


@pytest.fixture
def daemons():
    started = []

    def start(argv, tmp_path, **kwargs):
        daemon = Daemon(argv, tmp_path, **kwargs)
        started.append(daemon)
        return daemon

    yield start
    for daemon in started:
        daemon.stop()


def classic_daemon(daemons, tmp_path, *args, host="127.0.0.1", family=socket.AF_INET):
    """rpyc-classic on a free port; returns (daemon, port) once it accepts."""
    port = free_port(family, host)
    daemon = daemons([binary(), "--host", host, "-p", str(port), *args], tmp_path)
    return accepting(daemon, host, port, family), port


def accepting(daemon, host, port, family=socket.AF_INET):
    """The daemon once its port accepts; fails with its log if it ended."""
    wait_until(lambda: daemon.proc.poll() is not None or accepts(host, port, family),
               f"port {port} to accept")
    assert daemon.proc.poll() is None, daemon.log()
    return daemon


def signal_name(signum):
    return signal.Signals(signum).name


def rpyc_classic_script():
    """rpyc's own classic server, as the venv that runs the tests has it."""
    script = Path(sysconfig.get_paths()["scripts"]) / "rpyc_classic"
    if not script.exists():
        script = Path(sys.executable).parent / "rpyc_classic"
    if not script.exists():
        pytest.fail(f"{script} not found: scripts/install-deps makes the venv with rpyc")
    return str(script)


def python_classic(daemons, tmp_path, mode="threaded", *args, **popen):
    """Python rpyc's own rpyc_classic on a free port, for the scenarios
    RELIABILITY.md runs against both servers; returns (daemon, port)."""
    port = free_port()
    daemon = daemons([sys.executable, rpyc_classic_script(), "--mode", mode,
                      "--host", "127.0.0.1", "-p", str(port), *args], tmp_path, **popen)
    return accepting(daemon, "127.0.0.1", port), port


def python_registry(daemons, tmp_path, *args):
    """Python rpyc's own rpyc_registry (UDP) on a free port, for the
    scenarios RELIABILITY.md runs against both registries; returns (daemon,
    port) once it serves. It has no --host switch and binds 0.0.0.0; the
    tests send only to 127.0.0.1."""
    port = free_udp_and_tcp_port()
    script = Path(rpyc_classic_script()).with_name("rpyc_registry")
    daemon = daemons([sys.executable, str(script), "-m", "UDP", "-p", str(port), *args], tmp_path)
    wait_until(lambda: daemon.proc.poll() is not None or "server started" in daemon.log(),
               "rpyc_registry to start")
    assert daemon.proc.poll() is None, daemon.log()
    return daemon, port


def python_sessions(port):
    """Connections a threaded rpyc_classic serves, seen from a new client
    that does not count itself: its ThreadedServer accepts on the main
    thread and serves each connection on a thread of its own."""
    import rpyc
    probe = rpyc.classic.connect("127.0.0.1", port)
    try:
        return probe.modules.threading.active_count() - 2
    finally:
        probe.close()
