"""A Python rpyc Service served by rpyc-serve behaves as under rpyc's own
ThreadedServer: every test runs against both (``kind``)."""

import pickle
import threading
import time

import pytest


def test_calls_and_exposed_names(calc):
    with calc.connect() as conn:
        root = conn.root
        assert root.add(2, 3) == 5
        assert root.exposed_add(2, 3) == 5
        assert root.distance((2, 7), (5, 11)) == 5
        assert root.distance((2, 7), (5, 11), scale=2) == 10
        assert root.answer == 42
        assert root.get_service_name() == "CALCULATOR"
        assert tuple(root.get_service_aliases()) == ("CALCULATOR", "CALC")
        assert [x * 2 for x in root.getlist()] == [2, 4, 6]


def test_the_service_knows_the_endpoints(calc):
    """conn._config["endpoints"]: (server's address, client's address)."""
    with calc.connect() as conn:
        ours = conn._channel.stream.sock.getsockname()
        theirs = conn._channel.stream.sock.getpeername()
        assert tuple(tuple(e) for e in conn.root.endpoints()) == (theirs, ours)
        assert conn.root.credentials() is None


def test_unexposed_names_are_refused(calc):
    with calc.connect() as conn:
        with pytest.raises(AttributeError):
            conn.root.foobar()
        with pytest.raises(AttributeError):
            conn.root.on_connect
        with pytest.raises(AttributeError):
            conn.root.conn


def test_setting_the_root_is_refused(calc):
    with calc.connect() as conn:
        with pytest.raises(AttributeError):
            conn.root.answer = 1
        with pytest.raises(AttributeError):
            del conn.root.answer


def test_callbacks(calc):
    seen = []

    def record(value, *, tag="x"):
        seen.append((value, tag))
        return value * 10

    with calc.connect() as conn:
        assert conn.root.apply(record, 4, tag="y") == 40
        assert list(conn.root.apply_many(lambda i: i + 1, 50)) == list(range(1, 51))
    assert seen == [(4, "y")]


def test_a_callback_that_raises(calc):
    def boom():
        raise KeyError("from the client")

    with calc.connect() as conn:
        with pytest.raises(KeyError) as raised:
            conn.root.apply(boom)
        assert "from the client" in str(raised.value)
        assert conn.root.add(1, 1) == 2


def test_exceptions(calc):
    with calc.connect() as conn:
        with pytest.raises(ZeroDivisionError) as raised:
            conn.root.div(1, 0)
        assert "division by zero" in str(raised.value)
        with pytest.raises(Exception) as raised:
            conn.root.fail("custom message")
        # rpyc's client makes a stand-in class named after the server's
        assert type(raised.value).__name__ == "calculator.CustomError"
        assert "custom message" in str(raised.value)
        assert conn.root.add(1, 2) == 3


def test_on_connect_and_on_disconnect(calc):
    first = calc.connect()
    assert first.root.add(0, 0) == 0
    first.close()
    deadline = time.monotonic() + 5
    with calc.connect() as second:
        while True:
            events = [tuple(event) for event in second.root.events()]
            if ("disconnect", True) in events or time.monotonic() > deadline:
                break
            time.sleep(0.05)
    # on_connect saw the client's root; on_disconnect the same connection
    assert events[:3] == [("connect", True), ("disconnect", True), ("connect", True)]


def test_time_service_from_rpyc_docs(serve):
    served = serve("calculator:TimeService")
    with served.connect() as conn:
        assert abs(conn.root.get_utc() - time.time()) < 60
        assert isinstance(conn.root.get_time(), str)
        assert conn.root.get_service_name() == "TIME"


def test_many_concurrent_clients(calc):
    errors = []

    def client(n):
        try:
            with calc.connect() as conn:
                for i in range(50):
                    assert conn.root.add(n, i) == n + i
                assert conn.root.apply(lambda: n) == n
        except Exception as error:  # reported below
            errors.append(repr(error))

    threads = [threading.Thread(target=client, args=(n,)) for n in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors
    assert not any(thread.is_alive() for thread in threads)


# rpyc's own tests/test_attr_access.py TestConfigAllows: what each protocol
# configuration lets a client reach of a class the service exposes


def my_class(serve, config):
    served = serve("attributes:MyService", config)
    conn = served.connect()
    return conn, conn.root.MyClass()


def test_attr_default_config(serve):
    conn, obj = my_class(serve, {})
    with conn:
        assert obj + "bar" == "foobar"
        assert obj.foobar() == "Fee Fie Foe Foo"
        assert obj.exposed_foobar() == "Fee Fie Foe Foo"
        for name in ("_privy", "foo", "bar", "spam"):
            with pytest.raises(AttributeError):
                getattr(obj, name)


def test_attr_allow_all(serve):
    conn, obj = my_class(serve, {"allow_all_attrs": True})
    with conn:
        assert obj + "bar" == "foobar"
        assert obj.__add__("bar") == "foobar"
        assert obj._privy() == "privy"
        assert obj.foobar() == "Fee Fie Foe Foo"


def test_attr_no_exposed(serve):
    served = serve("attributes:MyService", {"allow_exposed_attrs": False})
    with served.connect() as conn:
        with pytest.raises(Exception):
            conn.root.MyClass()


def test_attr_no_safe_attrs(serve):
    conn, obj = my_class(serve, {"allow_safe_attrs": False})
    with conn:
        assert obj.foobar() == "Fee Fie Foe Foo"
        with pytest.raises(AttributeError):
            obj + "bar"
        for name in ("_privy", "foo", "bar", "spam"):
            with pytest.raises(AttributeError):
                getattr(obj, name)


def test_attr_public(serve):
    conn, obj = my_class(serve, {"allow_public_attrs": True})
    with conn:
        assert obj + "bar" == "foobar"
        assert obj.foo() == "foo"
        assert obj.bar() == "bar"
        with pytest.raises(AttributeError):
            obj._privy


def test_restricted_object(serve):
    served = serve("attributes:MyService")
    with served.connect() as conn:
        obj = conn.root.get_one()
        assert obj.foo() == "foo"
        assert obj._privy() == "privy"
        with pytest.raises(AttributeError):
            obj.spam


def test_setattr_needs_allow_setattr(serve):
    refused = serve("attributes:Settable")
    with refused.connect() as conn:
        box = conn.root.box()
        with pytest.raises(AttributeError):
            box.value = 5
    allowed = serve("attributes:Settable", {"allow_setattr": True})
    with allowed.connect() as conn:
        box = conn.root.box()
        box.value = 5
        assert box.value == 5


def test_pickle_needs_allow_pickle(serve):
    refused = serve("attributes:Picklable")
    with refused.connect() as conn:
        with pytest.raises(ValueError):
            pickle.dumps(conn.root.data())
    allowed = serve("attributes:Picklable", {"allow_pickle": True})
    with allowed.connect() as conn:
        assert pickle.loads(pickle.dumps(conn.root.data())) == {"a": [1, 2, 3]}


def test_a_callback_past_sync_request_timeout_fails_in_the_service(serve):
    """rpyc's sync_request_timeout bounds how long the service waits for
    a callback: the service's call raises TimeoutError ("result
    expired"), which reaches the client; the connection serves on."""
    served = serve("calculator:CalculatorService", {"sync_request_timeout": 1})

    def slow():
        time.sleep(2.5)
        return "late"

    with served.connect() as conn:
        # this thread runs slow() itself, so it reads the timeout's reply
        # only after slow() returns: had the service waited, it would be "late"
        with pytest.raises(TimeoutError) as raised:
            conn.root.apply(slow)
        assert "result expired" in str(raised.value)
        assert conn.root.add(2, 2) == 4
        assert conn.root.apply(lambda: "prompt") == "prompt"
