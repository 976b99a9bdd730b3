"""Netrefs: the magic methods of remote objects, attributes, isinstance/issubclass."""

import sys

import pytest
import rpyc

from conftest import CLIENT_MAJOR


@pytest.fixture
def ns(conn):
    conn.execute(
        "class MyInt(int):\n"
        "    pass\n"
        "class Truthy:\n"
        "    def __init__(self, v):\n"
        "        self.v = v\n"
        "    def __bool__(self):\n"
        "        return self.v\n"
        "class Plain:\n"
        "    def __repr__(self):\n"
        "        return '<Plain repr>'\n"
        "    def __str__(self):\n"
        "        return 'Plain str'\n"
        "class Base:\n"
        "    def who(self):\n"
        "        return 'base'\n"
        "class Derived(Base):\n"
        "    def who(self):\n"
        "        return 'derived'\n"
        "cm_log = []\n"
        "class CM:\n"
        "    def __init__(self, suppress):\n"
        "        self.suppress = suppress\n"
        "    def __enter__(self):\n"
        "        cm_log.append('enter')\n"
        "        return 'entered'\n"
        "    def __exit__(self, t, v, tb):\n"
        "        cm_log.append(('exit', t, v, tb is not None))\n"
        "        return self.suppress\n"
    )
    return conn.namespace


@pytest.mark.skipif(CLIENT_MAJOR < 6, reason="rpyc 5's client builds netref classes "
                    "differently; this fails against rpyc 5's own server too")
def test_len_and_iter(conn):
    rl = conn.eval("[1, 2, 3]")
    rd = conn.eval("{'a': 1, 'b': 2}")
    assert type(rl).__name__ == "builtins.list"  # a netref, not a copy
    assert len(rl) == 3
    assert len(rd) == 2
    assert len(conn.eval("''.join")("abc")) == 3
    assert list(iter(rl)) == [1, 2, 3]
    assert sorted(iter(rd)) == ["a", "b"]
    assert list(reversed(rl)) == [3, 2, 1]


def test_getitem_setitem_delitem(conn):
    rl = conn.eval("[10, 20, 30, 40]")
    assert rl[0] == 10
    assert rl[-1] == 40
    assert list(rl[1:3]) == [20, 30]
    assert list(rl[::2]) == [10, 30]
    rl[0] = 11
    assert rl[0] == 11
    del rl[1]
    assert list(rl) == [11, 30, 40]
    rl[0:2] = conn.eval("[1, 2, 3]")
    assert list(rl) == [1, 2, 3, 40]
    with pytest.raises(IndexError):
        rl[100]

    rd = conn.eval("{}")
    rd["k"] = "v"
    rd[(1, 2)] = 3
    assert rd["k"] == "v"
    assert rd[(1, 2)] == 3
    del rd["k"]
    assert list(rd.keys()) == [(1, 2)]
    with pytest.raises(KeyError):
        del rd["k"]


def test_contains(conn):
    rl = conn.eval("[1, 'two', (3,)]")
    assert 1 in rl
    assert "two" in rl
    assert (3,) in rl
    assert 4 not in rl
    rd = conn.eval("{'a': 1}")
    assert "a" in rd
    assert "b" not in rd
    assert "ell" in conn.eval("['hello']")[0]


def test_arithmetic_on_remote_numbers(conn, ns):
    mi = ns["MyInt"](5)  # an int subclass is not brine-dumpable: a netref
    assert isinstance(mi, rpyc.BaseNetref)
    assert mi + 3 == 8
    assert 3 + mi == 8
    assert mi - 1 == 4
    assert 10 - mi == 5
    assert mi * 2 == 10
    assert 2 * mi == 10
    assert mi // 2 == 2
    assert mi % 3 == 2
    assert mi ** 2 == 25
    assert -mi == -5
    assert abs(mi) == 5
    assert int(mi) == 5
    assert float(mi) == 5.0

    third = conn.modules.fractions.Fraction(1, 3)
    assert str(third + 1) == "4/3"
    assert str(1 + third) == "4/3"
    assert third * 3 == 1
    assert str(third - conn.modules.fractions.Fraction(1, 6)) == "1/6"


def test_arithmetic_on_remote_sequences(conn):
    rl = conn.eval("[1, 2]")
    assert list(rl + conn.eval("[3]")) == [1, 2, 3]
    assert list(rl * 2) == [1, 2, 1, 2]
    assert list(2 * rl) == [1, 2, 1, 2]
    # In-place add with a client list: the server iterates it back.
    before = conn.builtins.id(rl)
    rl += [3, 4]
    assert conn.builtins.id(rl) == before
    assert list(rl) == [1, 2, 3, 4]
    # list.__add__ wants a real list; the client's list is a proxy there.
    with pytest.raises(TypeError):
        rl + [5]
    rs = conn.eval("{1, 2, 3}")
    assert set(rs - conn.eval("{1}")) == {2, 3}
    assert set(rs & conn.eval("{2, 9}")) == {2}
    assert set(rs | conn.eval("{7}")) == {1, 2, 3, 7}


def test_comparisons(conn, ns):
    a = conn.eval("[1, 2, 3]")
    b = conn.eval("[1, 2, 3]")
    c = conn.eval("[1, 2, 4]")
    assert a == b
    assert not (a != b)
    assert a != c
    assert a < c
    assert a <= b
    assert c > a
    assert c >= a
    assert not (a > c)
    mi = ns["MyInt"](5)
    assert mi == 5
    assert mi < 6
    assert mi > 4
    assert mi <= 5
    assert mi != 7
    third = conn.modules.fractions.Fraction(1, 3)
    assert third < 1
    assert third > conn.modules.fractions.Fraction(1, 4)
    # A client list reaches the server as a proxy, which list.__eq__ does
    # not accept: rpyc's CMP returns NotImplemented and the comparison
    # falls back to identity.
    assert (a == [1, 2, 3]) is False


def test_hash(conn, ns):
    o = conn.eval("object()")
    assert hash(o) == conn.builtins.hash(o)
    mi = ns["MyInt"](12345)
    assert hash(mi) == hash(12345)
    # Netrefs work as dict keys and set members.
    d = {o: "value"}
    assert d[o] == "value"
    assert o == o
    assert len({o, o}) == 1
    with pytest.raises(TypeError):
        hash(conn.eval("[]"))


def test_bool(conn, ns):
    assert bool(conn.eval("[]")) is False
    assert bool(conn.eval("[0]")) is True
    assert bool(conn.eval("{}")) is False
    assert bool(ns["Truthy"](False)) is False
    assert bool(ns["Truthy"](True)) is True
    assert bool(ns["Plain"]()) is True
    if conn.eval("[]"):
        pytest.fail("empty remote list is truthy")


def test_repr_and_str(conn, ns):
    rl = conn.eval("[1, 'a']")
    assert repr(rl) == "[1, 'a']"
    assert str(rl) == "[1, 'a']"
    p = ns["Plain"]()
    assert repr(p) == "<Plain repr>"
    assert str(p) == "Plain str"
    assert f"{p}" == "Plain str"
    assert repr(conn.modules.sys) == "<module 'sys' (built-in)>"
    assert repr(conn.builtins.dict) == repr(dict)


def test_attributes(conn, ns):
    p = ns["Plain"]()
    p.attr = 5
    assert p.attr == 5
    assert hasattr(p, "attr")
    assert "attr" in dir(p)
    assert conn.builtins.getattr(p, "attr") == 5
    setattr(p, "other", [1, 2])
    assert list(p.other) == [1, 2]
    del p.attr
    assert not hasattr(p, "attr")
    with pytest.raises(AttributeError):
        p.attr
    with pytest.raises(AttributeError):
        del p.never_there
    assert callable(conn.builtins.len)
    assert ns["Derived"]().who() == "derived"
    # Docstrings come from the remote object.
    assert conn.builtins.len.__doc__ == len.__doc__


def test_context_manager(conn, ns):
    CM = ns["CM"]
    log = ns["cm_log"]
    with CM(False) as value:
        assert value == "entered"
    assert list(log) == ["enter", ("exit", None, None, False)]


def test_context_manager_exception_suppressed(conn, ns):
    CM = ns["CM"]
    log = ns["cm_log"]
    with CM(True):
        raise KeyError("boom")
    # Reaching this line means __exit__ returned True and suppressed it.
    entries = list(log)
    assert entries[0] == "enter"
    kind, exc_type, exc_value, has_tb = entries[1]
    assert kind == "exit"
    assert has_tb is True
    assert exc_type is not None and exc_value is not None
    # rpyc 6.0.2 sends only the client's exception class (as a proxy); the
    # server's CTXEXIT handler does `raise exc` with it, which Python turns
    # into a TypeError, and that is what the remote __exit__ receives.
    assert conn.builtins.issubclass(exc_type, conn.builtins.BaseException)
    assert exc_type.__name__ == "TypeError"


def test_context_manager_exception_propagates(conn, ns):
    CM = ns["CM"]
    log = ns["cm_log"]
    with pytest.raises(ValueError) as info:
        with CM(False):
            raise ValueError("boom2")
    assert info.value.args == ("boom2",)
    entries = list(log)
    assert entries[0] == "enter"
    assert entries[1][0] == "exit"
    assert entries[1][1] is not None


def test_remote_file_context_manager(conn, tmp_path):
    path = str(tmp_path / "cm.txt")
    with conn.builtins.open(path, "w") as f:
        f.write("written remotely")
    assert f.closed
    with open(path) as f:
        assert f.read() == "written remotely"


@pytest.mark.skipif(CLIENT_MAJOR < 6, reason="rpyc 5's client builds netref classes "
                    "differently; this fails against rpyc 5's own server too")
def test_isinstance_remote_objects(conn):
    rl = conn.eval("[1, 2]")
    assert isinstance(rl, rpyc.BaseNetref)
    # Netref classes of builtin types pretend to be the local class.
    assert isinstance(rl, list)
    assert rl.__class__ is list
    assert isinstance(conn.modules.sys.path, list)
    assert isinstance(conn.eval("{}"), dict)
    assert not isinstance(rl, dict)
    # Against the remote class.
    assert isinstance(rl, conn.builtins.list)
    assert not isinstance(rl, conn.builtins.dict)
    assert isinstance(conn.modules.sys, type(sys))
    assert isinstance(5, conn.builtins.int)
    assert isinstance(None, conn.eval("type(None)"))
    assert isinstance(conn.builtins.Exception(), BaseException)
    assert isinstance(conn.builtins.Exception(), conn.builtins.Exception)
    with pytest.raises(TypeError):
        isinstance([], rl)  # arg 2 is not a class


def test_isinstance_custom_classes(conn, ns):
    Base, Derived = ns["Base"], ns["Derived"]
    b, d = Base(), Derived()
    assert isinstance(b, Base)
    assert isinstance(d, Derived)
    assert not isinstance(b, Derived)
    # Server-side checks are exact.
    assert conn.builtins.isinstance(d, Base) is True
    assert conn.builtins.isinstance(b, Derived) is False


def test_issubclass(conn, ns):
    assert issubclass(conn.builtins.bool, conn.builtins.int)
    assert not issubclass(conn.builtins.int, conn.builtins.bool)
    assert issubclass(ns["Derived"], ns["Base"])
    assert not issubclass(ns["Base"], ns["Derived"])
    assert conn.builtins.issubclass(ns["Derived"], ns["Base"]) is True
    assert conn.builtins.issubclass(conn.builtins.KeyError, conn.builtins.LookupError)


def test_isinstance_of_client_objects_on_server(conn):
    """Client objects are proxies on the server that still pass isinstance."""
    b = conn.builtins
    assert b.isinstance([1], b.list) is True
    assert b.isinstance({"a": 1}, b.dict) is True
    assert b.isinstance({"a": 1}, b.list) is False
    assert b.isinstance((1, 2), b.tuple) is True  # tuples travel by value
    assert b.callable(len) is True


def test_type_and_id_pack(conn):
    rl = conn.eval("[]")
    assert conn.builtins.type(rl) == conn.builtins.list
    assert conn.builtins.type(rl).__name__ == "list"
    # A class travels as (qualified name, id(class), 0).
    lst = conn.builtins.list
    assert lst.____id_pack__ == ("builtins.list", conn.builtins.id(lst), 0)
    module_cls = conn.builtins.type(conn.modules.sys)
    assert module_cls.____id_pack__ == ("builtins.module", conn.builtins.id(module_cls), 0)
    # An instance: (qualified class name, id(class), id(obj)).
    assert rl.____id_pack__ == ("builtins.list", conn.builtins.id(lst), conn.builtins.id(rl))
    assert repr(type(conn.modules.json)) == "<netref class 'rpyc.core.netref.json'>"
