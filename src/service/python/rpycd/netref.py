"""Proxies for the client's objects (rpyc/core/netref.py semantics):
attribute access, calls and operators on a proxy become requests back over
its connection (``____conn__``, a ``remote.Remote``)."""
from .consts import (
    HANDLE_CALL, HANDLE_CALLATTR, HANDLE_CMP, HANDLE_CTXEXIT, HANDLE_DELATTR, HANDLE_DIR,
    HANDLE_GETATTR, HANDLE_HASH, HANDLE_INSTANCECHECK, HANDLE_OLDSLICING, HANDLE_PICKLE,
    HANDLE_REPR, HANDLE_SETATTR, HANDLE_STR, MAXINT,
)

# pickle is imported where it is used (see classic.warm)

DELETED_ATTRS = frozenset(["__array_struct__", "__array_interface__"])
LOCAL_ATTRS = frozenset([
    "____conn__", "____id_pack__", "____refcount__", "__class__", "__cmp__", "__del__", "__delattr__",
    "__dir__", "__doc__", "__getattr__", "__getattribute__", "__hash__", "__instancecheck__",
    "__init__", "__metaclass__", "__module__", "__new__", "__reduce__",
    "__reduce_ex__", "__repr__", "__setattr__", "__slots__", "__str__",
    "__weakref__", "__dict__", "__methods__", "__exit__",
    "__eq__", "__ne__", "__lt__", "__gt__", "__le__", "__ge__",
]) | DELETED_ATTRS


def _syncreq(proxy, handler, *args):
    conn = object.__getattribute__(proxy, "____conn__")
    return conn.sync_request(handler, proxy, *args)


class NetrefMetaclass(type):
    __slots__ = ()

    def __repr__(self):
        if self.__module__:
            return f"<netref class '{self.__module__}.{self.__name__}'>"
        return f"<netref class '{self.__name__}'>"


class BaseNetref(metaclass=NetrefMetaclass):
    """A reference to one of the client's objects."""

    __slots__ = ["____conn__", "____id_pack__", "__weakref__", "____refcount__"]

    def __init__(self, conn, pack):
        self.____conn__ = conn
        self.____id_pack__ = pack
        self.____refcount__ = 1

    def __del__(self):
        try:
            conn = object.__getattribute__(self, "____conn__")
            conn.release(self, self.____refcount__)
        except Exception:
            pass

    def __getattribute__(self, name):
        if name in LOCAL_ATTRS:
            if name == "__class__":
                cls = object.__getattribute__(self, "__class__")
                if cls is None:
                    cls = self.__getattr__("__class__")
                return cls
            if name == "__doc__":
                return self.__getattr__("__doc__")
            if name in DELETED_ATTRS:
                raise AttributeError()
            return object.__getattribute__(self, name)
        if name == "__call__":
            return object.__getattribute__(self, "__call__")
        if name == "__array__":
            return object.__getattribute__(self, "__array__")
        return _syncreq(self, HANDLE_GETATTR, name)

    def __getattr__(self, name):
        if name in DELETED_ATTRS:
            raise AttributeError()
        return _syncreq(self, HANDLE_GETATTR, name)

    def __delattr__(self, name):
        if name in LOCAL_ATTRS:
            object.__delattr__(self, name)
        else:
            _syncreq(self, HANDLE_DELATTR, name)

    def __setattr__(self, name, value):
        if name in LOCAL_ATTRS:
            object.__setattr__(self, name, value)
        else:
            _syncreq(self, HANDLE_SETATTR, name, value)

    def __dir__(self):
        return list(_syncreq(self, HANDLE_DIR))

    def __hash__(self):
        return _syncreq(self, HANDLE_HASH)

    def __cmp__(self, other):
        return _syncreq(self, HANDLE_CMP, other, "__cmp__")

    def __eq__(self, other):
        return _syncreq(self, HANDLE_CMP, other, "__eq__")

    def __ne__(self, other):
        return _syncreq(self, HANDLE_CMP, other, "__ne__")

    def __lt__(self, other):
        return _syncreq(self, HANDLE_CMP, other, "__lt__")

    def __gt__(self, other):
        return _syncreq(self, HANDLE_CMP, other, "__gt__")

    def __le__(self, other):
        return _syncreq(self, HANDLE_CMP, other, "__le__")

    def __ge__(self, other):
        return _syncreq(self, HANDLE_CMP, other, "__ge__")

    def __repr__(self):
        return _syncreq(self, HANDLE_REPR)

    def __str__(self):
        return _syncreq(self, HANDLE_STR)

    def __exit__(self, exc, typ, tb):
        return _syncreq(self, HANDLE_CTXEXIT, exc)

    def __reduce_ex__(self, proto):
        import pickle
        return pickle.loads, (_syncreq(self, HANDLE_PICKLE, proto),)

    def __instancecheck__(self, other):
        pack = self.____id_pack__
        if isinstance(other, BaseNetref):
            if pack[2] != 0:
                raise TypeError("isinstance() arg 2 must be a class, type, or tuple of classes and types")
            if pack[1] == other.____id_pack__[1]:
                return other.____id_pack__[2] != 0
            return _syncreq(self, HANDLE_INSTANCECHECK, other.____id_pack__)
        if pack[2] == 0:
            return isinstance(other, type(self).__dict__["__class__"].instance)
        raise TypeError("isinstance() arg 2 must be a class, type, or tuple of classes and types")


def _make_method(name, doc):
    slicers = {"__getslice__": "__getitem__", "__delslice__": "__delitem__", "__setslice__": "__setitem__"}
    name = str(name)
    if name == "__call__":

        def __call__(_self, *args, **kwargs):
            return _syncreq(_self, HANDLE_CALL, args, tuple(kwargs.items()))

        __call__.__doc__ = doc
        return __call__
    if name in slicers:

        def method(self, start, stop, *args):
            if stop == MAXINT:
                stop = None
            return _syncreq(self, HANDLE_OLDSLICING, slicers[name], name, start, stop, args)

    elif name == "__array__":

        def method(self, *args, **kwargs):
            import pickle
            array = pickle.loads(_syncreq(self, HANDLE_PICKLE, -1))
            return array.__array__(*args, **kwargs)

    else:

        def method(_self, *args, **kwargs):
            return _syncreq(_self, HANDLE_CALLATTR, name, args, tuple(kwargs.items()))

    method.__name__ = name
    method.__doc__ = doc
    return method


class NetrefClass:
    """Answers ``__class__`` for a proxy with the local class it mirrors."""

    def __init__(self, class_obj):
        self._class_obj = class_obj

    @property
    def instance(self):
        return self._class_obj

    @property
    def owner(self):
        return self._class_obj.__class__

    def __get__(self, netref_instance, netref_owner):
        return self.owner if netref_instance.____id_pack__[2] == 0 else self.instance
