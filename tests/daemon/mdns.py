"""A private link for DNS-SD tests: a network and mount namespace of the
test's own, with one multicast interface (one end of a veth pair whose other end
is in the namespace too), its own
system D-Bus (at the usual path, on a tmpfs over /run) and its own
avahi-daemon. Nothing it sends leaves the namespace."""

import os
import shutil
import signal
import subprocess
import time

import pytest

from conftest import DEADLINE, wait_until

ADDRESS = "10.253.0.1"
TOOLS = ("unshare", "nsenter", "ip", "dbus-daemon", "avahi-daemon", "avahi-browse", "avahi-publish")

BUS_CONFIG = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path=/run/dbus/system_bus_socket</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_destination="*"/>
    <allow receive_sender="*"/>
  </policy>
</busconfig>
"""

AVAHI_CONFIG = """[server]
use-ipv4=yes
use-ipv6=no
allow-interfaces=mdns0
enable-dbus=yes
ratelimit-interval-usec=1000000
ratelimit-burst=1000
[publish]
publish-hinfo=no
publish-workstation=no
"""


def missing_tools():
    return [tool for tool in TOOLS if shutil.which(tool) is None]


class Link:
    """The namespace, held by a `sleep` inside it; its bus and its Avahi."""

    def __init__(self, tmp_path):
        missing = missing_tools()
        if missing:
            # scripts/install-deps installs them; a run without them proves nothing
            pytest.fail(f"DNS-SD tests need {', '.join(missing)} (scripts/install-deps installs them)")
        self.tmp = tmp_path
        self.holder = subprocess.Popen(["unshare", "--net", "--mount", "--propagation", "private",
                                        "sleep", "infinity"])
        self.avahi = None
        self.bus = None
        wait_until(lambda: self._entered(), "the namespace")
        self.run("ip link set lo up && ip link add mdns0 type veth peer name mdns1"
                 f" && ip link set mdns1 up && ip link set mdns0 up && ip addr add {ADDRESS}/24 dev mdns0"
                 # a default route: rpyc.discover() broadcasts to 255.255.255.255
                 " && ip route add default dev mdns0"
                 " && mount -t tmpfs tmpfs /run && mkdir /run/dbus /run/avahi-daemon")
        (tmp_path / "bus.conf").write_text(BUS_CONFIG)
        (tmp_path / "avahi.conf").write_text(AVAHI_CONFIG)
        self.bus_log = open(tmp_path / "dbus.log", "wb")
        self.bus = subprocess.Popen(self.enter("dbus-daemon", f"--config-file={tmp_path / 'bus.conf'}",
                                               "--nofork", "--nopidfile"),
                                    stdout=self.bus_log, stderr=subprocess.STDOUT)
        wait_until(lambda: self.run("test -S /run/dbus/system_bus_socket", check=False).returncode == 0,
                   "the namespace's system bus")

    def _entered(self):
        if self.holder.poll() is not None:
            raise AssertionError("unshare ended: are network namespaces allowed here?")
        own = os.readlink(f"/proc/{self.holder.pid}/ns/net")
        return own != os.readlink("/proc/self/ns/net")

    def enter(self, *argv):
        return ["nsenter", "-t", str(self.holder.pid), "-n", "-m", "--", *argv]

    def run(self, script, check=True, timeout=DEADLINE):
        done = subprocess.run(self.enter("sh", "-c", script), capture_output=True, text=True,
                              timeout=timeout)
        if check and done.returncode != 0:
            raise AssertionError(f"{script}: {done.returncode}\n{done.stdout}{done.stderr}")
        return done

    def start_avahi(self):
        self.avahi_log = self.tmp / f"avahi-{time.monotonic_ns()}.log"
        with open(self.avahi_log, "wb") as log:
            self.avahi = subprocess.Popen(
                self.enter("avahi-daemon", "--no-drop-root", "--no-chroot", "--no-rlimits",
                           "--no-proc-title", "-f", str(self.tmp / "avahi.conf")),
                stdout=log, stderr=subprocess.STDOUT)
        wait_until(lambda: "Server startup complete" in self.avahi_log.read_text(errors="replace"),
                   "avahi-daemon to start")

    def stop_avahi(self):
        if self.avahi and self.avahi.poll() is None:
            self.avahi.send_signal(signal.SIGTERM)
            self.avahi.wait(DEADLINE)
        self.avahi = None

    def browse(self):
        """What `avahi-browse -rpt _rpyc._tcp` resolves: one dict per line."""
        done = self.run("avahi-browse -rpt _rpyc._tcp", timeout=DEADLINE)
        found = []
        for line in done.stdout.splitlines():
            fields = line.split(";")
            if fields[0] != "=" or len(fields) < 10:
                continue
            found.append({"interface": fields[1], "name": fields[3], "type": fields[4],
                          "domain": fields[5], "host": fields[6], "address": fields[7],
                          "port": int(fields[8]), "txt": fields[9]})
        return found

    def close(self):
        self.stop_avahi()
        for proc in (self.bus, self.holder):
            if proc and proc.poll() is None:
                proc.kill()
                proc.wait(DEADLINE)
        self.bus_log.close()


def unescape(name):
    """avahi-browse -p escapes a name's dots and spaces as \\046 and \\032."""
    out, i = [], 0
    while i < len(name):
        if name[i] == "\\" and name[i + 1:i + 4].isdigit():
            out.append(chr(int(name[i + 1:i + 4])))
            i += 4
        else:
            out.append(name[i])
            i += 1
    return "".join(out)
