"""Authenticators as rpyc users write them for rpyc's servers
(``authenticator=``), served by rpyc's ThreadedServer and by rpyc-serve's
``--authenticator``.

``vetting`` reads one line before rpyc's protocol starts: the password
gets ``OK`` and the client in; ``bug``, ``exit`` and ``tuple`` make the
callable fail in the ways a buggy one does; anything else is refused with
``AuthenticationError``, as rpyc documents.
"""
import itertools
import os

from rpyc.utils.authenticators import AuthenticationError, SSLAuthenticator

PASSWORD = b"sesame"
LINE_MAX = 64
# how many times the callable ran in this process
_calls = itertools.count(1)


def read_line(sock):
    line = b""
    while not line.endswith(b"\n"):
        chunk = sock.recv(1)
        if not chunk:
            raise AuthenticationError("closed before the password")
        line += chunk
        if len(line) > LINE_MAX:
            raise AuthenticationError("password line too long")
    return line.strip()


def vetting(sock):
    line = read_line(sock)
    if line == b"bug":
        raise ValueError("a bug in the authenticator")
    if line == b"exit":
        raise SystemExit(3)
    if line == b"tuple":
        return sock
    if line != PASSWORD:
        sock.sendall(b"NO\n")
        raise AuthenticationError("wrong password")
    sock.sendall(b"OK\n")
    return sock, {"user": "alice", "call": next(_calls), "pid": os.getpid(),
                  "peer": _peer(sock)}


def _peer(sock):
    try:
        address = sock.getpeername()
    except OSError:  # a pipe
        return None
    return address[0] if isinstance(address, tuple) else "unix"


def by_file(sock):
    """The same password, read through ``sock.makefile``."""
    reader = sock.makefile("rb")
    line = reader.readline(LINE_MAX).strip()
    if line != PASSWORD:
        sock.sendall(b"NO\n")
        raise AuthenticationError("wrong password")
    sock.sendall(b"OK\n")
    return sock, {"user": "alice", "read": "makefile"}


def certificate_and_password(sock):
    """After TLS: the client certificate's common name, and the password."""
    cert = sock.getpeercert()
    if not cert:
        raise AuthenticationError("no client certificate")
    names = dict(rdn[0] for rdn in cert["subject"])
    sock, credentials = vetting(sock)
    credentials["cn"] = names["commonName"]
    credentials["der"] = len(sock.getpeercert(binary_form=True))
    return sock, credentials


def rpycs_ssl(sock):
    """rpyc's own SSLAuthenticator, on the files $TEST_TLS names
    (key,cert,ca): it returns the TLS socket it wrapped and
    getpeercert()'s dict."""
    key, cert, ca = os.environ["TEST_TLS"].split(",")
    return SSLAuthenticator(key, cert, ca_certs=ca)(sock)


def silent(sock):
    """Waits for a byte that may never come, with no timeout of its own."""
    sock.settimeout(None)
    read_line(sock)
    return sock, None
