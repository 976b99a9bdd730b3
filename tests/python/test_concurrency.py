"""Many clients at once, and clients that die in the middle of a call."""

import math
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import rpyc

from conftest import wait_until

PROBE = (
    "import sys, types\n"
    "probe = sys.modules.get('rpycd_kill_probe')\n"
    "if probe is None:\n"
    "    probe = types.ModuleType('rpycd_kill_probe')\n"
    "    probe.events = []\n"
    "    sys.modules['rpycd_kill_probe'] = probe\n"
)


def test_20_concurrent_clients_1000_calls_each(server):
    n_clients, n_calls = 20, 1000
    results = {}
    errors = []
    barrier = threading.Barrier(n_clients, timeout=30)

    def worker(k):
        try:
            c = server.connect()
            try:
                sqrt = c.modules.math.sqrt
                barrier.wait()
                out = []
                for i in range(n_calls):
                    out.append(sqrt(i * k))
                results[k] = out
            finally:
                c.close()
        except Exception as e:  # reported below
            errors.append(f"client {k}: {e!r}")

    threads = [threading.Thread(target=worker, args=(k,), daemon=True) for k in range(n_clients)]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(max(1, 90 - (time.monotonic() - started)))
    assert not any(t.is_alive() for t in threads), "clients still running after 90 s"
    assert errors == []
    assert sorted(results) == list(range(n_clients))
    for k, out in results.items():
        assert out == [math.sqrt(i * k) for i in range(n_calls)]


def test_concurrent_clients_state_is_per_connection(server):
    """Each client's namespace is its own even when they run at once."""
    errors = []

    def worker(k):
        try:
            c = server.connect()
            try:
                c.execute(f"mine = {k}")
                for _ in range(100):
                    assert c.eval("mine") == k
                    c.execute("mine = mine + 0")
            finally:
                c.close()
        except Exception as e:
            errors.append(f"client {k}: {e!r}")

    threads = [threading.Thread(target=worker, args=(k,), daemon=True) for k in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not any(t.is_alive() for t in threads)
    assert errors == []


def test_thread_local_data_does_not_pass_to_the_next_client(server):
    """A threading.local set by one client's code is not what the next
    client's code finds: rpyc's ThreadedServer starts a thread per
    connection, and a server that reuses threads must not hand over their
    Python thread-local data."""
    setup = ("import threading, builtins, contextvars, sys\n"
             "if not hasattr(builtins, 'RPYCD_TEST_TL'):\n"
             "    builtins.RPYCD_TEST_TL = threading.local()\n"
             "    builtins.RPYCD_TEST_VAR = contextvars.ContextVar('rpycd_test')\n")
    uses = [
        # what each client leaves in its thread, and how the next would see it
        ("RPYCD_TEST_TL.owner = {client}", "getattr(RPYCD_TEST_TL, 'owner', None)"),
        ("RPYCD_TEST_VAR.set({client})", "RPYCD_TEST_VAR.get(None)"),
        ("sys.setprofile(lambda *args: None)", "sys.getprofile()"),
        ("", "None"),  # a client that leaves nothing
    ]
    for client in range(8):
        leave, look = uses[client % len(uses)]
        c = server.connect()
        try:
            c.execute(setup)
            for _, other in uses:
                assert c.eval(other) is None, (client, other)
            c.execute(leave.format(client=client))
        finally:
            c.close()
        time.sleep(0.1)  # the next connection may go to the same thread


def spawn_client(server, body):
    """Run a client in its own process; it prints READY once connected."""
    code = textwrap.dedent(
        f"""
        import sys, time, rpyc
        conn = rpyc.classic.connect({server.host!r}, {server.port})
        conn.execute({PROBE!r})
        print("READY", flush=True)
        """
    ) + textwrap.dedent(body)
    return subprocess.Popen(
        [sys.executable, "-c", code],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )


def read_ready(proc, timeout=20):
    deadline = time.monotonic() + timeout
    # The child prints one line; readline on a pipe blocks, so watch it from a thread.
    line = []
    t = threading.Thread(target=lambda: line.append(proc.stdout.readline()), daemon=True)
    t.start()
    t.join(max(0, deadline - time.monotonic()))
    assert line and line[0].strip() == "READY", f"client subprocess did not start: {line!r}"


def kill(proc):
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)
    proc.stdout.close()


def events(conn):
    return list(conn.eval("list(__import__('rpycd_kill_probe').events)"))


def test_client_killed_mid_call(fresh_server):
    watcher = fresh_server.connect()
    try:
        watcher.execute(PROBE)
        # Another client that stays connected through the whole test.
        bystander = fresh_server.connect()
        bystander.execute("counter = 0")
        proc = spawn_client(
            fresh_server,
            """
            conn.execute("import time\\nprobe.events.append('sleeping')\\ntime.sleep(30)")
            """,
        )
        try:
            read_ready(proc)
            wait_until(lambda: "sleeping" in events(watcher), timeout=20, message="the remote sleep to start")
        finally:
            kill(proc)
        # A fresh client is served promptly, while the dead client's call is
        # still sleeping on the server.
        started = time.monotonic()
        fresh = fresh_server.connect()
        try:
            assert fresh.modules.math.factorial(10) == 3628800
            assert fresh.eval("sum(range(100))") == 4950
        finally:
            fresh.close()
        assert time.monotonic() - started < 5
        bystander.execute("counter += 1")
        assert bystander.eval("counter") == 1
        bystander.close()
        watcher.ping()
    finally:
        watcher.close()
    assert fresh_server.alive()


def test_server_survives_reply_to_dead_client(fresh_server):
    """The call finishes after its client died: the reply goes nowhere, and the
    server carries on."""
    watcher = fresh_server.connect()
    try:
        watcher.execute(PROBE)
        proc = spawn_client(
            fresh_server,
            """
            conn.execute("import time\\nprobe.events.append('short-sleep')\\n"
                         "time.sleep(1.5)\\nprobe.events.append('short-done')\\n"
                         "result = [0] * 100000")
            """,
        )
        try:
            read_ready(proc)
            wait_until(lambda: "short-sleep" in events(watcher), timeout=20, message="the remote sleep to start")
        finally:
            kill(proc)
        wait_until(lambda: "short-done" in events(watcher), timeout=20, message="the remote sleep to finish")
        time.sleep(0.5)  # let the server try to reply to the dead client
        for _ in range(3):
            c = fresh_server.connect()
            try:
                assert c.eval("2 ** 10") == 1024
            finally:
                c.close()
        watcher.ping()
    finally:
        watcher.close()
    assert fresh_server.alive()


def test_client_killed_inside_callback(fresh_server):
    """The server is waiting for the client's callback when the client dies:
    the server's pending call fails with an exception instead of hanging."""
    watcher = fresh_server.connect()
    try:
        watcher.execute(PROBE)
        proc = spawn_client(
            fresh_server,
            """
            conn.execute(
                "def run(cb):\\n"
                "    try:\\n"
                "        cb()\\n"
                "    except BaseException as e:\\n"
                "        probe.events.append('callback failed: ' + type(e).__name__)\\n"
                "        raise\\n"
            )
            def cb():
                conn.execute("probe.events.append('in callback')")
                time.sleep(60)
            conn.namespace["run"](cb)
            """,
        )
        try:
            read_ready(proc)
            wait_until(lambda: "in callback" in events(watcher), timeout=20, message="the callback to start")
        finally:
            kill(proc)
        failed = wait_until(
            lambda: [e for e in events(watcher) if e.startswith("callback failed")],
            timeout=20,
            message="the server to notice the dead client",
        )
        assert failed == ["callback failed: EOFError"]
        c = fresh_server.connect()
        try:
            assert c.eval("'still' + ' here'") == "still here"
        finally:
            c.close()
    finally:
        watcher.close()
    assert fresh_server.alive()


def test_abrupt_disconnects_do_not_disturb_others(server):
    steady = server.connect()
    try:
        steady.execute("total = 0")
        for i in range(20):
            c = server.connect()
            c.execute("x = [1] * 1000")
            # Vanish without CLOSE, sometimes in the middle of an async call.
            if i % 2:
                asleep = rpyc.async_(c.modules.time.sleep)
                asleep(0.2)
            c._channel.stream.sock.close()
            steady.execute(f"total += {i}")
        assert steady.eval("total") == sum(range(20))
    finally:
        steady.close()
