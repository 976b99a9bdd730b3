"""rpyc-serve's --authenticator against rpyc's ThreadedServer given the same
callable as its ``authenticator``: called once per connection before the
protocol starts, its credentials reaching the service as
``conn._config["credentials"]``, a refusal logged with the peer and the
server serving on; composed with TLS; in every serving mode."""

import os
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path

import pytest
import rpyc
from rpyc.core.stream import PipeStream, SocketStream
from rpyc.utils.factory import connect_stream

from conftest import SERVICES, binary, server_env, start

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "daemon"))
from certs import make_pki  # noqa: E402

SERVICE = "calculator:CalculatorService"
CLOSED = (EOFError, ConnectionError, OSError)


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_pki(tmp_path_factory.mktemp("pki"))


def say(sock, line):
    """Sends the authenticator its line; its answer (b"" when it hung up)."""
    sock.sendall(line + b"\n")
    answer = b""
    while not answer.endswith(b"\n"):
        chunk = sock.recv(1)
        if not chunk:
            break
        answer += chunk
    return answer


def plain(port):
    return socket.create_connection(("127.0.0.1", port), timeout=20)


def over_tls(port, pki, client):
    context = ssl.create_default_context(cafile=pki.ca)
    context.check_hostname = False
    context.load_cert_chain(client.cert, client.key)
    return context.wrap_socket(plain(port))


def session(sock):
    sock.settimeout(None)
    return connect_stream(SocketStream(sock))


def credentials(conn):
    return dict(conn.root.credential_items())


def hangs_up(sock):
    """Whether the server closed the connection (nothing more comes)."""
    try:
        return sock.recv(1) == b""
    except CLOSED:
        return True


def logged(served, text, within=5.0):
    """Whether the server's log shows ``text`` within a few seconds (a
    refusal is logged after the connection is closed)."""
    deadline = time.monotonic() + within
    while text not in served.log():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_a_password_lets_the_client_in_and_its_credentials_reach_the_service(serve):
    served = serve(SERVICE, auth="authenticators:vetting")
    sock = plain(served.port)
    assert say(sock, b"sesame") == b"OK\n"
    with session(sock) as conn:
        assert conn.root.add(1, 2) == 3
        assert conn.root.apply(lambda: "called back") == "called back"
        got = credentials(conn)
    assert got["user"] == "alice" and got["peer"] == "127.0.0.1"
    # the process that serves: rpyc's threaded server, or ours
    assert got["pid"] == served.proc.pid


def test_it_is_called_once_per_connection(serve):
    served = serve(SERVICE, auth="authenticators:vetting")
    calls = []
    for _ in range(3):
        sock = plain(served.port)
        assert say(sock, b"sesame") == b"OK\n"
        with session(sock) as conn:
            calls.append(credentials(conn)["call"])
            # a second look is the same connection: no new call
            calls.append(credentials(conn)["call"])
    assert calls == [1, 1, 2, 2, 3, 3]


def test_a_refusal_is_logged_with_the_peer_and_others_are_served(serve):
    served = serve(SERVICE, auth="authenticators:vetting")
    refused = plain(served.port)
    assert say(refused, b"open sesame") == b"NO\n"
    assert hangs_up(refused)
    sock = plain(served.port)
    assert say(sock, b"sesame") == b"OK\n"
    with session(sock) as conn:
        assert conn.root.add(2, 3) == 5
    refused_port = refused.getsockname()[1]
    assert logged(served, "failed to authenticate")
    log = served.log()
    # rpyc names the peer as a (host, port) tuple, rpycd as [host]:port
    assert (f"[127.0.0.1]:{refused_port}" in log
            or f"('127.0.0.1', {refused_port})" in log), log
    assert served.alive()


@pytest.mark.parametrize("line, shown", [
    (b"bug", "ValueError: a bug in the authenticator"),
    (b"tuple", None),
    (b"exit", None),
])
def test_a_failing_authenticator_ends_only_its_connection(serve, line, shown):
    served = serve(SERVICE, auth="authenticators:vetting")
    broken = plain(served.port)
    broken.sendall(line + b"\n")
    assert hangs_up(broken)
    sock = plain(served.port)
    assert say(sock, b"sesame") == b"OK\n"
    with session(sock) as conn:
        assert conn.root.add(2, 3) == 5
    assert served.alive()
    if shown:
        assert logged(served, shown), served.log()


def test_through_makefile(serve):
    served = serve(SERVICE, auth="authenticators:by_file")
    sock = plain(served.port)
    assert say(sock, b"sesame") == b"OK\n"
    with session(sock) as conn:
        assert credentials(conn) == {"user": "alice", "read": "makefile"}


def test_after_tls_it_sees_the_certificate_and_reads_decrypted_bytes(serve, pki):
    pair = pki.servers["rsa"]
    served = serve(SERVICE, ssl=(pair.key, pair.cert, pki.ca),
                   auth="authenticators:certificate_and_password")
    sock = over_tls(served.port, pki, pki.alice)
    assert say(sock, b"sesame") == b"OK\n"
    with session(sock) as conn:
        assert conn.root.apply(lambda: "over TLS") == "over TLS"
        got = credentials(conn)
    der = len(ssl.PEM_cert_to_DER_cert(Path(pki.alice.cert).read_text()))
    assert (got["cn"], got["user"], got["der"]) == ("alice", "alice", der)
    refused = over_tls(served.port, pki, pki.alice)
    assert say(refused, b"wrong") == b"NO\n"
    assert hangs_up(refused)
    assert served.alive()


def test_rpycs_own_ssl_authenticator_as_the_authenticator(serve, pki):
    """rpyc's SSLAuthenticator returns the TLS socket it wrapped: the
    connection goes on through that object."""
    pair = pki.servers["rsa"]
    served = serve(SERVICE, auth="authenticators:rpycs_ssl",
                   env={"TEST_TLS": f"{pair.key},{pair.cert},{pki.ca}"})
    for _ in range(2):
        conn = rpyc.ssl_connect("127.0.0.1", served.port, ca_certs=pki.ca,
                                keyfile=pki.alice.key, certfile=pki.alice.cert)
        with conn:
            assert conn.root.add(20, 22) == 42
            assert conn.root.apply(lambda: "through ssl.SSLSocket") == "through ssl.SSLSocket"
            blob = os.urandom(3 << 20)
            conn.root.remember(blob)
            assert conn.root.recall() == blob
            assert credentials(conn) == ssl._ssl._test_decode_cert(pki.alice.cert)
    with pytest.raises((ssl.SSLError, *CLOSED)):
        refused = rpyc.ssl_connect("127.0.0.1", served.port, ca_certs=pki.ca,
                                   keyfile=pki.mallory.key, certfile=pki.mallory.cert)
        refused.root.add(1, 2)
    assert served.alive()


# rpyc-serve only from here: rpyc's ThreadedServer has no other modes and
# waits for an authenticator without end


@pytest.mark.parametrize("mode", ["threadpool", "forking", "oneshot"])
def test_every_mode_authenticates(tmp_path, mode):
    served = start("rpycd", SERVICE, tmp_path, args=["-m", mode],
                   auth="authenticators:vetting")
    try:
        if mode != "oneshot":
            refused = plain(served.port)
            assert say(refused, b"nope") == b"NO\n"
            assert hangs_up(refused)
        sock = plain(served.port)
        assert say(sock, b"sesame") == b"OK\n"
        with session(sock) as conn:
            got = credentials(conn)
            assert conn.root.apply(lambda: "called back") == "called back"
        assert got["user"] == "alice"
        if mode == "forking":
            # in the connection's own process, as rpyc's ForkingServer does
            assert got["pid"] != served.proc.pid and got["call"] == 1
        if mode == "oneshot":
            assert served.proc.wait(20) == 0
    finally:
        served.stop()


def serve_stdio(stdin, stdout, *args):
    return subprocess.Popen(
        [binary("rpyc-serve"), "-m", "stdio", "--path", str(SERVICES),
         "--authenticator", "authenticators:vetting", *args, SERVICE],
        stdin=stdin, stdout=stdout, stderr=subprocess.PIPE, env=server_env())


def test_stdio_on_a_socket_gives_a_socket(tmp_path):
    """inetd's way: the connection's socket on stdin and stdout."""
    ours, theirs = socket.socketpair()
    proc = serve_stdio(theirs, theirs)
    theirs.close()
    try:
        assert say(ours, b"sesame") == b"OK\n"
        conn = session(ours)
        got = credentials(conn)
        assert got["user"] == "alice" and got["peer"] == "unix"
        assert conn.root.add(1, 2) == 3
        conn.close()
        assert proc.wait(20) == 0
    finally:
        proc.kill()
        proc.wait()


def test_stdio_on_pipes_gives_a_stream_socket(tmp_path):
    """rpyc.connect_subproc's way: pipes, which are not sockets."""
    proc = serve_stdio(subprocess.PIPE, subprocess.PIPE)
    try:
        proc.stdin.write(b"sesame\n")
        proc.stdin.flush()
        assert proc.stdout.read(3) == b"OK\n"
        conn = connect_stream(PipeStream(proc.stdout, proc.stdin))
        got = credentials(conn)
        assert got["user"] == "alice" and got["peer"] is None
        assert conn.root.apply(lambda: "over pipes") == "over pipes"
        conn.close()
        assert proc.wait(20) == 0
    finally:
        proc.kill()
        proc.wait()


def test_stdio_refusal_exits_with_the_peer_told_nothing_more(tmp_path):
    proc = serve_stdio(subprocess.PIPE, subprocess.PIPE)
    try:
        out, err = proc.communicate(b"wrong\n", timeout=20)
        assert out == b"NO\n"
        assert b"failed to authenticate: wrong password" in err
    finally:
        proc.kill()
        proc.wait()


def test_a_client_that_never_answers_is_cut_at_the_handshake_timeout(tmp_path):
    served = start("rpycd", SERVICE, tmp_path, args=["--handshake-timeout", "1"],
                   auth="authenticators:silent")
    try:
        started = time.monotonic()
        quiet = plain(served.port)
        assert hangs_up(quiet)
        assert time.monotonic() - started < 10
        assert logged(served, "failed to authenticate"), served.log()
        assert served.alive()
    finally:
        served.stop()


def run_serve(*args):
    return subprocess.run([binary("rpyc-serve"), "-p", "0", "--path", str(SERVICES), *args],
                          capture_output=True, text=True, env=server_env(), timeout=30)


@pytest.mark.parametrize("name, message", [
    ("authenticators:nothing_here", "nothing_here"),
    ("no_such_module:auth", "No module named 'no_such_module'"),
    ("authenticators:PASSWORD", "is not callable"),
    ("authenticators", "is not package.module:callable"),
])
def test_an_authenticator_that_cannot_be_loaded_is_a_config_error(name, message):
    for check in ([], ["--check-config"]):
        result = run_serve(*check, "--authenticator", name, SERVICE)
        assert result.returncode == 78, result
        assert result.stderr.startswith("rpyc-serve: cannot load the authenticator"), result
        assert message in result.stderr
