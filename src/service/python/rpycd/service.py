"""``SlaveService``: the classic service's root, what ``conn.root`` is to a
client; its methods are what ``rpyc.classic.connect`` calls (getmodule,
eval, execute, namespace)."""


class SlaveService:
    """The classic service's root: what ``conn.root`` is to a client.

    Named and placed as rpyc's own ``rpyc.core.service.SlaveService`` (see
    below), so a client builds the same proxy class for it as for the
    original's root, and methods that the original's ``Service`` base has
    (aliases, name, the setattr/delattr refusals) are here too.
    """

    __slots__ = ("_conn", "namespace")
    ALIASES = ()

    def __init__(self, conn):
        self._conn = conn
        self.namespace = {}

    def on_connect(self, conn):
        pass

    def on_disconnect(self, conn):
        pass

    def _rpyc_delattr(self, name):
        raise AttributeError("access denied")

    def _rpyc_setattr(self, name, value):
        raise AttributeError("access denied")

    @classmethod
    def get_service_aliases(cls):
        return ("SLAVE",)

    @classmethod
    def get_service_name(cls):
        return "SLAVE"

    exposed_get_service_aliases = get_service_aliases
    exposed_get_service_name = get_service_name

    def execute(self, text):
        """execute arbitrary code (using ``exec``)"""
        exec(text, self.namespace)

    def eval(self, text):
        """evaluate arbitrary code (using ``eval``)"""
        return eval(text, self.namespace)

    def getmodule(self, name):
        """imports an arbitrary module"""
        import importlib
        if type(name) is tuple:
            name = ".".join(name)
        return importlib.import_module(name)

    def getconn(self):
        """returns the local connection instance to the other side"""
        return self._conn


SlaveService.__module__ = "rpyc.core.service"
