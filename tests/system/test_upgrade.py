"""Upgrading to this package from the previous release's, in a booted
Debian 12 or 13 (RPYCD_SYSTEM_SUITE), as apt does it on a machine in use:
the administrator's settings and drop-ins are kept without a question, the
running daemon is restarted onto the new binary, and the socket listens
throughout, so a client that connects during the upgrade is served. Then
removal and purge leave nothing behind.

The upgrade boots a container of its own (an ephemeral copy of the same
root), so it starts from the previous release, not from what
test_package.py left.
"""

import threading
import time

import rpyc

from container import RELEASE, Container
from support import PREVIOUS_RELEASE, REPO, report
from test_package import classic, listen_dropin, pick_port, refuses, rpyc_files, tcp_free, \
    wait_until

DROPIN = "/etc/systemd/system/rpyc-classic.socket.d/upgrade-test.conf"
DEFAULT = "/etc/default/rpyc-classic"
# bounds of the clients that keep connecting while apt works
CLIENT_PAUSE = 0.05
MOST_ATTEMPTS = 5000


def main_pid(ct):
    return int(ct.run("systemctl", "show", "-p", "MainPID", "--value",
                      "rpyc-classic.service").stdout.strip())


def version(ct):
    return ct.run("dpkg-query", "-W", "-f=${Version}", "rpycd").stdout.strip()


class Clients:
    """Clients that connect one after another, each running one call, until
    stopped: what a user sees while the package is upgraded."""

    def __init__(self, port):
        self.port = port
        self.served = 0
        self.failures = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        for _ in range(MOST_ATTEMPTS):
            if self._stop.is_set():
                return
            try:
                conn = rpyc.classic.connect("127.0.0.1", self.port)
                try:
                    assert conn.eval("1 + 1") == 2
                finally:
                    conn.close()
                self.served += 1
            except Exception as error:  # every failure is the finding
                self.failures.append(f"{time.strftime('%H:%M:%S')} {error!r}")
            time.sleep(CLIENT_PAUSE)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(timeout=60)
        assert not self._thread.is_alive(), "a client hung"
        return False


def test_upgrade_from_the_previous_release(root, deb, previous_deb):
    previous_version = PREVIOUS_RELEASE[0]
    log = REPO / "target" / f"nspawn-{RELEASE.suite}-upgrade.log"
    with Container(root, log) as ct:
        for package in (previous_deb, deb):
            ct.copy_in(package, f"/tmp/{package.name}")
        ct.run("apt-get", "install", "-y", "-q", "--no-install-recommends",
               f"/tmp/{previous_deb.name}", timeout=300)
        assert version(ct).startswith(previous_version), version(ct)

        # the administrator's settings: a conffile edited, a socket drop-in
        edited = ct.path(DEFAULT).read_text() + "\n# ours\nRPYC_CLASSIC_MODE=forking\n"
        ct.write(DEFAULT, edited)
        port = pick_port(18912, tcp_free)
        ct.write(DROPIN, listen_dropin(port))
        ct.run("systemctl", "daemon-reload")
        ct.run("systemctl", "start", "rpyc-classic.socket")
        held = classic(port)
        before = main_pid(ct)
        # forking, as the edited settings say: the session is a child
        assert held.modules.os.getppid() == before

        with Clients(port) as clients:
            time.sleep(1)
            started = time.monotonic()
            upgrade = ct.run("apt-get", "install", "-y", "-q", "--no-install-recommends",
                             f"/tmp/{deb.name}", timeout=300)
            took = time.monotonic() - started
            served_before_end = clients.served
            time.sleep(1)
        said = upgrade.stdout + upgrade.stderr
        report(f"upgrade {previous_version} -> {version(ct)} on {RELEASE.name}: {took:.1f}s; "
               f"{clients.served} clients served meanwhile, {len(clients.failures)} failed")
        assert version(ct) == deb.name.split("_")[1], version(ct)
        assert not clients.failures, clients.failures
        assert served_before_end >= 5, f"only {served_before_end} clients during the upgrade"
        # kept as they were, and no conffile question was asked
        assert "Configuration file" not in said, said
        assert ct.path(DEFAULT).read_text() == edited
        assert ct.path(DROPIN).read_text() == listen_dropin(port)
        # every file of the new package is there (none lost to /lib being
        # an alias of /usr/lib when the units moved)
        missing = [path for path in ct.run("dpkg", "-L", "rpycd").stdout.split()
                   if not ct.path(path).exists()]
        assert not missing, missing
        # restarted onto the new binary, the socket listening all along
        assert ct.is_active("rpyc-classic.socket") == "active"
        after = wait_until("the service restarted", lambda: main_pid(ct) not in (0, before))
        exe = ct.run("readlink", f"/proc/{after}/exe").stdout.strip()
        assert exe == "/usr/bin/rpyc-classic", exe
        fresh = classic(port)
        assert fresh.modules.os.getppid() == after
        fresh.close()
        try:
            held.close()
        except Exception:  # its process ended with the old daemon
            pass

        # then the administrator removes it, and purges it
        ct.run("apt-get", "remove", "-y", "-q", "rpycd", timeout=300)
        assert ct.is_active("rpyc-classic.socket") in ("inactive", "unknown")
        wait_until("the port closed", lambda: refuses(port))
        ct.run("rm", "-f", DROPIN, f"/tmp/{previous_deb.name}", f"/tmp/{deb.name}")
        ct.run("rmdir", "/etc/systemd/system/rpyc-classic.socket.d")
        ct.run("apt-get", "purge", "-y", "-q", "rpycd", timeout=300)
        left = rpyc_files(ct)
        report(f"after purge, files named rpyc: {left or 'none'}")
        assert left == [], left
