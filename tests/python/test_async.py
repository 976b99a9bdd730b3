"""rpyc.async_, AsyncResult, rpyc.timed and BgServingThread."""

import threading
import time

import pytest
import rpyc

from conftest import wait_until


def test_async_value_and_wait(conn):
    apow = rpyc.async_(conn.builtins.pow)
    res = apow(2, 10)
    assert isinstance(res, rpyc.AsyncResult)
    res.wait()
    assert res.ready
    assert not res.error
    assert not res.expired
    assert res.value == 1024
    # value is stable once ready.
    assert res.value == 1024


def test_async_not_ready_while_running(conn):
    asleep = rpyc.async_(conn.modules.time.sleep)
    started = time.monotonic()
    res = asleep(0.5)
    # The request is sent; the call does not block.
    assert time.monotonic() - started < 0.4
    assert not res.ready
    res.wait()
    assert res.ready
    assert time.monotonic() - started >= 0.45
    assert res.value is None


def test_async_kwargs_and_netref_result(conn):
    conn.execute("def build(a, b=0, *, c=1):\n    return [a, b, c]\n")
    abuild = rpyc.async_(conn.namespace["build"])
    res = abuild(1, b=2, c=3)
    assert list(res.value) == [1, 2, 3]


def test_async_exception(conn):
    aeval = rpyc.async_(conn.eval)
    res = aeval("1 / 0")
    res.wait()
    assert res.ready
    assert res.error
    with pytest.raises(ZeroDivisionError) as info:
        res.value
    assert "ZeroDivisionError" in info.value._remote_tb


def test_async_add_callback(conn):
    asleep = rpyc.async_(conn.modules.time.sleep)
    seen = []
    res = asleep(0.2)
    res.add_callback(lambda r: seen.append(("cb1", r.value)))
    res.add_callback(lambda r: seen.append(("cb2", r.ready)))
    assert seen == []
    res.wait()
    assert seen == [("cb1", None), ("cb2", True)]
    # Added after the result arrived: called at once.
    res.add_callback(lambda r: seen.append(("late", r.error)))
    assert seen[-1] == ("late", False)


def test_async_many_in_flight(conn):
    asquare = rpyc.async_(conn.eval)
    results = [asquare(f"{i} * {i}") for i in range(50)]
    for i, r in enumerate(results):
        assert r.value == i * i


def test_async_expiry_raises_timeout(conn):
    asleep = rpyc.async_(conn.modules.time.sleep)
    res = asleep(2)
    res.set_expiry(0.3)
    started = time.monotonic()
    with pytest.raises(rpyc.AsyncResultTimeout):
        res.wait()
    elapsed = time.monotonic() - started
    assert elapsed < 1.5
    assert res.expired
    assert not res.ready
    with pytest.raises(rpyc.AsyncResultTimeout):
        res.value
    # The connection recovers once the slow call is over.
    assert conn.eval("1 + 1") == 2


def test_timed(conn):
    tsleep = rpyc.timed(conn.modules.time.sleep, 0.3)
    res = tsleep(1.5)
    with pytest.raises(rpyc.AsyncResultTimeout):
        res.value
    ok = rpyc.timed(conn.builtins.sum, 10)((1, 2, 3))
    assert ok.value == 6


def test_bg_serving_thread_server_thread_calls_client(conn):
    conn.execute(
        "import threading, time\n"
        "def start(cb, n):\n"
        "    def run():\n"
        "        time.sleep(0.5)  # let the client return to its own business first\n"
        "        for i in range(n):\n"
        "            cb(i, threading.current_thread().name)\n"
        "    t = threading.Thread(target=run, name='server-worker')\n"
        "    t.start()\n"
        "    return t\n"
    )
    got = []
    done = threading.Event()

    def cb(i, thread_name):
        got.append((i, thread_name, threading.current_thread().name))
        if i == 9:
            done.set()

    bg = rpyc.BgServingThread(conn)
    try:
        t = conn.namespace["start"](cb, 10)
        assert done.wait(30), f"only got {got}"
        # The callbacks ran on the server's own thread and, while the main
        # thread waited on an Event (not serving), the background thread
        # served them.
        assert [g[0] for g in got] == list(range(10))
        assert all(g[1] == "server-worker" for g in got)
        assert any(g[2] != threading.main_thread().name for g in got)
        t.join(10)
        assert not t.is_alive()
    finally:
        bg.stop()


def test_bg_serving_thread_async_callback(conn):
    """The result of an async call is delivered by the background thread."""
    asleep = rpyc.async_(conn.modules.time.sleep)
    arrived = threading.Event()
    bg = rpyc.BgServingThread(conn)
    try:
        res = asleep(0.2)
        res.add_callback(lambda r: arrived.set())
        assert arrived.wait(20)
        assert res.ready
        # Sync calls from the main thread keep working alongside.
        assert conn.modules.math.factorial(6) == 720
    finally:
        bg.stop()


def test_bg_serving_thread_with_concurrent_main_calls(conn):
    conn.execute(
        "import threading, time\n"
        "def ticker(cb, n):\n"
        "    def run():\n"
        "        for i in range(n):\n"
        "            cb(i)\n"
        "            time.sleep(0.01)\n"
        "    threading.Thread(target=run).start()\n"
    )
    ticks = []
    bg = rpyc.BgServingThread(conn)
    try:
        conn.namespace["ticker"](ticks.append, 20)
        for i in range(50):
            assert conn.eval(f"{i} * 2") == i * 2
        wait_until(lambda: len(ticks) == 20, timeout=30, message="20 ticks")
        assert ticks == list(range(20))
    finally:
        bg.stop()
