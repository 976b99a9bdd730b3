"""Exceptions to and from the client, by rpyc 6.0.2's rules
(rpyc/core/vinegar.py): what an exception raised here is sent as, and what
is raised here for one the client sent."""
import sys

from .consts import EXC_STOP_ITERATION, RPYC_VERSION

# traceback is imported where it is used (see classic.warm)


def _dumpable(value):
    kind = type(value)
    if kind in (type(None), int, bool, float, bytes, str, complex, type(NotImplemented), type(Ellipsis)):
        return True
    if kind in (tuple, frozenset):
        return all(_dumpable(item) for item in value)
    if kind is slice:
        return _dumpable(value.start) and _dumpable(value.stop) and _dumpable(value.step)
    return False


def dump_exception(exc, tb=None, version=RPYC_VERSION):
    """An exception as rpyc sends it: 1 for StopIteration, else
    ``((module, name), args, attrs, traceback text)``. The traceback comes
    separately because an exception caught in Rust may not carry it yet."""
    typ = type(exc)
    if typ is StopIteration:
        return EXC_STOP_ITERATION
    if tb is None:
        tb = exc.__traceback__
    import traceback
    tbtext = "".join(traceback.format_exception(typ, exc, tb))
    args = []
    attrs = []
    for name in dir(exc):
        if name == "args":
            args.extend(a if _dumpable(a) else repr(a) for a in exc.args)
        elif name.startswith("_") or name == "with_traceback":
            continue
        else:
            try:
                value = getattr(exc, name)
            except AttributeError:
                continue
            attrs.append((name, value if _dumpable(value) else repr(value)))
    # the version of the protocol spoken with this client: a 5.x client
    # warns on every traceback when the major versions differ
    attrs.append(("_remote_version", version))
    return (typ.__module__, typ.__name__), tuple(args), tuple(attrs), tbtext


REMOTE_LINE_START = "\n\n========= Remote Traceback "
REMOTE_LINE = REMOTE_LINE_START + "({}) =========\n"
_generic_classes = {}
_derived_classes = {}


class GenericException(Exception):
    """Raised for an exception the client sent whose class is not here."""


def _with_remote_traceback(cls):
    derived = _derived_classes.get(cls)
    if derived is None:

        class derived(cls):
            def __str__(self):
                try:
                    text = cls.__str__(self)
                except Exception:
                    text = "<Unprintable exception>"
                if hasattr(self, "_remote_tb"):
                    text += REMOTE_LINE.format(self._remote_tb.count(REMOTE_LINE_START) + 1)
                    text += self._remote_tb
                return text

            def __repr__(self):
                return str(self)

        derived.__name__ = cls.__name__
        derived.__module__ = cls.__module__
        _derived_classes[cls] = derived
    return derived


def load_exception(dumped, config=None):
    """The exception to raise for one the client sent. ``config`` is the
    protocol configuration of a hosted service (rpyc's defaults: custom
    exception classes are neither imported nor instantiated, only
    builtins are); without one, the classic service's (SlaveService sets
    both)."""
    if dumped == EXC_STOP_ITERATION:
        return StopIteration()
    if type(dumped) is str:
        return GenericException(dumped)
    (modname, clsname), args, attrs, tbtext = dumped
    import_custom = config is None or config.get("import_custom_exceptions", False)
    instantiate_custom = config is None or config.get("instantiate_custom_exceptions", False)
    if import_custom and modname not in sys.modules:
        try:
            __import__(modname, None, None, "*")
        except Exception:
            pass
    if instantiate_custom:
        module = sys.modules.get(modname)
    else:
        module = sys.modules["builtins"] if modname == "builtins" else None
    cls = getattr(module, clsname, None) if module is not None else None
    if not isinstance(cls, type) or not issubclass(cls, BaseException):
        fullname = f"{modname}.{clsname}"
        cls = _generic_classes.get(fullname)
        if cls is None:
            cls = type(fullname, (GenericException,), {"__module__": f"{__name__}/{modname}"})
            _generic_classes[fullname] = cls
    cls = _with_remote_traceback(cls)
    exc = cls.__new__(cls)
    exc.args = args
    for name, value in attrs:
        try:
            setattr(exc, name, value)
        except AttributeError:
            pass
    exc._remote_tb = tbtext
    return exc
