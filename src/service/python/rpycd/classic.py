"""The object space of rpycd's classic service, as Rust sees it
(src/service/python/classic.rs): the names it looks up, and what a forking
server does once before its first fork.

The pieces that must be Python objects because Python code sees them are
this package's other modules: ``service`` (the root), ``remote`` and
``handlers`` (the connection), ``netref`` and ``introspect`` (proxies and
naming), ``vinegar`` (exceptions). Requests themselves, boxing, framing and
the object table are Rust's (``rpycd.Link``, src/service/python/link.rs); nothing
here reads or writes the connection.

Rust adds ``stats()`` here; tests/daemon calls it as ``rpycd_classic``, the
name this module had when it was one file.
"""
from .introspect import builtin_classes, id_pack
from .netref import BaseNetref
from .remote import Remote
from .service import SlaveService
from .vinegar import dump_exception, load_exception

__all__ = [
    "BaseNetref", "Remote", "SlaveService", "dump_exception", "freeze", "id_pack",
    "load_exception", "warm",
]

# inspect, pickle, traceback, importlib and weakref are imported where they
# are used: inspect alone (with ast, dis, tokenize ...) was about 40 % of
# the start-up time to READY=1, importlib and weakref 1 ms of the 17 left,
# and many sessions never need them. warm() imports them, for a forking
# server to do once before it forks.


def warm():
    """Imports what the handlers import lazily."""
    for name in ("importlib", "inspect", "pickle", "traceback", "weakref"):
        __import__(name)
    builtin_classes()


def freeze():
    """Before a forking server's first fork: what exists now is shared with
    the children and stays out of their collections (CPython's advice for
    pre-fork servers: a collection writes to every object it walks)."""
    import gc
    gc.collect()
    gc.freeze()
