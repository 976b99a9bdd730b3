"""Services for the rpyc-serve tests, written as rpyc's documentation and
its own tests write them; each test runs them under rpyc's ThreadedServer
and under rpyc-serve and expects the same behaviour."""
import math
import os
import time

import rpyc

# what the service saw of its connections, in this server process
EVENTS = []


class CustomError(Exception):
    pass


class CalculatorService(rpyc.Service):
    """A calculator, as in rpyc's tutorial, with callbacks."""

    ALIASES = ["calculator", "calc"]

    def on_connect(self, conn):
        self.conn = conn
        EVENTS.append(("connect", conn.root is not None))

    def on_disconnect(self, conn):
        EVENTS.append(("disconnect", conn is self.conn))

    def exposed_add(self, a, b):
        return a + b

    def exposed_div(self, a, b):
        return a / b

    def exposed_distance(self, p1, p2, scale=1):
        (x1, y1), (x2, y2) = p1, p2
        return scale * math.sqrt((x2 - x1) ** 2 + (y2 - y1) ** 2)

    def exposed_apply(self, func, *args, **kwargs):
        """Calls the client back."""
        return func(*args, **kwargs)

    def exposed_apply_many(self, func, count):
        return [func(i) for i in range(count)]

    def exposed_raise_builtin(self, name, *args):
        import builtins
        raise getattr(builtins, name)(*args)

    def exposed_fail(self, message):
        raise CustomError(message)

    def exposed_events(self):
        return tuple(EVENTS)

    def exposed_pid(self):
        return os.getpid()

    def exposed_endpoints(self):
        return self.conn._config["endpoints"]

    def exposed_credentials(self):
        return self.conn._config["credentials"]

    def exposed_caught(self, func):
        """What the service catches when a callback raises: the class it
        was made as, and whether it is a ValueError."""
        try:
            func()
        except Exception as error:
            return type(error).__name__, isinstance(error, ValueError)
        return None

    def exposed_credential_items(self):
        # a dict is not sent by value; its items are
        credentials = self.conn._config["credentials"]
        return None if credentials is None else tuple(sorted(credentials.items()))

    def exposed_remember(self, value):
        self.remembered = value

    def exposed_recall(self):
        return getattr(self, "remembered", None)

    def exposed_getlist(self):
        return [1, 2, 3]

    def exposed_sleep(self, seconds):
        time.sleep(seconds)
        return seconds

    def foobar(self):
        raise AssertionError("not exposed: must not be reachable")

    exposed_answer = 42


# one instance for every connection, as ThreadedServer(CalculatorService())
SHARED = CalculatorService()


class QuietCalculatorService(CalculatorService):
    """The calculator whose on_connect does not call the client."""

    def on_connect(self, conn):
        self.conn = conn


class TimeService(rpyc.Service):
    """rpyc's documentation's first service."""

    def exposed_get_time(self):
        return time.ctime()

    def exposed_get_utc(self):
        return time.time()


class NeedsArgument(rpyc.Service):
    """A service a server cannot make per connection: rpyc's servers call
    the class with no arguments."""

    def __init__(self, name):
        super().__init__()
        self.name = name
