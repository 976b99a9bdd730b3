"""Publishing through DNS-SD (`--dnssd`): the real avahi-daemon, on a
private link of the test's own (see mdns.py), sees each TCP port of
rpyc-classic and rpyc-serve as a `_rpyc._tcp` service, and a stock client
reaches the server at what it resolves."""

import signal
import socket
import subprocess
import sys

import pytest

from conftest import DEADLINE, binary, free_port, server_env, wait_until
from mdns import ADDRESS, Link, unescape


@pytest.fixture
def link(tmp_path):
    link = Link(tmp_path)
    yield link
    link.close()


@pytest.fixture
def started(link, daemons, tmp_path):
    """Starts a daemon inside the link; (daemon, port)."""
    def start(*args, program="rpyc-classic", env=None):
        port = 18812 + len(started.ports)
        started.ports.append(port)
        argv = link.enter(binary(program), "--host", "0.0.0.0", "-p", str(port), "--dnssd", *args)
        daemon = daemons(argv, tmp_path, env=env or server_env())
        return daemon, port
    started.ports = []
    return start


def host_name():
    return socket.gethostname().split(".")[0]


def published(link, port, deadline=DEADLINE):
    """The services avahi-browse resolves on `port`, once there are any."""
    def look():
        return [entry for entry in link.browse() if entry["port"] == port]
    return wait_until(look, f"port {port} in avahi-browse", deadline)


def session(link, port):
    """A classic session by the stock client, from inside the link."""
    script = ("import rpyc; c = rpyc.classic.connect(%r, %d); "
              "print(c.eval('6 * 7'), c.modules.os.getpid())" % (ADDRESS, port))
    done = subprocess.run(link.enter(sys.executable, "-c", script), capture_output=True,
                          text=True, timeout=DEADLINE, env=server_env())
    assert done.returncode == 0, done.stderr
    return done.stdout.split()[0]


def test_the_classic_server_is_published_with_its_aliases_and_reached(link, started):
    link.start_avahi()
    daemon, port = started()
    [entry] = published(link, port)
    assert unescape(entry["name"]) == f"CLASSIC on {host_name()}"
    assert entry["type"] == "_rpyc._tcp"
    assert entry["address"] == ADDRESS
    assert '"aliases=CLASSIC,SLAVE"' in entry["txt"]
    assert '"txtvers=1"' in entry["txt"]
    assert '"tls=0"' in entry["txt"]
    daemon.wait_log(f'DNS-SD: published "CLASSIC on {host_name()}" (_rpyc._tcp, port {port}')
    assert session(link, int(entry["port"])) == "42"


def test_a_stopped_server_is_withdrawn(link, started):
    link.start_avahi()
    daemon, port = started()
    published(link, port)
    daemon.signal(signal.SIGTERM)
    assert daemon.wait() == 0, daemon.log()
    wait_until(lambda: not [e for e in link.browse() if e["port"] == port],
               "the service withdrawn", deadline=10)


def test_a_server_publishes_once_avahi_starts_and_again_when_it_restarts(link, started):
    daemon, port = started()
    daemon.wait_log("DNS-SD: Avahi is not running")
    assert session(link, port) == "42", "a server without Avahi serves on"
    link.start_avahi()
    published(link, port)
    link.stop_avahi()
    daemon.wait_log("DNS-SD: Avahi stopped; publishing again once it is back")
    link.start_avahi()
    published(link, port)
    assert daemon.log().count("DNS-SD: Avahi is not running") == 1, daemon.log()


def test_a_taken_name_is_renamed_as_avahi_says(link, started):
    link.start_avahi()
    name = f"CLASSIC on {host_name()}"
    squatter = subprocess.Popen(link.enter("avahi-publish", "-s", name, "_rpyc._tcp", "9"),
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_until(lambda: [e for e in link.browse() if e["port"] == 9], "the squatter")
        daemon, port = started()
        [entry] = published(link, port)
        assert unescape(entry["name"]) == f"{name} #2"
        daemon.wait_log(f'the name "{name}" is taken on the network; publishing as "{name} #2"')
    finally:
        squatter.kill()
        squatter.wait(DEADLINE)


def test_a_new_host_name_renames_the_service(link, started):
    link.start_avahi()
    daemon, port = started()
    published(link, port)
    link.run("avahi-set-host-name rpycd-renamed")
    wait_until(lambda: [e for e in link.browse()
                        if e["port"] == port and unescape(e["name"]) == "CLASSIC on rpycd-renamed"],
               "the service under the new host name")
    daemon.wait_log('DNS-SD: published "CLASSIC on rpycd-renamed"')


def test_a_tls_port_says_so(link, started, tmp_path):
    from certs import make_pki
    pki = make_pki(tmp_path / "pki")
    server = pki.servers["rsa"]
    link.start_avahi()
    daemon, port = started("--ssl-keyfile", server.key, "--ssl-certfile", server.cert)
    [entry] = published(link, port)
    assert '"tls=1"' in entry["txt"]


def test_a_hosted_service_is_published_under_its_aliases(link, started, tmp_path):
    link.start_avahi()
    (tmp_path / "echo_service.py").write_text(
        "import rpyc\n"
        "class EchoService(rpyc.Service):\n"
        "    ALIASES = ['ECHO', 'PARROT']\n")
    env = server_env(RPYC_SERVE_PATH=str(tmp_path))
    daemon, port = started("echo_service:EchoService", program="rpyc-serve", env=env)
    [entry] = published(link, port)
    assert unescape(entry["name"]) == f"ECHO on {host_name()}"
    assert '"aliases=ECHO,PARROT"' in entry["txt"]


def client(link, script):
    """Runs a stock client's script inside the link; what it printed."""
    done = subprocess.run(link.enter(sys.executable, "-c", "import rpyc\n" + script),
                          capture_output=True, text=True, timeout=DEADLINE, env=server_env())
    assert done.returncode == 0, done.stderr
    return done.stdout


NOT_FOUND = ("try:\n    print(rpyc.discover('CLASSIC'))\n"
             "except rpyc.utils.factory.DiscoveryError:\n    print('not found')\n")


def test_the_registry_answers_what_avahi_finds(link, started, daemons, tmp_path):
    link.start_avahi()
    daemon, port = started()
    published(link, port)
    registry = daemons(link.enter(binary("rpyc-registry"), "--dnssd", "--listing"), tmp_path)
    registry.wait_log(f'DNS-SD: found "CLASSIC on {host_name()}" at {ADDRESS}:{port} as CLASSIC, SLAVE')
    # an unchanged rpyc.discover(): a UDP broadcast to the registry's default port
    out = client(link, "print(rpyc.discover('CLASSIC'))\n"
                       "print(sorted(rpyc.list_services()))\n"
                       "c = rpyc.classic.connect(*rpyc.discover('slave')[0])\n"
                       "print(c.eval('6 * 7'))\n")
    found, listed, answer = out.splitlines()
    assert found == repr(((ADDRESS, port),))
    assert listed == repr(["CLASSIC", "SLAVE"])
    assert answer == "42"
    daemon.signal(signal.SIGTERM)
    assert daemon.wait() == 0
    registry.wait_log(f'DNS-SD: "CLASSIC on {host_name()}" at {ADDRESS}:{port} is gone', deadline=10)
    assert client(link, NOT_FOUND) == "not found\n"


def test_the_registry_follows_avahi_away_and_back(link, started, daemons, tmp_path):
    registry = daemons(link.enter(binary("rpyc-registry"), "--dnssd"), tmp_path)
    registry.wait_log("DNS-SD: Avahi is not running")
    daemon, port = started()
    link.start_avahi()
    registry.wait_log(f'DNS-SD: found "CLASSIC on {host_name()}"')
    link.stop_avahi()
    registry.wait_log("DNS-SD: forgetting 1 service(s) found")
    assert client(link, NOT_FOUND) == "not found\n", "nothing found while Avahi is away"
    link.start_avahi()
    wait_until(lambda: registry.log().count(f'DNS-SD: found "CLASSIC on {host_name()}"') == 2,
               f"found again:\n{registry.log()}")
    assert registry.log().count("DNS-SD: Avahi is not running") == 1


def test_the_registry_browses_the_domains_it_is_given(link, started, daemons, tmp_path):
    link.start_avahi()
    daemon, port = started()
    published(link, port)
    registry = daemons(link.enter(binary("rpyc-registry"), "--dnssd", "--dnssd-domain",
                                  "local,example.invalid"), tmp_path)
    registry.wait_log(f'DNS-SD: found "CLASSIC on {host_name()}" at {ADDRESS}:{port}')
    assert client(link, "print(rpyc.discover('CLASSIC'))") == repr(((ADDRESS, port),)) + "\n"


def test_a_browse_domain_needs_dnssd():
    done = subprocess.run([binary("rpyc-registry"), "--dnssd-domain", "local"], capture_output=True,
                          text=True, env=server_env(), timeout=DEADLINE)
    assert done.returncode == 64, done.stderr
    assert "--dnssd" in done.stderr


def test_a_loopback_listener_is_not_published(daemons, tmp_path):
    port = free_port()
    daemon = daemons([binary(), "--host", "127.0.0.1", "-p", str(port), "--dnssd"], tmp_path)
    daemon.wait_log(f"DNS-SD: not publishing 127.0.0.1:{port}: other machines cannot reach a loopback address")


def test_dnssd_is_refused_in_stdio_mode(tmp_path):
    done = subprocess.run([binary(), "--mode", "stdio", "--dnssd"], capture_output=True, text=True,
                          env=server_env(), timeout=DEADLINE, stdin=subprocess.DEVNULL)
    assert done.returncode == 64
    assert "--dnssd publishes TCP listeners: --mode stdio has none" in done.stderr
