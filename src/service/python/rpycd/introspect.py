"""What an object is across the wire: its id pack (rpyc/lib/__init__.py's
naming), the methods a proxy for it has, and the proxy classes made from
those (rpyc/core/netref.py's ``class_factory`` and builtin class cache)."""
import sys
import types

from .netref import LOCAL_ATTRS, BaseNetref, NetrefClass, _make_method

# inspect is imported where it is used (see classic.warm)


def id_pack(obj):
    """``(type name, id(type), id(obj))``, or ``(name, id(cls), 0)`` for a class."""
    pack = getattr(obj, "____id_pack__", None)
    if pack is not None and isinstance(obj, BaseNetref):
        return pack
    name = getattr(obj, "__name__", None)
    if isinstance(obj, types.ModuleType):  # inspect.ismodule
        if name != "module":
            if name in sys.modules:
                name_pack = name
            else:
                cls = getattr(obj, "__class__", type(obj))
                name_pack = f"{cls.__module__}.{name}"
        else:
            module = getattr(obj, "__module__", None)
            name_pack = name if module is None else f"{obj.__module__}.{name}"
        return (name_pack, id(type(obj)), id(obj))
    if not isinstance(obj, type):  # inspect.isclass
        cls = getattr(obj, "__class__", type(obj))
        return (f"{cls.__module__}.{cls.__name__}", id(type(obj)), id(obj))
    return (f"{obj.__module__}.{name}", id(obj), 0)


def methods_of(obj):
    """The ``(name, doc)`` routines a proxy class for ``obj`` should have."""
    import inspect
    attrs = {}
    if isinstance(obj, type):
        # the metaclass's methods apply to a class too
        mros = list(reversed(type(obj).__mro__)) + list(reversed(obj.__mro__))
    else:
        mros = reversed(type(obj).__mro__)
    for base in mros:
        attrs.update(base.__dict__)
    return tuple(
        (name, inspect.getdoc(attr))
        for name, attr in attrs.items()
        if name not in LOCAL_ATTRS and inspect.isroutine(attr)
    )


def class_factory(pack, methods):
    """The proxy class for the client's objects of the type ``pack`` names,
    with ``methods`` (``(name, doc)`` pairs) as requests."""
    ns = {"__slots__": (), "__class__": None}
    name_pack = pack[0]
    descriptor = None
    if name_pack is not None:
        builtin = _normalized_builtin_types.get(name_pack)
        if builtin is not None:
            descriptor = NetrefClass(builtin)
        else:
            cursor = len(name_pack)
            while cursor != -1:
                module = sys.modules.get(name_pack[:cursor])
                if module is None:
                    cursor = name_pack[:cursor].rfind(".")
                    continue
                cls = getattr(module, name_pack[cursor + 1:], None)
                if cls is not None and hasattr(cls, "__class__"):
                    descriptor = NetrefClass(cls)
                elif cls is None:
                    descriptor = NetrefClass(type(module))
                break
    ns["__class__"] = descriptor
    for name, doc in methods:
        name = str(name)
        if name not in LOCAL_ATTRS:
            ns[name] = _make_method(name, doc)
    return type(name_pack, (BaseNetref,), ns)


_builtin_types = [
    type, object, bool, complex, dict, float, int, list, slice, str, tuple, set,
    frozenset, BaseException, Exception, type(None), types.BuiltinFunctionType, types.GeneratorType,
    types.MethodType, types.CodeType, types.FrameType, types.TracebackType,
    types.ModuleType, types.FunctionType, types.MappingProxyType,
    type(int.__add__), type((1).__add__), type(iter([])), type(iter(())), type(iter(set())),
    bytes, bytearray, type(iter(range(10))), memoryview,
]
_normalized_builtin_types = {id_pack(_builtin)[0]: _builtin for _builtin in _builtin_types}
_builtin_classes_cache = None


def builtin_classes():
    """rpyc's ``builtin_classes_cache``: proxy classes for the builtin
    types, made on first use (``methods_of`` needs inspect, see ``classic.warm``)."""
    global _builtin_classes_cache
    if _builtin_classes_cache is None:
        _builtin_classes_cache = {
            name: class_factory((name, id(builtin), 0), methods_of(builtin))
            for name, builtin in _normalized_builtin_types.items()
        }
    return _builtin_classes_cache
