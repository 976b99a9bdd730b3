"""rpycd.netref: a proxy turns what is done to it into requests over its
connection (a Remote, here on a fake link), and answers its own names
itself."""
import gc
import pickle

import pytest

from rpycd import netref
from rpycd.consts import (
    HANDLE_CALL, HANDLE_CALLATTR, HANDLE_CMP, HANDLE_CTXEXIT, HANDLE_DELATTR, HANDLE_DIR,
    HANDLE_GETATTR, HANDLE_HASH, HANDLE_INSPECT, HANDLE_INSTANCECHECK, HANDLE_OLDSLICING,
    HANDLE_PICKLE, HANDLE_REPR, HANDLE_SETATTR, HANDLE_STR, MAXINT,
)

THING = ("their.Thing", 1001, 2002)
THING_CLASS = ("their.Thing", 1001, 0)
METHODS = (("frob", "frobs the thing"), ("__call__", None), ("__getslice__", None),
           ("__len__", None))


@pytest.fixture
def thing(remote, link):
    """A proxy for a client object of a type rpycd has no class for."""
    link.answers[HANDLE_INSPECT] = lambda pack: METHODS
    proxy = remote.proxy(THING)
    assert link.requests == [(HANDLE_INSPECT, (THING,))]
    link.requests.clear()
    return proxy


def test_attributes_are_requests(thing, link):
    link.answers[HANDLE_GETATTR] = lambda obj, name: f"their {name}"
    assert thing.colour == "their colour"
    thing.colour = "red"
    del thing.colour
    assert link.requests == [
        (HANDLE_GETATTR, (thing, "colour")),
        (HANDLE_SETATTR, (thing, "colour", "red")),
        (HANDLE_DELATTR, (thing, "colour")),
    ]


def test_the_proxys_own_names_are_no_requests(thing, link):
    assert thing.____id_pack__ == THING
    assert thing.____refcount__ == 1
    assert thing.____conn__ is not None
    for name in netref.DELETED_ATTRS:
        with pytest.raises(AttributeError):
            getattr(thing, name)
    assert link.requests == []


def test_builtins_are_requests(thing, link):
    link.answers.update({
        HANDLE_REPR: "<their repr>", HANDLE_STR: "their str", HANDLE_HASH: 77,
        HANDLE_DIR: ("a", "b"), HANDLE_CMP: lambda obj, other, op: op,
    })
    assert repr(thing) == "<their repr>"
    assert str(thing) == "their str"
    assert hash(thing) == 77
    assert dir(thing) == ["a", "b"]
    assert (thing == 1, thing != 2, thing < 3, thing <= 4, thing > 5, thing >= 6) == (
        "__eq__", "__ne__", "__lt__", "__le__", "__gt__", "__ge__")
    assert link.handlers() == [HANDLE_REPR, HANDLE_STR, HANDLE_HASH, HANDLE_DIR] + [HANDLE_CMP] * 6
    assert [args for _, args in link.requests[4:]] == [
        (thing, 1, "__eq__"), (thing, 2, "__ne__"), (thing, 3, "__lt__"),
        (thing, 4, "__le__"), (thing, 5, "__gt__"), (thing, 6, "__ge__"),
    ]


def test_the_class_has_the_clients_methods_as_requests(thing, link):
    link.answers[HANDLE_CALLATTR] = "frobbed"
    link.answers[HANDLE_CALL] = "called"
    assert type(thing).frob.__doc__ == "frobs the thing"
    assert type(thing).frob(thing, 1, 2, key="value") == "frobbed"
    assert thing(3, other=4) == "called"
    assert link.requests == [
        (HANDLE_CALLATTR, (thing, "frob", (1, 2), (("key", "value"),))),
        (HANDLE_CALL, (thing, (3,), (("other", 4),))),
    ]


def test_a_method_through_the_instance_is_the_clients_attribute(thing, link):
    link.answers[HANDLE_GETATTR] = lambda obj, name: len
    assert thing.frob("four") == 4
    assert link.requests == [(HANDLE_GETATTR, (thing, "frob"))]


def test_a_dunder_method_is_a_callattr(thing, link):
    link.answers[HANDLE_CALLATTR] = 12
    assert len(thing) == 12
    assert link.requests == [(HANDLE_CALLATTR, (thing, "__len__", (), ()))]


def test_old_slicing_is_its_own_request(thing, link):
    link.answers[HANDLE_OLDSLICING] = "sliced"
    assert type(thing).__getslice__(thing, 1, MAXINT) == "sliced"
    assert type(thing).__getslice__(thing, 1, 5, "extra") == "sliced"
    assert link.requests == [
        (HANDLE_OLDSLICING, (thing, "__getitem__", "__getslice__", 1, None, ())),
        (HANDLE_OLDSLICING, (thing, "__getitem__", "__getslice__", 1, 5, ("extra",))),
    ]


def test_leaving_a_with_block_sends_the_exception(thing, link):
    link.answers[HANDLE_CTXEXIT] = False
    error = ValueError("inside")
    assert thing.__exit__(error, type(error), None) is False
    assert link.requests == [(HANDLE_CTXEXIT, (thing, error))]


def test_pickling_a_proxy_pickles_the_clients_object(thing, link):
    link.answers[HANDLE_PICKLE] = lambda obj, proto: pickle.dumps({"their": "state"}, proto)
    assert pickle.loads(pickle.dumps(thing, 4)) == {"their": "state"}
    assert link.requests == [(HANDLE_PICKLE, (thing, 4))]


def test_a_dropped_proxy_gives_back_the_references_it_counted(remote, link):
    proxy = remote.proxy(("builtins.list", id(list), 31))
    assert remote.proxy(("builtins.list", id(list), 31)) is proxy
    assert proxy.____refcount__ == 2
    del proxy
    gc.collect()
    assert link.releases == [(("builtins.list", id(list), 31), 2)]


def test_isinstance_with_a_class_proxy(remote, link):
    link.answers[HANDLE_INSPECT] = lambda pack: ()
    link.answers[HANDLE_INSTANCECHECK] = "asked the client"
    their_class = remote.proxy(THING_CLASS)
    int_class = remote.proxy(("builtins.int", id(int), 0))
    same_type = remote.proxy(THING)
    other_type = remote.proxy(("their.Other", 1003, 2004))
    link.requests.clear()
    # a local object against a builtin class: the local class answers
    assert isinstance(5, int_class) and not isinstance("5", int_class)
    # a proxy of the same client type is an instance; a class is not
    assert netref.BaseNetref.__instancecheck__(their_class, same_type) is True
    assert netref.BaseNetref.__instancecheck__(their_class, their_class) is False
    assert link.requests == []
    # any other proxy: the client decides
    assert netref.BaseNetref.__instancecheck__(their_class, other_type) == "asked the client"
    assert link.requests == [(HANDLE_INSTANCECHECK, (their_class, other_type.____id_pack__))]


def test_isinstance_with_an_instance_proxy_is_a_type_error(thing):
    with pytest.raises(TypeError, match="isinstance"):
        netref.BaseNetref.__instancecheck__(thing, 5)


def test_a_netref_class_repr():
    cls = netref.NetrefMetaclass("their.Thing", (), {"__module__": "somewhere"})
    assert repr(cls) == "<netref class 'somewhere.their.Thing'>"
    cls.__module__ = ""
    assert repr(cls) == "<netref class 'their.Thing'>"
