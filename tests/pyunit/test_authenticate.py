"""rpycd.authenticate: how an authenticator's outcome is read, and
StreamSocket's socket methods, over a fake of the Rust stream."""
import errno
import socket

import pytest

from rpycd.authenticate import StreamSocket, authenticate, load_authenticator


class FakeRaw:
    """What RawStream offers StreamSocket, over a byte string."""

    def __init__(self, incoming=b"", fd=-1):
        self.incoming = bytearray(incoming)
        self.sent = bytearray()
        self.timeouts = []
        self.shut = []
        self.fd = fd

    def recv(self, size, timeout=None):
        self.timeouts.append(timeout)
        data = bytes(self.incoming[:size])
        del self.incoming[:size]
        return data

    def sendall(self, data):
        self.sent += data

    def shutdown(self, how):
        self.shut.append(how)

    def fileno(self):
        return self.fd

    def peer_der(self):
        return b"\x30\x03der"


class AuthenticationError(Exception):
    """Named as rpyc's is: recognised by name, without importing rpyc."""


class Refusing(AuthenticationError):
    pass


def test_outcomes():
    sock = object()
    assert authenticate(lambda s: (s, {"user": "a"}), sock) == (True, sock, {"user": "a"})
    assert authenticate(lambda s: [s, None], sock) == (True, sock, None)

    def refuse(s):
        raise Refusing("no entry")
    assert authenticate(refuse, sock) == (False, "no entry", True)

    def bug(s):
        raise KeyError("x")
    accepted, why, refused = authenticate(bug, sock)
    assert not accepted and not refused
    assert why.startswith("the authenticator raised KeyError: 'x' (test_authenticate.py, line")

    def leave(s):
        raise SystemExit(1)
    assert authenticate(leave, sock)[:1] == (False,)
    assert authenticate(lambda s: s, sock) == (
        False, "the authenticator returned object, not (socket, credentials)", False)
    assert authenticate(lambda s: (s, 1, 2), sock)[0] is False


def test_loading(tmp_path):
    (tmp_path / "auths.py").write_text("def ok(sock):\n    return sock, 1\nNOT = 3\n")
    assert load_authenticator("auths:ok", [str(tmp_path)])(5) == (5, 1)
    with pytest.raises(TypeError, match="is not callable"):
        load_authenticator("auths:NOT", [str(tmp_path)])
    with pytest.raises(ValueError, match="is not package.module:callable"):
        load_authenticator("auths", [str(tmp_path)])
    with pytest.raises(FileNotFoundError, match="no such directory"):
        load_authenticator("auths:ok", [str(tmp_path / "missing")])


def test_reading_and_writing():
    raw = FakeRaw(b"line one\nline two\nrest")
    sock = StreamSocket(raw, 2.5, {"subject": ()})
    assert sock.recv(0) == b""
    assert sock.recv(4) == b"line"
    buf = bytearray(5)
    assert sock.recv_into(buf) == 5 and bytes(buf) == b" one\n"
    reader = sock.makefile("rb")
    assert reader.readline() == b"line two\n"
    assert raw.timeouts[-1] == 2.5
    assert sock.send(b"OK") == 2
    sock.sendall(memoryview(b"\n"))
    writer = sock.makefile("w")
    writer.write("text\n")
    writer.flush()
    assert bytes(raw.sent) == b"OK\ntext\n"
    with pytest.raises(ValueError):
        sock.recv(4, socket.MSG_PEEK)
    with pytest.raises(ValueError, match="unbuffered streams must be binary"):
        sock.makefile("r", buffering=0)


def test_timeouts_as_a_socket_has_them():
    raw = FakeRaw(b"abc")
    sock = StreamSocket(raw)
    assert sock.gettimeout() is None and sock.getblocking()
    sock.settimeout(1)
    assert sock.gettimeout() == 1.0
    sock.setblocking(False)
    assert sock.gettimeout() == 0.0 and not sock.getblocking()
    sock.setblocking(True)
    assert sock.gettimeout() is None
    with pytest.raises(ValueError):
        sock.settimeout(-1)
    sock.settimeout(0.25)
    sock.recv(1)
    assert raw.timeouts == [0.25]


def test_certificate_and_ending():
    raw = FakeRaw()
    sock = StreamSocket(raw, peercert={"subject": ((("commonName", "alice"),),)})
    assert sock.getpeercert()["subject"][0][0] == ("commonName", "alice")
    assert sock.getpeercert(binary_form=True) == b"\x30\x03der"
    with sock:
        sock.shutdown(socket.SHUT_WR)
    assert raw.shut == [socket.SHUT_WR]


def test_names_of_a_pipe_are_a_sockets_error():
    import os
    read_end, write_end = os.pipe()
    try:
        sock = StreamSocket(FakeRaw(fd=read_end))
        with pytest.raises(OSError) as raised:
            sock.getpeername()
        assert raised.value.errno == errno.ENOTSOCK
    finally:
        os.close(read_end)
        os.close(write_end)


def test_names_of_a_socket():
    with socket.create_server(("127.0.0.1", 0)) as listener:
        theirs = socket.create_connection(listener.getsockname())
        ours, _ = listener.accept()
    with ours, theirs:
        sock = StreamSocket(FakeRaw(fd=ours.fileno()))
        assert sock.getpeername() == ours.getpeername()
        assert sock.getsockname() == ours.getsockname()
