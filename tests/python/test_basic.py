"""Connecting, remote modules, eval/execute/namespace, isolation, ping, close."""

import os
import sys
import time

import pytest
import rpyc

from conftest import CLIENT_MAJOR


def test_classic_connect(server):
    c = rpyc.classic.connect(server.host, server.port)
    try:
        assert not c.closed
        # The classic root is the server's SlaveService.
        assert c.root.get_service_name() == "SLAVE"
        # The code runs in the server process, not here.
        pid = c.modules.os.getpid()
        assert pid != os.getpid()
        assert pid == server.proc.pid
    finally:
        c.close()
    assert c.closed


def test_modules_attribute_access(conn):
    sys_ = conn.modules.sys
    assert sys_.version_info[0] == 3
    assert sys_.maxsize == sys.maxsize
    assert isinstance(sys_.platform, str) and sys_.platform == sys.platform
    assert conn.modules.math.sqrt(16) == 4.0
    assert conn.modules.math.pi == pytest.approx(3.141592653589793)


def test_modules_getitem_dotted(conn):
    ospath = conn.modules["os.path"]
    assert ospath.join("a", "b", "c") == "a/b/c"
    assert ospath.basename("/x/y/z.txt") == "z.txt"
    assert conn.modules["os.path"].isabs("/etc") is True
    # The same module through attribute access on the parent.
    assert conn.modules.os.path.join("p", "q") == "p/q"


def test_modules_contains_and_missing(conn):
    assert "json" in conn.modules
    assert "no_such_module_rpycd_xyz" not in conn.modules
    with pytest.raises(ImportError) as info:
        conn.modules["no_such_module_rpycd_xyz"]
    assert isinstance(info.value, ModuleNotFoundError)
    assert "no_such_module_rpycd_xyz" in info.value._remote_tb
    # rpyc 5 and 6's ModuleNamespace turn ImportError into AttributeError
    # for dot access; rpyc 4's lets the ImportError through
    with pytest.raises(AttributeError if CLIENT_MAJOR >= 5 else ImportError):
        conn.modules.no_such_module_rpycd_xyz


def test_builtins(conn):
    b = conn.builtins
    assert b.len("hello") == 5
    assert b.sum((1, 2, 3, 4)) == 10
    assert b.max(3, 9, 2) == 9
    assert b.abs(-7) == 7
    assert b.int("42") == 42
    assert b.repr("x") == "'x'"
    # conn.builtin is the old alias.
    assert conn.builtin.len((1, 2)) == 2
    assert conn.modules.builtins.min(5, 1) == 1


def test_eval(conn):
    assert conn.eval("1 + 2") == 3
    assert conn.eval("'ab' * 3") == "ababab"
    assert conn.eval("(1, 'two', 3.0, None, True, b'x')") == (1, "two", 3.0, None, True, b"x")
    big = 2 ** 100
    assert conn.eval("2 ** 100") == big
    assert conn.eval("-(2 ** 70)") == -(2 ** 70)
    assert conn.eval("frozenset([1, 2])") == frozenset([1, 2])
    assert conn.eval("1+2j") == 1 + 2j
    assert conn.eval("slice(1, 5, 2)") == slice(1, 5, 2)
    assert conn.eval("...") is Ellipsis
    assert conn.eval("NotImplemented") is NotImplemented


def test_execute_and_namespace(conn):
    conn.execute("x = 21")
    conn.execute("def double(v):\n    return v * 2\n")
    assert conn.eval("double(x)") == 42
    assert conn.namespace["x"] == 21
    assert conn.namespace["double"](5) == 10
    assert "double" in conn.namespace
    # Writing through the namespace netref is visible to eval.
    conn.namespace["y"] = 100
    assert conn.eval("x + y") == 121
    # execute returns None; statements can import.
    assert conn.execute("import collections") is None
    assert conn.eval("collections.Counter('aab')['a']") == 2


def test_execute_syntax_error(conn):
    with pytest.raises(SyntaxError):
        conn.execute("def broken(:\n")
    with pytest.raises(SyntaxError):
        conn.eval("x = 1")  # a statement is not an expression


def test_namespace_isolated_between_connections(connect):
    a = connect()
    b = connect()
    a.execute("isolated_name = 1")
    assert a.eval("isolated_name") == 1
    with pytest.raises(NameError) as info:
        b.eval("isolated_name")
    assert "isolated_name" in str(info.value)
    assert "isolated_name" not in b.namespace
    b.execute("isolated_name = 2")
    assert a.eval("isolated_name") == 1
    assert b.eval("isolated_name") == 2


def test_modules_shared_between_connections(connect):
    a = connect()
    b = connect()
    marker = f"shared-{os.getpid()}-{time.monotonic_ns()}"
    a.modules.json.rpycd_test_marker = marker
    try:
        assert b.modules.json.rpycd_test_marker == marker
        # Same through execute/eval of an import in each namespace.
        a.execute("import json; json.rpycd_test_marker2 = 'via-exec'")
        assert b.eval("__import__('json').rpycd_test_marker2") == "via-exec"
        # The module object is the same: same id on the server.
        assert a.eval("id(__import__('json'))") == b.eval("id(__import__('json'))")
    finally:
        del a.modules.json.rpycd_test_marker
        a.execute("del json.rpycd_test_marker2")
    assert not b.builtins.hasattr(b.modules.json, "rpycd_test_marker")


def test_ping(conn):
    conn.ping()
    conn.ping(data=b"rpycd" * 100, timeout=5)
    # ping compares the echo with what it sent.
    for _ in range(20):
        conn.ping()


def test_close_and_server_keeps_serving(server):
    for _ in range(5):
        c = server.connect()
        assert c.eval("6 * 7") == 42
        c.close()
        assert c.closed
        with pytest.raises(EOFError):
            c.eval("1")
    # A connection dropped without close() does not disturb the server.
    c = server.connect()
    c.eval("1")
    c._channel.stream.sock.close()
    fresh = server.connect()
    try:
        assert fresh.modules.math.factorial(5) == 120
    finally:
        fresh.close()


def test_close_is_prompt(server):
    """close() sends CLOSE as a sync request and waits for the server to end
    the connection (up to the 30 s sync timeout): the server must do so at once."""
    started = time.monotonic()
    for _ in range(10):
        c = server.connect()
        c.ping()
        c.close()
    assert time.monotonic() - started < 5


def test_many_sequential_connections(server):
    start = time.monotonic()
    for i in range(50):
        c = server.connect()
        try:
            assert c.eval(f"{i} + 1") == i + 1
        finally:
            c.close()
    assert time.monotonic() - start < 30


BRINE_VALUES = [
    None, True, False,
    0, 1, -1, -48, -49, 159, 160, 255, 256, 2 ** 31, -(2 ** 31) - 1, 2 ** 63, 2 ** 200, -(2 ** 200),
    0.0, -0.0, 1.5, 1e308, float("inf"), float("-inf"),
    1j, -2.5 + 3j,
    "", "a", "héllo wörld ☃", "x" * 100_000,
    b"", b"\x00\xff", bytes(range(256)) * 400,
    (), (1,), (1, (2, (3, ("deep",)))), ("mixed", 1, 2.0, None, b"b"),
    frozenset(), frozenset({1, "a", (2, 3)}),
    slice(None), slice(1, 10, 2),
    Ellipsis, NotImplemented,
]


@pytest.mark.parametrize("value", BRINE_VALUES, ids=[repr(v)[:30] for v in BRINE_VALUES])
def test_value_round_trip(conn, value):
    """Immutable brine values travel by value, both ways, keeping their type."""
    echo = conn.eval("lambda x: (x, type(x).__name__, repr(x))")
    back, type_name, remote_repr = echo(value)
    assert type(back) is type(value)
    assert type_name == type(value).__name__
    if isinstance(value, frozenset):
        assert back == value
    else:
        assert remote_repr == repr(value)
        assert back == value or (back != back and value != value)


def test_nan_round_trip(conn):
    import math
    assert math.isnan(conn.eval("lambda x: x")(float("nan")))
    assert math.isnan(conn.eval("float('nan')"))


def test_object_identity_round_trip(conn):
    """A client object sent to the server comes back as the very same object;
    a server object sent back to the server is the server's own object."""
    echo = conn.eval("lambda x: x")
    local_list = [1, 2]
    local_obj = object()
    assert echo(local_list) is local_list
    assert echo(local_obj) is local_obj
    assert echo(echo) is echo
    remote = conn.eval("[3, 4]")
    assert echo(remote) is remote
    same = conn.eval("lambda a, b: a is b")
    assert same(remote, remote) is True
    assert same(local_list, local_list) is True
    assert same(local_list, [1, 2]) is False
