"""rpycd.handlers: the client's requests that run its code, answered by a
Remote (on a fake link) as rpyc 6.0.2's Connection._handle_* answer them
under the classic configuration."""
import gc
import pickle
import types

import pytest

from rpycd import handlers, introspect
from rpycd.consts import HANDLE_INSPECT, MAXINT

THING = ("their.Thing", 1001, 2002)


class Overrides:
    """A type with rpyc's attribute hooks."""

    def __init__(self):
        self.seen = []

    def _rpyc_getattr(self, name):
        self.seen.append(("get", name))
        return f"hooked {name}"

    def _rpyc_setattr(self, name, value):
        self.seen.append(("set", name, value))

    def _rpyc_delattr(self, name):
        self.seen.append(("del", name))


class Exits:
    def __init__(self):
        self.exits = []

    def __exit__(self, typ, value, tb):
        self.exits.append((typ, value, tb))
        return "exit's answer"


class OldSlices:
    """Slicing by __getslice__ only: __getitem__ refuses slices."""

    def __getitem__(self, index):
        raise TypeError("no slices here")

    def getslice(self, start, stop, *args):
        return ("getslice", start, stop, args)


def test_attributes(remote):
    obj = types.SimpleNamespace(a=1)
    assert remote._handle_getattr(obj, "a") == 1
    assert remote._handle_getattr(obj, b"a") == 1
    remote._handle_setattr(obj, "b", 2)
    remote._handle_delattr(obj, "a")
    assert vars(obj) == {"b": 2}
    with pytest.raises(TypeError, match="name must be a string"):
        remote._handle_getattr(obj, 5)
    with pytest.raises(AttributeError):
        remote._handle_getattr(obj, "a")


def test_a_types_rpyc_hooks_come_first(remote):
    obj = Overrides()
    assert remote._handle_getattr(obj, "x") == "hooked x"
    remote._handle_setattr(obj, "y", 1)
    remote._handle_delattr(obj, "z")
    assert obj.seen == [("get", "x"), ("set", "y", 1), ("del", "z")]


def test_access_attr_applies_the_check_to_the_name(remote):
    obj = types.SimpleNamespace(exposed_a=1)
    assert handlers._access_attr(obj, "a", (), "_rpyc_getattr", getattr,
                                 lambda obj, name: "exposed_" + name) == 1


def test_calls(remote):
    assert remote._handle_call(dict, ((("a", 1),),), (("b", 2),)) == {"a": 1, "b": 2}
    assert remote._handle_call(max, (3, 9)) == 9
    assert remote._handle_callattr("a,b", "split", (",",)) == ["a", "b"]
    assert remote._handle_callattr(5, "to_bytes", (2,), (("byteorder", "big"),)) == b"\0\5"


def test_comparison_is_the_types_method(remote):
    obj = types.SimpleNamespace()
    obj.__eq__ = lambda other: "the instance's"
    assert remote._handle_cmp(obj, obj, "__eq__") is True
    assert remote._handle_cmp(3, 4, "__lt__") is True
    assert remote._handle_cmp(3, 4, "__gt__") is False
    # the type's method itself, without the operator's fallbacks
    assert remote._handle_cmp(3, 4.0, "__lt__") is NotImplemented


def test_pickle_is_bytes_in_the_protocol_asked(remote):
    data = remote._handle_pickle({"k": [1, 2]}, 2)
    assert type(data) is bytes and data[:2] == b"\x80\x02"
    assert pickle.loads(data) == {"k": [1, 2]}


def test_buffiter_takes_up_to_count(remote):
    iterator = iter(range(5))
    assert remote._handle_buffiter(iterator, 3) == (0, 1, 2)
    assert remote._handle_buffiter(iterator, 3) == (3, 4)
    assert remote._handle_buffiter(iterator, 3) == ()


def test_old_slicing_tries_getitem_then_the_fallback(remote):
    assert remote._handle_oldslicing([0, 1, 2, 3], "__getitem__", "__getslice__", 1, 3, ()) == [1, 2]
    assert remote._handle_oldslicing([0, 1, 2, 3], "__getitem__", "__getslice__", 2, None, ()) == [2, 3]
    assert remote._handle_oldslicing(OldSlices(), "__getitem__", "getslice", 1, None, ("x",)) == (
        "getslice", 1, MAXINT, ("x",))


def test_ctxexit_raises_the_exception_for_exit_to_see(remote):
    obj = Exits()
    assert remote._handle_ctxexit(obj, None) == "exit's answer"
    error = KeyError("k")
    remote._handle_ctxexit(obj, error)
    (none, none_too, no_tb), (typ, value, tb) = obj.exits
    assert (none, none_too, no_tb) == (None, None, None)
    assert typ is KeyError and value is error and tb is not None


def test_inspect_of_a_local_object_is_its_methods(remote, link):
    assert remote._handle_inspect([]) == introspect.methods_of([])
    assert link.requests == []


def test_inspect_of_a_proxy_asks_its_connection(remote, link):
    link.answers[HANDLE_INSPECT] = lambda pack: (("m", None),)
    proxy = remote.proxy(THING)
    link.requests.clear()
    assert remote._handle_inspect(proxy) == (("m", None),)
    assert link.requests == [(HANDLE_INSPECT, (THING,))]


def test_instancecheck_with_a_builtin_class_probes_without_a_reference(remote, link):
    assert remote._handle_instancecheck(int, ("builtins.int", id(int), 7)) is True
    assert remote._handle_instancecheck(str, ("builtins.int", id(int), 7)) is False
    gc.collect()
    # the probes were never counted by the client: they give back nothing
    assert [count for _, count in link.releases] == [0, 0]
    assert link.requests == []


def test_instancecheck_with_an_unknown_class_is_false(remote, link):
    assert remote._handle_instancecheck(int, ("their.Unseen", 5, 6)) is False
    assert link.requests == []


def test_instancecheck_with_a_client_class_it_has_a_proxy_class_for(remote, link):
    link.answers[HANDLE_INSPECT] = lambda pack: ()
    their_class = remote.proxy(("their.Thing", 1001, 0))
    link.requests.clear()
    assert remote._handle_instancecheck(object, ("their.Thing", 1001, 2002)) is True
    assert link.requests == []
    assert their_class.____refcount__ == 1
    assert [count for _, count in link.releases] == [0]


def test_instancecheck_of_a_proxy_asks_its_connection_as_rpyc_does(remote, link):
    # rpyc 6.0.2 forwards it as an INSPECT, not an INSTANCECHECK
    link.answers[HANDLE_INSPECT] = lambda pack: "the client's answer"
    proxy = remote.proxy(("builtins.list", id(list), 3))
    assert remote._handle_instancecheck(proxy, ("builtins.int", id(int), 7)) == "the client's answer"
    assert link.requests == [(HANDLE_INSPECT, (("builtins.int", id(int), 7),))]
