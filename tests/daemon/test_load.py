"""Load held (issue 10, point 3): many connections cost the daemon no file
descriptors or memory once they are gone, and idle ones do not slow busy
ones. The load comes from rpycd-bench's generator (`rpycd-bench load`)."""

import json
import os
import resource
import subprocess

import pytest
import rpyc

from conftest import binary, classic_daemon, wait_until


@pytest.fixture(autouse=True)
def enough_descriptors():
    """1000 client sockets here and 1000 in the server (which inherits it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(max(soft, 8192), hard), hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def load(port, op, connections, seconds, max_ops=1_000_000):
    out = subprocess.run([binary("rpycd-bench"), "load", "--port", str(port), "--op", op,
                          "--connections", str(connections), "--seconds", str(seconds),
                          "--max-ops", str(max_ops)],
                         capture_output=True, text=True, timeout=seconds + 120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))


def sessions(port):
    probe = rpyc.classic.connect("127.0.0.1", port)
    try:
        return probe.modules.rpycd_classic.stats()[0] - 1
    finally:
        probe.close()


def test_20000_connect_close_cycles_leave_fds_and_memory_flat(daemons, tmp_path):
    daemon, port = classic_daemon(daemons, tmp_path, "-q")
    pid = daemon.proc.pid
    warm = load(port, "connect", 4, 60, max_ops=500)
    assert warm["errors"] == 0 and warm["ops"] == 2000
    wait_until(lambda: sessions(port) == 0, "the warm-up sessions closed")
    fds_before, rss_before = fds(pid), rss_kib(pid)
    run = load(port, "connect", 4, 120, max_ops=5000)
    assert run["errors"] == 0, run["first_error"]
    assert run["ops"] == 20000
    wait_until(lambda: sessions(port) == 0, "the 20000 sessions closed")
    assert fds(pid) <= fds_before + 2
    assert rss_kib(pid) <= rss_before * 1.10, (rss_before, rss_kib(pid))


def test_1000_idle_connections_do_not_slow_16_busy_ones(daemons, tmp_path):
    daemon, port = classic_daemon(daemons, tmp_path, "-q")
    unloaded = load(port, "call", 16, 2)
    assert unloaded["errors"] == 0
    idle = [rpyc.classic.connect("127.0.0.1", port) for _ in range(1000)]
    try:
        loaded = load(port, "call", 16, 2)
        assert loaded["errors"] == 0
        assert loaded["per_sec"] >= unloaded["per_sec"] / 2, (unloaded, loaded)
        # the idle ones are still there and still answer
        assert idle[0].eval("1") == 1 and idle[-1].eval("2") == 2
    finally:
        for conn in idle:
            conn.close()
