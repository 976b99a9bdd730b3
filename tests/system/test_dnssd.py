"""DNS-SD between two booted containers on a private link: the systemd
`--network-zone` bridge this test's containers share, which has no other
link (nothing leaves the machine). Both run avahi-daemon and the package.

A: rpyc-classic.socket listening on every address, with the dnssd/ example
   (RPYC_CLASSIC_DNSSD=true): its server runs under DynamicUser=yes as the
   package's static user, and so may talk to Avahi over the system bus.
B: `avahi-browse` sees A's service; rpyc-registry with the dnssd/ example
   answers a stock, unchanged rpyc.discover("CLASSIC") (a broadcast) with
   A's address, and a classic session runs against it.
Then A's server stops (withdrawn within 10 s) and A's avahi-daemon
restarts (published again).
"""

import re
import subprocess
import time
from pathlib import Path

import plumbum
import pytest
import rpyc

from container import RELEASE, Container
from support import REPO, WAIT, report, wait_until

EXAMPLE = REPO / "systemd" / "examples" / "dnssd"
ZONE = "rpycd"
LINK = {"a": "10.254.0.1", "b": "10.254.0.2"}
# no machine has it: the default route only gives rpyc.discover()'s
# broadcast to 255.255.255.255 a way out (onto the zone's bridge)
NO_GATEWAY = "10.254.0.253"
WITHDRAWN_WITHIN = 10
LISTEN_EVERYWHERE = """[Socket]
ListenStream=
ListenStream=18812
"""


def boot(stack, root, name):
    log = REPO / "target" / f"nspawn-{RELEASE.suite}-dnssd-{name}.log"
    ct = stack.enter_context(Container(root, log, network_zone=ZONE))
    # nspawn makes the zone's bridge and leaves it down (systemd-networkd,
    # which this machine does not run, would bring it up); it has no address
    subprocess.run(["ip", "link", "set", f"vz-{ZONE}", "up"], check=True, timeout=WAIT)
    ct.sh(f"ip link set host0 up && ip addr add {LINK[name]}/24 dev host0"
          f" && ip route add default via {NO_GATEWAY} dev host0 onlink")
    # the root's /etc/hostname names the machine it was made on: one name
    # each, as Avahi publishes under it
    ct.run("hostnamectl", "set-hostname", f"rpycd-{name}")
    ct.run("systemctl", "unmask", "avahi-daemon.service", "avahi-daemon.socket")
    ct.run("systemctl", "start", "avahi-daemon.service")
    return ct


def install(ct, deb):
    ct.copy_in(deb, f"/tmp/{deb.name}")
    ct.run("apt-get", "install", "-y", "-q", "--no-install-recommends", f"/tmp/{deb.name}",
           timeout=300)


def browse(ct):
    """What avahi-browse resolves of _rpyc._tcp on IPv4: one dict each."""
    out = ct.run("avahi-browse", "-rpt", "_rpyc._tcp", timeout=60).stdout
    found = []
    for line in out.splitlines():
        fields = line.split(";")
        if fields[0] == "=" and len(fields) >= 10 and fields[2] == "IPv4":
            found.append({"name": re.sub(r"\\(\d{3})", lambda m: chr(int(m.group(1))), fields[3]),
                          "address": fields[7], "port": int(fields[8]), "txt": fields[9]})
    return found


@pytest.fixture(scope="module")
def link(root, deb):
    from contextlib import ExitStack
    with ExitStack() as stack:
        a, b = boot(stack, root, "a"), boot(stack, root, "b")
        install(a, deb)
        install(b, deb)
        # the stock client in B: rpyc (and plumbum, which it needs) as this
        # test's own, both pure Python
        site = f"/usr/local/lib/python{RELEASE.python}/dist-packages"
        for package in (rpyc, plumbum):
            b.copy_in(Path(package.__file__).parent, f"{site}/{package.__name__}")
        yield a, b


def test_a_published_server_is_found_and_served_across_the_link(link):
    a, b = link
    a.copy_in(EXAMPLE / "rpyc-classic.service.d", "/etc/systemd/system/rpyc-classic.service.d")
    a.copy_in(EXAMPLE / "rpyc-classic.socket.d", "/etc/systemd/system/rpyc-classic.socket.d")
    a.write("/etc/systemd/system/rpyc-classic.socket.d/everywhere.conf", LISTEN_EVERYWHERE)
    a.run("systemctl", "daemon-reload")
    a.run("systemctl", "start", "rpyc-classic.socket")
    # the socket's Wants= started the server, as the example's user
    wait_until("rpyc-classic.service active", lambda: a.is_active("rpyc-classic.service") == "active")
    main_pid = a.run("systemctl", "show", "-P", "MainPID", "rpyc-classic.service").stdout.strip()
    assert a.run("stat", "-c", "%U", f"/proc/{main_pid}").stdout.strip() == "rpyc-classic"
    assert a.run("getent", "passwd", "rpyc-classic").stdout.startswith("rpyc-classic:")

    [entry] = wait_until("A's service in B's avahi-browse",
                         lambda: [e for e in browse(b) if e["address"] == LINK["a"]])
    assert entry["name"] == "CLASSIC on rpycd-a"
    assert entry["port"] == 18812
    assert '"aliases=CLASSIC,SLAVE"' in entry["txt"] and '"tls=0"' in entry["txt"]
    journal = a.journal("-u", "rpyc-classic.service")
    assert 'DNS-SD: published "CLASSIC on rpycd-a" (_rpyc._tcp, port 18812' in journal, journal

    b.copy_in(EXAMPLE / "rpyc-registry.service.d", "/etc/systemd/system/rpyc-registry.service.d")
    b.copy_in(EXAMPLE / "rpyc-registry.socket.d", "/etc/systemd/system/rpyc-registry.socket.d")
    b.run("systemctl", "daemon-reload")
    b.run("systemctl", "start", "rpyc-registry.socket")
    wait_until("B's registry found A", lambda: 'found "CLASSIC on rpycd-a"'
               in b.journal("-u", "rpyc-registry.service"))
    session = b.run("python3", "-c", "import rpyc\n"
                    "found = rpyc.discover('CLASSIC')\n"
                    "print(found)\n"
                    "conn = rpyc.classic.connect(*found[0])\n"
                    "print(conn.modules.socket.gethostname(), conn.eval('6 * 7'))\n").stdout
    found, answer = session.splitlines()
    assert found == repr(((LINK["a"], 18812),))
    assert answer == "rpycd-a 42"
    report(f"DNS-SD: {RELEASE.name}'s avahi-daemon published A's classic server; "
           "B's registry answered rpyc.discover('CLASSIC') with it")

    # stopped: withdrawn from the link, and from the registry's answers
    a.run("systemctl", "stop", "rpyc-classic.service")
    started = time.monotonic()
    wait_until("withdrawn", lambda: not [e for e in browse(b) if e["address"] == LINK["a"]],
               timeout=WITHDRAWN_WITHIN)
    report(f"DNS-SD: withdrawn {time.monotonic() - started:.1f}s after the server stopped")
    wait_until("B's registry forgot A", lambda: 'is gone' in b.journal("-u", "rpyc-registry.service"))

    # Avahi restarting: published again by the server that runs on
    a.run("systemctl", "start", "rpyc-classic.service")
    wait_until("published again", lambda: [e for e in browse(b) if e["address"] == LINK["a"]])
    a.run("systemctl", "restart", "avahi-daemon.service")
    wait_until("A's server saw Avahi back", lambda: "DNS-SD: Avahi started; publishing"
               in a.journal("-u", "rpyc-classic.service"))
    wait_until("published after Avahi's restart",
               lambda: [e for e in browse(b) if e["address"] == LINK["a"]])
    for ct, unit in ((a, "rpyc-classic.service"), (b, "rpyc-registry.service")):
        assert ct.is_active(unit) == "active", ct.journal("-u", unit)
