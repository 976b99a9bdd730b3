"""Reference counting across the connection: objects live exactly as long as
the peer holds references to them."""

import gc
import itertools
import weakref

import pytest

from conftest import wait_until

_names = itertools.count()

PROBE_SETUP = (
    "import sys, types, weakref\n"
    "probe = sys.modules.get('rpycd_refcount_probe')\n"
    "if probe is None:\n"
    "    probe = types.ModuleType('rpycd_refcount_probe')\n"
    "    probe.deleted = []\n"
    "    probe.finalized = []\n"
    "    sys.modules['rpycd_refcount_probe'] = probe\n"
    "class Tracked:\n"
    "    def __init__(self, name):\n"
    "        self.name = name\n"
    "    def __del__(self):\n"
    "        probe.deleted.append(self.name)\n"
    "class Finalized:\n"
    "    pass\n"
    "def make_finalized(name):\n"
    "    obj = Finalized()\n"
    "    weakref.finalize(obj, probe.finalized.append, name)\n"
    "    return obj\n"
)


@pytest.fixture
def probe(conn):
    conn.execute(PROBE_SETUP)
    return conn.namespace


def unique(prefix):
    return f"{prefix}-{next(_names)}"


def deleted(conn):
    return set(conn.eval("list(probe.deleted)"))


def finalized(conn):
    return set(conn.eval("list(probe.finalized)"))


def collect():
    gc.collect()
    gc.collect()


def test_object_freed_when_client_drops_netref(conn, probe):
    d1, d2, d3 = unique("d1"), unique("d2"), unique("d3")
    Tracked = probe["Tracked"]
    r1, r2, r3 = Tracked(d1), Tracked(d2), Tracked(d3)
    assert r1.name == d1
    assert deleted(conn).isdisjoint({d1, d2, d3})
    del r1
    del r3
    collect()
    wait_until(lambda: {d1, d3} <= deleted(conn), message=f"{d1}, {d3} freed on the server")
    # r2 is still held by the client: still alive and usable.
    assert d2 not in deleted(conn)
    assert r2.name == d2
    r2_copy = r2
    del r2
    collect()
    conn.ping()
    assert d2 not in deleted(conn)
    del r2_copy
    collect()
    wait_until(lambda: d2 in deleted(conn), message=f"{d2} freed on the server")


def test_weakref_finalize_runs_when_dropped(conn, probe):
    name = unique("fin")
    obj = probe["make_finalized"](name)
    conn.ping()
    assert name not in finalized(conn)
    del obj
    collect()
    wait_until(lambda: name in finalized(conn), message=f"{name} finalized")


def test_object_sent_several_times_freed_once_dropped(conn, probe):
    """Each time the server sends an object the peer's count rises; the client
    returns them all with one DEL carrying the count."""
    name = unique("multi")
    conn.execute(f"keep = Tracked({name!r})")
    refs = [conn.namespace["keep"] for _ in range(5)]
    refs.append(conn.eval("keep"))
    assert all(r is refs[0] for r in refs)  # the client caches one proxy per object
    conn.execute("del keep")
    collect()
    conn.ping()
    assert name not in deleted(conn), "freed while the client still holds it"
    assert refs[0].name == name
    del refs
    collect()
    wait_until(lambda: name in deleted(conn), message=f"{name} freed")


def test_object_alive_while_only_client_holds_it(conn, probe):
    name = unique("held")
    conn.execute(f"tmp = Tracked({name!r})")
    ref = conn.namespace["tmp"]
    conn.execute("del tmp\nimport gc\ngc.collect()")
    assert name not in deleted(conn)
    assert ref.name == name
    del ref
    collect()
    wait_until(lambda: name in deleted(conn), message=f"{name} freed")


def test_many_objects_freed(conn, probe):
    names = [unique("bulk") for _ in range(200)]
    Tracked = probe["Tracked"]
    refs = [Tracked(n) for n in names]
    assert [r.name for r in refs[:3]] == names[:3]
    del refs
    collect()
    wait_until(lambda: set(names) <= deleted(conn), message="200 objects freed")


def test_objects_freed_when_connection_closes(server, connect):
    watcher = connect()
    watcher.execute(PROBE_SETUP)
    victim = connect()
    victim.execute(PROBE_SETUP)
    names = [unique("close") for _ in range(3)]
    refs = [victim.namespace["Tracked"](n) for n in names]
    assert refs[0].name == names[0]
    victim.close()
    wait_until(lambda: set(names) <= deleted(watcher), timeout=15, message="objects freed after close")


def test_objects_freed_when_client_vanishes(server, connect):
    """A client that drops its socket without CLOSE still releases its objects."""
    watcher = connect()
    watcher.execute(PROBE_SETUP)
    victim = server.connect()
    victim.execute(PROBE_SETUP)
    names = [unique("vanish") for _ in range(3)]
    refs = [victim.namespace["Tracked"](n) for n in names]
    assert refs[-1].name == names[-1]
    victim._channel.stream.sock.shutdown(2)
    victim._channel.stream.sock.close()
    wait_until(lambda: set(names) <= deleted(watcher), timeout=15, message="objects freed after disconnect")


def test_server_releases_client_objects(conn):
    """When the server drops its proxy to a client object, it sends DEL and
    the client's object is freed."""

    class ClientThing:
        pass

    freed = []
    thing = ClientThing()
    weakref.finalize(thing, freed.append, "thing")
    conn.namespace["held"] = thing
    assert conn.eval("held") is thing  # comes back as the client's own object
    del thing
    collect()
    conn.ping()
    assert freed == [], "client object freed while the server holds it"
    del conn.namespace["held"]
    wait_until(lambda: (conn.ping(), freed)[1] == ["thing"], message="client object released by the server")


def test_client_callback_released_after_call(conn):
    conn.execute("def call(f):\n    return f()\n")
    freed = []

    def make():
        def cb():
            return "called"
        weakref.finalize(cb, freed.append, "cb")
        return cb

    cb = make()
    assert conn.namespace["call"](cb) == "called"
    del cb
    collect()
    wait_until(lambda: (conn.ping(), freed)[1] == ["cb"], message="callback released by the server")
