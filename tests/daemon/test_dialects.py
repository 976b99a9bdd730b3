"""rpyc 4.x clients (Debian 11's python3-rpyc is 4.1.5), 5.x clients
(Debian 12's is 5.3.0), and rpyc 6.x clients with and without
bind_threads, on the same server at the same time: the server learns each
connection's message envelope from its first message."""

import os
import socket
import struct
import subprocess
import sys
import textwrap

import pytest
import rpyc

from conftest import REPO, classic_daemon

RPYC5_PYTHON = os.environ.get("RPYCD_TEST_PYTHON5") or str(REPO / ".venv-rpyc5" / "bin" / "python")
RPYC4_PYTHON = os.environ.get("RPYCD_TEST_PYTHON4") or str(REPO / ".venv-rpyc4" / "bin" / "python")
RPYC6_PYTHON = os.environ.get("RPYCD_TEST_PYTHON") or sys.executable

RPYC5_CLIENT = textwrap.dedent("""
    import sys
    import rpyc
    assert rpyc.__version__.startswith("5."), rpyc.__version__
    conn = rpyc.classic.connect("127.0.0.1", int(sys.argv[1]))
    assert conn.eval("6 * 7") == 42
    assert list(conn.builtins.list([1, 2, 3])) == [1, 2, 3]   # a callback
    try:
        conn.eval("1 / 0")
    except ZeroDivisionError as e:
        # no version warning: the server speaks this client's protocol
        assert "WARNING: Remote is on RPyC" not in e._remote_tb, e._remote_tb
    else:
        raise AssertionError("no exception")
    conn.execute("x = 'five'")
    print(conn.eval("x"), conn.modules.os.getpid())
    conn.close()
""")


@pytest.fixture
def rpyc5_python():
    if not os.path.exists(RPYC5_PYTHON):
        pytest.fail(f"no rpyc 5 venv at {RPYC5_PYTHON}: run scripts/install-deps")
    return RPYC5_PYTHON


def test_rpyc5_and_rpyc6_clients_at_the_same_time(daemons, tmp_path, rpyc5_python):
    daemon, port = classic_daemon(daemons, tmp_path)
    six = rpyc.classic.connect("127.0.0.1", port)
    six.execute("x = 'six'")
    out = subprocess.run([rpyc5_python, "-c", RPYC5_CLIENT, str(port)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    value, pid = out.stdout.split()
    assert value == "five" and int(pid) == daemon.proc.pid
    # the 6.x connection, open all along, is untouched
    assert six.eval("x") == "six"
    assert list(six.builtins.list([4, 5])) == [4, 5]


def test_a_first_message_of_neither_dialect_is_refused_and_logged(daemons, tmp_path):
    daemon, port = classic_daemon(daemons, tmp_path)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        payload = b"\x50"  # a bare brine int: no rpyc sends that first
        sock.sendall(struct.pack("!LB", len(payload), 0) + payload + b"\n")
        assert sock.recv(100) == b""
    daemon.wait_log("not an RPyC 4/5/6 peer: its first message starts with 0x50")
    conn = rpyc.classic.connect("127.0.0.1", port)
    assert conn.eval("1") == 1


RPYC5_TLS_CLIENT = textwrap.dedent("""
    import sys
    import rpyc
    port, key, cert, ca = sys.argv[1:]
    conn = rpyc.classic.ssl_connect("127.0.0.1", int(port), keyfile=key, certfile=cert,
                                    ca_certs=ca)
    assert conn.eval("6 * 7") == 42
    assert list(conn.builtins.list([1, 2])) == [1, 2]
    print(rpyc.__version__, conn._channel.stream.sock.version())
""")


def test_rpyc5_client_over_tls_with_a_client_certificate(daemons, tmp_path, rpyc5_python):
    from certs import make_pki
    pki = make_pki(tmp_path / "pki")
    server = pki.servers["rsa"]
    daemon, port = classic_daemon(daemons, tmp_path, "--ssl-keyfile", server.key,
                                  "--ssl-certfile", server.cert, "--ssl-cafile", pki.ca)
    out = subprocess.run([rpyc5_python, "-c", RPYC5_TLS_CLIENT, str(port), pki.alice.key,
                          pki.alice.cert, pki.ca], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    version, tls = out.stdout.split()
    assert version.startswith("5.") and tls.startswith("TLS")
    daemon.wait_log("(CN=alice)")


# One client of any rpyc version: a classic session with callbacks from
# THREADS client threads (with bind_threads, each callback must run on the
# thread that waits for it), for at least 2 s so that all the clients
# started together overlap; prints its version and the serving pid.
ANY_CLIENT = textwrap.dedent("""
    import sys, threading, time
    import rpyc
    port, bind, threads = int(sys.argv[1]), sys.argv[2] == "bind", int(sys.argv[3])
    if bind:
        from rpyc.core.service import ClassicService
        from rpyc.utils.factory import connect
        conn = connect("127.0.0.1", port, ClassicService, config={"bind_threads": True})
    else:
        conn = rpyc.classic.connect("127.0.0.1", port)
    version = rpyc.__version__
    version = version if isinstance(version, str) else ".".join(map(str, version))
    conn.execute("def twice(cb, x):\\n    return cb(x) + cb(x)\\n")
    twice = conn.namespace["twice"]
    errors = []
    def work():
        try:
            end, i = time.time() + 2, 0
            while time.time() < end or i < 20:
                mine = threading.get_ident()
                got = tuple(twice(lambda x: (x, threading.get_ident()), i))
                assert got[0::2] == (i, i), got
                if bind:
                    assert got[1::2] == (mine, mine), (got, mine)
                assert conn.eval("6 * 7") == 42
                i += 1
        except Exception as error:
            errors.append(repr(error))
    workers = [threading.Thread(target=work) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert not errors, errors
    print(version, conn.modules.os.getpid())
    conn.close()
""")


@pytest.mark.parametrize("mode", ["threaded", "forking"])
def test_every_client_version_at_once(daemons, tmp_path, mode):
    for python in (RPYC4_PYTHON, RPYC5_PYTHON):
        if not os.path.exists(python):
            pytest.fail(f"no {python}: run scripts/install-deps")
    daemon, port = classic_daemon(daemons, tmp_path, "-m", mode)
    clients = [("4.1.5", RPYC4_PYTHON, "plain", 1), ("5.3.1", RPYC5_PYTHON, "plain", 1),
               ("6.0.2", RPYC6_PYTHON, "plain", 1), ("6.0.2", RPYC6_PYTHON, "bind", 3)]
    running = [subprocess.Popen([python, "-c", ANY_CLIENT, str(port), bind, str(threads)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for _, python, bind, threads in clients]
    for (version, _, bind, _), proc in zip(clients, running):
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, f"{version} {bind}: {err}"
        got_version, pid = out.split()
        assert got_version == version
        if mode == "threaded":
            assert int(pid) == daemon.proc.pid
        else:
            assert int(pid) != daemon.proc.pid
    assert daemon.proc.poll() is None, daemon.log()


def test_clients_of_every_envelope_with_a_service_that_calls_them_first(daemons, tmp_path):
    # rpyc's docs put conn.root in a service's on_connect: the server
    # speaks before the client has, and must speak the client's envelope
    from conftest import accepts, binary, free_port, wait_until
    port = free_port()
    daemon = daemons([binary("rpyc-serve"), "--host", "127.0.0.1", "-p", str(port), "--path",
                      str(REPO / "tests" / "serve" / "services"), "calculator:CalculatorService"],
                     tmp_path)
    wait_until(lambda: daemon.proc.poll() is not None or accepts("127.0.0.1", port), "rpyc-serve")
    client = textwrap.dedent("""
        import sys, rpyc
        conn = rpyc.connect("127.0.0.1", int(sys.argv[1]),
                            config={"bind_threads": True} if sys.argv[2:] == ["bind"] else {})
        assert conn.root.add(2, 3) == 5
        assert ("connect", True) in [tuple(e) for e in conn.root.events()]
        assert list(conn.root.apply_many(lambda i: i * 2, 3)) == [0, 2, 4]
        print("ok")
    """)
    for python, *bind in ((RPYC5_PYTHON,), (RPYC4_PYTHON,), (RPYC6_PYTHON, "bind")):
        out = subprocess.run([python, "-c", client, str(port), *bind], capture_output=True,
                             text=True, timeout=60)
        assert out.returncode == 0 and out.stdout.strip() == "ok", (python, out.stderr)
    assert daemon.proc.poll() is None, daemon.log()
