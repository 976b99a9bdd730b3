"""Registering where the network needs: with several registries at once
(two of ours and rpyc's own, each on its own loopback address), as an
address of this machine other than the socket's own and with another port
(--register-address), and every TCP listener, not only the first. Every
registry listens on loopback; nothing is broadcast."""

import signal
import socket
import subprocess
import sys

import pytest
from rpyc.core import brine
from rpyc.utils.registry import TCPRegistryClient, UDPRegistryClient

from conftest import (binary, classic_daemon, free_udp_and_tcp_port, server_env,
                      wait_until)

REGISTRIES = ("127.0.0.2", "127.0.0.3")
PYTHON_REGISTRY = "127.0.0.4"


def answers(host, port):
    """Whether a UDP registry answers a query there."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(0.5)
        sock.sendto(brine.dump(("RPYC", "QUERY", ("NOTHING",))), (host, port))
        try:
            return bool(sock.recvfrom(65536))
        except OSError:
            return False


def connects(host, port):
    try:
        socket.create_connection((host, port), timeout=5).close()
    except OSError:
        return False
    return True


def ours(daemons, tmp_path, host, port, mode="UDP"):
    daemon = daemons([binary("rpyc-registry"), "-m", mode, "--host", host, "-p", str(port)],
                     tmp_path)
    wait_until(lambda: daemon.proc.poll() is not None or "server started" in daemon.log(),
               f"our registry on {host}")
    assert daemon.proc.poll() is None, daemon.log()
    return daemon


def pythons(daemons, tmp_path, host, port):
    """rpyc's own UDPRegistryServer, bound to `host` (rpyc_registry has no
    switch for that)."""
    code = ("import sys; from rpyc.utils.registry import UDPRegistryServer; "
            "UDPRegistryServer(host=sys.argv[1], port=int(sys.argv[2])).start()")
    daemon = daemons([sys.executable, "-c", code, host, str(port)], tmp_path)
    wait_until(lambda: daemon.proc.poll() is not None or answers(host, port),
               f"rpyc's registry on {host}")
    assert daemon.proc.poll() is None, daemon.log()
    return daemon


def found(host, port, mode="UDP"):
    client = (UDPRegistryClient(ip=host, port=port, timeout=1) if mode == "UDP"
              else TCPRegistryClient(host, port=port, timeout=1))
    return {tuple(entry) for entry in client.discover("SLAVE")}


def test_several_registries_ours_and_rpycs(daemons, tmp_path):
    port = free_udp_and_tcp_port()
    for host in REGISTRIES:
        ours(daemons, tmp_path, host, port)
    pythons(daemons, tmp_path, PYTHON_REGISTRY, port)
    daemon, served = classic_daemon(
        daemons, tmp_path, "--register", "--registry-host", ",".join(REGISTRIES),
        "--registry-host", PYTHON_REGISTRY, "--registry-port", str(port))
    for host in (*REGISTRIES, PYTHON_REGISTRY):
        wait_until(lambda: found(host, port) == {("127.0.0.1", served)},
                   f"the registration with {host}")
    # a clean stop unregisters from each
    daemon.signal(signal.SIGTERM)
    assert daemon.wait() == 0
    for host in (*REGISTRIES, PYTHON_REGISTRY):
        wait_until(lambda: not found(host, port), f"the unregistration from {host}")


@pytest.mark.parametrize("mode", ["UDP", "TCP"])
def test_register_address_announces_another_local_address_and_port(daemons, tmp_path, mode):
    """The registry-on-the-same-host case: the registration leaves from the
    address clients use (here 127.0.0.5) instead of the socket's 127.0.0.1,
    and announces the port a NAT would forward."""
    port = free_udp_and_tcp_port()
    ours(daemons, tmp_path, REGISTRIES[0], port, mode)
    daemon, _ = classic_daemon(
        daemons, tmp_path, "--register", "--registry-type", mode,
        "--registry-host", REGISTRIES[0], "--registry-port", str(port),
        "--register-address", "127.0.0.5:28812")
    wait_until(lambda: found(REGISTRIES[0], port, mode) == {("127.0.0.5", 28812)},
               "the registration as 127.0.0.5:28812")


def test_every_tcp_listener_is_announced(daemons, tmp_path):
    port = free_udp_and_tcp_port()
    ours(daemons, tmp_path, REGISTRIES[0], port)
    first, second = free_udp_and_tcp_port(), free_udp_and_tcp_port()
    # (it passes the daemon only the variables -E names)
    settings = {"RPYC_CLASSIC_REGISTER": "1", "RPYC_CLASSIC_REGISTRY_HOST": REGISTRIES[0],
                "RPYC_CLASSIC_REGISTRY_PORT": str(port),
                "PYTHONPATH": server_env()["PYTHONPATH"]}
    daemons(["systemd-socket-activate", "-l", f"127.0.0.1:{first}", "-l", f"127.0.0.6:{second}",
             *(f"-E{name}={value}" for name, value in settings.items()), binary()], tmp_path)
    # systemd-socket-activate starts the daemon at the first connection
    wait_until(lambda: connects("127.0.0.1", first), "the activation socket")
    wait_until(lambda: found(REGISTRIES[0], port) == {("127.0.0.1", first), ("127.0.0.6", second)},
               "both listeners registered")


@pytest.mark.parametrize("address, message", [
    ("192.0.2.99", "192.0.2.99 is not an address of this machine"),
    ("::1", "no listener of ::1's family"),
])
def test_an_address_that_cannot_be_announced_is_a_config_error(address, message):
    result = subprocess.run(
        [binary(), "-p", "0", "--register", "--registry-host", "127.0.0.1",
         "--registry-port", "1", "--register-address", address],
        capture_output=True, text=True, env=server_env(), timeout=20, stdin=subprocess.DEVNULL)
    assert result.returncode == 78, result
    assert message in result.stderr


def test_a_bad_register_address_is_a_usage_error():
    result = subprocess.run([binary(), "--register-address", "host.example:1"],
                            capture_output=True, text=True, env=server_env(), timeout=20)
    assert result.returncode == 64, result
    assert "is not HOST, HOST:PORT or :PORT" in result.stderr
