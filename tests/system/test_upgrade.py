"""Upgrading to this package from the previous release's, in a booted
Debian 12 or 13 (RPYCD_SYSTEM_SUITE), as apt does it on a machine in use:
the administrator's settings and drop-ins are kept without a question, the
running daemons (rpyc-classic, an rpyc-serve@ instance) are restarted onto
the new binary, and their sockets listen throughout, so a client that
connects during the upgrade is served. Then removal and purge leave nothing
behind.

The upgrade boots a container of its own (an ephemeral copy of the same
root), so it starts from the previous release, not from what
test_package.py left.
"""

import threading
import time

import rpyc

from container import RELEASE, Container
from support import PREVIOUS_RELEASE, REPO, report
from test_package import classic, listen_dropin, pick_port, refuses, rpyc_files, show, \
    tcp_free, wait_until

DROPIN = "/etc/systemd/system/rpyc-classic.socket.d/upgrade-test.conf"
DEFAULT = "/etc/default/rpyc-classic"
# an rpyc-serve@ instance whose class needs nothing but Python
SERVE_DROPIN = "/etc/systemd/system/rpyc-serve@upgrade.socket.d/upgrade-test.conf"
SERVE_CONF = "/etc/rpycd/serve/upgrade.conf"
SERVE_CODE = "/opt/upgrade/upgrade.py"
# rpyc.Service's hooks spelled out (the previous release needs them on a
# class that does not derive from it)
SERVE_CLASS = """
class Upgrade:
    def on_connect(self, conn):
        pass

    def on_disconnect(self, conn):
        pass

    def exposed_ping(self):
        return "pong"
"""
# bounds of the clients that keep connecting while apt works
CLIENT_PAUSE = 0.05
MOST_ATTEMPTS = 5000


def main_pid(ct, unit="rpyc-classic.service"):
    return int(show(ct, unit, "MainPID")["MainPID"])


def restarted(ct, before, unit="rpyc-classic.service"):
    """The unit's main process if it is a new one, else None."""
    pid = main_pid(ct, unit)
    return pid if pid not in (0, before) else None


def invocation(ct, unit):
    """Which run of the unit this is: a restart makes a new one."""
    return show(ct, unit, "InvocationID")["InvocationID"]


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
        serve_port = pick_port(18913, tcp_free)
        ct.write(SERVE_DROPIN, listen_dropin(serve_port))
        ct.write(SERVE_CODE, SERVE_CLASS)
        ct.write(SERVE_CONF, "RPYC_SERVE_SERVICE=upgrade:Upgrade\nRPYC_SERVE_PATH=/opt/upgrade\n")
        ct.run("systemctl", "daemon-reload")
        ct.run("systemctl", "start", "rpyc-classic.socket", "rpyc-serve@upgrade.socket")
        held = classic(port)
        before = main_pid(ct)
        # forking, as the edited settings say: the session is a child
        assert held.modules.os.getppid() == before
        served = rpyc.connect("127.0.0.1", serve_port)
        assert served.root.ping() == "pong"
        served.close()
        serve_before = main_pid(ct, "rpyc-serve@upgrade.service")
        assert serve_before != 0
        sockets = ("rpyc-classic.socket", "rpyc-serve@upgrade.socket")
        sockets_before = [invocation(ct, unit) for unit in sockets]

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
        # restarted onto the new binary, the sockets listening all along:
        # the same run of each socket unit as before
        assert [invocation(ct, unit) for unit in sockets] == sockets_before
        after = wait_until("the service restarted", lambda: restarted(ct, before))
        exe = ct.run("readlink", f"/proc/{after}/exe").stdout.strip()
        assert exe == "/usr/bin/rpyc-classic", exe
        fresh = classic(port)
        assert fresh.modules.os.getppid() == after
        fresh.close()
        serve_after = wait_until("rpyc-serve@upgrade restarted",
                                 lambda: restarted(ct, serve_before, "rpyc-serve@upgrade.service"))
        exe = ct.run("readlink", f"/proc/{serve_after}/exe").stdout.strip()
        assert exe == "/usr/bin/rpyc-serve", exe
        served = rpyc.connect("127.0.0.1", serve_port)
        assert served.root.ping() == "pong"
        served.close()
        try:
            held.close()
        except Exception:  # its process ended with the old daemon
            pass

        # then the administrator removes it, and purges it
        ct.run("apt-get", "remove", "-y", "-q", "rpycd", timeout=300)
        assert ct.is_active("rpyc-classic.socket") in ("inactive", "unknown")
        wait_until("the port closed", lambda: refuses(port))
        assert ct.is_active("rpyc-serve@upgrade.socket") in ("inactive", "unknown")
        wait_until("the port closed", lambda: refuses(serve_port))
        ct.run("rm", "-rf", DROPIN, SERVE_DROPIN, SERVE_CONF, "/opt/upgrade",
               f"/tmp/{previous_deb.name}", f"/tmp/{deb.name}")
        ct.run("rmdir", "/etc/systemd/system/rpyc-classic.socket.d",
               "/etc/systemd/system/rpyc-serve@upgrade.socket.d")
        ct.run("apt-get", "purge", "-y", "-q", "rpycd", timeout=300)
        left = rpyc_files(ct)
        report(f"after purge, files named rpyc: {left or 'none'}")
        assert left == [], left
