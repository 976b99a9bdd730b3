"""--proxy-protocol-from: behind a TCP load balancer that sends a PROXY
header (version 1 as nginx sends it, version 2 as HAProxy's send-proxy-v2),
the client's address names the connection in the log and to the service;
a listed address without a header, and an unlisted one with a header, are
turned away (Postfix's and Dovecot's rule). The balancer here is the test:
it connects from 127.0.0.1, which the daemon lists, and writes the header
before the stock client's bytes; 127.0.0.2 is an address it does not list."""

import ipaddress
import socket
import ssl
import struct
import subprocess
from pathlib import Path

import pytest
import rpyc
from rpyc.core.stream import SocketStream
from rpyc.utils.classic import connect_stream

from conftest import DEADLINE, binary, classic_daemon, free_port, server_env, wait_until
from certs import make_pki

CLIENT = ("203.0.113.7", 40000)
CLIENT6 = ("2001:db8::7", 40001)
SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
SERVICES = Path(__file__).resolve().parents[1] / "serve" / "services"


def v1(source, destination):
    family = "TCP6" if ":" in source[0] else "TCP4"
    return (f"PROXY {family} {source[0]} {destination[0]} {source[1]} {destination[1]}\r\n"
            .encode())


def v2(source, destination, command=1):
    if ":" in source[0]:
        family, pack = 0x21, lambda a: ipaddress.IPv6Address(a).packed
    else:
        family, pack = 0x11, lambda a: ipaddress.IPv4Address(a).packed
    body = (pack(source[0]) + pack(destination[0])
            + struct.pack("!HH", source[1], destination[1]))
    # an extension as HAProxy adds (a unique id), which must be skipped
    body += b"\x05" + struct.pack("!H", 4) + b"abcd"
    return SIGNATURE + bytes([0x20 | command, family]) + struct.pack("!H", len(body)) + body


def connect_from(source, port):
    return socket.create_connection(("127.0.0.1", port), timeout=DEADLINE,
                                    source_address=(source, 0))


def classic_through(port, header, source="127.0.0.1"):
    sock = connect_from(source, port)
    if header:
        sock.sendall(header)
    sock.settimeout(None)
    return connect_stream(SocketStream(sock)), sock


@pytest.fixture
def behind_balancer(daemons, tmp_path):
    daemon, port = classic_daemon(daemons, tmp_path, "--proxy-protocol-from", "127.0.0.1/32")
    return daemon, port


@pytest.mark.parametrize("make", [v1, v2], ids=["v1", "v2"])
@pytest.mark.parametrize("client", [CLIENT, CLIENT6], ids=["ipv4", "ipv6"])
def test_the_clients_address_names_the_connection(behind_balancer, make, client):
    daemon, port = behind_balancer
    conn, sock = classic_through(port, make(client, ("192.0.2.1", 18812) if ":" not in client[0]
                                            else ("2001:db8::1", 18812)))
    balancer = sock.getsockname()[1]
    assert conn.eval("6 * 7") == 42
    assert conn.modules.os.getpid() == daemon.proc.pid
    conn.close()
    name = f"[{client[0]}]:{client[1]}"
    daemon.wait_log(f"goodbye {name}")
    log = daemon.log()
    assert f"accepted {name} through the proxy [127.0.0.1]:{balancer}" in log
    assert f"welcome {name}" in log
    assert f"welcome [127.0.0.1]:{balancer}" not in log


def test_a_listed_address_without_a_header_is_refused(behind_balancer):
    daemon, port = behind_balancer
    with pytest.raises((EOFError, ConnectionError)):
        conn, _ = classic_through(port, b"")
        conn.eval("1")
    daemon.wait_log("it sent no PROXY header, which --proxy-protocol-from requires")
    # and the daemon serves on
    conn, _ = classic_through(port, v2(CLIENT, ("192.0.2.1", 18812)))
    assert conn.eval("1 + 1") == 2
    conn.close()


def test_a_bad_header_is_refused(behind_balancer):
    daemon, port = behind_balancer
    sock = connect_from("127.0.0.1", port)
    sock.sendall(b"PROXY TCP4 203.0.113.999 192.0.2.1 1 2\r\n")
    assert sock.recv(1) == b""
    daemon.wait_log("sent a bad PROXY header")


def test_an_unlisted_address_may_not_send_a_header(behind_balancer):
    daemon, port = behind_balancer
    with pytest.raises((EOFError, ConnectionError)):
        conn, _ = classic_through(port, v1(CLIENT, ("192.0.2.1", 18812)), source="127.0.0.2")
        conn.eval("1")
    daemon.wait_log("sent a PROXY header from an address --proxy-protocol-from does not list")
    assert "203.0.113.7" not in daemon.log()
    # without one it is an ordinary client
    conn, sock = classic_through(port, b"", source="127.0.0.2")
    ours = sock.getsockname()[1]
    assert conn.eval("2 + 2") == 4
    conn.close()
    daemon.wait_log(f"welcome [127.0.0.2]:{ours}")


def test_a_health_check_is_the_balancers_own(behind_balancer):
    """HAProxy's checks send LOCAL: the connection is the balancer's."""
    daemon, port = behind_balancer
    conn, sock = classic_through(port, v2(("127.0.0.1", 1), ("127.0.0.1", 2), command=0))
    ours = sock.getsockname()[1]
    assert conn.eval("3") == 3
    conn.close()
    daemon.wait_log(f"welcome [127.0.0.1]:{ours}")


def test_a_header_that_does_not_come_is_given_up(daemons, tmp_path):
    daemon, port = classic_daemon(daemons, tmp_path, "--proxy-protocol-from", "127.0.0.0/8",
                                  "--handshake-timeout", "1")
    sock = connect_from("127.0.0.1", port)
    sock.sendall(b"PROXY TCP4 ")
    assert sock.recv(1) == b""
    daemon.wait_log("sent no whole PROXY header within 1s")


def test_forking_mode_reads_the_header_in_the_child(daemons, tmp_path):
    daemon, port = classic_daemon(daemons, tmp_path, "-m", "forking",
                                  "--proxy-protocol-from", "127.0.0.1")
    conn, _ = classic_through(port, v2(CLIENT, ("192.0.2.1", 18812)))
    assert conn.modules.os.getpid() != daemon.proc.pid
    conn.close()
    daemon.wait_log("welcome [203.0.113.7]:40000")


def test_the_header_comes_before_tls(daemons, tmp_path):
    """As HAProxy sends it in front of a TLS server: the header in clear,
    then the handshake."""
    pki = make_pki(tmp_path / "pki")
    pair = pki.servers["rsa"]
    daemon, port = classic_daemon(
        daemons, tmp_path, "--proxy-protocol-from", "127.0.0.1", "--ssl-keyfile", pair.key,
        "--ssl-certfile", pair.cert, "--ssl-cafile", pki.ca)
    sock = connect_from("127.0.0.1", port)
    sock.sendall(v1(CLIENT, ("192.0.2.1", 18821)))
    context = ssl.create_default_context(cafile=pki.ca)
    context.check_hostname = False
    context.load_cert_chain(pki.alice.cert, pki.alice.key)
    tls = context.wrap_socket(sock)
    tls.settimeout(None)
    conn = connect_stream(SocketStream(tls))
    assert conn.eval("5 * 5") == 25
    conn.close()
    daemon.wait_log("welcome [203.0.113.7]:40000 (CN=alice)")


def test_a_service_sees_the_clients_endpoints(daemons, tmp_path):
    port = free_port()
    daemon = daemons([binary("rpyc-serve"), "--host", "127.0.0.1", "-p", str(port),
                      "--path", str(SERVICES), "--proxy-protocol-from", "127.0.0.1",
                      "calculator:CalculatorService"], tmp_path)
    wait_until(lambda: daemon.proc.poll() is not None or "server started" in daemon.log(),
               "rpyc-serve to start")
    sock = connect_from("127.0.0.1", port)
    sock.sendall(v2(CLIENT, ("192.0.2.1", 18861)))
    sock.settimeout(None)
    conn = rpyc.connect_stream(SocketStream(sock))
    assert tuple(map(tuple, conn.root.endpoints())) == (("192.0.2.1", 18861), CLIENT)
    conn.close()


@pytest.mark.parametrize("args, message", [
    (["--proxy-protocol-from", "192.0.2.1/24"], "bits set past its /24"),
    (["--proxy-protocol-from", "balancer.example"], "is not an address"),
    (["--proxy-protocol-from", "127.0.0.1", "-m", "stdio"], "--mode stdio has none"),
])
def test_bad_switches_are_usage_errors(args, message):
    result = subprocess.run([binary(), *args], capture_output=True, text=True,
                            env=server_env(), timeout=DEADLINE, stdin=subprocess.DEVNULL)
    assert result.returncode == 64, result
    assert message in result.stderr


def test_a_plain_tcp_health_check_is_not_a_warning(behind_balancer):
    """HAProxy's default check connects and closes: worth an info line."""
    daemon, port = behind_balancer
    sock = connect_from("127.0.0.1", port)
    ours = sock.getsockname()[1]
    sock.close()
    daemon.wait_log(f"INFO:SLAVE/{port}:[127.0.0.1]:{ours} closed without sending anything")
