"""rpyc-serve's object space: any rpyc ``Service`` class as the root, with
rpyc 6.0.2's protocol configuration deciding what a client may reach.

The classic object space (this package's other modules) gives proxies,
vinegar and the request handlers; this module adds what a non-classic
service has on top: the attribute rules of ``Connection._check_attr``
(``exposed_`` prefix, safe and public attributes), the pickle switch, and
the service's ``on_connect``/``on_disconnect`` calls.
"""
import importlib
import inspect
import os
import sys

from . import handlers
from .remote import Remote

# rpyc 6.0.2's DEFAULT_CONFIG (rpyc/core/protocol.py), the part that decides
# what a client may do with the server's objects.
DEFAULT_CONFIG = dict(
    allow_safe_attrs=True,
    allow_exposed_attrs=True,
    allow_public_attrs=False,
    allow_all_attrs=False,
    safe_attrs=frozenset([
        '__abs__', '__add__', '__and__', '__bool__', '__cmp__', '__contains__',
        '__delitem__', '__delslice__', '__div__', '__divmod__', '__doc__',
        '__eq__', '__float__', '__floordiv__', '__ge__', '__getitem__',
        '__getslice__', '__gt__', '__hash__', '__hex__', '__iadd__', '__iand__',
        '__idiv__', '__ifloordiv__', '__ilshift__', '__imod__', '__imul__',
        '__index__', '__int__', '__invert__', '__ior__', '__ipow__', '__irshift__',
        '__isub__', '__iter__', '__itruediv__', '__ixor__', '__le__', '__len__',
        '__long__', '__lshift__', '__lt__', '__mod__', '__mul__', '__ne__',
        '__neg__', '__new__', '__nonzero__', '__oct__', '__or__', '__pos__',
        '__pow__', '__radd__', '__rand__', '__rdiv__', '__rdivmod__', '__repr__',
        '__rfloordiv__', '__rlshift__', '__rmod__', '__rmul__', '__ror__',
        '__rpow__', '__rrshift__', '__rshift__', '__rsub__', '__rtruediv__',
        '__rxor__', '__setitem__', '__setslice__', '__str__', '__sub__',
        '__truediv__', '__xor__', 'next', '__length_hint__', '__enter__',
        '__exit__', '__next__', '__format__']),
    exposed_prefix="exposed_",
    allow_getattr=True,
    allow_setattr=False,
    allow_delattr=False,
    allow_pickle=False,
    sync_request_timeout=30,
    # applied by the server (for every service), shown here as rpyc shows
    # them to the service's code
    include_local_traceback=True,
    include_local_version=True,
    log_exceptions=True,
    propagate_SystemExit_locally=False,
    propagate_KeyboardInterrupt_locally=True,
    # exceptions the client sends back (vinegar.load_exception)
    import_custom_exceptions=False,
    instantiate_custom_exceptions=False,
    # informational, as rpyc fills them in for the service's code to read
    credentials=None,
    endpoints=None,
    connid=None,
)

# What the switches may set: the keys whose rules rpyc-serve applies.
SETTABLE = frozenset(DEFAULT_CONFIG) - {"credentials", "endpoints", "connid"}


def import_named(spec, paths=(), shape="package.module:name"):
    """What ``package.module:name`` names (``name`` may be dotted),
    imported with ``paths`` in front of ``sys.path``."""
    for path in paths:
        if not os.path.isdir(path):
            raise FileNotFoundError(f"--path {path}: no such directory")
    for path in reversed(paths):
        if path not in sys.path:
            sys.path.insert(0, path)
    module_name, sep, qualname = spec.partition(":")
    if not sep or not module_name or not qualname:
        raise ValueError(f"{spec!r} is not {shape}")
    obj = importlib.import_module(module_name)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj


def load_service(spec, paths=()):
    """The class ``package.module:ClassName`` names, imported with ``paths``
    in front of ``sys.path``."""
    obj = import_named(spec, paths, "package.module:ClassName")
    # a class: an instance per connection; an instance: shared by every
    # connection (rpyc's servers do the same with either)
    if not inspect.isclass(obj) and not callable(getattr(obj, "on_connect", None)):
        raise TypeError(f"{spec} is neither a class nor a service instance "
                        f"(it is a {type(obj).__name__})")
    if inspect.isclass(obj):
        if not _is_service_class(obj):
            raise TypeError(f"{spec} is not an rpyc Service: it neither derives from "
                            f"rpyc.Service nor has on_connect or exposed_ names")
        try:
            inspect.signature(obj).bind()
        except TypeError as error:
            raise TypeError(f"{spec}() cannot be made without arguments, as a server "
                            f"makes one per connection: {error}") from None
        except ValueError:
            pass  # a signature inspect cannot read: found at the first connection
    return obj


def _is_service_class(cls):
    """An rpyc Service, by its bases (without importing rpyc, which the
    server's Python need not have), or a class shaped as one."""
    for base in cls.__mro__:
        if base.__module__ == "rpyc.core.service" and base.__name__ == "Service":
            return True
    return callable(getattr(cls, "on_connect", None)) or any(
        name.startswith("exposed_") for name in dir(cls))


def service_aliases(cls):
    """The names the service registers under (rpyc's
    ``Service.get_service_aliases``, for classes that are not rpyc Services
    too)."""
    if not inspect.isclass(cls):
        cls = type(cls)
    get = getattr(cls, "get_service_aliases", None)
    if get is not None:
        return tuple(str(alias) for alias in get())
    aliases = getattr(cls, "ALIASES", ())
    if aliases:
        return tuple(str(alias).upper() for alias in aliases)
    name = cls.__name__.upper()
    return (name[:-7] if name.endswith("SERVICE") else name,)


def make_config(overrides):
    """The protocol configuration: rpyc's defaults and the switches'."""
    config = dict(DEFAULT_CONFIG)
    for key, value in overrides.items():
        if key not in SETTABLE:
            raise KeyError(key)
        config[key] = value
    if not isinstance(config["safe_attrs"], frozenset):
        config["safe_attrs"] = frozenset(config["safe_attrs"])
    return config


def _hasattr_static(obj, name):
    try:
        inspect.getattr_static(obj, name)
    except AttributeError:
        return False
    return True


class ServiceRemote(Remote):
    """The client's side of a connection to a custom service: what the
    service's ``on_connect(conn)`` gets. ``conn.root`` is the client's root,
    ``conn._config`` the protocol configuration, as with rpyc."""

    __slots__ = ("_config", "_local_root")

    def __init__(self, link, config):
        super().__init__(link)
        self._config = dict(config)
        self._local_root = None

    def _start(self, service):
        self._local_root = service() if inspect.isclass(service) else service
        return self._local_root

    def _connected(self, endpoints, credentials):
        # as rpyc's servers fill them in before on_connect
        self._config["endpoints"] = endpoints
        self._config["credentials"] = credentials
        self._local_root.on_connect(self)

    def forget(self):
        root = self._local_root
        self._local_root = None
        try:
            if root is not None:
                on_disconnect = getattr(root, "on_disconnect", None)
                if on_disconnect is not None:
                    on_disconnect(self)
        finally:
            super().forget()

    def _check_attr(self, obj, name, perm):
        """rpyc 6.0.2's ``Connection._check_attr``."""
        config = self._config
        if not config[perm]:
            raise AttributeError(f"cannot access {name!r}")
        prefix = config["allow_exposed_attrs"] and config["exposed_prefix"]
        plain = config["allow_all_attrs"]
        plain |= config["allow_exposed_attrs"] and name.startswith(prefix)
        plain |= config["allow_safe_attrs"] and name in config["safe_attrs"]
        plain |= config["allow_public_attrs"] and not name.startswith("_")
        has_exposed = prefix and (hasattr(obj, prefix + name) or _hasattr_static(obj, prefix + name))
        if plain and (not has_exposed or hasattr(obj, name)):
            return name
        if has_exposed:
            return prefix + name
        if plain:
            return name  # chance for better traceback
        raise AttributeError(f"cannot access {name!r}")

    def _access_attr(self, obj, name, args, overrider, param, default):
        return handlers._access_attr(obj, name, args, overrider, default,
                                     lambda obj, name: self._check_attr(obj, name, param))

    def _handle_getattr(self, obj, name):
        return self._access_attr(obj, name, (), "_rpyc_getattr", "allow_getattr", getattr)

    def _handle_delattr(self, obj, name):
        return self._access_attr(obj, name, (), "_rpyc_delattr", "allow_delattr", delattr)

    def _handle_setattr(self, obj, name, value):
        return self._access_attr(obj, name, (value,), "_rpyc_setattr", "allow_setattr", setattr)

    def _handle_callattr(self, obj, name, args, kwargs=()):
        obj = self._handle_getattr(obj, name)
        return self._handle_call(obj, args, kwargs)

    def _handle_cmp(self, obj, other, op="__cmp__"):
        return self._access_attr(type(obj), op, (), "_rpyc_getattr", "allow_getattr", getattr)(obj, other)

    def _handle_pickle(self, obj, proto):
        if not self._config["allow_pickle"]:
            raise ValueError("pickling is disabled")
        return super()._handle_pickle(obj, proto)


def root_factory(service):
    """What makes each connection's root: a new instance of a class, as
    rpyc's servers make one per connection when given a class, or the one
    instance they were given."""
    return lambda remote: remote._start(service)
