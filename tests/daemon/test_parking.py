"""Threaded mode's quiet connections hold no thread: a connection whose
client has been quiet for a moment (250 ms) is parked in one poll set and
its thread goes, and it is served on, unchanged, when the client speaks
again. What the client's code keeps in its thread pins the connection to
that thread. All with the real rpyc client."""

import os
import signal
import threading
import time

import rpyc

from conftest import classic_daemon, wait_until

CONNECTIONS = 60
# the poller, the main thread, and at most 16 waiting threads
THREADS_WHEN_ALL_QUIET = 18


def threads_of(pid):
    return len(os.listdir(f"/proc/{pid}/task"))


def test_quiet_connections_hold_no_thread_and_are_served_on(daemons, tmp_path):
    daemon, port = classic_daemon(daemons, tmp_path)
    pid = daemon.proc.pid
    conns = [rpyc.classic.connect("127.0.0.1", port) for _ in range(CONNECTIONS)]
    for index, conn in enumerate(conns):
        conn.execute(f"mine = {index}")
    wait_until(lambda: threads_of(pid) <= THREADS_WHEN_ALL_QUIET,
               f"at most {THREADS_WHEN_ALL_QUIET} threads for {CONNECTIONS} quiet connections")
    # every session is whole: its namespace, its netrefs, new requests
    sqrt = conns[0].modules.math.sqrt
    for index, conn in enumerate(conns):
        assert conn.eval("mine") == index
    time.sleep(0.5)
    assert sqrt(16.0) == 4.0
    assert sum(conn.eval("mine * 2") for conn in conns) == CONNECTIONS * (CONNECTIONS - 1)
    for conn in conns:
        conn.close()
    # (and one more for the probe that saw the port accept)
    wait_until(lambda: daemon.log().count("goodbye ") == CONNECTIONS + 1, "every goodbye")
    assert "WARNING" not in daemon.log() and "ERROR" not in daemon.log(), daemon.log()


def test_state_the_clients_code_keeps_in_its_thread_stays_with_it(daemons, tmp_path):
    daemon, port = classic_daemon(daemons, tmp_path)
    conn = rpyc.classic.connect("127.0.0.1", port)
    conn.execute("import threading, decimal\n"
                 "mine = threading.local()\n"
                 "mine.value = 42\n"
                 "decimal.getcontext().prec = 7\n"
                 "first_thread = threading.get_ident()")
    # other clients come and go, and go quiet, meanwhile
    others = [rpyc.classic.connect("127.0.0.1", port) for _ in range(8)]
    for other in others:
        assert other.eval("1 + 1") == 2
    time.sleep(1.0)
    assert conn.eval("mine.value") == 42
    assert conn.eval("decimal.getcontext().prec") == 7
    assert conn.eval("threading.get_ident() == first_thread")
    # and none of it reaches another client
    for other in others:
        other.execute("import threading, decimal")
        assert other.eval("decimal.getcontext().prec") == 28
        assert other.eval("threading.get_ident()") != conn.eval("first_thread")
    conn.close()
    for other in others:
        other.close()


def test_a_server_thread_calls_back_a_parked_connection(daemons, tmp_path):
    """The connection is parked while a thread of the client's own making
    on the server sleeps, then calls the client back: its request goes
    out, its reply comes back to it, and the session goes on."""
    daemon, port = classic_daemon(daemons, tmp_path)
    conn = rpyc.classic.connect("127.0.0.1", port)
    background = rpyc.BgServingThread(conn)
    try:
        called = threading.Event()

        def callback(value):
            called.set()
            return value * 2

        conn.execute("import threading, time\n"
                     "results = []\n"
                     "def later(f):\n"
                     "    for i in range(3):\n"
                     "        time.sleep(0.6)\n"
                     "        results.append(f(i))\n")
        conn.namespace["CALLBACK"] = callback
        conn.execute("worker = threading.Thread(target=later, args=(CALLBACK,)); worker.start()")
        assert called.wait(10)
        wait_until(lambda: conn.eval("len(results)") == 3, "three callbacks")
        assert list(conn.eval("results")) == [0, 2, 4]
    finally:
        background.stop()
    assert conn.eval("worker.is_alive()") is False
    conn.close()
    wait_until(lambda: "goodbye" in daemon.log(), "goodbye")


def test_sigterm_closes_parked_connections_promptly(daemons, tmp_path):
    daemon, port = classic_daemon(daemons, tmp_path)
    conns = [rpyc.classic.connect("127.0.0.1", port) for _ in range(20)]
    for conn in conns:
        assert conn.eval("2 + 2") == 4
    wait_until(lambda: threads_of(daemon.proc.pid) <= THREADS_WHEN_ALL_QUIET, "parked")
    started = time.monotonic()
    daemon.signal(signal.SIGTERM)
    assert daemon.wait() == 0
    # quiet for a second already: nothing to wait for
    assert time.monotonic() - started < 5, daemon.log()
    log = daemon.log()
    assert log.count("goodbye ") == log.count("welcome ") == 21, log
    assert "still busy" not in log, log
