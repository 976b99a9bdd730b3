"""Fixtures of the package tests: the .deb built for a Debian release, and
a booted root of that release with it installed.

Environment:
  RPYCD_SYSTEM_SUITE    the release: bookworm (Debian 12, the default) or
                        trixie (Debian 13); scripts/test runs both
  RPYCD_SKIP_SYSTEM=1   skip these tests (slow: a package build and a container
                        boot); for local runs only, CI never sets it
  RPYCD_DEB=PATH        test this .deb instead of building one with
                        packaging/build-deb --suite (which also runs that
                        release's lintian)
  RPYCD_SYSTEM_CACHE    where the debootstrapped root is kept between runs
                        (default /var/cache/rpycd-test)
"""

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from container import RELEASE, Container, ensure_root
from support import PREVIOUS_RELEASE, REPO, REPORT, report

BUILD_TIMEOUT = 1800


def pytest_collection_modifyitems(config, items):
    if os.environ.get("RPYCD_SKIP_SYSTEM") == "1":
        skip = pytest.mark.skip(reason="RPYCD_SKIP_SYSTEM=1")
        for item in items:
            item.add_marker(skip)


def pytest_terminal_summary(terminalreporter):
    if REPORT:
        terminalreporter.section("rpycd system test figures")
        for line in REPORT:
            terminalreporter.write_line(line)


def require_host():
    """These tests never skip for want of a tool: they fail and say what."""
    problems = []
    if os.geteuid() != 0:
        problems.append("must run as root (debootstrap, systemd-nspawn)")
    for tool in ("debootstrap", "systemd-nspawn", "nsenter", "dpkg-buildpackage", "lintian"):
        if shutil.which(tool) is None:
            problems.append(f"{tool} is not installed (scripts/install-deps installs it)")
    if problems:
        pytest.fail("cannot run the system tests (RPYCD_SKIP_SYSTEM=1 skips them):\n  "
                    + "\n  ".join(problems))


@pytest.fixture(scope="session")
def deb():
    require_host()
    given = os.environ.get("RPYCD_DEB")
    if given:
        path = Path(given).resolve()
        assert path.is_file(), f"RPYCD_DEB={given}: no such file"
        report(f"package: {path} (given by RPYCD_DEB)")
        return path
    started = time.monotonic()
    path, text = build_deb(["--suite", RELEASE.suite],
                           REPO / "target" / f"build-deb-{RELEASE.suite}.log")
    lintian = [line for line in text.splitlines() if line[:3] in ("E: ", "W: ", "I: ", "N: ")]
    report(f"package: {path.name} built for {RELEASE.name} in "
           f"{time.monotonic() - started:.0f}s")
    report("lintian (--fail-on error,warning): "
           + ("no tags" if not lintian else f"{len(lintian)} tag(s), none an error or warning"))
    for line in lintian:
        report(f"  {line}")
    return path


def build_deb(args, log, env=None):
    """Runs packaging/build-deb; returns the .deb it made and its output."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as f:
        done = subprocess.run([str(REPO / "packaging" / "build-deb"), *args], stdout=f,
                              stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                              timeout=BUILD_TIMEOUT, env={**os.environ, **(env or {})})
    text = log.read_text()
    if done.returncode != 0:
        pytest.fail(f"packaging/build-deb failed ({done.returncode}); the end of {log}:\n"
                    + "\n".join(text.splitlines()[-60:]))
    return Path(text.strip().splitlines()[-1]), text


@pytest.fixture(scope="session")
def previous_deb():
    """The previous release's package, built for the release under test."""
    require_host()
    version, commit = PREVIOUS_RELEASE
    src = REPO / "target" / "previous-release" / RELEASE.suite
    shutil.rmtree(src, ignore_errors=True)
    src.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(REPO), "archive", commit], capture_output=True,
                             timeout=120)
    if archive.returncode != 0:
        pytest.fail(f"release {version} is commit {commit}, which this clone does not have "
                    f"(a shallow clone?): {archive.stderr.decode(errors='replace')}")
    subprocess.run(["tar", "-x", "-C", str(src)], input=archive.stdout, check=True, timeout=120)
    started = time.monotonic()
    # --host-rust: that version's code needs a newer Rust than Debian 13's
    path, _ = build_deb(["--suite", RELEASE.suite, "--host-rust", "--source", str(src),
                         str(REPO / "target" / "debian" / RELEASE.suite / "previous")],
                        REPO / "target" / f"build-deb-{RELEASE.suite}-previous.log",
                        env={"LINTIAN": "0"})
    report(f"previous release: {path.name} built from {commit[:12]} in "
           f"{time.monotonic() - started:.0f}s")
    return path


@pytest.fixture(scope="session")
def root():
    require_host()
    cache = Path(os.environ.get("RPYCD_SYSTEM_CACHE", "/var/cache/rpycd-test"))
    started = time.monotonic()
    path = ensure_root(cache)
    report(f"root: {path} ready in {time.monotonic() - started:.0f}s")
    return path


@pytest.fixture(scope="session")
def ct(root, deb):
    """The booted container, with the package installed."""
    log = REPO / "target" / f"nspawn-{RELEASE.suite}.log"
    started = time.monotonic()
    with Container(root, log) as container:
        report(f"container: booted in {time.monotonic() - started:.1f}s (console: {log})")
        container.copy_in(deb, f"/tmp/{deb.name}")
        container.run("apt-get", "install", "-y", "-q", "--no-install-recommends",
                      f"/tmp/{deb.name}", timeout=300)
        yield container
