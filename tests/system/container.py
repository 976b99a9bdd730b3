"""A booted Debian 12 or 13 in a systemd-nspawn container, for the package
tests.

    root = ensure_root(cache_dir)          # debootstrap once, reused after
    with Container(root, log_path) as ct:  # an ephemeral copy, booted
        ct.run("systemctl", "start", "rpyc-classic.socket")

The container shares the host's network, so what it listens on is reachable
on the host's loopback. Commands run inside with nsenter. Every wait is
bounded, and leaving the `with` block always ends the container and removes
its ephemeral copy, whatever happened inside.
"""

import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

class Release:
    """What the tests need to know of a Debian release."""

    def __init__(self, suite, number, python, rpyc):
        self.suite = suite
        self.number = number
        self.python = python  # the python3 and libpython it has
        self.rpyc = rpyc      # the major version of its python3-rpyc

    @property
    def name(self):
        return f"Debian {self.number}"


RELEASES = {r.suite: r for r in (Release("bookworm", 12, "3.11", "5"),
                                 Release("trixie", 13, "3.13", "6"))}
# RPYCD_SYSTEM_SUITE chooses the release the tests boot (scripts/test runs
# them once for each).
SUITE = os.environ.get("RPYCD_SYSTEM_SUITE", "bookworm")
if SUITE not in RELEASES:
    raise SystemExit(f"RPYCD_SYSTEM_SUITE={SUITE}: not one of {', '.join(RELEASES)}")
RELEASE = RELEASES[SUITE]
# systemd and dbus to boot; python3 and its libpython so that installing
# the .deb needs no network; openbsd-inetd and logrotate for their checks;
# adduser for the examples' users (Debian 13's minbase has none); haproxy
# to stand in front of the classic server as a load balancer; avahi and
# iproute2 for the DNS-SD test's containers on a private link (masked in the
# root: a container on the host's network must not announce itself there).
INCLUDE = ["systemd", "systemd-sysv", "dbus", "python3", f"libpython{RELEASE.python}",
           "openbsd-inetd", "logrotate", "ca-certificates", "adduser", "haproxy",
           "avahi-daemon", "avahi-utils", "iproute2"]
MASKED = ["avahi-daemon.service", "avahi-daemon.socket"]
# Conflicts with openbsd-inetd, so it is only downloaded, into this
# directory of the root, and installed by the test that needs it.
DOWNLOAD = ["xinetd"]
DOWNLOAD_DIR = "/opt/system-test-debs"  # no "rpyc" in it: see the purge test
DEBOOTSTRAP_TIMEOUT = 900
BOOT_TIMEOUT = 90
STOP_TIMEOUT = 60
COMMAND_TIMEOUT = 120

# What commands inside see: nothing of the host's environment.
CONTAINER_ENV = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "LANG": "C.UTF-8",
    "DEBIAN_FRONTEND": "noninteractive",
    "SYSTEMD_PAGER": "",
    "SYSTEMD_COLORS": "0",
}


class CommandFailed(AssertionError):
    pass


def host_mirror():
    """The Debian mirror this machine's apt uses (the only one it reaches),
    which serves every release: the first Debian archive (not its security
    archive) in apt's sources."""
    candidates = []
    sources = Path("/etc/apt/sources.list.d")
    for path in sorted(sources.glob("*.sources")) if sources.is_dir() else []:
        for stanza in path.read_text().split("\n\n"):
            fields = dict(re.findall(r"^(\w[\w-]*):\s*(.*)$", stanza, re.M))
            if "deb" in fields.get("Types", "").split():
                candidates += fields.get("URIs", "").split()
    lists = [Path("/etc/apt/sources.list"), *sorted(sources.glob("*.list"))] \
        if sources.is_dir() else [Path("/etc/apt/sources.list")]
    for path in lists:
        if path.is_file():
            for line in path.read_text().splitlines():
                m = re.match(r"^deb\s+(?:\[[^]]*\]\s+)?(\S+)\s", line)
                if m:
                    candidates.append(m.group(1))
    for uri in candidates:
        if "security" not in uri and uri.rstrip("/").endswith("/debian"):
            return uri.rstrip("/")
    return "http://deb.debian.org/debian"


def ensure_root(cache_dir):
    """A minbase root of the release under cache_dir, made with debootstrap the
    first time and reused while its recipe (the stamp file) is unchanged."""
    cache_dir = Path(cache_dir)
    root = cache_dir / SUITE
    stamp = cache_dir / f"{SUITE}.stamp"
    mirror = host_mirror()
    recipe = (f"debootstrap --variant=minbase {SUITE} {mirror}\n"
              f"apt-get install {' '.join(INCLUDE)}\n"
              f"apt-get download {' '.join(DOWNLOAD)} into {DOWNLOAD_DIR}\n"
              f"systemctl mask {' '.join(MASKED)}\n")
    if root.is_dir() and stamp.is_file() and stamp.read_text() == recipe:
        return root
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = cache_dir / f"{SUITE}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    stamp.unlink(missing_ok=True)
    started = time.monotonic()
    log = cache_dir / f"{SUITE}.log"
    with open(log, "w") as out:
        def step(*argv, timeout):
            done = subprocess.run(argv, timeout=timeout, stdin=subprocess.DEVNULL, stdout=out,
                                  stderr=subprocess.STDOUT)
            if done.returncode != 0:
                out.flush()
                tail = "\n".join(log.read_text().splitlines()[-30:])
                raise RuntimeError(f"{' '.join(argv)} exited {done.returncode}; the end of "
                                   f"{log}:\n{tail}")
        step("debootstrap", "--variant=minbase", SUITE, str(tmp), mirror,
             timeout=DEBOOTSTRAP_TIMEOUT)
        # apt, not debootstrap's --include, installs the rest: debootstrap
        # cannot resolve virtual packages. nspawn (not booted) gives the
        # maintainer scripts /proc and /dev.
        step("systemd-nspawn", "--quiet", "--console=pipe", "--register=no", "--keep-unit",
             "-D", str(tmp), "--setenv=DEBIAN_FRONTEND=noninteractive", "--", "sh", "-euc",
             f"apt-get update -q && "
             f"apt-get install -y -q --no-install-recommends {' '.join(INCLUDE)} && "
             f"mkdir -p {DOWNLOAD_DIR} && cd {DOWNLOAD_DIR} && "
             f"apt-get download -q {' '.join(DOWNLOAD)} && "
             f"systemctl mask {' '.join(MASKED)} && "
             # the .debs apt downloaded are not needed again: keep the cache
             # (and every ephemeral copy of it) small
             f"apt-get clean", timeout=DEBOOTSTRAP_TIMEOUT)
    shutil.rmtree(root, ignore_errors=True)
    tmp.rename(root)
    stamp.write_text(recipe)
    print(f"debootstrapped {root} in {time.monotonic() - started:.0f}s")
    return root


def _children(pid):
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


class Container:
    """`network_zone`: a network of its own, on the host's bridge of that
    zone (`systemd-nspawn --network-zone`), which has no other link: the
    containers of a zone reach each other and nothing else. By default the
    container shares the host's network."""

    def __init__(self, root, log_path, network_zone=None):
        self.root = Path(root)
        self.log_path = Path(log_path)
        self.network_zone = network_zone
        self.process = None
        self.leader = None
        self._before = set()

    # -- lifecycle ---------------------------------------------------------

    def __enter__(self):
        self._before = set(os.listdir(self.root.parent))
        self._log = open(self.log_path, "wb")
        try:
            # bpf() allowed, as on a machine: systemd filters IP addresses
            # (IPAddressAllow=) with BPF programs, and nspawn's default
            # system call filter denies it, which leaves them unfiltered
            own = []
            if self.network_zone:
                own.append(f"--network-zone={self.network_zone}")
            self.process = subprocess.Popen(
                ["systemd-nspawn", "--register=no", "--keep-unit", "-x", "-D", str(self.root),
                 "--system-call-filter=bpf", *own, "-b"],
                stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT,
                start_new_session=True)
            self._wait_for_boot()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def _wait_for_boot(self):
        deadline = time.monotonic() + BOOT_TIMEOUT
        while self.leader is None:
            if self.process.poll() is not None:
                raise RuntimeError(f"systemd-nspawn exited ({self.process.returncode}); "
                                   f"see {self.log_path}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"no container init after {BOOT_TIMEOUT}s; see {self.log_path}")
            for child in _children(self.process.pid):
                try:
                    if Path(f"/proc/{child}/comm").read_text().strip() == "systemd":
                        self.leader = child
                except OSError:
                    pass
            time.sleep(0.2)
        # `is-system-running --wait` needs the manager's socket, which
        # appears a moment after init starts
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"the container did not finish booting in {BOOT_TIMEOUT}s")
            state = self.run("systemctl", "is-system-running", "--wait", check=False,
                             timeout=left).stdout.strip()
            if state in ("running", "degraded"):
                break
            time.sleep(0.2)
        if state == "degraded":
            failed = self.run("systemctl", "--failed", "--no-legend", check=False).stdout
            print(f"container booted degraded; failed units:\n{failed}")

    def __exit__(self, *exc):
        try:
            if self.process is not None and self.process.poll() is None:
                # nspawn halts the container on SIGTERM and then removes
                # the ephemeral copy itself
                self.process.send_signal(signal.SIGTERM)
                try:
                    self.process.wait(timeout=STOP_TIMEOUT)
                except subprocess.TimeoutExpired:
                    os.killpg(self.process.pid, signal.SIGKILL)
                    self.process.wait(timeout=STOP_TIMEOUT)
        finally:
            self._log.close()
            # whatever nspawn could not remove (after SIGKILL): the entries
            # that appeared beside the root while this container ran
            for name in set(os.listdir(self.root.parent)) - self._before:
                if name.startswith(".#"):
                    path = self.root.parent / name
                    if path.is_dir() and not path.is_symlink():
                        shutil.rmtree(path, ignore_errors=True)
                    else:
                        path.unlink(missing_ok=True)
        return False

    # -- inside ------------------------------------------------------------

    def run(self, *argv, check=True, timeout=COMMAND_TIMEOUT, input=None):
        """Runs argv inside the container; returns the CompletedProcess."""
        spaces = ["-m", "-u", "-i", "-p"] + (["-n"] if self.network_zone else [])
        cmd = ["nsenter", "-t", str(self.leader), *spaces, "--", *argv]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                             env=CONTAINER_ENV, input=input,
                             stdin=None if input is not None else subprocess.DEVNULL)
        if check and out.returncode != 0:
            raise CommandFailed(f"{' '.join(argv)} exited {out.returncode}\n"
                                f"stdout:\n{out.stdout}\nstderr:\n{out.stderr}")
        return out

    def sh(self, script, **kwargs):
        return self.run("sh", "-euc", script, **kwargs)

    def path(self, inside):
        """The host's path to a file inside the container."""
        return Path(f"/proc/{self.leader}/root") / str(inside).lstrip("/")

    def write(self, inside, text, mode=0o644):
        target = self.path(inside)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
        target.chmod(mode)

    def copy_in(self, source, inside):
        target = self.path(inside)
        target.parent.mkdir(parents=True, exist_ok=True)
        if Path(source).is_dir():
            shutil.copytree(source, target, dirs_exist_ok=True)
        else:
            shutil.copy(source, target)

    def is_active(self, unit):
        return self.run("systemctl", "is-active", unit, check=False).stdout.strip()

    def journal(self, *args):
        return self.run("journalctl", "--no-pager", "-o", "cat", *args).stdout
