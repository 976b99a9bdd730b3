"""rpycd.remote.Remote: what server code reaches the client through
(``getconn()``, every proxy's connection), on a fake link."""
import gc

import pytest

from rpycd.consts import HANDLE_GETROOT, HANDLE_INSPECT, HANDLE_PING
from rpycd.netref import BaseNetref

LIST = ("builtins.list", id(list), 11)
THING = ("their.Thing", 1001, 2002)
OTHER_THING = ("their.Thing", 1001, 2003)
THING_CLASS = ("their.Thing", 1001, 0)


def test_root_is_a_getroot_request(remote, link):
    link.answers[HANDLE_GETROOT] = "their root"
    assert remote.root == "their root"
    assert link.requests == [(HANDLE_GETROOT, ())]


def test_ping_sends_data_and_checks_the_echo(remote, link):
    link.answers[HANDLE_PING] = lambda data: data
    remote.ping("hello")
    remote.ping()
    assert link.requests == [(HANDLE_PING, ("hello",)), (HANDLE_PING, ("abcdefghijklmnopqrstuvwxyz" * 20,))]
    link.answers[HANDLE_PING] = "something else"
    with pytest.raises(ValueError, match="echo mismatches"):
        remote.ping("hello")


def test_closed_and_close_are_the_links(remote, link):
    assert remote.closed is False
    remote.close()
    assert link.closed is True and remote.closed is True


def test_a_proxy_belongs_to_its_remote(remote):
    proxy = remote.proxy(LIST)
    assert isinstance(proxy, BaseNetref)
    assert object.__getattribute__(proxy, "____conn__") is remote
    assert proxy.____id_pack__ == LIST


def test_a_builtin_types_proxy_needs_no_inspect(remote, link):
    proxy = remote.proxy(LIST)
    assert proxy.__class__ is list
    assert link.requests == []


def test_another_types_proxy_class_comes_from_inspect(remote, link):
    link.answers[HANDLE_INSPECT] = lambda pack: (("frob", "frobs"),)
    proxy = remote.proxy(THING)
    assert type(proxy).frob.__doc__ == "frobs"
    assert link.requests == [(HANDLE_INSPECT, (THING,))]


def test_an_instance_is_inspected_each_time_a_class_once(remote, link):
    link.answers[HANDLE_INSPECT] = lambda pack: ()
    things = [remote.proxy(THING), remote.proxy(OTHER_THING)]
    assert link.requests == [(HANDLE_INSPECT, (THING,)), (HANDLE_INSPECT, (OTHER_THING,))]
    link.requests.clear()
    first = remote.proxy(THING_CLASS)
    del first
    gc.collect()
    second = remote.proxy(THING_CLASS)
    assert second.____refcount__ == 1
    assert link.requests == [(HANDLE_INSPECT, (THING_CLASS,))]
    assert things  # kept to here


def test_the_same_pack_is_the_same_proxy_with_one_more_reference(remote, link):
    proxy = remote.proxy(LIST)
    assert remote.proxy(LIST) is proxy and remote.proxy(LIST) is proxy
    assert proxy.____refcount__ == 3
    assert link.releases == []
    del proxy
    gc.collect()
    assert link.releases == [(LIST, 3)]


def test_forget_starts_over(remote, link):
    link.answers[HANDLE_INSPECT] = lambda pack: ()
    old = remote.proxy(LIST)
    remote.proxy(THING_CLASS)
    remote._last_traceback = "a traceback"
    remote.forget()
    assert remote._last_traceback is None
    new = remote.proxy(LIST)
    assert new is not old and new.____refcount__ == 1
    link.requests.clear()
    remote.proxy(THING_CLASS)
    assert link.requests == [(HANDLE_INSPECT, (THING_CLASS,))]
