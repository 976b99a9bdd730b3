"""The network fuzzer (netfuzz.py) against a live rpyc-classic and a live
rpyc-registry (UDP and TCP), for RPYCD_NETFUZZ_SECONDS each (30 by
default). Afterwards the daemon still runs, a well-behaved client is
served, and nothing panicked.

The seed is printed; RPYCD_NETFUZZ_SEED=N replays a run's cases.

Mutated frames can form real classic calls, so the fuzzed daemon never runs
as root on the host: as root (CI) it runs as nobody:nogroup (setpriv) in
its own mount namespace (unshare) where every file system it could write to
is read-only and /tmp is a fresh tmpfs; as another user it runs in a user
namespace with the same mounts, or the test is skipped, saying why."""

import os
import shutil
import sys
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
import rpyc
from rpyc.utils.registry import TCPRegistryClient, UDPRegistryClient

import netfuzz
from conftest import DEADLINE, accepts, binary, python_sessions, rpyc_classic_script, wait_until
from conftest import free_udp_and_tcp_port as free_port
from reliability import record

SECONDS = float(os.environ.get("RPYCD_NETFUZZ_SECONDS", "30"))
SEED = int(os.environ.get("RPYCD_NETFUZZ_SEED") or time.time_ns() % 1_000_000_007)
MAX_CASES = int(os.environ.get("RPYCD_NETFUZZ_MAX_CASES", "1000000"))
HOST = "127.0.0.1"

# Inside the new mount namespace, before dropping privileges: every mount a
# process could write through is remounted read-only (in this namespace
# only; propagation is private), /tmp gets a fresh tmpfs, and the daemon is
# started from the directory holding its copy (the cwd survives the tmpfs
# being mounted over the path it came by).
SANDBOX = r"""
set -eu
cd "$1"; shift
awk '{print $5}' /proc/self/mountinfo | sort -u | while read -r m; do
    case "$m" in
    /|/work|/work/*|/home|/home/*|/root|/root/*|/var|/var/*|/run|/run/*|/srv|/srv/*|\
    /opt|/opt/*|/usr|/usr/*|/etc|/etc/*|/boot|/boot/*|/mnt|/mnt/*|/media|/media/*|\
    /dev/shm|/dev/mqueue|/tmp|/tmp/*)
        mount -o remount,bind,ro "$m" ;;
    esac
done
mount -t tmpfs -o mode=1777,size=64m,nosuid,nodev tmpfs /tmp
exec "$@"
"""


@pytest.fixture(autouse=True)
def per_test_timeout():
    """conftest's two minutes may be too few for a long fuzz run."""
    import faulthandler
    faulthandler.dump_traceback_later(2 * SECONDS + 150, exit=True)
    yield
    faulthandler.cancel_dump_traceback_later()


@pytest.fixture(scope="module")
def sandbox():
    """A function that wraps a daemon's argv to run unprivileged in its own
    mount namespace; the binaries are copied where nobody can read them."""
    if not shutil.which("unshare") or not shutil.which("setpriv"):
        pytest.skip("unshare and setpriv (util-linux) are needed to sandbox the fuzzed daemon")
    stage = tempfile.mkdtemp(prefix="rpycd-netfuzz-")
    os.chmod(stage, 0o755)
    for name in ("rpyc-classic", "rpyc-registry"):
        shutil.copy(binary(name), os.path.join(stage, name))
        os.chmod(os.path.join(stage, name), 0o755)
    if os.geteuid() == 0:
        def wrap(name, *args):
            return ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", SANDBOX,
                    "sandbox", stage, "setpriv", "--reuid=nobody", "--regid=nogroup",
                    "--clear-groups", "--no-new-privs", "--", *program(name), *args]
    else:
        # already unprivileged: a user namespace gives the mount namespace
        probe = subprocess.run(["unshare", "--user", "--map-root-user", "--mount", "true"],
                               capture_output=True, text=True)
        if probe.returncode != 0:
            shutil.rmtree(stage)
            pytest.skip("not root, and no user namespaces here to sandbox the fuzzed daemon "
                        f"(unshare --user: {probe.stderr.strip()}); CI runs this as root")

        def wrap(name, *args):
            return ["unshare", "--user", "--map-root-user", "--mount", "--propagation", "private",
                    "--", "sh", "-c", SANDBOX, "sandbox", stage, *program(name), *args]
    yield wrap
    shutil.rmtree(stage, ignore_errors=True)


def program(name):
    """A daemon's argv head: ours from the stage, rpyc's own servers
    ("rpyc_classic", "rpyc_registry") from the venv the tests run in."""
    if name.startswith("rpyc_"):
        return [sys.executable, str(Path(rpyc_classic_script()).with_name(name))]
    return [f"./{name}"]


def unprivileged(pid):
    with open(f"/proc/{pid}/status") as f:
        uids = next(line for line in f if line.startswith("Uid:")).split()[1:]
    return all(uid != "0" for uid in uids) or os.geteuid() != 0


def check_sandboxed(daemon):
    pid = daemon.proc.pid
    assert unprivileged(pid), "the fuzzed daemon runs as root"
    assert os.readlink(f"/proc/{pid}/ns/mnt") != os.readlink("/proc/self/ns/mnt"), \
        "the fuzzed daemon shares our mount namespace"


def no_panic(daemon):
    log = daemon.log()
    assert "panicked" not in log, log[-5000:]
    assert daemon.proc.poll() is None, f"the daemon exited ({daemon.proc.returncode}):\n{log[-5000:]}"


def run_fuzz(target, port, daemon, tmp_path, ours=True):
    print(f"netfuzz {target}: seed={SEED} (replay with RPYCD_NETFUZZ_SEED={SEED}), "
          f"{SECONDS:g} s, at most {MAX_CASES} cases")
    last = tmp_path / f"netfuzz-{target}-last-cases.jsonl"
    figures = netfuzz.fuzz(target, port, SECONDS, SEED, MAX_CASES,
                           alive=lambda: daemon.proc.poll() is None, last_cases=last)
    print(figures)
    assert figures["cases"] > 0
    if ours:
        assert figures["dead"] is None, f"{figures['dead']}; the last cases are in {last}\n{daemon.log()[-5000:]}"
        no_panic(daemon)
    return figures


def sandboxed_classic(daemons, tmp_path, sandbox, program):
    """`program` (ours or rpyc's classic server) sandboxed, once it
    accepts; (daemon, port)."""
    port = free_port()
    daemon = daemons(sandbox(program, "--host", HOST, "-p", str(port)), tmp_path)
    wait_until(lambda: daemon.proc.poll() is not None or accepts(HOST, port), f"port {port}")
    assert daemon.proc.poll() is None, daemon.log()
    check_sandboxed(daemon)
    return daemon, port


def sandboxed_registries(daemons, tmp_path, sandbox, program, *args):
    """`program` (ours or rpyc's registry) sandboxed in UDP and in TCP
    mode, once each has started: {mode: (daemon, port)}."""
    started = {}
    for mode in ("UDP", "TCP"):
        port = free_port()
        daemon = daemons(sandbox(program, "-m", mode, "-p", str(port), *args), tmp_path)
        wait_until(lambda: daemon.proc.poll() is not None or "server started" in daemon.log(),
                   f"the {mode} {program} to start")
        assert daemon.proc.poll() is None, daemon.log()
        check_sandboxed(daemon)
        started[mode] = (daemon, port)
    return started


def test_netfuzz_classic(daemons, tmp_path, sandbox):
    daemon, port = sandboxed_classic(daemons, tmp_path, sandbox, "rpyc-classic")
    figures = run_fuzz("classic", port, daemon, tmp_path)
    # a good client is served as before
    conn = rpyc.classic.connect(HOST, port)
    assert conn.modules.sys.platform == "linux"
    assert conn.eval("6 * 7") == 42
    # and every fuzzing connection has ended on the server
    wait_until(lambda: conn.modules.rpycd_classic.stats()[0] == 1 or None,
               "the fuzzer's sessions to end")
    conn.close()
    no_panic(daemon)
    record("network fuzzer: rpyc-classic (threaded, TCP)",
           f"{figures['cases']} connections of mutated real frames "
           f"({figures['stats'].get('frames', 0)} frames, {figures['stats'].get('bytes', 0) // 1024} KiB) "
           f"in {figures['seconds']:g} s, seed {SEED}; the daemon as nobody in its own mount namespace",
           "daemon up, no panic, no session left, a good client's connect + sys.platform "
           "served afterwards; "
           f"{figures['stats'].get('replies', 0)} replies to the fuzzer",
           inputs=figures["cases"], seed=SEED, **{k: v for k, v in figures.items()
                                                  if k in ("stats", "mutations", "seconds")})


def test_netfuzz_registry_udp_and_tcp(daemons, tmp_path, sandbox):
    started = sandboxed_registries(daemons, tmp_path, sandbox, "rpyc-registry", "--host", HOST,
                                   "-l")
    # one after the other, each for the full time: the machine has few cores
    figures = {}
    for mode, (daemon, port) in started.items():
        figures[mode] = run_fuzz(mode.lower(), port, daemon, tmp_path)
    for mode, (daemon, port) in started.items():
        client = (UDPRegistryClient(ip=HOST, port=port, timeout=DEADLINE / 4) if mode == "UDP"
                  else TCPRegistryClient(HOST, port=port, timeout=DEADLINE / 4))
        # from an address of its own: the fuzzer's registrations have used
        # up its address's share of the table by now
        assert client.register(("NETFUZZ_AFTER",), 12345, interface="127.0.0.2")
        assert ("127.0.0.2", 12345) in client.discover("NETFUZZ_AFTER")
        no_panic(daemon)
        f = figures[mode]
        record(f"network fuzzer: rpyc-registry ({mode})",
               f"{f['cases']} mutated real registry requests "
               f"({'datagrams' if mode == 'UDP' else 'one connection each'}) in {f['seconds']:g} s, "
               f"seed {SEED}; the daemon as nobody in its own mount namespace",
               "daemon up, no panic, a good client's register + discover served afterwards; "
               f"{f['stats'].get('replies', 0)} replies to the fuzzer",
               inputs=f["cases"], seed=SEED, **{k: v for k, v in f.items()
                                                if k in ("stats", "mutations", "seconds")})


def how_it_died(daemon, figures):
    """A Python server's death under the fuzzer: when, its exit status and
    the exception it ended with (its traceback's last line)."""
    errors = [line for line in daemon.log().splitlines()
              if line and not line[0].isspace() and ("Error" in line or "Exception" in line)]
    died = figures["dead"].replace("the daemon", "the server")
    return (f"{died} (exit status {daemon.proc.returncode}: "
            f"{errors[-1] if errors else 'no traceback'})")


def test_netfuzz_python_rpyc_classic(daemons, tmp_path, sandbox):
    # the same fuzzer against rpyc_classic, sandboxed the same way; what
    # it survives is recorded, not judged
    daemon, port = sandboxed_classic(daemons, tmp_path, sandbox, "rpyc_classic")
    figures = run_fuzz("classic", port, daemon, tmp_path, ours=False)
    if figures["dead"] is None:
        conn = rpyc.classic.connect(HOST, port)
        assert conn.eval("6 * 7") == 42
        conn.close()
        # the fuzzer's connections the server still holds
        sessions = python_sessions(port)
        outcome = (f"server up; a good client served afterwards; {sessions} of the fuzzer's "
                   "sessions still open")
    else:
        outcome = how_it_died(daemon, figures)
    record("network fuzzer: rpyc-classic (threaded, TCP)",
           f"{figures['cases']} connections of mutated real frames "
           f"({figures['stats'].get('frames', 0)} frames, {figures['stats'].get('bytes', 0) // 1024} KiB) "
           f"in {figures['seconds']:g} s, seed {SEED}; the server as nobody in its own mount namespace",
           f"{figures['cases']} connections in {figures['seconds']:g} s: {outcome}; "
           f"{figures['stats'].get('replies', 0)} replies to the fuzzer",
           lost=0 if figures["dead"] is None else 1, server="python", inputs=figures["cases"],
           seed=SEED, dead=figures["dead"],
           **{k: v for k, v in figures.items() if k in ("stats", "mutations", "seconds")})


def test_netfuzz_python_rpyc_registry_udp_and_tcp(daemons, tmp_path, sandbox):
    # (rpyc_registry has no --host: it binds every address)
    started = sandboxed_registries(daemons, tmp_path, sandbox, "rpyc_registry", "-l", "true")
    for mode, (daemon, port) in started.items():
        f = run_fuzz(mode.lower(), port, daemon, tmp_path, ours=False)
        if f["dead"] is None:
            client = (UDPRegistryClient(ip=HOST, port=port, timeout=DEADLINE / 4) if mode == "UDP"
                      else TCPRegistryClient(HOST, port=port, timeout=DEADLINE / 4))
            served = (client.register(("NETFUZZ_AFTER",), 12345, interface="127.0.0.2")
                      and ("127.0.0.2", 12345) in client.discover("NETFUZZ_AFTER"))
            outcome = ("server up; a good client's register + discover served afterwards"
                       if served else "server up, but a good client's register + discover "
                       "not served afterwards")
        else:
            served = False
            outcome = how_it_died(daemon, f)
        record(f"network fuzzer: rpyc-registry ({mode})",
               f"{f['cases']} mutated real registry requests "
               f"({'datagrams' if mode == 'UDP' else 'one connection each'}) in {f['seconds']:g} s, "
               f"seed {SEED}; the server as nobody in its own mount namespace",
               f"{f['cases']} requests in {f['seconds']:g} s: {outcome}; "
               f"{f['stats'].get('replies', 0)} replies to the fuzzer",
               lost=0 if served else 1, server="python", inputs=f["cases"], seed=SEED,
               dead=f["dead"], **{k: v for k, v in f.items()
                                  if k in ("stats", "mutations", "seconds")})
