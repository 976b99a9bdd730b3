"""Iteration over remote objects and callbacks in both directions."""

import threading

import pytest
import rpyc


@pytest.fixture
def helpers(conn):
    conn.execute(
        "def call(f, *a, **k):\n"
        "    return f(*a, **k)\n"
        "def gen(n):\n"
        "    for i in range(n):\n"
        "        yield i * i\n"
        "def apply_all(fs, v):\n"
        "    return [f(v) for f in fs]\n"
    )
    return conn.namespace


def test_iterate_remote_generator(conn, helpers):
    g = helpers["gen"](6)
    assert list(g) == [0, 1, 4, 9, 16, 25]
    # Exhausted: further next() raises StopIteration.
    with pytest.raises(StopIteration):
        next(g)
    # for-loop with early break, then continue iterating.
    g2 = helpers["gen"](100)
    seen = []
    for v in g2:
        seen.append(v)
        if len(seen) == 3:
            break
    assert seen == [0, 1, 4]
    assert next(g2) == 9


def test_iterate_remote_list_and_dict(conn):
    rl = conn.eval("[10, 20, 30]")
    assert [x for x in rl] == [10, 20, 30]
    assert list(reversed(rl)) == [30, 20, 10]
    rd = conn.eval("{'a': 1, 'b': 2}")
    assert sorted(rd) == ["a", "b"]
    assert sorted(rd.items()) == [("a", 1), ("b", 2)]
    assert dict(rd) == {"a": 1, "b": 2}


def test_buffiter(conn):
    big = conn.eval("list(range(2500))")
    assert list(rpyc.buffiter(big, chunk=7, max_chunk=300)) == list(range(2500))


def test_client_function_passed_to_remote(conn, helpers):
    call = helpers["call"]
    assert call(lambda a, b: a + b, 2, 3) == 5

    def kw(a, *, scale=1, offset=0):
        return a * scale + offset

    assert call(kw, 4, scale=3, offset=1) == 13
    # A client closure that mutates client state.
    box = []
    call(box.append, "from-server")
    assert box == ["from-server"]
    # A client bound method.
    assert call("abc".upper) == "ABC"
    # Several callbacks in one remote call.
    result = helpers["apply_all"]([lambda v: v + 1, lambda v: v * 10, str], 7)
    assert list(result) == [8, 70, "7"]


def test_client_list_to_remote_list(conn):
    rl = conn.builtins.list([1, 2, 3])
    # The server built its own list by iterating ours.
    assert isinstance(rl, conn.builtins.list)
    assert conn.builtins.type(rl).__name__ == "list"
    assert list(rl) == [1, 2, 3]
    assert len(rl) == 3
    rl.append(4)
    assert list(rl) == [1, 2, 3, 4]
    # Other client iterables.
    assert conn.builtins.tuple(x * 2 for x in range(4)) == (0, 2, 4, 6)
    assert conn.builtins.sum([1, 2, 3, 4, 5]) == 15
    assert set(conn.builtins.set({"x", "y"})) == {"x", "y"}
    rd = conn.builtins.dict({"k": [1, 2]})
    assert list(rd["k"]) == [1, 2]


def test_sorted_with_client_key(conn):
    data = ["bb", "a", "dddd", "ccc"]
    calls = []

    def key(s):
        calls.append(s)
        return len(s)

    result = conn.builtins.sorted(data, key=key)
    assert list(result) == ["a", "bb", "ccc", "dddd"]
    assert sorted(calls) == sorted(data)
    rev = conn.builtins.sorted(data, key=lambda s: -len(s))
    assert list(rev) == ["dddd", "ccc", "bb", "a"]
    assert list(conn.builtins.map(lambda x: x + 1, [1, 2, 3])) == [2, 3, 4]
    assert list(conn.builtins.filter(lambda x: x % 2, range(7))) == [1, 3, 5]


def test_server_uses_client_modules(conn, helpers):
    """The client is a classic service too: the server may call back into it."""
    import os

    client_getpid = os.getpid
    assert helpers["call"](client_getpid) == os.getpid()
    assert helpers["call"](client_getpid) != conn.modules.os.getpid()


def test_nested_callbacks_three_levels(conn):
    """client -> server -> client -> server -> client -> server."""
    import os

    conn.execute(
        "import os\n"
        "def s1(c1):\n"
        "    return ('s1', os.getpid(), c1(s2))\n"
        "def s2(c2):\n"
        "    return ('s2', os.getpid(), c2(s3))\n"
        "def s3(depth):\n"
        "    import threading\n"
        "    return ('s3', os.getpid(), depth)\n"
    )
    server_pid = conn.modules.os.getpid()
    trail = []

    def c1(s2):
        trail.append("c1")
        return ("c1", os.getpid(), s2(c2))

    def c2(s3):
        trail.append("c2")
        return ("c2", os.getpid(), s3(3))

    result = conn.namespace["s1"](c1)
    expected = ("s1", server_pid, ("c1", os.getpid(), ("s2", server_pid, ("c2", os.getpid(), ("s3", server_pid, 3)))))
    # Nested tuples of plain values come back by value.
    assert result == expected
    assert trail == ["c1", "c2"]


def test_nested_callbacks_with_exception_in_the_middle(conn):
    conn.execute(
        "def outer(cb):\n"
        "    try:\n"
        "        return cb(inner)\n"
        "    except KeyError as e:\n"
        "        return 'outer caught ' + e.args[0]\n"
        "def inner():\n"
        "    raise KeyError('from inner')\n"
    )

    def cb(inner):
        inner()  # raises KeyError on the server, through the client, back to the server

    assert conn.namespace["outer"](cb) == "outer caught from inner"


def test_callback_deep_recursion(conn):
    """A ping-pong recursion 20 levels deep in each direction."""
    conn.execute(
        "def down(n, client_down):\n"
        "    if n == 0:\n"
        "        return 0\n"
        "    return 1 + client_down(n - 1, down)\n"
    )

    def client_down(n, server_down):
        if n == 0:
            return 0
        return 1 + server_down(n - 1, client_down)

    assert conn.namespace["down"](40, client_down) == 40


def test_callbacks_from_several_client_threads(conn, helpers):
    """Sync requests from several client threads on one connection."""
    call = helpers["call"]
    errors = []
    results = {}

    def worker(n):
        try:
            results[n] = [call(lambda x: x * n, i) for i in range(30)]
        except Exception as e:  # pragma: no cover - reported below
            errors.append(repr(e))

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not any(t.is_alive() for t in threads)
    assert errors == []
    for n in range(5):
        assert results[n] == [i * n for i in range(30)]
