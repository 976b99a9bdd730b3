"""rpyc-serve's ``--authenticator``: what rpyc's servers take as their
``authenticator``, a callable given the accepted connection's socket before
the protocol starts, which returns ``(socket, credentials)`` or raises
``rpyc.utils.authenticators.AuthenticationError`` to turn the client away.

It is called once per connection, in the thread (or forked child) that
serves it. Over a plain socket it gets a ``socket.socket``; where rpyc-serve
ends TLS itself, or the connection is a pipe (``--mode stdio``), it gets a
``StreamSocket``, which has the socket methods authenticators use (and
``getpeercert()`` under TLS, as an ``ssl.SSLSocket`` has it).
"""
import io
import os
import socket
import traceback

from .serve import import_named


def load_authenticator(spec, paths=()):
    """The callable ``package.module:name`` names (a function, or an object
    with ``__call__`` such as rpyc's ``SSLAuthenticator``)."""
    obj = import_named(spec, paths, "package.module:callable")
    if not callable(obj):
        raise TypeError(f"{spec} is not callable (it is a {type(obj).__name__})")
    return obj


def _is_authentication_error(error):
    # by name: the server's Python need not have rpyc, and an authenticator
    # may raise rpyc's class or a subclass of it
    return any(cls.__name__ == "AuthenticationError" for cls in type(error).__mro__)


def _where(error):
    frames = traceback.extract_tb(error.__traceback__)
    if not frames:
        return ""
    last = frames[-1]
    return f" ({os.path.basename(last.filename)}, line {last.lineno}, in {last.name})"


def authenticate(authenticator, sock):
    """Calls the authenticator as rpyc's server does
    (``sock2, credentials = authenticator(sock)``).

    Returns ``(True, sock2, credentials)``, or ``(False, why, refused)``
    where ``refused`` says the authenticator turned the client away
    (``AuthenticationError``) rather than failed. Nothing it raises,
    ``SystemExit`` included, reaches the server.
    """
    try:
        result = authenticator(sock)
    except BaseException as error:  # noqa: B036 -- a daemon serves on
        if _is_authentication_error(error):
            return False, str(error) or type(error).__name__, True
        return False, (f"the authenticator raised {type(error).__name__}: {error}"
                       f"{_where(error)}"), False
    try:
        sock2, credentials = result
    except (TypeError, ValueError):
        return False, (f"the authenticator returned {type(result).__name__}, "
                       f"not (socket, credentials)"), False
    return True, sock2, credentials


class StreamSocket:
    """A connection that is not a plain socket, as a socket: TLS that
    rpyc-serve ended itself (the bytes here are the decrypted ones, as
    after ``ssl.wrap_socket``), or stdin and stdout. ``raw`` does the
    reading and writing; a timeout set here applies to its reads."""

    def __init__(self, raw, timeout=None, peercert=None):
        self._raw = raw
        self._timeout = timeout
        self._peercert = peercert

    def __repr__(self):
        return f"<rpycd.StreamSocket fd={self.fileno()}>"

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # reading and writing

    def recv(self, bufsize, flags=0):
        if flags:
            raise ValueError("recv flags are not supported on this connection")
        if bufsize < 0:
            raise ValueError("negative buffersize in recv")
        if bufsize == 0:
            return b""
        return self._raw.recv(bufsize, self._timeout)

    def recv_into(self, buffer, nbytes=0, flags=0):
        view = memoryview(buffer).cast("B")
        data = self.recv(nbytes or len(view), flags)
        view[:len(data)] = data
        return len(data)

    def send(self, data, flags=0):
        if flags:
            raise ValueError("send flags are not supported on this connection")
        data = bytes(data)
        self._raw.sendall(data)
        return len(data)

    def sendall(self, data, flags=0):
        self.send(data, flags)

    def makefile(self, mode="r", buffering=None, *, encoding=None, errors=None, newline=None):
        """As ``socket.makefile``: a file reading and writing through this
        connection."""
        reading, writing = "r" in mode, "w" in mode
        rawmode = ("r" if reading else "") + ("w" if writing else "")
        raw = socket.SocketIO(self, rawmode)
        if buffering is None:
            buffering = -1
        if buffering < 0:
            buffering = io.DEFAULT_BUFFER_SIZE
        if buffering == 0:
            if "b" not in mode:
                raise ValueError("unbuffered streams must be binary")
            return raw
        if reading and writing:
            buffered = io.BufferedRWPair(raw, raw, buffering)
        elif reading:
            buffered = io.BufferedReader(raw, buffering)
        else:
            buffered = io.BufferedWriter(raw, buffering)
        if "b" in mode:
            return buffered
        text = io.TextIOWrapper(buffered, encoding, errors, newline)
        text.mode = mode
        return text

    def _decref_socketios(self):
        # socket.SocketIO tells its socket when it closes
        pass

    # timeouts, as a socket has them

    def settimeout(self, value):
        if value is not None:
            value = float(value)
            if value < 0:
                raise ValueError("Timeout value out of range")
        self._timeout = value

    def gettimeout(self):
        return self._timeout

    def setblocking(self, flag):
        self._timeout = None if flag else 0.0

    def getblocking(self):
        return self._timeout != 0.0

    # who is at the other end

    def fileno(self):
        return self._raw.fileno()

    def _as_socket(self, method):
        fd = os.dup(self.fileno())
        try:
            sock = socket.socket(fileno=fd)
        except OSError:
            os.close(fd)
            raise
        with sock:
            return getattr(sock, method)()

    def getpeername(self):
        return self._as_socket("getpeername")

    def getsockname(self):
        return self._as_socket("getsockname")

    def getpeercert(self, binary_form=False):
        """The client's certificate as ``ssl.SSLSocket.getpeercert()`` gives
        it (``None`` without TLS or without a client certificate)."""
        if binary_form:
            return self._raw.peer_der()
        return self._peercert

    # ending it

    def shutdown(self, how):
        self._raw.shutdown(how)

    def close(self):
        # the server owns the connection: it ends it when it is done
        pass
