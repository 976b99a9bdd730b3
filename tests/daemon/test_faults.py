"""Faults the daemon survives: clients that die at any point, Python code
that fails hard, and a stop in the middle of work. Each scenario also runs
against Python rpyc's own rpyc_classic, which records what happens there
for RELIABILITY.md's other column and asserts only what it records."""

import signal
import socket
import struct
import subprocess
import sys
import textwrap
import time

import pytest
import rpyc

from conftest import classic_daemon, held, python_classic, python_sessions, wait_until
from reliability import record

SIGTERM_TRIED = "50 connections each in a 1.5 s call, SIGTERM while all are in flight"


def test_sigterm_during_50_in_flight_calls_answers_every_one(daemons, tmp_path):
    daemon, port = classic_daemon(daemons, tmp_path)
    conns = [rpyc.classic.connect("127.0.0.1", port) for _ in range(50)]
    calls = [rpyc.async_(conn.modules.time.sleep)(1.5) for conn in conns]
    # every call has reached the server (each holds a thread in time.sleep)
    wait_until(lambda: daemon.log().count("welcome") >= 51, "50 sessions")
    time.sleep(0.3)
    daemon.signal(signal.SIGTERM)
    for call in calls:
        call.wait()
        assert call.ready and not call.error
    assert daemon.wait() == 0
    assert "server has terminated" in daemon.log()
    record("SIGTERM during 50 in-flight calls", SIGTERM_TRIED,
           "50 of 50 calls answered, then exit status 0", calls=50, answered=len(calls))


def test_python_rpyc_under_sigterm_during_50_in_flight_calls(daemons, tmp_path):
    daemon, port = python_classic(daemons, tmp_path)
    conns = [rpyc.classic.connect("127.0.0.1", port) for _ in range(50)]
    calls = [rpyc.async_(conn.modules.time.sleep)(1.5) for conn in conns]
    wait_until(lambda: python_sessions(port) >= 50, "50 sessions")
    time.sleep(0.3)
    daemon.signal(signal.SIGTERM)
    answered = 0
    for call in calls:
        try:
            call.wait()
            answered += not call.error
        except EOFError:
            pass
    status = daemon.wait()
    record("SIGTERM during 50 in-flight calls", SIGTERM_TRIED,
           f"{answered} of 50 calls answered; exit status {status}"
           + (" (killed by SIGTERM: rpyc_classic does not handle it)" if status == -15 else ""),
           lost=50 - answered, server="python", calls=50, answered=answered, status=status)


CLIENT_KILLED_MID_CALL = textwrap.dedent("""
    import sys, rpyc
    conn = rpyc.classic.connect("127.0.0.1", int(sys.argv[1]))
    keep = [conn.builtins.list(range(10)) for _ in range(20)]   # objects it holds
    conn.execute("def call_back(f):\\n    import time\\n    f()\\n    time.sleep(30)")
    print("ready", flush=True)
    if sys.argv[2] == "callback":
        import time
        conn.namespace["call_back"](lambda: time.sleep(30))
    else:
        conn.modules.time.sleep(30)
""")


def kill_a_client_mid_call(port, where):
    """A client holding objects, SIGKILLed in a call (or a callback)."""
    client = subprocess.Popen([sys.executable, "-c", CLIENT_KILLED_MID_CALL, str(port), where],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert client.stdout.readline().strip() == "ready"
        time.sleep(0.3)  # let the call (and the callback) reach the other side
        client.kill()
        client.wait(10)
    finally:
        client.kill()


@pytest.mark.parametrize("where", ["request", "callback"])
def test_a_client_killed_mid_call_leaves_nothing_behind(daemons, tmp_path, where):
    daemon, port = classic_daemon(daemons, tmp_path)
    other = rpyc.classic.connect("127.0.0.1", port)
    kill_a_client_mid_call(port, where)
    # the dead client's session and its objects are gone; the other serves on
    wait_until(lambda: held(port) == (1, 0) or None, "the dead client's objects freed",
               deadline=40)
    assert other.eval("1 + 1") == 2
    record(f"client SIGKILLed mid-{where}", killed_tried(where),
           "its session and 20 objects freed; another client served throughout")


def killed_tried(where):
    return ("a client holding 20 remote objects killed "
            + ("in a 30 s call" if where == "request" else "while the server calls back into it"))


@pytest.mark.parametrize("where", ["request", "callback"])
def test_python_rpyc_with_a_client_killed_mid_call(daemons, tmp_path, where):
    daemon, port = python_classic(daemons, tmp_path)
    other = rpyc.classic.connect("127.0.0.1", port)
    kill_a_client_mid_call(port, where)
    # its objects die with its session's connection: the session is what shows
    freed = True
    try:
        wait_until(lambda: python_sessions(port) == 1 or None, "the dead client's session ended",
                   deadline=40)
    except AssertionError:
        freed = False
    served = other.eval("1 + 1") == 2
    record(f"client SIGKILLed mid-{where}", killed_tried(where),
           ("its session ended" if freed else "its session still held after 40 s")
           + ("; another client served throughout" if served else "; another client not served"),
           server="python", freed=freed, served=served)


def reset_mid_frame(port):
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    # a frame header announcing 1000 bytes, and only 10 of them
    sock.sendall(struct.pack("!LB", 1000, 0) + b"\x01" * 10)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()  # a reset, as from a killed process


def test_a_client_killed_mid_frame(daemons, tmp_path):
    daemon, port = classic_daemon(daemons, tmp_path)
    reset_mid_frame(port)
    wait_until(lambda: held(port) == (0, 0) or None, "the half-sent session gone")
    conn = rpyc.classic.connect("127.0.0.1", port)
    assert conn.eval("3") == 3
    record("client reset mid-frame", "10 of a frame's 1000 bytes, then a TCP reset",
           "the session freed; the next client served")


def test_python_rpyc_with_a_client_reset_mid_frame(daemons, tmp_path):
    daemon, port = python_classic(daemons, tmp_path)
    reset_mid_frame(port)
    freed = True
    try:
        wait_until(lambda: python_sessions(port) == 0 or None, "the half-sent session gone")
    except AssertionError:
        freed = False
    conn = rpyc.classic.connect("127.0.0.1", port)
    served = conn.eval("3") == 3
    record("client reset mid-frame", "10 of a frame's 1000 bytes, then a TCP reset",
           ("the session freed" if freed else "the session still held after 20 s")
           + ("; the next client served" if served else "; the next client not served"),
           server="python", freed=freed, served=served)


@pytest.mark.parametrize("server", ["rpycd", "python"])
def test_memory_and_recursion_errors_reach_the_client(daemons, tmp_path, server):
    start = classic_daemon if server == "rpycd" else python_classic
    daemon, port = start(daemons, tmp_path)
    conn = rpyc.classic.connect("127.0.0.1", port)
    with pytest.raises(MemoryError):
        conn.eval("bytearray(1 << 62)")
    conn.execute("def f(n): return f(n + 1)")
    with pytest.raises(RecursionError):
        conn.eval("f(0)")
    assert conn.eval("2 * 21") == 42
    record("MemoryError and RecursionError in served code",
           "bytearray(1 << 62) and unbounded recursion on the server",
           "both reach the client as exceptions; the same connection serves on", server=server)


@pytest.mark.parametrize("crash", ["os._exit(7)", "__import__('ctypes').string_at(0)"])
def test_a_child_that_dies_in_forking_mode_leaves_the_parent_serving(daemons, tmp_path, crash):
    daemon, port = classic_daemon(daemons, tmp_path, "-m", "forking")
    doomed = rpyc.classic.connect("127.0.0.1", port)
    doomed.execute("import os")
    with pytest.raises(EOFError):
        doomed.eval(crash)
    daemon.wait_log("child ")
    assert daemon.proc.poll() is None
    conn = rpyc.classic.connect("127.0.0.1", port)
    assert conn.eval("'still here'") == "still here"
    record(f"forking child dies: `{crash}`", f"`{crash}` in a forking-mode child",
           "the client gets EOFError; the parent logs it and serves the next client")


@pytest.mark.parametrize("crash", ["os._exit(7)", "__import__('ctypes').string_at(0)"])
def test_python_rpyc_with_a_child_that_dies_in_forking_mode(daemons, tmp_path, crash):
    daemon, port = python_classic(daemons, tmp_path, mode="forking")
    doomed = rpyc.classic.connect("127.0.0.1", port)
    doomed.execute("import os")
    with pytest.raises(EOFError):
        doomed.eval(crash)
    time.sleep(0.5)
    alive = daemon.proc.poll() is None
    served = False
    if alive:
        conn = rpyc.classic.connect("127.0.0.1", port)
        served = conn.eval("'still here'") == "still here"
    record(f"forking child dies: `{crash}`", f"`{crash}` in a forking-mode child",
           "the client gets EOFError; "
           + ("the parent serves the next client" if served else "the server is gone"),
           lost=0 if served else 1, server="python", alive=alive, served=served)
