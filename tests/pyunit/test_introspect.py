"""rpycd.introspect: id packs and method lists as rpyc 6.0.2 makes them
(checked against the venv's rpyc), and the proxy classes made from them."""
import collections
import os
import sys
import types

import pytest
from rpyc.core import netref as rpyc_netref
from rpyc.lib import get_id_pack, get_methods

from rpycd import introspect, netref
from rpycd.consts import HANDLE_GETATTR


class Meta(type):
    def meta_method(cls):
        """the metaclass's"""


class WithMeta(metaclass=Meta):
    def method(self):
        """documented"""

    @staticmethod
    def static():
        pass

    value = 3


SAMPLES = [
    1, "text", None, int, type, object(), sys, os.path, types.ModuleType("not_in_sys_modules"),
    collections.OrderedDict, collections.OrderedDict(), len, [].append, WithMeta, WithMeta(),
    Meta, introspect.id_pack,
]


@pytest.mark.parametrize("obj", SAMPLES, ids=repr)
def test_id_pack_is_rpycs(obj):
    assert introspect.id_pack(obj) == get_id_pack(obj)


@pytest.mark.parametrize("obj", SAMPLES, ids=repr)
def test_methods_of_is_rpycs(obj):
    assert introspect.methods_of(obj) == tuple(get_methods(rpyc_netref.LOCAL_ATTRS, obj))


def test_methods_of_a_class_has_its_metaclasss_and_docs():
    methods = dict(introspect.methods_of(WithMeta))
    assert methods["meta_method"] == "the metaclass's"
    assert methods["method"] == "documented"
    assert "static" in methods and "value" not in methods
    assert "__getattribute__" not in methods  # a proxy's own


def test_local_and_builtin_names_are_rpycs():
    assert netref.LOCAL_ATTRS == rpyc_netref.LOCAL_ATTRS
    assert netref.DELETED_ATTRS == rpyc_netref.DELETED_ATTRS
    assert introspect._normalized_builtin_types.keys() == rpyc_netref._normalized_builtin_types.keys()


def test_a_proxys_id_pack_is_its_own(remote, link):
    pack = ("builtins.list", id(list), 4242)
    proxy = remote.proxy(pack)
    assert introspect.id_pack(proxy) == pack
    assert link.requests == []


def test_builtin_classes_are_made_once():
    classes = introspect.builtin_classes()
    assert introspect.builtin_classes() is classes
    assert set(classes) == set(introspect._normalized_builtin_types)
    assert all(issubclass(cls, netref.BaseNetref) for cls in classes.values())
    assert "append" in vars(classes["builtins.list"])


def test_class_factory_makes_methods_requests(remote, link):
    cls = introspect.class_factory(("mod.Thing", 1, 0), (("frob", "frobs"), ("__repr__", None)))
    assert issubclass(cls, netref.BaseNetref) and cls.__name__ == "mod.Thing"
    assert cls.frob.__doc__ == "frobs"
    # a local name stays the proxy's own, whatever the client's type has
    assert cls.__repr__ is netref.BaseNetref.__repr__


def test_class_factory_finds_the_local_class_a_pack_names(remote, link):
    cls = introspect.class_factory(("collections.OrderedDict", 1, 0), ())
    proxy = cls(remote, ("collections.OrderedDict", 1, 2))
    assert proxy.__class__ is collections.OrderedDict
    assert isinstance(proxy, collections.OrderedDict)
    assert link.requests == []


def test_class_factory_asks_the_client_for_a_class_it_cannot_find(remote, link):
    link.answers[HANDLE_GETATTR] = "their class"
    cls = introspect.class_factory(("no_such_module_xyz.Thing", 1, 0), ())
    proxy = cls(remote, ("no_such_module_xyz.Thing", 1, 2))
    assert proxy.__class__ == "their class"
    assert link.requests == [(HANDLE_GETATTR, (proxy, "__class__"))]
