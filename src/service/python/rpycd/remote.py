"""The client's side of one connection as server code sees it: requests to
the client through the Rust ``Link`` (src/service/python/link.rs), and the
proxies for the client's objects."""
from .consts import HANDLE_GETROOT, HANDLE_INSPECT, HANDLE_PING
from .handlers import Handlers
from .introspect import builtin_classes, class_factory

# weakref is imported where it is used (see classic.warm)


class Remote(Handlers):
    """The client's side of one connection, as server code sees it (what
    ``conn.root.getconn()`` returns, and every proxy's ``____conn__``)."""

    __slots__ = ("_link", "_proxies", "_classes", "_last_traceback", "__weakref__")

    def __init__(self, link):
        self._link = link
        # made on the first proxy: most sessions never get a client object,
        # and an empty WeakValueDictionary is about 740 bytes of an idle
        # connection's few kilobytes
        self._proxies = None
        self._classes = {}
        # as rpyc's Connection: the traceback of the last request that raised
        self._last_traceback = None

    def sync_request(self, handler, *args):
        return self._link.sync_request(handler, args)

    def release(self, proxy, count):
        self._link.release(proxy.____id_pack__, count)

    @property
    def root(self):
        return self.sync_request(HANDLE_GETROOT)

    def ping(self, data=None):
        data = "abcdefghijklmnopqrstuvwxyz" * 20 if data is None else data
        if self.sync_request(HANDLE_PING, data) != data:
            raise ValueError("echo mismatches sent data")

    @property
    def closed(self):
        return self._link.closed

    def close(self):
        self._link.close()

    def proxy(self, pack):
        """A proxy for the client object ``pack`` names; the client counted
        one more reference to it as it sent it."""
        proxies = self._proxies
        if proxies is None:
            import weakref
            proxies = self._proxies = weakref.WeakValueDictionary()
        proxy = proxies.get(pack)
        if proxy is not None:
            proxy.____refcount__ += 1
            return proxy
        cls = None
        if pack[2] == 0:
            cls = self._classes.get(pack)
        if cls is None:
            cls = builtin_classes().get(pack[0])
        if cls is None:
            cls = class_factory(pack, self._link.sync_request(HANDLE_INSPECT, (pack,)))
            if pack[2] == 0:
                self._classes[pack] = cls
        proxy = cls(self, pack)
        proxies[pack] = proxy
        return proxy

    def forget(self):
        """The connection is over: stop handing out proxies."""
        if self._proxies is not None:
            self._proxies.clear()
        self._classes.clear()
        self._last_traceback = None
