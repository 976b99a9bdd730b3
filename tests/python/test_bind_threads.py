"""Clients with rpyc 6's bind_threads on (`RPYC_BIND_THREADS=true`, or
`config={"bind_threads": True}`): every message names the thread that
sends it and the thread it is for. rpyc's own server is the reference,
started with RPYC_BIND_THREADS=true (it then serves only such clients);
rpycd learns it per connection, so such clients share a port with others.

What a client with threads bound is entitled to: a callback made while
its request is served runs on the client thread that waits for that
request; a request the callback makes runs on the server thread that
waits for the callback; a request from another client thread, meanwhile,
is served beside the waiting one, not inside it."""

import threading
import time

import pytest
import rpyc

from conftest import CLIENT_MAJOR, Server, close_quietly

pytestmark = pytest.mark.skipif(CLIENT_MAJOR < 6, reason="bind_threads is rpyc 6's")

DEADLINE = 30


@pytest.fixture(scope="module")
def server(server_kind, tmp_path_factory):
    srv = Server(server_kind, tmp_path_factory.mktemp(f"bound-{server_kind}"),
                 env={"RPYC_BIND_THREADS": "true"}).start()
    yield srv
    srv.stop()


def bound(server):
    from rpyc.core.service import ClassicService
    from rpyc.utils.factory import connect
    return connect(server.host, server.port, ClassicService,
                   config={"bind_threads": True, "sync_request_timeout": DEADLINE})


@pytest.fixture
def conn(server):
    c = bound(server)
    yield c
    close_quietly(c)


def in_threads(count, work):
    """Runs work(n) in `count` client threads at once; the errors they met."""
    errors = []
    start = threading.Barrier(count, timeout=DEADLINE)

    def run(n):
        try:
            start.wait()
            work(n)
        except Exception as error:  # reported below, with the others
            errors.append(repr(error))

    threads = [threading.Thread(target=run, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(2 * DEADLINE)
    assert not any(thread.is_alive() for thread in threads), "a client thread hangs"
    return errors


def test_a_classic_session(conn):
    assert conn.eval("6 * 7") == 42
    assert conn.modules.sys.platform == "linux"
    assert list(conn.builtins.sorted([3, 1, 2])) == [1, 2, 3]
    remote = conn.builtins.dict(a=1)
    remote["b"] = 2
    assert sorted(remote.keys()) == ["a", "b"]
    with pytest.raises(ZeroDivisionError):
        conn.eval("1 / 0")
    conn.execute("x = 'bound'")
    assert conn.namespace["x"] == "bound"


def test_callbacks_run_on_the_client_thread_that_waits(conn):
    call_back = conn.eval("lambda cb: [cb() for _ in range(3)]")

    def work(n):
        for _ in range(10):
            mine = threading.get_ident()
            assert list(call_back(threading.get_ident)) == [mine] * 3

    assert in_threads(4, work) == []


def test_requests_from_a_callback_run_on_the_server_thread_that_waits(conn):
    conn.execute(
        "import threading, time\n"
        "def outer(cb):\n"
        "    mine = threading.get_ident()\n"
        "    time.sleep(0.02)\n"
        "    return mine, cb()\n"
    )
    outer = conn.namespace["outer"]
    server_thread = conn.eval("lambda: __import__('threading').get_ident()")

    def callback():
        # by now every server thread waits for a callback's reply and one
        # of them reads: the others' requests reach them through it
        time.sleep(0.05)
        return server_thread()

    def work(n):
        for _ in range(10):
            waiting, inner = outer(callback)
            assert inner == waiting

    assert in_threads(4, work) == []


def test_another_client_threads_request_is_served_beside_a_waiting_one(conn):
    conn.execute(
        "import threading\n"
        "def outer(cb):\n"
        "    return threading.get_ident(), cb()\n"
    )
    outer = conn.namespace["outer"]
    server_thread = conn.eval("lambda: __import__('threading').get_ident()")
    other_done = threading.Event()
    other = {}

    def other_thread():
        other["served_on"] = server_thread()
        other_done.set()

    def callback():
        # the server waits for this reply; another client thread's
        # request comes now, and must not wait for this one
        threading.Thread(target=other_thread).start()
        assert other_done.wait(DEADLINE), "the other thread's request was not served"
        return "done"

    waiting, result = outer(callback)
    assert result == "done"
    assert other["served_on"] != waiting


def test_bound_and_unbound_clients_on_one_port(server):
    if server.kind == "python":
        pytest.skip("rpyc's server binds threads for all its clients or for none")
    plain = rpyc.utils.factory.connect(server.host, server.port, rpyc.core.service.ClassicService,
                                       config={"bind_threads": False})
    threads_bound = bound(server)
    try:
        def work(n):
            conn = threads_bound if n % 2 else plain
            call_back = conn.eval("lambda cb, x: cb(x) * 2")
            end = time.monotonic() + 1
            i = 0
            while time.monotonic() < end or i < 10:
                assert call_back(lambda x: x + 1, i) == 2 * (i + 1)
                i += 1

        assert in_threads(4, work) == []
    finally:
        close_quietly(plain)
        close_quietly(threads_bound)
