"""The Rust example service (examples/counter_service.rs) used by the stock
``rpyc.connect`` client: calls, keywords, exposed_ names, callbacks,
exceptions, objects by reference, many clients, forking mode."""

import threading

import pytest
import rpyc
from rpyc.core.vinegar import GenericException

from rust_helpers import RustService


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    served = RustService("threaded", tmp_path_factory.mktemp("rust"))
    yield served
    assert served.stop() == 0, served.log()


@pytest.fixture
def conn(service):
    c = rpyc.connect("127.0.0.1", service.port, config={"sync_request_timeout": 10})
    yield c
    c.close()


def test_calls_and_keyword_arguments(conn):
    root = conn.root
    assert root.add(1, 2) == 3
    assert root.add(a=1, b=5) == 6
    assert root.add(1, b=7) == 8
    assert root.greet("Ada") == "Hello, Ada!"
    assert root.greet("Ada", greeting="Hi") == "Hi, Ada!"
    assert root.echo((1, "a", None, 2.5, b"x")) == (1, "a", None, 2.5, b"x")
    assert root.version == "1.0"
    # brine cannot carry a list: it travels by reference and is read back
    assert root.sum([1, 2, 3]) == 6
    assert root.sum((4, 5)) == 9


def test_exposed_names_and_service_names(conn):
    root = conn.root
    assert root.exposed_add(3, 4) == 7
    assert root.get_service_name() == "COUNTER"
    assert root.get_service_aliases() == ("COUNTER", "RUST-COUNTER")
    assert "add" in dir(root) and "exposed_add" in dir(root)
    add = root.add
    assert add(20, 22) == 42
    assert "add" in repr(add)


def test_callbacks_into_the_client(conn):
    root = conn.root
    assert root.apply(lambda x: x * 2, 21) == 42
    assert root.apply(lambda a, b=0: a - b, 10, b=3) == 7
    assert root.map(lambda x: x + 1, [1, 2, 3]) == (2, 3, 4)
    seen = []
    root.apply(seen.append, "called")
    assert seen == ["called"]
    # the server asks the client's own service back
    assert root.whoami() == "VOID"


def test_exceptions_keep_class_and_message(conn):
    root = conn.root
    with pytest.raises(ZeroDivisionError, match="division by zero") as info:
        root.div(1, 0)
    assert "CounterService.div" in "".join(info.value._remote_tb)
    with pytest.raises(KeyError) as info:
        root.fail("KeyError", "k")
    assert info.value.args == ("k",)
    with pytest.raises(ValueError, match="bad value"):
        root.fail("ValueError", "bad value")
    # a class the client cannot import: rpyc's stand-in, named after it
    with pytest.raises(Exception) as info:
        root.fail("mymod.MyError", "m")
    assert type(info.value).__name__ == "mymod.MyError"
    assert isinstance(info.value, GenericException)
    assert info.value.args == ("m",)
    with pytest.raises(TypeError, match="'b'"):
        root.add(1)
    with pytest.raises(TypeError, match="unexpected keyword"):
        root.add(1, 2, c=3)
    with pytest.raises(TypeError):
        root.add("one", 2)
    with pytest.raises(AttributeError, match="cannot access"):
        root.no_such_thing
    with pytest.raises(AttributeError):
        root.version = "2"
    # an exception the client's callback raises comes back as itself
    def failing():
        raise LookupError("from the client")
    with pytest.raises(LookupError, match="from the client"):
        root.apply(failing)
    # the connection is fine after all of that
    assert root.add(2, 2) == 4


def test_objects_by_reference(service, conn):
    root = conn.root
    counter = root.counter(start=10)
    assert counter.increment() == 11
    assert counter.increment(step=5) == 16
    assert counter.value == 16
    assert counter() == 16
    assert repr(counter) == "<Counter value=16>"
    assert counter.__doc__ == "A counter that lives in the server."
    other = root.counter()
    assert other.value == 0 and counter.value == 16
    assert root.echo(counter) is counter
    counter.reset()
    assert counter.value == 0
    with pytest.raises(AttributeError):
        counter.nope
    shared = root.shared
    assert shared is root.shared
    before = shared.value
    with rpyc.connect("127.0.0.1", service.port) as second:
        second.root.shared.increment()
    assert shared.value == before + 1


def test_references_are_released(conn):
    root = conn.root
    for _ in range(50):
        root.counter(start=1).increment()
    # a callback passed many times: the server gives each reference back
    for i in range(20):
        assert root.apply(lambda x: x, i) == i
    conn.ping()
    assert len(conn._local_objects._dict) <= 1, conn._local_objects._dict


def test_many_concurrent_clients(service):
    errors = []

    def client(index):
        try:
            with rpyc.connect("127.0.0.1", service.port) as c:
                for i in range(25):
                    assert c.root.add(index, i) == index + i
                assert c.root.apply(lambda: index) == index
        except Exception as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(24)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads)
    assert errors == []


def test_forking_mode_isolates_connections(tmp_path):
    served = RustService("forking", tmp_path)
    try:
        with rpyc.connect("127.0.0.1", served.port) as a, rpyc.connect("127.0.0.1", served.port) as b:
            pid_a, pid_b = a.root.pid(), b.root.pid()
            assert served.proc.pid not in (pid_a, pid_b)
            assert pid_a != pid_b
            # each child has its own copy of the shared counter
            a.root.shared.increment(step=5)
            assert a.root.shared.value == 5
            assert b.root.shared.value == 0
            assert a.root.apply(lambda x: x * 3, 3) == 9
            with pytest.raises(ZeroDivisionError):
                b.root.div(1, 0)
    finally:
        assert served.stop() == 0, served.log()


def test_thread_pool_mode(tmp_path):
    served = RustService("threadpool", tmp_path)
    try:
        with rpyc.connect("127.0.0.1", served.port) as c:
            assert c.root.add(1, 2) == 3
            assert c.root.counter(start=2).increment() == 3
    finally:
        assert served.stop() == 0, served.log()
