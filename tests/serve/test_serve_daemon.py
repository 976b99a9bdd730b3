"""rpyc-serve as a daemon: every serving mode, registration under the
service's aliases, and clear errors for a service that cannot be loaded.
(The runtime itself is rpyc-classic's, tested in tests/daemon.)"""

import os
import signal
import socket
import subprocess
import time

import pytest
import rpyc
from rpyc.core.stream import SocketStream
from rpyc.utils.factory import connect_stream
from rpyc.utils.registry import UDPRegistryClient

from conftest import SERVICES, binary, server_env, start


@pytest.mark.parametrize("mode", ["forking", "threadpool", "oneshot"])
def test_every_mode_serves_the_service(tmp_path, mode):
    served = start("rpycd", "calculator:CalculatorService", tmp_path, args=["-m", mode])
    try:
        pids = set()
        for _ in range(1 if mode == "oneshot" else 3):
            with served.connect() as conn:
                assert conn.root.add(20, 22) == 42
                assert conn.root.apply(lambda: "called back") == "called back"
                pids.add(conn.root.pid())
        if mode == "forking":
            # a process per connection, none of them the parent
            assert len(pids) == 3 and served.proc.pid not in pids
        if mode == "oneshot":
            assert served.proc.wait(20) == 0
    finally:
        served.stop()


def test_forking_children_call_on_disconnect(tmp_path):
    served = start("rpycd", "calculator:CalculatorService", tmp_path, args=["-m", "forking"])
    try:
        with served.connect() as conn:
            # each child starts from the parent's state: it saw only its own connect
            assert [tuple(e) for e in conn.root.events()] == [("connect", True)]
    finally:
        served.stop()


def test_stdio_mode(tmp_path):
    ours, theirs = socket.socketpair()
    proc = subprocess.Popen(
        [binary("rpyc-serve"), "-m", "stdio", "--path", str(SERVICES), "calculator:CalculatorService"],
        stdin=theirs, stdout=theirs, stderr=subprocess.DEVNULL, env=server_env())
    theirs.close()
    try:
        conn = connect_stream(SocketStream(ours))
        assert conn.root.add(1, 2) == 3
        with pytest.raises(ZeroDivisionError):
            conn.root.div(1, 0)
        conn.close()
        assert proc.wait(20) == 0
    finally:
        proc.kill()
        proc.wait()


def test_sigterm_drains_and_exits_zero(tmp_path):
    served = start("rpycd", "calculator:CalculatorService", tmp_path)
    conn = served.connect()
    result = conn.root.sleep  # resolve before the signal
    box = []
    call = rpyc.async_(result)(1.0)
    time.sleep(0.3)
    os.killpg(served.proc.pid, signal.SIGTERM)
    call.wait()
    box.append(call.value)
    assert box == [1.0]
    assert served.proc.wait(20) == 0
    conn.close()


def test_registers_under_the_service_aliases(tmp_path):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        registry_port = probe.getsockname()[1]
    registry = subprocess.Popen(
        [binary("rpyc-registry"), "-m", "UDP", "--host", "127.0.0.1", "-p", str(registry_port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        served = start("rpycd", "calculator:CalculatorService", tmp_path, args=[
            "--register", "--registry-host", "127.0.0.1", "--registry-port", str(registry_port)])
        try:
            client = UDPRegistryClient(ip="127.0.0.1", port=registry_port)
            deadline = time.monotonic() + 10
            found = ()
            while not found and time.monotonic() < deadline:
                found = client.discover("CALC")
                time.sleep(0.1)
            assert ("127.0.0.1", served.port) in [tuple(f) for f in found]
            assert ("127.0.0.1", served.port) in [tuple(f) for f in client.discover("CALCULATOR")]
            conn = rpyc.connect(*found[0])
            assert conn.root.get_service_name() == "CALCULATOR"
            conn.close()
        finally:
            served.stop()
    finally:
        registry.kill()
        registry.wait()


def run_serve(*args, timeout=30):
    return subprocess.run([binary("rpyc-serve"), "-p", "0", "--path", str(SERVICES), *args],
                          capture_output=True, text=True, env=server_env(), timeout=timeout)


@pytest.mark.parametrize("spec, message", [
    ("no_such_module:Service", "No module named 'no_such_module'"),
    ("calculator:NoSuchClass", "NoSuchClass"),
    ("calculator:EVENTS", "is neither a class nor a service instance"),
    ("calculator", "is not package.module:ClassName"),
])
def test_a_service_that_cannot_be_loaded_is_a_config_error(spec, message):
    result = run_serve(spec)
    assert result.returncode == 78, result
    assert message in result.stderr
    assert result.stderr.startswith("rpyc-serve: cannot load")
    assert "Traceback" not in result.stderr


def test_a_service_instance_is_shared_by_every_connection(tmp_path):
    shared = start("rpycd", "calculator:SHARED", tmp_path)
    per_connection = start("rpycd", "calculator:CalculatorService", tmp_path)
    try:
        for served, expected in ((shared, "kept"), (per_connection, None)):
            with served.connect() as first, served.connect() as second:
                first.root.remember("kept")
                assert second.root.recall() == expected
    finally:
        shared.stop()
        per_connection.stop()


def test_unknown_protocol_config_key_or_value_is_refused():
    # a key rpyc does not have: a usage error, naming the keys there are
    result = run_serve("--protocol-config", "allow_everything=True", "calculator:CalculatorService")
    assert result.returncode == 64, result
    assert "allow_everything" in result.stderr and "allow_public_attrs" in result.stderr
    result = run_serve("--protocol-config", "allow_pickle=yes please", "calculator:CalculatorService")
    assert result.returncode == 78, result
    assert "not a Python literal" in result.stderr


def test_check_config_imports_the_service():
    ok = run_serve("--check-config", "calculator:CalculatorService")
    assert ok.returncode == 0 and ok.stdout.strip() == "configuration ok", ok
    bad = run_serve("--check-config", "calculator:Nope")
    assert bad.returncode == 78 and "Nope" in bad.stderr, bad


def test_usage_errors_exit_64():
    for args in (["calculator:CalculatorService", "--no-such-switch"], [],
                 ["calculator:CalculatorService", "--sync-request-timeout", "0"]):
        result = run_serve(*args)
        assert result.returncode == 64, (args, result)
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_environment_sets_the_service(tmp_path):
    env = server_env()
    env.update(RPYC_SERVE_SERVICE="calculator:TimeService", RPYC_SERVE_PATH=str(SERVICES),
               RPYC_SERVE_ALLOW_PUBLIC_ATTRS="1")
    result = subprocess.run([binary("rpyc-serve"), "--check-config"], capture_output=True,
                            text=True, env=env, timeout=30)
    assert result.returncode == 0, result


def test_tls_with_client_certificates(tmp_path):
    """The TLS switches as rpyc-classic has them: rpyc.ssl_connect with a
    certificate from the CA is served, one from another CA is refused."""
    import ssl
    import sys
    sys.path.insert(0, str(SERVICES.parents[1] / "daemon"))
    from certs import make_pki

    pki = make_pki(tmp_path / "pki")
    pair = pki.servers["rsa"]
    served = start("rpycd", "calculator:CalculatorService", tmp_path, args=[
        "--ssl-keyfile", pair.key, "--ssl-certfile", pair.cert, "--ssl-cafile", pki.ca])
    try:
        conn = rpyc.ssl_connect("127.0.0.1", served.port, ca_certs=pki.ca,
                                keyfile=pki.alice.key, certfile=pki.alice.cert)
        assert conn.root.add(1, 2) == 3
        assert conn.root.apply(lambda: "over TLS") == "over TLS"
        conn.close()
        with pytest.raises((ssl.SSLError, ConnectionError, EOFError, OSError)):
            refused = rpyc.ssl_connect("127.0.0.1", served.port, ca_certs=pki.ca,
                                       keyfile=pki.mallory.key, certfile=pki.mallory.cert)
            refused.root.add(1, 2)
        with rpyc.ssl_connect("127.0.0.1", served.port, ca_certs=pki.ca,
                              keyfile=pki.alice.key, certfile=pki.alice.cert) as conn:
            # the client certificate, as getpeercert() gives it to the service
            subject = dict(conn.root.credential_items())["subject"]
            assert ("commonName", "alice") in [pair for rdn in subject for pair in rdn]
        assert served.alive()
        welcome = [line for line in served.log().splitlines() if "welcome" in line]
        assert welcome and "alice" in welcome[0], served.log()
        assert "failed to authenticate" in served.log()
    finally:
        served.stop()
