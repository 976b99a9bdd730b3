"""The client's requests, answered: rpyc's ``Connection._handle_*`` for the
requests that run the client's code (Rust answers the others itself, see
``ClassicSession::dispatch`` in src/service/python/classic.rs)."""
import itertools
import sys

from .consts import HANDLE_INSPECT, MAXINT
from .introspect import builtin_classes, methods_of
from .netref import BaseNetref

# pickle is imported where it is used (see classic.warm)


class Handlers:
    """Handlers that run the client's code, as methods like rpyc's
    ``Connection._handle_*``: client code that looks at its caller's frame
    (locals(), globals(), sys._getframe()) finds one, as with rpyc.

    A base of ``remote.Remote``, the connection they answer for;
    ``_handle_instancecheck`` uses its class cache (``_classes``).
    """

    __slots__ = ()

    def _handle_getattr(self, obj, name):
        return _access_attr(obj, name, (), "_rpyc_getattr", getattr)

    def _handle_delattr(self, obj, name):
        return _access_attr(obj, name, (), "_rpyc_delattr", delattr)

    def _handle_setattr(self, obj, name, value):
        return _access_attr(obj, name, (value,), "_rpyc_setattr", setattr)

    def _handle_call(self, obj, args, kwargs=()):
        return obj(*args, **dict(kwargs))

    def _handle_callattr(self, obj, name, args, kwargs=()):
        obj = self._handle_getattr(obj, name)
        return self._handle_call(obj, args, kwargs)

    def _handle_cmp(self, obj, other, op="__cmp__"):
        return _access_attr(type(obj), op, (), "_rpyc_getattr", getattr)(obj, other)

    def _handle_pickle(self, obj, proto):
        import pickle
        return bytes(pickle.dumps(obj, proto))

    def _handle_inspect(self, obj):
        if isinstance(obj, BaseNetref):
            conn = object.__getattribute__(obj, "____conn__")
            return conn.sync_request(HANDLE_INSPECT, obj.____id_pack__)
        return methods_of(obj)

    def _handle_buffiter(self, obj, count):
        return tuple(itertools.islice(obj, count))

    def _handle_oldslicing(self, obj, attempt, fallback, start, stop, args):
        try:
            getitem = self._handle_getattr(obj, attempt)
            return getitem(slice(start, stop), *args)
        except Exception:
            if stop is None:
                stop = MAXINT
            getslice = self._handle_getattr(obj, fallback)
            return getslice(start, stop, *args)

    def _handle_ctxexit(self, obj, exc):
        if exc:
            try:
                raise exc
            except Exception:
                exc, typ, tb = sys.exc_info()
        else:
            typ = tb = None
        return self._handle_getattr(obj, "__exit__")(exc, typ, tb)

    def _handle_instancecheck(self, obj, other_pack):
        if isinstance(obj, BaseNetref):
            conn = object.__getattribute__(obj, "____conn__")
            return conn.sync_request(HANDLE_INSPECT, other_pack)
        class_pack = (other_pack[0], other_pack[1], 0)
        if other_pack[0] in builtin_classes():
            other = builtin_classes()[other_pack[0]](self, other_pack)
        elif class_pack in self._classes:
            other = self._classes[class_pack](self, class_pack)
        else:
            return False
        # a probe, not a reference the client counted: it must not send DEL
        other.____refcount__ = 0
        return isinstance(other, obj)


def _access_attr(obj, name, args, overrider, default, check=None):
    """rpyc's ``_access_attr``: the type's override if it has one, else the
    builtin on the name ``check(obj, name)`` allows (every name under the
    classic configuration, ``allow_all_attrs``)."""
    if type(name) is bytes:
        name = str(name, "utf8")
    elif type(name) is not str:
        raise TypeError("name must be a string")
    accessor = getattr(type(obj), overrider, None)
    if accessor is None:
        accessor = default
        if check is not None:
            name = check(obj, name)
    return accessor(obj, name, *args)
