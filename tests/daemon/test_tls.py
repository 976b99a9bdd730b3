"""TLS for the classic server (`--ssl-keyfile`, `--ssl-certfile`, `--ssl-cafile`),
driven with the real rpyc 6.0.2 client.

Every test that both servers can pass runs against each server kind (test ids
`[python]` and `[rpycd]`; `RPYCD_TLS_SERVERS`, default `python,rpycd`):

- `python`: rpyc 6.0.2's own server, the reference behaviour:
  `<venv>/bin/python <venv>/bin/rpyc_classic --host 127.0.0.1 -p PORT --ssl-keyfile K ...`
- `rpycd`: `<RPYCD_BIN_DIR>/rpyc-classic --host 127.0.0.1 -p PORT --ssl-keyfile K ...`

Tests of what only rpycd promises (handshake timeout, threadpool and stdio with
TLS, configuration errors, the environment and credential forms) skip for
`python` with the reason.

What rpyc 6.0.2's server does when it refuses (seen with its `rpyc_classic`):
- no client certificate, TLS 1.3: the client's handshake completes (in TLS 1.3
  the server checks the client's certificate after the client has finished), so
  `rpyc.classic.ssl_connect` fails on its first request with
  `EOFError(SSLError('... TLSV13_ALERT_CERTIFICATE_REQUIRED ...'))` or
  `EOFError(SSLEOFError(...))`;
- a client certificate from another CA, TLS 1.3: `EOFError(SSLError('... TLSV1_ALERT_UNKNOWN_CA ...'))`;
- the same under TLS 1.2: the handshake itself fails, `ssl.SSLError` (`SSLV3_ALERT_HANDSHAKE_FAILURE`,
  `TLSV1_ALERT_UNKNOWN_CA`);
- plain RPyC on the TLS port: `EOFError(ConnectionResetError(104, ...))`;
- a client offering TLS 1.0/1.1 only: `ssl.SSLError` (`TLSV1_ALERT_INTERNAL_ERROR`).
So "refused" is: `EOFError` or an `OSError` (`ssl.SSLError`, `ConnectionResetError`,
`BrokenPipeError`), but never a timeout, and no classic call succeeds.
"""

import hashlib
import os
import random
import re
import select
import shutil
import socket
import ssl
import subprocess
import sys
import sysconfig
import time
import warnings
from pathlib import Path

import pytest
import rpyc
import rpyc.core.protocol
from rpyc.core.stream import SocketStream
from rpyc.utils.factory import connect_stream

from certs import make_pki, make_trust
from reliability import record
from conftest import accepts, binary, free_port, server_env, wait_until

SERVER_KINDS = [kind.strip() for kind in
                os.environ.get("RPYCD_TLS_SERVERS", "python,rpycd").split(",") if kind.strip()]
# a refused client sees one of these (ssl.SSLError, ConnectionResetError and
# BrokenPipeError are OSErrors); TimeoutError (an OSError too) is a hang, not a refusal
REFUSED = (EOFError, OSError)
# rpyc.classic.connect and rpyc.classic.ssl_connect take no config: every
# synchronous request they make is bounded through the defaults they copy
REQUEST_TIMEOUT = 5
# what the handshake timeout must stay under (the issue says "bounded")
HANDSHAKE_BOUND = 30
COMMAND_TIMEOUT = 20


@pytest.fixture(scope="session")
def pki(tmp_path_factory):
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(autouse=True)
def bounded_requests(monkeypatch):
    monkeypatch.setitem(rpyc.core.protocol.DEFAULT_CONFIG, "sync_request_timeout", REQUEST_TIMEOUT)


@pytest.fixture(params=SERVER_KINDS)
def kind(request):
    return request.param


def rpycd_only(kind, why):
    if kind == "python":
        pytest.skip(f"rpycd only: {why}")


def server_command(kind):
    if kind == "python":
        return [sys.executable, os.path.join(sysconfig.get_paths()["scripts"], "rpyc_classic")]
    return [binary()]


class Server:
    def __init__(self, daemon, port):
        self.daemon = daemon
        self.port = port

    @property
    def pid(self):
        return self.daemon.proc.pid

    def log(self):
        return self.daemon.log()


@pytest.fixture
def tls_server(daemons, tmp_path, pki, kind):
    """start(key="rsa" | a Pair, cafile=None, args=(), env=None): a TLS server of
    this test's kind on a free loopback port, once it accepts."""

    def start(key="rsa", cafile=None, args=(), env=None):
        pair = pki.servers[key] if isinstance(key, str) else key
        port = free_port()
        argv = [*server_command(kind), "--host", "127.0.0.1", "-p", str(port),
                "--ssl-keyfile", pair.key, "--ssl-certfile", pair.cert]
        if cafile:
            argv += ["--ssl-cafile", cafile]
        daemon = daemons([*argv, *args], tmp_path, env=env)
        wait_until(lambda: daemon.proc.poll() is not None or accepts("127.0.0.1", port),
                   f"port {port} to accept")
        assert daemon.proc.poll() is None, daemon.log()
        return Server(daemon, port)

    return start


# --- clients ---------------------------------------------------------------

def ssl_connect(port, pki, client=None, ca=None):
    """rpyc.classic.ssl_connect as rpyc's docs show it."""
    kwargs = {"keyfile": client.key, "certfile": client.cert} if client else {}
    return rpyc.classic.ssl_connect("127.0.0.1", port, ca_certs=ca or pki.ca, **kwargs)


def client_context(pki, client=None, maximum=None):
    """The context rpyc.ssl_connect builds for ca_certs=CA (and keyfile/certfile),
    by hand, for what its arguments cannot say (the highest TLS version)."""
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    if client:
        ctx.load_cert_chain(client.cert, keyfile=client.key)
    ctx.load_verify_locations(pki.ca)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_REQUIRED
    if maximum:
        ctx.maximum_version = maximum
    return ctx


def connect_with(ctx, port, sock=None):
    """A classic connection over `ctx`, on `sock` if given (already connected)."""
    sock = sock or socket.create_connection(("127.0.0.1", port), timeout=3)
    try:
        tls = ctx.wrap_socket(sock, server_hostname="127.0.0.1") if ctx else sock
    except BaseException:
        sock.close()
        raise
    return connect_stream(SocketStream(tls), rpyc.classic.ClassicService)


def first_flight(ctx):
    """The bytes a TLS client with this context sends first (its ClientHello)."""
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(incoming, outgoing, server_hostname="localhost")
    with pytest.raises(ssl.SSLWantReadError):
        obj.do_handshake()
    return outgoing.read()


def tls_version(conn):
    return conn._channel.stream.sock.version()


def assert_classic_session_works(conn):
    assert conn.eval("6 * 7") == 42
    assert conn.modules.sys.version_info[0] == 3
    # the server iterates our list through requests of its own: callbacks work
    assert list(conn.builtins.list([1, 2, 3])) == [1, 2, 3]
    conn.execute("tls_marker = 'over tls'")
    assert conn.namespace["tls_marker"] == "over tls"
    assert (tls_version(conn) or "").startswith("TLS"), tls_version(conn)


def served_pid(conn):
    return conn.modules.os.getpid()


def der_of_first_cert(path):
    pem = Path(path).read_text()
    first = pem[:pem.index("-----END CERTIFICATE-----") + len("-----END CERTIFICATE-----")]
    return ssl.PEM_cert_to_DER_cert(first)


def refused(connect):
    """connect() and a classic call must fail with a refusal, promptly; returns the exception."""
    conn = None
    start = time.monotonic()
    try:
        conn = connect()
        value = conn.eval("'served'")
    except TimeoutError as exc:
        pytest.fail(f"the server neither served nor refused the client: {exc!r}")
    except REFUSED as exc:
        assert time.monotonic() - start < REQUEST_TIMEOUT, "the refusal took too long"
        return exc
    finally:
        if conn is not None:
            try:
                conn.close()
            except Exception:
                pass
    pytest.fail(f"the client was served ({value!r}) where it should have been refused")


def plain_connect(port):
    return rpyc.classic.connect("127.0.0.1", port)


REFUSALS = {
    "no-client-cert": lambda port, pki: ssl_connect(port, pki),
    "other-ca-cert": lambda port, pki: ssl_connect(port, pki, client=pki.mallory),
    "plain-rpyc": lambda port, pki: plain_connect(port),
}


def assert_refusals_leave_it_serving(server, pki, refusals):
    """A good client, the refusals, then: the good client still works, and the
    next good client is served by the same server."""
    good = ssl_connect(server.port, pki, client=pki.alice)
    assert good.eval("'before'") == "before"
    before = served_pid(good)
    for name in refusals:
        exc = refused(lambda: REFUSALS[name](server.port, pki))
        assert isinstance(exc, REFUSED), (name, exc)
    assert good.eval("'still here'") == "still here"
    good.close()
    after = ssl_connect(server.port, pki, client=pki.alice)
    assert_classic_session_works(after)
    assert server.daemon.proc.poll() is None
    after_pid = served_pid(after)
    after.close()
    return before, after_pid


def lines_about(log, client_port):
    """The log lines that name the client 127.0.0.1:client_port, in either
    server's spelling: ('127.0.0.1', 5000) or [127.0.0.1]:5000."""
    pattern = re.compile(rf"127\.0\.0\.1\D{{1,4}}{client_port}\b")
    return [line for line in log.splitlines() if pattern.search(line)]


def refusal_lines(log, client_port):
    """Lines about the client that are neither its accept, welcome nor goodbye,
    and that say something after the address (the reason)."""
    found = []
    for line in lines_about(log, client_port):
        if any(word in line for word in ("accepted", "welcome", "goodbye")):
            continue
        after = line.split(str(client_port), 1)[1].strip(" )]:,-.")
        if after:
            found.append(line)
    return found


# --- server-only TLS -------------------------------------------------------

@pytest.mark.parametrize("key", ["rsa", "ecdsa", "ed25519"])
def test_server_only_tls_with_classic_ssl_connect(tls_server, pki, key):
    server = tls_server(key)
    conn = ssl_connect(server.port, pki)
    assert_classic_session_works(conn)
    sock = conn._channel.stream.sock
    # the server presents the certificate it was given, and the client checked it
    assert sock.getpeercert(binary_form=True) == der_of_first_cert(pki.servers[key].cert)
    assert dict(field[0] for field in sock.getpeercert()["subject"])["commonName"] == "localhost"
    assert served_pid(conn) == server.pid
    conn.close()
    # verification is real: a client trusting another CA refuses this server
    with pytest.raises(ssl.SSLCertVerificationError):
        ssl_connect(server.port, pki, ca=pki.other_ca)
    # and the server still serves
    again = ssl_connect(server.port, pki)
    assert again.eval("'again'") == "again"


def test_certificate_file_with_a_chain(tls_server, pki):
    # the leaf is signed by an intermediate; the client trusts only the root
    server = tls_server(pki.chained_server)
    conn = ssl_connect(server.port, pki)
    assert_classic_session_works(conn)
    assert (conn._channel.stream.sock.getpeercert(binary_form=True)
            == der_of_first_cert(pki.chained_server.cert))


def test_client_certificate_is_neither_asked_nor_checked_without_cafile(tls_server, pki):
    server = tls_server()
    for client in (None, pki.alice, pki.mallory):
        conn = ssl_connect(server.port, pki, client=client)
        assert conn.eval("'served'") == "served"
        conn.close()


def test_tls_1_2_is_served(tls_server, pki):
    server = tls_server("ecdsa", cafile=pki.ca)
    conn = connect_with(client_context(pki, pki.alice, maximum=ssl.TLSVersion.TLSv1_2), server.port)
    assert tls_version(conn) == "TLSv1.2"
    assert_classic_session_works(conn)
    conn.close()
    # refusals under TLS 1.2 happen in the handshake itself
    for client in (None, pki.mallory):
        ctx = client_context(pki, client, maximum=ssl.TLSVersion.TLSv1_2)
        assert isinstance(refused(lambda: connect_with(ctx, server.port)), REFUSED)
    conn = ssl_connect(server.port, pki, client=pki.alice)
    assert tls_version(conn) == "TLSv1.3"
    assert conn.eval("'after'") == "after"


def test_tls_below_1_2_is_refused(tls_server, pki):
    server = tls_server()
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        ctx.minimum_version = ssl.TLSVersion.TLSv1
        ctx.maximum_version = ssl.TLSVersion.TLSv1_1
    # this client really offers TLS 1.1 at most: a handshake record whose
    # ClientHello.client_version is 3.2 (1.3's supported_versions needs 3.3)
    hello = first_flight(ctx)
    assert hello[0] == 0x16 and hello[5] == 0x01 and hello[9:11] == b"\x03\x02", hello[:11].hex()
    refused(lambda: connect_with(ctx, server.port))
    good = ssl_connect(server.port, pki)
    assert good.eval("'ok'") == "ok"


# --- rpyc.ssl_connect ------------------------------------------------------

def test_rpyc_ssl_connect_with_keyfile_certfile_ca_certs(tls_server, pki):
    server = tls_server(cafile=pki.ca)
    conn = rpyc.ssl_connect("127.0.0.1", server.port, keyfile=pki.alice.key,
                            certfile=pki.alice.cert, ca_certs=pki.ca,
                            service=rpyc.classic.ClassicService)
    assert_classic_session_works(conn)
    conn.close()
    # as rpyc's secure-connection docs write it: the client exposes a SlaveService
    conn = rpyc.utils.factory.ssl_connect("127.0.0.1", server.port, service=rpyc.SlaveService,
                                          keyfile=pki.alice.key, certfile=pki.alice.cert,
                                          ca_certs=pki.ca)
    assert conn.root.getmodule("os").getpid() == server.pid
    assert conn.root.eval("2 ** 10") == 1024
    assert tls_version(conn).startswith("TLS")


# --- client certificates ---------------------------------------------------

def test_client_certificate_from_the_ca_is_accepted_and_named_in_welcome(tls_server, pki):
    server = tls_server(cafile=pki.ca)
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=3)
    client_port = sock.getsockname()[1]
    conn = connect_with(client_context(pki, pki.alice), server.port, sock)
    assert_classic_session_works(conn)
    assert served_pid(conn) == server.pid
    welcome = wait_until(lambda: [line for line in lines_about(server.log(), client_port)
                                  if "welcome" in line], "the welcome line")
    assert "alice" in welcome[0], welcome


@pytest.mark.parametrize("refusal", list(REFUSALS))
def test_refused_client_and_the_daemon_serves_on(tls_server, pki, refusal):
    server = tls_server(cafile=pki.ca)
    before, after = assert_refusals_leave_it_serving(server, pki, [refusal])
    assert before == after == server.pid


def test_plain_rpyc_on_a_server_only_tls_port_is_refused(tls_server, pki):
    server = tls_server()
    exc = refused(lambda: plain_connect(server.port))
    assert isinstance(exc, REFUSED)
    conn = ssl_connect(server.port, pki)
    assert served_pid(conn) == server.pid


def test_refusals_are_logged_with_the_address(tls_server, pki, kind):
    server = tls_server(cafile=pki.ca)
    attempts = {
        "no-client-cert": client_context(pki),
        "other-ca-cert": client_context(pki, pki.mallory),
        "plain-rpyc": None,
    }
    reasons = {}
    for name, ctx in attempts.items():
        sock = socket.create_connection(("127.0.0.1", server.port), timeout=3)
        client_port = sock.getsockname()[1]
        refused(lambda: connect_with(ctx, server.port, sock))
        lines = wait_until(lambda: refusal_lines(server.log(), client_port),
                           f"the {name} refusal of port {client_port} in the log:\n{server.log()}")
        assert not any("welcome" in line for line in lines_about(server.log(), client_port))
        reasons[name] = lines[0].split(str(client_port), 1)[1]
    if kind == "rpycd":
        # the reason, not just the fact: three different failures, three different lines
        assert len(set(reasons.values())) == 3, reasons
    conn = ssl_connect(server.port, pki, client=pki.alice)
    assert conn.eval("'ok'") == "ok"


def test_garbage_on_a_tls_port_is_refused_and_no_key_is_logged(tls_server, pki, kind):
    """Random bytes, and a ClientHello cut short, get a refusal line each;
    the daemon serves on, and its log holds nothing of the private key."""
    server = tls_server(cafile=pki.ca)
    garbage = [bytes(random.Random(seed).getrandbits(8) for _ in range(512)) for seed in range(3)]
    # a TLS record header for a 512-byte handshake, then only 10 bytes of it
    garbage.append(bytes([0x16, 0x03, 0x01, 0x02, 0x00]) + b"\x01" * 10)
    for blob in garbage:
        sock = socket.create_connection(("127.0.0.1", server.port), timeout=3)
        client_port = sock.getsockname()[1]
        try:
            sock.sendall(blob)
            # the server may have refused and reset the connection already
            # (rpyc's does at the first bad bytes): nothing left to say then
            sock.shutdown(socket.SHUT_WR)
            while sock.recv(4096):
                pass
        except OSError:
            pass
        sock.close()
        wait_until(lambda: refusal_lines(server.log(), client_port),
                   f"a refusal line for port {client_port}:\n{server.log()}")
    conn = ssl_connect(server.port, pki, client=pki.alice)
    assert conn.eval("'ok'") == "ok"
    conn.close()
    log = server.log()
    key_body = [line for line in Path(pki.servers["rsa"].key).read_text().splitlines()
                if line and not line.startswith("-----")]
    assert "PRIVATE KEY" not in log
    assert not any(line in log for line in key_body)
    record("TLS garbage", "3 × 512 random bytes and a ClientHello cut short on a port with "
           "client-certificate TLS", f"{len(garbage)} refused, each with a log line; a good "
           "client served afterwards; no key material in the log", server=kind,
           refused=len(garbage))


# --- modes -----------------------------------------------------------------

def test_forking_mode(tls_server, pki):
    server = tls_server(cafile=pki.ca, args=("-m", "forking"))
    before, after = assert_refusals_leave_it_serving(server, pki, list(REFUSALS))
    assert server.pid not in (before, after) and before != after


def test_oneshot_mode(kind, pki):
    argv = [*server_command(kind), "--mode=oneshot", "--host=127.0.0.1", "-p0",
            "--ssl-keyfile", pki.servers["ecdsa"].key, "--ssl-certfile", pki.servers["ecdsa"].cert,
            "--ssl-cafile", pki.ca]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            env=server_env())
    try:
        assert proc.stdout.readline() == b"rpyc-oneshot\n"
        host, port = proc.stdout.readline().decode().rstrip("\n").split("\t")
        conn = ssl_connect(int(port), pki, client=pki.alice)
        assert_classic_session_works(conn)
        conn.close()
        assert proc.wait(COMMAND_TIMEOUT) == 0
        assert not accepts(host, int(port))
    finally:
        proc.kill()
        proc.wait()


def test_threadpool_mode(tls_server, pki, kind):
    rpycd_only(kind, "rpyc 6.0.2's rpyc_classic has no threadpool mode")
    server = tls_server(cafile=pki.ca, args=("-m", "threadpool"))
    before, after = assert_refusals_leave_it_serving(server, pki, list(REFUSALS))
    assert before == after == server.pid


def test_stdio_mode_under_systemd_socket_activate_inetd(daemons, tmp_path, pki, kind):
    rpycd_only(kind, "rpyc 6.0.2's stdio mode ignores the --ssl-* switches")
    port = free_port()
    pair = pki.servers["rsa"]
    daemon = daemons(["systemd-socket-activate", "-l", f"127.0.0.1:{port}", "--inetd", "-a",
                      binary(), "-m", "stdio", "--ssl-keyfile", pair.key,
                      "--ssl-certfile", pair.cert, "--ssl-cafile", pki.ca], tmp_path)
    wait_until(lambda: accepts("127.0.0.1", port), "the activation socket")
    first = ssl_connect(port, pki, client=pki.alice)
    second = ssl_connect(port, pki, client=pki.alice)
    assert_classic_session_works(first)
    assert_classic_session_works(second)
    # one process per connection, the inetd way
    assert served_pid(first) != served_pid(second)
    for name in REFUSALS:
        refused(lambda: REFUSALS[name](port, pki))
    assert first.eval("'still here'") == "still here"
    first.close()
    second.close()
    assert daemon.proc.poll() is None


def test_socket_activation_passes_the_socket(daemons, tmp_path, pki, kind):
    rpycd_only(kind, "rpyc 6.0.2 cannot take a socket from systemd")
    port = free_port()
    pair = pki.servers["ecdsa"]
    daemons(["systemd-socket-activate", "-l", f"127.0.0.1:{port}", binary(),
             "--ssl-keyfile", pair.key, "--ssl-certfile", pair.cert], tmp_path)
    wait_until(lambda: accepts("127.0.0.1", port), "the activation socket")
    conn = ssl_connect(port, pki)
    assert_classic_session_works(conn)
    refused(lambda: plain_connect(port))
    assert ssl_connect(port, pki).eval("'ok'") == "ok"


# --- what a CA bundle vouches for ------------------------------------------
#
# Each bundle is put to both servers with the same files: Python's rpyc_classic
# (OpenSSL) is the reference. A bundle entry OpenSSL would never accept as the
# root of a client's chain is, to rpycd, a configuration error: it exits 78 at
# start naming the entry, where OpenSSL silently never uses it.

@pytest.fixture(scope="session")
def trust(pki, tmp_path_factory):
    return make_trust(pki, tmp_path_factory.mktemp("trust"))


TLS_VERSIONS = [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3]

# bundle -> (clients served, {client refused: the alert both servers send}); see
# certs.make_trust for who is who. (A CA not valid yet: OpenSSL sends
# bad_certificate, rustls certificate_expired, as for any certificate not valid
# yet; RFC 8446 allows either.)
TRUST_MATRIX = {
    "ca": (["alice-v3", "alice-v1"], {"dave-v3": "UNKNOWN_CA", "dave-v1": "UNKNOWN_CA"}),
    "ca+expired": (["alice-v3", "alice-v1"],
                   {"carol-v3": "CERTIFICATE_EXPIRED", "carol-v1": "CERTIFICATE_EXPIRED"}),
    "ca+future": (["alice-v3"], {"frank-v3": None, "frank-v1": None}),
    "v1-root": (["dave-v3", "dave-v1"], {"alice-v3": "UNKNOWN_CA"}),
    "ca+intermediate": (["ivy-v3", "ivy-v1", "alice-v3"], {"dave-v3": "UNKNOWN_CA"}),
    # valid itself, but the root above it expired: OpenSSL checks the whole chain
    "expired+intermediate": ([], {"otto-v3": "CERTIFICATE_EXPIRED",
                                  "otto-v1": "CERTIFICATE_EXPIRED"}),
    # a root's pathlen:0 forbids any CA below it, whether the bundle or the
    # client brings that CA
    "tight": (["tia-v3", "tia-v1"], {"pat-chain-v3": None}),
    "tight+intermediate": (["tia-v3", "tia-v1"], {"pat-v3": None, "pat-v1": None,
                                                  "pat-chain-v3": None}),
}

# bundle -> (for Python: clients served, clients refused;
#            for rpycd: what its exit-78 message names)
NOT_ANCHORS = {
    "ca+bob": (["alice-v3", "alice-v1"], ["eve-v3", "eve-v1"],
               ["certificate 2 (CN=bob)", "CA:FALSE"]),
    "bob": ([], ["eve-v3", "eve-v1", "alice-v3"], ["certificate 1 (CN=bob)", "CA:FALSE"]),
    "ca+alice-v1": (["alice-v3"], ["vic-v3", "vic-v1"],
                    ["certificate 2 (CN=alice v1)", "not self-signed"]),
    "ca+kim-ca": (["alice-v3"], ["kim-v3", "kim-v1"],
                  ["certificate 2 (CN=CA without keyCertSign)", "keyCertSign"]),
    "ca+sam-ca": (["alice-v3"], ["sam-v3", "sam-v1"],
                  ["certificate 2 (CN=CA for servers only)", "clientAuth"]),
    # OpenSSL (without the partial-chain flag) trusts a chain only when it
    # ends at a self-signed root of the bundle
    "intermediate": ([], ["ivy-v3", "ivy-v1"],
                     ["certificate 1 (CN=rpycd intermediate CA)", "self-signed root"]),
}


def pinned_context(pki, client, version):
    """rpyc.ssl_connect's context, held to exactly one TLS version."""
    ctx = client_context(pki, client, maximum=version)
    ctx.minimum_version = version
    return ctx


def assert_bundle_decides(server, pki, trust, served, refusals):
    """Each client of `served` is served and each of `refusals` refused,
    under TLS 1.2 and 1.3; returns the refusals' exceptions by (client, version)."""
    seen = {}
    for version in TLS_VERSIONS:
        for name in served:
            conn = connect_with(pinned_context(pki, trust.clients[name], version), server.port)
            try:
                assert tls_version(conn) == version.name.replace("v1_", "v1."), name
                assert conn.eval("'served'") == "served", (name, version)
            finally:
                conn.close()
        for name in refusals:
            ctx = pinned_context(pki, trust.clients[name], version)
            seen[name, version.name] = refused(lambda: connect_with(ctx, server.port))
    assert server.daemon.proc.poll() is None
    return seen


@pytest.mark.parametrize("bundle", list(TRUST_MATRIX))
def test_trust_matrix(tls_server, pki, trust, kind, bundle):
    """CA-made clients (v1 and v3) served; a CA out of its validity (expired,
    not yet valid), or below a root that is, issues nothing; a self-signed v1
    root is an anchor; an intermediate with its root in the bundle issues,
    unless the root's pathLenConstraint forbids it."""
    served, refusals = TRUST_MATRIX[bundle]
    server = tls_server(cafile=trust.bundles[bundle])
    seen = assert_bundle_decides(server, pki, trust, served, list(refusals))
    for (name, version), exc in seen.items():
        alert = refusals[name]
        # under TLS 1.3 the client may see the connection end before the alert
        if alert and (version == "TLSv1_2" or "ALERT" in repr(exc)):
            assert f"ALERT_{alert}]" in repr(exc), (name, version, exc)


@pytest.mark.parametrize("bundle", list(NOT_ANCHORS))
def test_bundle_entries_that_cannot_issue(tls_server, pki, trust, kind, bundle):
    """A leaf, a v1 certificate that is not self-signed, a CA whose keyUsage
    forbids signing certificates, a CA for servers only, an intermediate
    without its root: OpenSSL never lets them vouch for a client; rpycd
    refuses the bundle at start, naming the entry."""
    served, refusals, named = NOT_ANCHORS[bundle]
    if kind == "python":
        server = tls_server(cafile=trust.bundles[bundle])
        assert_bundle_decides(server, pki, trust, served, refusals)
        return
    port = free_port()
    pair = pki.servers["rsa"]
    out = run_config([binary(), "--host", "127.0.0.1", "-p", str(port), "--ssl-keyfile", pair.key,
                      "--ssl-certfile", pair.cert, "--ssl-cafile", trust.bundles[bundle]])
    assert out.returncode == 78, (out.returncode, out.stderr)
    assert out.stderr.count("\n") == 1, out.stderr
    for words in [trust.bundles[bundle], *named]:
        assert words in out.stderr, out.stderr
    assert not accepts("127.0.0.1", port)


@pytest.mark.parametrize("mode", ["threaded", "threadpool", "forking"])
def test_refused_handshakes_leave_sessions_served(tls_server, pki, trust, kind, mode):
    """Clients of an expired CA refused under TLS 1.2 and 1.3 while a good
    session is open: it keeps answering, and a new one is served."""
    if mode == "threadpool":
        rpycd_only(kind, "rpyc 6.0.2's rpyc_classic has no threadpool mode")
    server = tls_server(cafile=trust.bundles["ca+expired"], args=("-m", mode))
    good = ssl_connect(server.port, pki, client=pki.alice)
    assert good.eval("'before'") == "before"
    refusals = 0
    for version in TLS_VERSIONS:
        for name in ("carol-v3", "carol-v1"):
            ctx = pinned_context(pki, trust.clients[name], version)
            exc = refused(lambda: connect_with(ctx, server.port))
            if version == ssl.TLSVersion.TLSv1_2 or "ALERT" in repr(exc):
                assert "ALERT_CERTIFICATE_EXPIRED]" in repr(exc), (name, version, exc)
            refusals += 1
            assert good.eval("6 * 7") == 42
    good.close()
    after = connect_with(pinned_context(pki, trust.clients["alice-v1"], ssl.TLSVersion.TLSv1_2),
                         server.port)
    assert_classic_session_works(after)
    after.close()
    assert server.daemon.proc.poll() is None
    record(f"TLS client of an expired CA ({mode})",
           "v1 and v3 client certificates from a CA that expired in 2020, in the bundle "
           "beside the good CA, under TLS 1.2 and 1.3, while a good session is open",
           f"{refusals} refused (certificate_expired{', as OpenSSL' if kind == 'rpycd' else ''});"
           " the open session answered after each; a new session served",
           server=kind, refused=refusals)


# --- slow and silent clients -----------------------------------------------

def wait_for_close(sock, deadline, trickle=b""):
    """Seconds until the peer closes `sock` (end of file or reset), sending one
    byte of `trickle` every half second meanwhile; None if it is still open
    after `deadline` seconds."""
    start = time.monotonic()
    sock.setblocking(False)
    while time.monotonic() - start < deadline:
        if trickle:
            try:
                sock.send(trickle[:1])
            except OSError:
                return time.monotonic() - start
            trickle = trickle[1:]
        readable, _, _ = select.select([sock], [], [], 0.5)
        if readable:
            try:
                if not sock.recv(4096):
                    return time.monotonic() - start
            except BlockingIOError:
                pass
            except OSError:
                return time.monotonic() - start
    return None


def test_silent_client_is_cut_after_the_handshake_timeout(tls_server, pki, kind):
    rpycd_only(kind, "rpyc 6.0.2 waits for a handshake forever")
    server = tls_server()
    silent = socket.create_connection(("127.0.0.1", server.port), timeout=3)
    silent_port = silent.getsockname()[1]
    # a good client is served meanwhile
    conn = ssl_connect(server.port, pki)
    assert_classic_session_works(conn)
    took = wait_for_close(silent, HANDSHAKE_BOUND)
    assert took is not None, f"a silent client was still connected after {HANDSHAKE_BOUND} s"
    wait_until(lambda: refusal_lines(server.log(), silent_port), "the timeout in the log")
    assert conn.eval("'still here'") == "still here"


def test_slow_handshake_is_bounded_as_a_whole(tls_server, pki, kind):
    rpycd_only(kind, "rpyc 6.0.2 waits for a handshake forever")
    server = tls_server()
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    hello = first_flight(ctx)
    assert len(hello) > 2 * HANDSHAKE_BOUND  # at two bytes a second it never completes in time
    slow = socket.create_connection(("127.0.0.1", server.port), timeout=3)
    took = wait_for_close(slow, HANDSHAKE_BOUND, trickle=hello)
    assert took is not None, f"a byte-a-half-second handshake was still open after {HANDSHAKE_BOUND} s"
    assert ssl_connect(server.port, pki).eval("'ok'") == "ok"


# --- configuration ---------------------------------------------------------

def run_config(argv, **kwargs):
    return subprocess.run(argv, capture_output=True, text=True, timeout=COMMAND_TIMEOUT,
                          env=kwargs.pop("env", None) or server_env(), **kwargs)


@pytest.fixture
def bad_files(pki, tmp_path):
    der_key = tmp_path / "server-key.der"
    subprocess.run(["openssl", "pkey", "-in", pki.servers["rsa"].key, "-outform", "DER",
                    "-out", str(der_key)], check=True, timeout=COMMAND_TIMEOUT)
    der_cert = tmp_path / "server-cert.der"
    subprocess.run(["openssl", "x509", "-in", pki.servers["rsa"].cert, "-outform", "DER",
                    "-out", str(der_cert)], check=True, timeout=COMMAND_TIMEOUT)
    text = tmp_path / "not-pem.txt"
    text.write_text("this is not a PEM file\n")
    return {"der_key": str(der_key), "der_cert": str(der_cert), "text": str(text),
            "missing": str(tmp_path / "missing.crt")}


CONFIG_ERRORS = {
    # name: (key, cert, cafile, the files the message may name)
    "key-does-not-match-cert": ("alice.key", "server-rsa.crt", None, ("key", "cert")),
    "key-not-pem": ("der_key", "server-rsa.crt", None, ("key",)),
    "key-is-text": ("text", "server-rsa.crt", None, ("key",)),
    "cert-not-pem": ("server-rsa.key", "der_cert", None, ("cert",)),
    "cert-missing": ("server-rsa.key", "missing", None, ("cert",)),
    "cafile-not-pem": ("server-rsa.key", "server-rsa.crt", "der_cert", ("ca",)),
}


@pytest.mark.parametrize("case", list(CONFIG_ERRORS))
def test_unusable_tls_files_exit_78_before_binding(pki, bad_files, kind, case):
    rpycd_only(kind, "the exit codes and messages are rpycd's")
    key, cert, cafile, named = CONFIG_ERRORS[case]

    def resolve(name):
        return bad_files.get(name) or os.path.join(pki.directory, name)

    files = {"key": resolve(key), "cert": resolve(cert)}
    port = free_port()
    argv = [binary(), "--host", "127.0.0.1", "-p", str(port),
            "--ssl-keyfile", files["key"], "--ssl-certfile", files["cert"]]
    if cafile:
        files["ca"] = resolve(cafile)
        argv += ["--ssl-cafile", files["ca"]]
    out = run_config(argv)
    assert out.returncode == 78, (out.returncode, out.stderr)
    assert out.stderr.count("\n") == 1, out.stderr
    assert any(files[which] in out.stderr for which in named), out.stderr
    assert not accepts("127.0.0.1", port)


@pytest.mark.parametrize("given", ["--ssl-keyfile", "--ssl-certfile"])
def test_only_one_of_key_and_cert_is_a_usage_error(pki, kind, given):
    rpycd_only(kind, "the exit codes are rpycd's")
    path = pki.servers["rsa"].key if given == "--ssl-keyfile" else pki.servers["rsa"].cert
    port = free_port()
    out = run_config([binary(), "--host", "127.0.0.1", "-p", str(port), given, path])
    assert out.returncode == 64, (out.returncode, out.stderr)
    assert out.stderr.strip()
    assert not accepts("127.0.0.1", port)


def test_help_names_the_tls_default_port(kind):
    rpycd_only(kind, "rpycd's help text")
    out = run_config([binary(), "--help"])
    assert out.returncode == 0
    assert "18821" in out.stdout


def test_tls_switches_from_the_environment(daemons, tmp_path, pki, kind):
    rpycd_only(kind, "rpyc 6.0.2 reads no environment variables")
    port = free_port()
    pair = pki.servers["ecdsa"]
    env = server_env(RPYC_CLASSIC_SSL_KEYFILE=pair.key, RPYC_CLASSIC_SSL_CERTFILE=pair.cert,
                     RPYC_CLASSIC_SSL_CAFILE=pki.ca)
    daemon = daemons([binary(), "--host", "127.0.0.1", "-p", str(port)], tmp_path, env=env)
    wait_until(lambda: daemon.proc.poll() is not None or accepts("127.0.0.1", port),
               f"port {port} to accept")
    assert daemon.proc.poll() is None, daemon.log()
    before, after = assert_refusals_leave_it_serving(Server(daemon, port), pki,
                                                     ["no-client-cert", "plain-rpyc"])
    assert before == after == daemon.proc.pid


def test_bare_names_are_read_from_the_credentials_directory(daemons, tmp_path, pki, kind):
    rpycd_only(kind, "rpyc 6.0.2 knows nothing of systemd credentials")
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    shutil.copy(pki.servers["rsa"].key, credentials / "server.key")
    shutil.copy(pki.servers["rsa"].cert, credentials / "server.crt")
    os.chmod(credentials / "server.key", 0o400)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    argv = [binary(), "--host", "127.0.0.1", "--ssl-keyfile", "server.key",
            "--ssl-certfile", "server.crt"]
    # without $CREDENTIALS_DIRECTORY the bare names are relative paths, missing here
    port = free_port()
    out = run_config([*argv, "-p", str(port)], cwd=elsewhere)
    assert out.returncode == 78, (out.returncode, out.stderr)
    assert not accepts("127.0.0.1", port)
    port = free_port()
    daemon = daemons([*argv, "-p", str(port)], tmp_path, cwd=elsewhere,
                     env=server_env(CREDENTIALS_DIRECTORY=str(credentials)))
    wait_until(lambda: daemon.proc.poll() is not None or accepts("127.0.0.1", port),
               f"port {port} to accept")
    assert daemon.proc.poll() is None, daemon.log()
    conn = ssl_connect(port, pki)
    assert_classic_session_works(conn)
    assert (conn._channel.stream.sock.getpeercert(binary_form=True)
            == der_of_first_cert(pki.servers["rsa"].cert))


@pytest.mark.parametrize("missing", ["server.crt", "ca.crt"])
def test_a_credential_missing_is_an_error_not_the_working_directory(tmp_path, pki, kind, missing):
    """With $CREDENTIALS_DIRECTORY set, a bare name is a credential or
    nothing: a file of that name in the working directory (in the units, the
    state directory, which clients' code can write) is never read instead."""
    rpycd_only(kind, "rpyc 6.0.2 knows nothing of systemd credentials")
    credentials = tmp_path / "credentials"
    workdir = tmp_path / "workdir"
    credentials.mkdir()
    workdir.mkdir()
    files = {"server.key": pki.servers["rsa"].key, "server.crt": pki.servers["rsa"].cert,
             "ca.crt": pki.ca}
    for name, source in files.items():
        shutil.copy(source, workdir / name)
        if name != missing:
            shutil.copy(source, credentials / name)
    port = free_port()
    out = run_config([binary(), "--host", "127.0.0.1", "-p", str(port), "-m", "oneshot",
                      "--ssl-keyfile", "server.key", "--ssl-certfile", "server.crt",
                      "--ssl-cafile", "ca.crt"],
                     cwd=workdir, env=server_env(CREDENTIALS_DIRECTORY=str(credentials)))
    assert out.returncode == 78, (out.returncode, out.stdout, out.stderr)
    assert missing in out.stderr and str(credentials) in out.stderr, out.stderr
    assert out.stderr.count("\n") == 1, out.stderr
    assert not accepts("127.0.0.1", port)


def test_bulk_bytes_over_tls(tls_server, pki):
    # a bytes value of 1 MiB or more is written from the Python object with
    # a vectored write, which the TLS writer takes piece by piece
    server = tls_server()
    conn = ssl_connect(server.port, pki)
    # 40 MB through rpyc's own TLS server (the reference) takes seconds of
    # pure-Python writes, more than rpyc's 30 s on a loaded 2-CPU machine
    conn._config["sync_request_timeout"] = 180
    conn.execute("bulk_value = __import__('os').urandom(40_000_000)")
    digest = conn.eval("__import__('hashlib').sha256(bulk_value).hexdigest()")
    local = conn.eval("bulk_value")
    assert type(local) is bytes and len(local) == 40_000_000
    assert hashlib.sha256(local).hexdigest() == digest
    upload = local[: 3 << 20]
    seen = conn.eval("lambda b: (len(b), __import__('hashlib').sha256(b).hexdigest())")(upload)
    assert tuple(seen) == (len(upload), hashlib.sha256(upload).hexdigest())
    conn.close()


def test_a_non_loopback_address_is_warned_of_without_tls_and_not_with_it(daemons, tmp_path, pki):
    """Binding every address (0.0.0.0; the test still connects over loopback)
    without TLS lets anyone who can reach the host run code: said at start.
    With TLS the same bind is not warned of, nor is a loopback address."""
    warning = "is not a loopback address and TLS is off"
    pair = pki.servers["rsa"]
    plain_port, tls_port, local_port = free_port(), free_port(), free_port()
    plain = daemons([binary(), "--host", "0.0.0.0", "-p", str(plain_port)], tmp_path)
    tls = daemons([binary(), "--host", "0.0.0.0", "-p", str(tls_port),
                   "--ssl-keyfile", pair.key, "--ssl-certfile", pair.cert], tmp_path)
    local = daemons([binary(), "--host", "127.0.0.1", "-p", str(local_port)], tmp_path)
    plain.wait_log(f"0.0.0.0]:{plain_port} {warning}: anyone who can reach it can run any code")
    for daemon, port in ((tls, tls_port), (local, local_port)):
        daemon.wait_log("server started on [")
        wait_until(lambda: accepts("127.0.0.1", port), f"port {port} to accept")
        assert warning not in daemon.log(), daemon.log()
