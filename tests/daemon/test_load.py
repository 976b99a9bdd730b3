"""Load held: many connections cost the daemon no file descriptors or
memory once they are gone, and idle ones do not slow busy ones. The load
comes from rpycd-bench's generator (`rpycd-bench load`). The threaded
scenarios also run against Python rpyc's own rpyc_classic, which records
what happens there for RELIABILITY.md's other column."""

import json
import os
import resource
import subprocess

import pytest
import rpyc

from conftest import binary, classic_daemon, python_classic, python_sessions, wait_until
from reliability import mib, record


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
    # a session ends before its thread lets go of the socket (and the
    # probe's own connection closes after its answer): give them a moment
    wait_until(lambda: fds(pid) <= fds_before + 2,
               f"fds back near {fds_before} (now {fds(pid)})")
    assert rss_kib(pid) <= rss_before * 1.10, (rss_before, rss_kib(pid))
    record("20 000 connect/close cycles (threaded)", CYCLES_TRIED,
           f"{run['ops']} cycles, 0 errors; fds {fds_before} → {fds(pid)}; "
           f"RSS {mib(rss_before)} → {mib(rss_kib(pid))}",
           cycles=run["ops"], fds_before=fds_before, fds_after=fds(pid),
           rss_kib_before=rss_before, rss_kib_after=rss_kib(pid))


CYCLES_TRIED = "4 clients × 5000 × (connect, GETROOT, release, close), after 2000 for warm-up"


def test_python_rpyc_under_20000_connect_close_cycles(daemons, tmp_path):
    daemon, port = python_classic(daemons, tmp_path)
    pid = daemon.proc.pid
    load(port, "connect", 4, 60, max_ops=500)
    wait_until(lambda: python_sessions(port) == 0, "the warm-up sessions closed")
    fds_before, rss_before = fds(pid), rss_kib(pid)
    run = load(port, "connect", 4, 120, max_ops=5000)
    closed = True
    try:
        wait_until(lambda: python_sessions(port) == 0, "the sessions closed")
        wait_until(lambda: fds(pid) <= fds_before + 2, "fds back")
    except AssertionError:
        closed = False
    record("20 000 connect/close cycles (threaded)", CYCLES_TRIED,
           f"{run['ops']} cycles, {run['errors']} errors; fds {fds_before} → {fds(pid)}"
           + ("" if closed else " (not back within 20 s)")
           + f"; RSS {mib(rss_before)} → {mib(rss_kib(pid))}",
           lost=run["errors"], server="python", cycles=run["ops"], fds_before=fds_before,
           fds_after=fds(pid), rss_kib_before=rss_before, rss_kib_after=rss_kib(pid))


IDLE_TRIED = "16 connections calling math.sqrt for 2 s, alone and then beside 1000 idle ones"


def test_python_rpyc_with_1000_idle_connections_beside_16_busy_ones(daemons, tmp_path):
    daemon, port = python_classic(daemons, tmp_path)
    unloaded = load(port, "call", 16, 2)
    idle = [rpyc.classic.connect("127.0.0.1", port) for _ in range(1000)]
    try:
        loaded = load(port, "call", 16, 2)
        answered = idle[0].eval("1") == 1 and idle[-1].eval("2") == 2
        rss = rss_kib(daemon.proc.pid)
        ratio = loaded["per_sec"] / unloaded["per_sec"] if unloaded["per_sec"] else 0.0
        record("1000 idle + 16 busy connections (threaded)", IDLE_TRIED,
               f"1000 idle {'held' if answered else 'not all answering'}; busy "
               f"{loaded['per_sec']:.0f} calls/s vs {unloaded['per_sec']:.0f} unloaded "
               f"({ratio:.2f}×), {loaded['ops']} calls, {loaded['errors']} errors; "
               f"server RSS {mib(rss)} (a thread per connection)",
               lost=loaded["errors"] + unloaded["errors"], server="python", idle=len(idle),
               unloaded_per_sec=unloaded["per_sec"], loaded_per_sec=loaded["per_sec"],
               loaded_ops=loaded["ops"], rss_kib=rss)
    finally:
        for conn in idle:
            conn.close()


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
        rss = rss_kib(daemon.proc.pid)
        record("1000 idle + 16 busy connections (threaded)", IDLE_TRIED,
               f"1000 idle held; busy {loaded['per_sec']:.0f} calls/s vs {unloaded['per_sec']:.0f} "
               f"unloaded ({loaded['per_sec'] / unloaded['per_sec']:.2f}×, floor 0.5×), "
               f"{loaded['ops']} calls, 0 errors; daemon RSS {mib(rss)}",
               idle=len(idle), unloaded_per_sec=unloaded["per_sec"],
               loaded_per_sec=loaded["per_sec"], loaded_ops=loaded["ops"], rss_kib=rss)
    finally:
        for conn in idle:
            conn.close()


def family(pid):
    """pid and all its descendants (a forking server's children)."""
    children = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        p = todo.pop()
        found.append(p)
        todo.extend(children.get(p, []))
    return found


def pss_kib(pids):
    """Proportional set size summed over pids: shared pages counted once
    in all, where RSS would count them once per process."""
    total = 0
    for p in pids:
        try:
            with open(f"/proc/{p}/smaps_rollup") as f:
                total += next(int(line.split()[1]) for line in f if line.startswith("Pss:"))
        except (OSError, StopIteration):
            pass  # a child that ended meanwhile
    return total


def test_300_idle_connections_in_forking_mode_do_not_slow_16_busy_ones(daemons, tmp_path):
    daemon, port = classic_daemon(daemons, tmp_path, "-q", "-m", "forking")
    pid = daemon.proc.pid
    pss_alone = pss_kib(family(pid))
    unloaded = load(port, "call", 16, 2)
    assert unloaded["errors"] == 0, unloaded["first_error"]
    wait_until(lambda: len(family(pid)) == 1, "the unloaded run's children gone")
    idle = []
    try:
        for _ in range(300):
            idle.append(rpyc.classic.connect("127.0.0.1", port))
        # a child per connection, each one past its first request
        assert all(conn.eval("1") == 1 for conn in idle)
        assert len(family(pid)) == 301
        pss_idle = pss_kib(family(pid))
        loaded = load(port, "call", 16, 2)
        assert loaded["errors"] == 0, loaded["first_error"]
        assert loaded["per_sec"] >= unloaded["per_sec"] / 2, (unloaded, loaded)
        # the idle ones are still there and still answer
        assert idle[0].eval("1") == 1 and idle[-1].eval("2") == 2
        assert len(family(pid)) == 301
    finally:
        for conn in idle:
            conn.close()
    per_conn = (pss_idle - pss_alone) / 300
    record("300 idle + 16 busy connections (forking)",
           "16 connections calling math.sqrt for 2 s, alone and then beside 300 idle ones, "
           "a child process each",
           f"300 idle held; busy {loaded['per_sec']:.0f} calls/s vs {unloaded['per_sec']:.0f} "
           f"unloaded ({loaded['per_sec'] / unloaded['per_sec']:.2f}×, floor 0.5×), "
           f"{loaded['ops']} calls, 0 errors; PSS (parent + children) {mib(pss_alone)} alone, "
           f"{mib(pss_idle)} with 300 idle ({per_conn:.0f} KiB per connection)",
           idle=300, unloaded_per_sec=unloaded["per_sec"], loaded_per_sec=loaded["per_sec"],
           loaded_ops=loaded["ops"], pss_kib_alone=pss_alone, pss_kib_idle=pss_idle,
           pss_kib_per_connection=per_conn)


def test_python_rpyc_with_300_idle_connections_in_forking_mode(daemons, tmp_path):
    daemon, port = python_classic(daemons, tmp_path, "forking", "-q")
    pid = daemon.proc.pid
    wait_until(lambda: len(family(pid)) == 1, "the start-up probe's child gone")
    pss_alone = pss_kib(family(pid))
    unloaded = load(port, "call", 16, 2)
    wait_until(lambda: len(family(pid)) == 1, "the unloaded run's children gone")
    idle = []
    try:
        for _ in range(300):
            idle.append(rpyc.classic.connect("127.0.0.1", port))
        answered = all(conn.eval("1") == 1 for conn in idle)
        pss_idle = pss_kib(family(pid))
        loaded = load(port, "call", 16, 2)
        answered = answered and idle[0].eval("1") == 1 and idle[-1].eval("2") == 2
        assert len(family(pid)) == 301
    finally:
        for conn in idle:
            conn.close()
    per_conn = (pss_idle - pss_alone) / 300
    ratio = loaded["per_sec"] / unloaded["per_sec"] if unloaded["per_sec"] else 0.0
    record("300 idle + 16 busy connections (forking)",
           "16 connections calling math.sqrt for 2 s, alone and then beside 300 idle ones, "
           "a child process each",
           f"300 idle {'held' if answered else 'not all answering'}; busy "
           f"{loaded['per_sec']:.0f} calls/s vs {unloaded['per_sec']:.0f} unloaded "
           f"({ratio:.2f}×), {loaded['ops']} calls, {loaded['errors']} errors; PSS (parent + "
           f"children) {mib(pss_alone)} alone, {mib(pss_idle)} with 300 idle ({per_conn:.0f} "
           "KiB per connection)",
           lost=loaded["errors"] + unloaded["errors"], server="python", idle=300,
           unloaded_per_sec=unloaded["per_sec"], loaded_per_sec=loaded["per_sec"],
           loaded_ops=loaded["ops"], pss_kib_alone=pss_alone, pss_kib_idle=pss_idle,
           pss_kib_per_connection=per_conn)
