"""The .deb in a booted Debian 12 or 13 (RPYCD_SYSTEM_SUITE): installed, used through systemd and inetd
with the real Python rpyc client from outside the container, then removed.

The tests run in file order on one container (see conftest.py): each starts
what it needs and leaves no drop-in or running unit behind, and the last
ones remove and purge the package.
"""

import re
import socket
import subprocess
import sys
import textwrap
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
import rpyc
from rpyc.utils.registry import TCPRegistryClient, UDPRegistryClient

from container import RELEASE
from support import REPO, WAIT, report, wait_until

EXAMPLES = REPO / "systemd" / "examples"
# ceilings for `systemd-analyze security` exposure: the figures of the
# units as they are on Debian 12, so that a unit that loosens fails (on
# Debian 13's systemd too: a newer systemd must not score them worse)
EXPOSURE = {"rpyc-registry.service": 0.6, "rpyc-classic.service": 1.3,
            "rpyc-classic-stdio@.service": 1.3, "rpyc-serve@.service": 1.3}
SOCKETS = ["rpyc-classic.socket", "rpyc-classic-stdio.socket", "rpyc-registry.socket"]
SERVICES = ["rpyc-classic.service", "rpyc-registry.service"]
UNITS = ["rpyc-classic.socket", "rpyc-classic.service", "rpyc-classic-stdio.socket",
         "rpyc-classic-stdio@.service", "rpyc-registry.socket", "rpyc-registry.service",
         "rpyc-serve@.socket", "rpyc-serve@.service"]


def tcp_free(port):
    with socket.socket() as s:
        # as systemd and inetd bind: a connection in TIME_WAIT is no obstacle
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def udp_free(port):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.bind(("0.0.0.0", port))
        except OSError:
            return False
    return True


def refuses(port):
    with socket.socket() as s:
        s.settimeout(3)
        return s.connect_ex(("127.0.0.1", port)) != 0


def classic(port):
    """A classic session with a real call in it, as a user would start one."""
    conn = rpyc.classic.connect("127.0.0.1", port)
    assert conn.eval("6 * 7") == 42
    return conn


@contextmanager
def dropins(ct, *folders, extra=None):
    """Installs example drop-ins (and test-only ones: {path: text}) under
    /etc/systemd/system, reloads, and removes them all afterwards."""
    paths = []
    for folder in folders:
        for conf in sorted((EXAMPLES / folder).glob("*.d/*.conf")):
            inside = f"/etc/systemd/system/{conf.parent.name}/{conf.name}"
            ct.copy_in(conf, inside)
            paths.append(inside)
    for inside, text in (extra or {}).items():
        ct.write(inside, text)
        paths.append(inside)
    ct.run("systemctl", "daemon-reload")
    try:
        yield
    finally:
        ct.run("rm", "-f", *paths)
        ct.run("systemctl", "daemon-reload")


def check_config_as_the_unit(ct, unit):
    """`--check-config` run the way the unit runs its daemon (its user and
    sandbox, its environment files, credentials and drop-ins, its
    ExecStart's switches): a one-shot run of the unit with --check-config
    added. Returns (exit status, what it said)."""
    shown = ct.run("systemctl", "show", "-p", "ExecStart", "--value", unit).stdout
    assert "argv[]=" in shown, shown
    argv = shown.split("argv[]=", 1)[1].split(" ;", 1)[0]
    conf = f"/etc/systemd/system/{unit}.d/zz-check-config.conf"
    ct.write(conf, "[Service]\nType=oneshot\nRestart=no\nWatchdogSec=0\nExecStart=\n"
                   f"ExecStart={argv} --check-config\n")
    ct.run("systemctl", "daemon-reload")
    try:
        ct.run("systemctl", "start", unit, check=False, timeout=120)
        state = show(ct, unit, "ExecMainStatus", "InvocationID")
        status = int(state["ExecMainStatus"])
        said = wait_until(f"{unit}'s check in the journal", lambda: ct.journal(
            "-o", "cat", f"_SYSTEMD_INVOCATION_ID={state['InvocationID']}").strip())
        return status, said
    finally:
        ct.run("rm", "-f", conf)
        ct.run("systemctl", "daemon-reload")
        ct.run("systemctl", "reset-failed", unit, check=False)


def assert_checks_ok_as_the_unit(ct, *units):
    for unit in units:
        status, said = check_config_as_the_unit(ct, unit)
        assert status == 0 and "configuration ok" in said, (unit, status, said)


def stop_all(ct):
    ct.run("systemctl", "stop", *SOCKETS, *SERVICES, "rpyc-classic-stdio@*.service",
           check=False)


def listen_dropin(port, datagram=False):
    kind = "ListenDatagram" if datagram else "ListenStream"
    return f"[Socket]\nListenStream=\n{kind}=127.0.0.1:{port}\n"


def pick_port(default, free):
    if free(default):
        return default
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    report(f"port {default} is busy on this host: moved to {port} with a drop-in")
    return port


@pytest.fixture(scope="module")
def ports(ct):
    """The packaged ports, moved by a drop-in where this host already uses one
    (the container shares the host's network)."""
    chosen = {
        "classic": pick_port(18812, tcp_free),
        "stdio": pick_port(18813, tcp_free),
        "registry": pick_port(18811, udp_free),
    }
    moved = {}
    if chosen["classic"] != 18812:
        moved["/etc/systemd/system/rpyc-classic.socket.d/zz-test-port.conf"] = \
            listen_dropin(chosen["classic"])
    if chosen["stdio"] != 18813:
        moved["/etc/systemd/system/rpyc-classic-stdio.socket.d/zz-test-port.conf"] = \
            listen_dropin(chosen["stdio"])
    if chosen["registry"] != 18811:
        moved["/etc/systemd/system/rpyc-registry.socket.d/zz-test-port.conf"] = \
            listen_dropin(chosen["registry"], datagram=True)
    for inside, text in moved.items():
        ct.write(inside, text)
    if moved:
        ct.run("systemctl", "daemon-reload")
    return chosen


# -- installation -------------------------------------------------------------

def test_install_enables_and_starts_nothing(ct):
    for unit in UNITS:
        if "@" in unit:
            continue
        # a service whose [Install] only names its socket (Also=) is "indirect"
        enabled = ct.run("systemctl", "is-enabled", unit, check=False).stdout.strip()
        assert enabled in (("disabled", "indirect") if unit.endswith(".service") else
                           ("disabled",)), f"{unit}: {enabled}"
        assert ct.is_active(unit) == "inactive", unit
    conffiles = ct.run("dpkg-query", "-W", "-f=${Conffiles}", "rpycd").stdout
    for conffile in ("/etc/default/rpyc-classic", "/etc/default/rpyc-registry",
                     "/etc/logrotate.d/rpycd"):
        assert conffile in conffiles
    for path in ("/usr/bin/rpyc-classic", "/usr/bin/rpyc-registry", "/usr/bin/rpyc-serve",
                 "/usr/share/man/man8/rpyc-classic.8.gz", "/usr/share/man/man8/rpyc-registry.8.gz",
                 "/usr/share/man/man8/rpyc-serve.8.gz", "/etc/rpycd/serve",
                 "/usr/share/doc/rpycd/examples/systemd/serve/calculator.py",
                 "/usr/share/bash-completion/completions/rpyc-classic",
                 "/usr/share/zsh/vendor-completions/_rpyc-registry",
                 "/usr/share/fish/vendor_completions.d/rpyc-classic.fish",
                 "/usr/share/doc/rpycd/examples/inetd.conf",
                 "/usr/share/doc/rpycd/examples/xinetd.d/rpyc-classic",
                 "/usr/share/doc/rpycd/examples/systemd/tls/rpyc-classic.service.d/tls.conf"):
        assert ct.path(path).exists(), path
    # the benchmark harness is the workspace's other package, never shipped
    files = ct.run("dpkg", "-L", "rpycd").stdout
    assert "rpycd-bench" not in files, files
    # shlibs found the libpython the binary links to
    depends = ct.run("dpkg-query", "-W", "-f=${Depends}", "rpycd").stdout
    assert f"libpython{RELEASE.python}" in depends, depends


def verify(ct, *units):
    # --man=no: the container has no man(1); the pages are checked above
    out = ct.run("systemd-analyze", "verify", "--man=no", *units, check=False)
    assert out.returncode == 0 and not out.stdout.strip() and not out.stderr.strip(), \
        f"systemd-analyze verify {' '.join(units)}:\n{out.stdout}{out.stderr}"


def test_units_verify_clean_and_exposure_within_limits(ct):
    verify(ct, *UNITS)
    for unit, ceiling in EXPOSURE.items():
        out = ct.run("systemd-analyze", "security", "--no-pager", unit, check=False).stdout
        m = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", out)
        assert m, out
        exposure = float(m.group(1))
        report(f"systemd-analyze security {unit}: exposure {exposure} (limit {ceiling})")
        assert exposure <= ceiling, out


def test_every_example_dropin_verifies(ct):
    for folder in sorted(p.name for p in EXAMPLES.iterdir() if p.is_dir()):
        if folder == "user":
            ct.run("sh", "-c", "id rpyc >/dev/null 2>&1 || adduser --quiet --system --group "
                   "--home /srv/rpyc-project rpyc")
        units = UNITS
        if folder == "serve":
            ct.run("sh", "-c", "id calculator >/dev/null 2>&1 || adduser --quiet --system "
                   "--group --home /opt/calculator calculator")
            units = UNITS + ["rpyc-serve@calculator.socket", "rpyc-serve@calculator.service"]
        with dropins(ct, folder):
            verify(ct, *units)


PRIVATE = "/etc/rpycd-test-private"


def test_check_config_as_the_unit_runs_it(ct, tmp_path):
    """The examples that change no switch pass under the packaged unit; a
    key that root can read and the service's user cannot is found by the
    check run as the unit, as it would stop the daemon (the worked
    examples with switches are checked in their own tests)."""
    for folder in ("bind", "limits", "port"):
        with dropins(ct, folder):
            assert_checks_ok_as_the_unit(ct, "rpyc-classic.service")
    pki = make_pki(tmp_path)
    for name, source in (("key.pem", "server.key"), ("cert.pem", "server.pem")):
        ct.copy_in(pki / source, f"{PRIVATE}/{name}")
    ct.run("chmod", "-R", "go-rwx", PRIVATE)
    switches = [f"RPYC_CLASSIC_SSL_KEYFILE={PRIVATE}/key.pem",
                f"RPYC_CLASSIC_SSL_CERTFILE={PRIVATE}/cert.pem"]
    key = {"/etc/systemd/system/rpyc-classic.service.d/zz-test-key.conf":
           "[Service]\n" + "".join(f"Environment={line}\n" for line in switches)}
    try:
        with dropins(ct, extra=key):
            as_root = ct.run("env", *switches, "rpyc-classic", "--check-config", check=False)
            assert as_root.returncode == 0, as_root
            status, said = check_config_as_the_unit(ct, "rpyc-classic.service")
            assert status == 78 and f"{PRIVATE}/key.pem" in said, (status, said)
    finally:
        stop_all(ct)
        ct.run("rm", "-rf", PRIVATE)

# -- rpyc-classic.socket --------------------------------------------------------

def test_classic_socket_activation(ct, ports):
    port = ports["classic"]
    since = ct.run("date", "+%Y-%m-%d %H:%M:%S").stdout.strip()
    ct.run("systemctl", "start", "rpyc-classic.socket")
    try:
        assert ct.is_active("rpyc-classic.service") == "inactive", "started before a client came"
        conn = classic(port)
        local = conn._channel.stream.sock.getsockname()
        # the session is real: the service's own process, in its state directory
        assert conn.modules.os.getcwd() in ("/var/lib/rpyc-classic", "/var/lib/private/rpyc-classic")
        assert conn.modules.os.getuid() != 0
        assert ct.is_active("rpyc-classic.service") == "active", "not started on demand"
        conn.close()
        journal = wait_until("the session's lines in the journal", lambda: (
            lambda text: text if f"goodbye [127.0.0.1]:{local[1]}" in text else None)(
                ct.journal("-u", "rpyc-classic", "--since", since)))
        assert f"server started on [127.0.0.1]:{port}" in journal
        assert f"accepted 127.0.0.1:{local[1]}" in journal
        # a stop with a session open: the client sees the end, the daemon exits 0
        conn = classic(port)
        ct.run("systemctl", "stop", "rpyc-classic.service", "rpyc-classic.socket", timeout=60)
        with pytest.raises(EOFError):
            conn.eval("1")
        show = ct.run("systemctl", "show", "-p", "Result,ExecMainStatus,ActiveState",
                      "rpyc-classic.service").stdout.split()
        assert show == ["Result=success", "ExecMainStatus=0", "ActiveState=inactive"], show
        assert refuses(port)
    finally:
        stop_all(ct)


def test_restart_under_load_refuses_no_connection(ct, ports):
    """Connections that arrive while the service restarts wait in the
    socket systemd holds and are served by the new process (issue 10)."""
    import threading
    port = ports["classic"]
    ct.run("systemctl", "start", "rpyc-classic.socket")
    done = threading.Event()
    served, failures = [], []

    def client():
        while not done.is_set():
            try:
                conn = rpyc.classic.connect("127.0.0.1", port)
                served.append(conn.modules.os.getpid())
                conn.close()
            except Exception as error:  # every kind counts as a refused connection
                failures.append(repr(error))

    threads = [threading.Thread(target=client) for _ in range(4)]
    try:
        for thread in threads:
            thread.start()
        wait_until("sessions before the restart", lambda: len(served) >= 20)
        ct.run("systemctl", "restart", "rpyc-classic.service", timeout=60)
        before = len(served)
        wait_until("sessions after the restart", lambda: len(served) >= before + 20)
    finally:
        done.set()
        for thread in threads:
            thread.join(30)
        stop_all(ct)
    assert not failures, failures[:5]
    assert len(set(served)) >= 2, "the sessions all came from one process"


def test_port_dropin_takes_effect_after_reload_and_restart(ct, ports):
    new = 28812
    text = (EXAMPLES / "port/rpyc-classic.socket.d/port.conf").read_text()
    extra = {}
    if not tcp_free(new):
        new = pick_port(new, tcp_free)
        extra["/etc/systemd/system/rpyc-classic.socket.d/zz-test-port.conf"] = listen_dropin(new)
    assert "ListenStream=\n" in text
    ct.run("systemctl", "start", "rpyc-classic.socket")
    try:
        classic(ports["classic"]).close()
        with dropins(ct, "port", extra=extra):
            ct.run("systemctl", "restart", "rpyc-classic.socket")
            ct.run("systemctl", "restart", "rpyc-classic.service")
            conn = classic(new)
            assert conn.modules.os.getcwd().endswith("rpyc-classic")
            conn.close()
            assert refuses(ports["classic"]), "the packaged address is still listening"
            stop_all(ct)
        ct.run("systemctl", "start", "rpyc-classic.socket")
        classic(ports["classic"]).close()
        assert refuses(new)
    finally:
        stop_all(ct)


# -- rpyc-classic-stdio.socket (Accept=yes) ------------------------------------

CLIENT = textwrap.dedent("""\
    import sys, rpyc
    conn = rpyc.classic.connect("127.0.0.1", int(sys.argv[1]))
    print(conn.modules.os.getpid(), flush=True)
    sys.stdin.readline()          # both sessions are open at this point
    print(conn.eval("6 * 7"), flush=True)
    conn.close()
""")


def test_stdio_socket_serves_two_clients_in_two_processes(ct, ports):
    port = ports["stdio"]
    since = ct.run("date", "+%Y-%m-%d %H:%M:%S").stdout.strip()
    ct.run("systemctl", "start", "rpyc-classic-stdio.socket")
    clients = []
    try:
        for _ in range(2):
            clients.append(subprocess.Popen([sys.executable, "-c", CLIENT, str(port)],
                                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                            text=True))
        pids = []
        for client in clients:
            line = wait_until("a client's first answer", client.stdout.readline)
            pids.append(int(line))
        assert pids[0] != pids[1], "both sessions in one process"
        units = ct.run("systemctl", "list-units", "--no-legend", "--plain", "--state=active",
                       "rpyc-classic-stdio@*.service").stdout.splitlines()
        assert len(units) == 2, units
        for client in clients:
            client.stdin.write("go\n")
            client.stdin.flush()
        for client in clients:
            out, _ = client.communicate(timeout=WAIT)
            assert out.strip() == "42"
            assert client.returncode == 0
        wait_until("the sessions to end", lambda: not ct.run(
            "systemctl", "list-units", "--no-legend", "--state=active",
            "rpyc-classic-stdio@*.service").stdout.strip())
        # stdio mode logs through syslog, which is the journal here
        journal = wait_until("two sessions logged", lambda: (
            lambda text: text if text.count("welcome") >= 2 else None)(
                ct.journal("-t", "rpyc-classic", "--since", since)))
        assert journal.count("goodbye") >= 2, journal
    finally:
        for client in clients:
            if client.poll() is None:
                client.kill()
                client.wait(timeout=WAIT)
        stop_all(ct)


# -- rpyc-registry.socket -------------------------------------------------------

def test_registry_socket_answers_register_and_discover(ct, ports):
    port = ports["registry"]
    ct.run("systemctl", "start", "rpyc-registry.socket")
    try:
        client = UDPRegistryClient(ip="127.0.0.1", port=port)
        assert client.register(("RPYCDTEST",), 12345), "no answer to REGISTER"
        assert client.discover("RPYCDTEST") == (("127.0.0.1", 12345),)
        assert ct.is_active("rpyc-registry.service") == "active"
        # rpyc's unregister sends and does not wait for the answer
        client.unregister(12345)
        wait_until("RPYCDTEST unregistered", lambda: client.discover("RPYCDTEST") == ())
        journal = ct.journal("-u", "rpyc-registry")
        assert "registering 127.0.0.1:12345 as RPYCDTEST" in journal, journal
    finally:
        stop_all(ct)


def test_registry_tcp_dropin(ct, ports):
    port = ports["registry"]
    extra = {}
    if port != 18811 or not tcp_free(18811):
        port = pick_port(18811, tcp_free) if port == 18811 else port
        extra["/etc/systemd/system/rpyc-registry.socket.d/zz-test-port.conf"] = \
            listen_dropin(port)
    try:
        with dropins(ct, "registry-tcp", extra=extra):
            assert_checks_ok_as_the_unit(ct, "rpyc-registry.service")
            ct.run("systemctl", "start", "rpyc-registry.socket")
            client = TCPRegistryClient("127.0.0.1", port=port)
            assert client.register(("RPYCDTCP",), 23456)
            assert client.discover("RPYCDTCP") == (("127.0.0.1", 23456),)
            assert "REGSRV/TCP" in ct.journal("-u", "rpyc-registry", "-n", "20")
            stop_all(ct)
    finally:
        stop_all(ct)


def test_register_dropin_registers_the_classic_server(ct, ports):
    try:
        with dropins(ct, "register"):
            assert_checks_ok_as_the_unit(ct, "rpyc-classic.service")
            if ports["registry"] != 18811:
                pytest.skip("the register example names the registry's default port, "
                            "which this host uses")
            ct.run("systemctl", "start", "rpyc-classic.socket")
            classic(ports["classic"]).close()   # starts the service, which registers
            assert ct.is_active("rpyc-registry.socket") == "active", "Wants= did not pull it in"
            client = UDPRegistryClient(ip="127.0.0.1", port=ports["registry"])
            wait_until("SLAVE registered", lambda: client.discover("SLAVE")
                       == (("127.0.0.1", ports["classic"]),))
            stop_all(ct)
    finally:
        stop_all(ct)


def test_register_over_tcp_sends_from_inside_the_sandbox(ct, ports):
    """The register and registry-tcp examples together, with the classic
    server told to use TCP: its registrar connects without bind(), which
    the unit denies."""
    if ports["registry"] != 18811 or not tcp_free(18811):
        pytest.skip("the register example names the registry's default port, which this host uses")
    extra = {"/etc/systemd/system/rpyc-classic.service.d/zz-test-tcp.conf":
             "[Service]\nEnvironment=RPYC_CLASSIC_REGISTRY_TYPE=TCP\n"}
    since = ct.run("date", "+%Y-%m-%d %H:%M:%S").stdout.strip()
    try:
        with dropins(ct, "register", "registry-tcp", extra=extra):
            ct.run("systemctl", "start", "rpyc-classic.socket")
            classic(ports["classic"]).close()   # starts the service, which registers
            client = TCPRegistryClient("127.0.0.1", port=18811)
            wait_until("SLAVE registered over TCP", lambda: client.discover("SLAVE")
                       == (("127.0.0.1", ports["classic"]),))
            journal = ct.journal("-u", "rpyc-classic", "--since", since)
            assert "acknowledged" in journal and "did not work" not in journal, journal
            stop_all(ct)
    finally:
        stop_all(ct)


# -- the other drop-in examples --------------------------------------------------

def make_pki(directory):
    """A CA, a server certificate for 127.0.0.1 and a client certificate."""
    def openssl(*args):
        subprocess.run(["openssl", *args], cwd=directory, check=True, capture_output=True,
                       timeout=60)
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=rpycd test CA")
    for name, ext in (("server", "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth"),
                      ("client", "extendedKeyUsage=clientAuth")):
        (Path(directory) / f"{name}.ext").write_text(ext + "\n")
        openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={name}")
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                "-CAcreateserial", "-days", "2", "-out", f"{name}.pem", "-extfile", f"{name}.ext")
    return Path(directory)


def test_tls_dropin_with_credentials(ct, ports, tmp_path):
    pki = make_pki(tmp_path)
    for inside, source in (("key.pem", "server.key"), ("cert.pem", "server.pem"),
                           ("ca.pem", "ca.pem")):
        ct.copy_in(pki / source, f"/etc/rpycd/tls/{inside}")
    ct.run("chmod", "-R", "go-rwx", "/etc/rpycd/tls")
    port = pick_port(18821, tcp_free)
    # The example listens on every address; this test keeps the host's
    # network out of it and listens on loopback only (the port idiom is the
    # port example's; what is tested here is the credentials and TLS).
    loopback = {"/etc/systemd/system/rpyc-classic.socket.d/zz-test-loopback.conf":
                listen_dropin(port)}
    try:
        with dropins(ct, "tls", extra=loopback):
            assert_checks_ok_as_the_unit(ct, "rpyc-classic.service")
            ct.run("systemctl", "start", "rpyc-classic.socket")
            conn = rpyc.classic.ssl_connect("127.0.0.1", port, keyfile=str(pki / "client.key"),
                                            certfile=str(pki / "client.pem"),
                                            ca_certs=str(pki / "ca.pem"))
            assert conn.eval("6 * 7") == 42
            # the key is readable by root only; the service got a copy
            assert conn.modules.os.environ["CREDENTIALS_DIRECTORY"]
            conn.close()
            with pytest.raises((EOFError, OSError)):
                classic(port)   # plain RPyC on the TLS port
            with pytest.raises((EOFError, OSError)):
                rpyc.classic.ssl_connect("127.0.0.1", port, ca_certs=str(pki / "ca.pem")).eval("1")
            stop_all(ct)
    finally:
        stop_all(ct)
        ct.run("rm", "-rf", "/etc/rpycd")


def connect_from(source, port, timeout):
    """A TCP connection to the port from the loopback address `source`."""
    return socket.create_connection(("127.0.0.1", port), timeout=timeout,
                                    source_address=(source, 0))


def test_allow_dropin_admits_listed_addresses_only(ct, ports):
    """The allow example: systemd drops the packets of addresses it does
    not list, so such a client's connection times out and the daemon never
    sees it, while a listed one runs its session."""
    port = ports["classic"]
    since = ct.run("date", "+%Y-%m-%d %H:%M:%S").stdout.strip()
    stop_all(ct)
    try:
        with dropins(ct, "allow"):
            # as shipped it lists loopback
            ct.run("systemctl", "start", "rpyc-classic.socket")
            classic(port).close()
            # the kernel filters: the socket's traffic is counted
            status = ct.run("systemctl", "status", "rpyc-classic.socket", check=False).stdout
            assert re.search(r"^\s*IP: .* in, .* out$", status, re.M), status
            stop_all(ct)
        # narrowed to one loopback address, so that this host can also be
        # a client that is not listed
        narrowed = {"/etc/systemd/system/rpyc-classic.socket.d/zz-test-allow.conf":
                    "[Socket]\nIPAddressAllow=\nIPAddressAllow=127.0.0.2\n"}
        with dropins(ct, "allow", extra=narrowed):
            ct.run("systemctl", "start", "rpyc-classic.socket")
            with pytest.raises(TimeoutError):
                connect_from("127.0.0.1", port, timeout=3).close()
            sock = connect_from("127.0.0.2", port, timeout=WAIT)
            sock.settimeout(None)
            conn = rpyc.classic.connect_stream(rpyc.SocketStream(sock))
            assert conn.eval("6 * 7") == 42
            # an accepted connection is filtered too: the session goes on
            assert conn.modules.os.getpid() == conn.modules.os.getpid()
            with pytest.raises(TimeoutError):
                connect_from("127.0.0.1", port, timeout=3).close()
            assert conn.eval("1 + 1") == 2
            conn.close()
            journal = wait_until("the allowed session in the journal", lambda: (
                lambda text: text if "goodbye [127.0.0.2]" in text else None)(
                    ct.journal("-u", "rpyc-classic", "--since", since)))
            # the daemon heard of no other client
            assert "accepted 127.0.0.1:" not in journal.rsplit("server started", 1)[-1], journal
            stop_all(ct)
    finally:
        stop_all(ct)


HAPROXY_CFG = """\
global
    log /dev/log local0
defaults
    mode tcp
    timeout connect 5s
    timeout client 120s
    timeout server 120s
frontend version_2
    bind 127.0.0.1:{front_v2}
    default_backend rpycd_v2
frontend version_1
    bind 127.0.0.1:{front_v1}
    default_backend rpycd_v1
backend rpycd_v2
    server rpycd 127.0.0.1:{port} send-proxy-v2
backend rpycd_v1
    server rpycd 127.0.0.1:{port} send-proxy
"""


def test_proxy_dropin_behind_haproxy(ct, ports):
    """The proxy example behind Debian's HAProxy, with send-proxy-v2 and
    send-proxy (version 1): the stock client's session works through it and
    the journal names the client; the balancer's address without a header,
    and another address with one, are refused."""
    port = ports["classic"]
    front_v2 = pick_port(28830, tcp_free)
    front_v1 = pick_port(front_v2 + 1, tcp_free)
    since = ct.run("date", "+%Y-%m-%d %H:%M:%S").stdout.strip()
    # the example lists documentation addresses; here the balancer is on
    # 127.0.0.1 and clients come from 127.0.0.3
    balancer = {"/etc/systemd/system/rpyc-classic.service.d/zz-test-proxy.conf":
                "[Service]\nEnvironment=RPYC_CLASSIC_PROXY_PROTOCOL_FROM=127.0.0.1\n"}
    stop_all(ct)
    try:
        with dropins(ct, "proxy", extra=balancer):
            assert_checks_ok_as_the_unit(ct, "rpyc-classic.service")
            ct.write("/etc/haproxy/haproxy.cfg",
                     HAPROXY_CFG.format(front_v2=front_v2, front_v1=front_v1, port=port))
            ct.run("systemctl", "restart", "haproxy")
            ct.run("systemctl", "start", "rpyc-classic.socket")
            for front in (front_v2, front_v1):
                wait_until(f"haproxy on {front}", lambda: not tcp_free(front))
                sock = connect_from("127.0.0.3", front, timeout=WAIT)
                client = sock.getsockname()[1]
                sock.settimeout(None)
                conn = rpyc.classic.connect_stream(rpyc.SocketStream(sock))
                assert conn.eval("6 * 7") == 42
                conn.close()
                wait_until(f"the session through {front} in the journal", lambda: (
                    f"goodbye [127.0.0.3]:{client}" in ct.journal(
                        "-u", "rpyc-classic", "--since", since)))
                journal = ct.journal("-u", "rpyc-classic", "--since", since)
                assert re.search(rf"accepted \[127\.0\.0\.3\]:{client} through the proxy "
                                 rf"\[127\.0\.0\.1\]:\d+", journal), journal
            # the balancer's address without a header
            with pytest.raises((EOFError, OSError)):
                classic(port)
            # another address with one
            sock = connect_from("127.0.0.2", port, timeout=WAIT)
            sock.sendall(b"PROXY TCP4 203.0.113.7 127.0.0.1 40000 18812\r\n")
            sock.settimeout(None)
            with pytest.raises((EOFError, OSError)):
                rpyc.classic.connect_stream(rpyc.SocketStream(sock)).eval("1")
            journal = wait_until("both refusals in the journal", lambda: (
                lambda text: text if "does not list" in text and "sent no PROXY header" in text
                else None)(ct.journal("-u", "rpyc-classic", "--since", since)))
            assert "203.0.113.7" not in journal
            stop_all(ct)
    finally:
        ct.run("systemctl", "stop", "haproxy", check=False)
        stop_all(ct)


def test_user_dropin_runs_as_the_named_user_in_the_project(ct, ports):
    ct.run("sh", "-c", "id rpyc >/dev/null 2>&1 || adduser --quiet --system --group "
           "--home /srv/rpyc-project rpyc")
    ct.run("install", "-d", "-o", "rpyc", "-g", "rpyc", "/srv/rpyc-project")
    uid = int(ct.run("id", "-u", "rpyc").stdout)
    try:
        with dropins(ct, "user"):
            assert_checks_ok_as_the_unit(ct, "rpyc-classic.service")
            ct.run("systemctl", "start", "rpyc-classic.socket", "rpyc-classic-stdio.socket")
            for port in (ports["classic"], ports["stdio"]):
                conn = classic(port)
                assert conn.modules.os.getuid() == uid
                assert conn.modules.os.getcwd() == "/srv/rpyc-project"
                conn.execute("open('written-by-rpyc', 'w').write('ok')")
                conn.close()
            assert ct.path("/srv/rpyc-project/written-by-rpyc").read_text() == "ok"
            stop_all(ct)
    finally:
        stop_all(ct)


def test_logfile_dropin_and_logrotate(ct, ports):
    log = "/var/log/rpyc-classic/rpyc-classic.log"
    try:
        with dropins(ct, "logfile"):
            assert_checks_ok_as_the_unit(ct, "rpyc-classic.service", "rpyc-registry.service")
            ct.run("systemctl", "start", "rpyc-classic.socket")
            conn = classic(ports["classic"])
            local = conn._channel.stream.sock.getsockname()[1]
            conn.close()
            wait_until("the session in the logfile",
                       lambda: f"goodbye [127.0.0.1]:{local}" in ct.run("cat", log).stdout)
            ct.run("logrotate", "-f", "/etc/logrotate.d/rpycd")
            assert ct.run("test", "-f", log + ".1", check=False).returncode == 0
            # SIGHUP made the daemon reopen: a new session goes to a new file
            conn = classic(ports["classic"])
            local = conn._channel.stream.sock.getsockname()[1]
            conn.close()
            wait_until("the next session in the new logfile",
                       lambda: f"goodbye [127.0.0.1]:{local}" in ct.run("cat", log).stdout)
            assert ct.is_active("rpyc-classic.service") == "active", "SIGHUP ended the daemon"
            stop_all(ct)
    finally:
        stop_all(ct)


# -- what clients' code may reach: listeners, tasks, memory ---------------------

LISTEN = """
import socket
s = socket.socket()
s.bind((HOST, 0))
s.listen()
port = s.getsockname()[1]
"""


def try_listen(conn, host):
    """Client code opening a listener of its own: its port, or the error."""
    try:
        conn.execute(LISTEN.replace("HOST", repr(host)))
    except PermissionError as error:
        return error
    return conn.eval("port")


def test_client_code_cannot_listen_unless_the_bind_dropin_allows_it(ct, ports):
    """The classic units run clients' code; systemd gives the daemon its
    sockets, so bind() and listen() are denied to that code: it cannot open
    a listener on another address (or on loopback, past the socket's TLS
    and limits). Connecting out still works. The bind example allows it."""
    port = ports["classic"]
    show = ct.run("systemctl", "show", "-p", "SocketBindDeny", "rpyc-classic.service").stdout
    assert show.strip() == "SocketBindDeny=any", show
    try:
        ct.run("systemctl", "start", "rpyc-classic.socket", "rpyc-classic-stdio.socket")
        for served_by in (port, ports["stdio"]):
            conn = classic(served_by)
            for host in ("0.0.0.0", "127.0.0.1", "::"):
                if host == "::":
                    conn.execute("import socket; s6 = socket.socket(socket.AF_INET6)")
                    with pytest.raises(PermissionError):
                        conn.execute("s6.bind(('::', 0))")
                    continue
                assert isinstance(try_listen(conn, host), PermissionError), (served_by, host)
            # connecting out is not listening
            conn.execute(f"import socket; socket.create_connection(('127.0.0.1', {port})).close()")
            conn.close()
        stop_all(ct)
        with dropins(ct, "bind"):
            ct.run("systemctl", "start", "rpyc-classic.socket")
            conn = classic(port)
            for host in ("0.0.0.0", "127.0.0.1"):
                opened = try_listen(conn, host)
                assert isinstance(opened, int), (host, opened)
                # a real listener, reached from outside the container
                with socket.create_connection(("127.0.0.1", opened), timeout=WAIT):
                    pass
                conn.execute("s.close()")
            conn.close()
            stop_all(ct)
        ct.run("systemctl", "start", "rpyc-classic.socket")
        conn = classic(port)
        assert isinstance(try_listen(conn, "0.0.0.0"), PermissionError), \
            "the drop-in outlived itself"
        conn.close()
    finally:
        stop_all(ct)


# what a client's code does to use up the daemon's tasks
TASK_BOMB = (Path(__file__).resolve().parents[1] / "data" / "task_bomb.py").read_text()


def show(ct, unit, *props):
    out = ct.run("systemctl", "show", *(f"-p{p}" for p in props), unit).stdout
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def ask_in_background(conn, expression):
    """conn.eval(expression) in a client thread: (thread, [answer or error])."""
    import threading
    result = []

    def ask():
        try:
            result.append(conn.eval(expression))
        except Exception as error:  # the test looks at which
            result.append(error)

    thread = threading.Thread(target=ask, daemon=True)
    thread.start()
    return thread, result


@pytest.mark.parametrize("mode", ["threaded", "forking"])
def test_tasks_are_bounded_and_a_second_session_survives_a_bomb(ct, ports, mode):
    """Client code starting threads and processes without end gets an error
    at the unit's bound, and the daemon serves on: in forking mode another
    client's session, quiet until then, answers throughout; in threaded
    mode a quiet session has no thread, and when it speaks while none can
    be started its connection is closed. New sessions are served after
    the bomb."""
    port = ports["classic"]
    limits = show(ct, "rpyc-classic.service", "TasksMax", "LimitNPROC", "MemoryMax")
    assert limits["TasksMax"] == "4096" and limits["LimitNPROC"] == "4096", limits
    mem_total = int(re.search(r"MemTotal:\s+(\d+) kB", ct.run("cat", "/proc/meminfo").stdout)
                    .group(1)) * 1024
    assert abs(int(limits["MemoryMax"]) - mem_total // 2) < mem_total // 100, (limits, mem_total)
    extra = {"/etc/systemd/system/rpyc-classic.service.d/zz-test-mode.conf":
             f"[Service]\nEnvironment=RPYC_CLASSIC_MODE={mode}\n"}
    try:
        with dropins(ct, extra=extra):
            ct.run("systemctl", "start", "rpyc-classic.socket")
            bomber, other = classic(port), classic(port)
            # long enough for the other session to be parked and for the
            # threads that served it to end
            time.sleep(7)
            bomber.execute(TASK_BOMB)
            held = bomber.eval("len(held)")
            errors = bomber.eval("(thread_error, fork_error)")
            assert held < 4096 and errors[0] and "can't start new thread" in errors[0], \
                (held, errors)
            assert errors[1] and "Resource temporarily unavailable" in errors[1], errors
            current = show(ct, "rpyc-classic.service", "TasksCurrent")["TasksCurrent"]
            bound = ("TasksMax (pids controller)" if current.isdigit() else
                     "LimitNPROC (no pids controller in this container)")
            thread, answer = ask_in_background(other, "6 * 7")
            thread.join(WAIT if mode == "threaded" else 3)
            if mode == "forking":
                assert answer == [42], answer
            else:
                assert len(answer) == 1 and isinstance(answer[0], EOFError), answer
            bomber.execute("release.set()\nfor thread in held: thread.join()")
            report(f"task bomb ({mode}): {held} threads, then {errors[0]}, and os.fork() "
                   f"{errors[1]}; bounded by {bound}; the quiet session "
                   + ("answered during the bomb" if mode == "forking" else
                      "(parked, without a thread) was closed"))
            assert bomber.eval("2 + 2") == 4
            late = classic(port)
            assert late.eval("2 + 2") == 4
            late.close()
            bomber.close()
            other.close()
            stop_all(ct)
    finally:
        stop_all(ct)


def test_limits_dropin_raises_the_bounds(ct, ports):
    with dropins(ct, "limits"):
        for unit in ("rpyc-classic.service", "rpyc-classic-stdio@x.service"):
            limits = show(ct, unit, "TasksMax", "LimitNPROC", "MemoryMax")
            assert limits["LimitNPROC"] == "16384", (unit, limits)
            assert limits["TasksMax"] in ("16384", "1024"), (unit, limits)
            mem_total = int(re.search(r"MemTotal:\s+(\d+) kB",
                                      ct.run("cat", "/proc/meminfo").stdout).group(1)) * 1024
            assert abs(int(limits["MemoryMax"]) - mem_total * 8 // 10) < mem_total // 100, limits
        ct.run("systemctl", "start", "rpyc-classic.socket")
        try:
            conn = classic(ports["classic"])
            assert conn.modules.resource.getrlimit(conn.modules.resource.RLIMIT_NPROC)[0] == 16384
            conn.close()
        finally:
            stop_all(ct)
    assert show(ct, "rpyc-classic.service", "TasksMax")["TasksMax"] == "4096"


# -- inetd ----------------------------------------------------------------------

def test_openbsd_inetd_serves_a_classic_session(ct, ports):
    entry = [line for line in (REPO / "packaging/inetd.conf").read_text().splitlines()
             if line and not line.startswith("#")]
    assert len(entry) == 1
    line = entry[0]
    port = pick_port(18812, tcp_free)
    line = line.replace("127.0.0.1:18812", f"127.0.0.1:{port}")
    ct.run("sh", "-c", "id rpyc >/dev/null 2>&1 || adduser --quiet --system --group "
           "--home /srv/rpyc-project rpyc")
    uid = int(ct.run("id", "-u", "rpyc").stdout)
    original = ct.run("cat", "/etc/inetd.conf").stdout
    since = ct.run("date", "+%Y-%m-%d %H:%M:%S").stdout.strip()
    try:
        ct.write("/etc/inetd.conf", original + line + "\n")
        ct.run("systemctl", "restart", "inetd.service")
        conn = wait_until("inetd listening", lambda: _try_classic(port))
        assert conn.modules.os.getuid() == uid
        conn.close()
        # nothing of the log went into the session's stream; it is in syslog
        wait_until("the session in syslog", lambda: "welcome" in ct.journal(
            "-t", "rpyc-classic", "--since", since))
    finally:
        ct.write("/etc/inetd.conf", original)
        ct.run("systemctl", "restart", "inetd.service", check=False)


def test_xinetd_serves_a_classic_session(ct, ports):
    entry = (REPO / "packaging/xinetd.d/rpyc-classic").read_text()
    port = pick_port(18812, tcp_free)
    entry = entry.replace("= 18812", f"= {port}")
    ct.run("sh", "-c", "id rpyc >/dev/null 2>&1 || adduser --quiet --system --group "
           "--home /srv/rpyc-project rpyc")
    uid = int(ct.run("id", "-u", "rpyc").stdout)
    since = ct.run("date", "+%Y-%m-%d %H:%M:%S").stdout.strip()
    # xinetd conflicts with openbsd-inetd, which apt removes to install it
    ct.sh("apt-get install -y -q --no-install-recommends /opt/system-test-debs/xinetd_*.deb",
          timeout=300)
    try:
        ct.write("/etc/xinetd.d/rpyc-classic", entry)
        ct.run("systemctl", "restart", "xinetd.service")
        conn = wait_until("xinetd listening", lambda: _try_classic(port))
        assert conn.modules.os.getuid() == uid
        conn.close()
        wait_until("the session in syslog", lambda: "welcome" in ct.journal(
            "-t", "rpyc-classic", "--since", since))
    finally:
        ct.run("rm", "-f", "/etc/xinetd.d/rpyc-classic")
        ct.run("systemctl", "restart", "xinetd.service", check=False)


DEBIAN_RPYC_CLIENT = """
import sys
import rpyc
conn = rpyc.classic.connect("127.0.0.1", int(sys.argv[1]))
assert conn.eval("6 * 7") == 42
assert list(conn.builtins.list([1, 2, 3])) == [1, 2, 3]
try:
    conn.eval("1 / 0")
except ZeroDivisionError:
    pass
else:
    raise AssertionError("no remote exception")
print(rpyc.__version__, conn.modules.os.getpid())
conn.close()
"""


def test_debians_own_python3_rpyc_client(ct, ports):
    """The release's own python3-rpyc, as a Debian user has it, against the
    packaged daemon: Debian 12's 5.3.0 (rpycd speaks rpyc 5's protocol to
    it), Debian 13's 6.0.1."""
    port = ports["classic"]
    ct.run("apt-get", "install", "-y", "-q", "--no-install-recommends", "python3-rpyc",
           timeout=300)
    try:
        ct.run("systemctl", "start", "rpyc-classic.socket")
        out = ct.run("python3", "-c", DEBIAN_RPYC_CLIENT, str(port)).stdout.split()
        assert out[0].startswith(f"{RELEASE.rpyc}."), out
        # and this machine's 6.x client on the same daemon at the same time
        six = classic(port)
        assert six.eval("2 + 2") == 4
        six.close()
    finally:
        stop_all(ct)
        # the purge test counts every file named rpyc: leave none of Debian's
        ct.run("apt-get", "purge", "-y", "-q", "--autoremove", "python3-rpyc", timeout=300,
               check=False)
        ct.run("apt-get", "clean", check=False)


SERVE_EXAMPLE = EXAMPLES / "serve"
UNIX_CLIENT = """
import sys, rpyc
from rpyc.utils.factory import unix_connect
conn = unix_connect(sys.argv[1])
print(conn.root.add(20, 22), conn.root.get_service_name())
conn.close()
"""


def test_rpyc_serve_instance_from_the_worked_example(ct, ports):
    """rpyc-serve@calculator as systemd/examples/serve/README.md sets it up:
    the service's code in /opt/calculator, its settings in
    /etc/rpycd/serve/calculator.conf, the address and the user from the
    example's drop-ins, Debian's python3-rpyc for its `import rpyc`."""
    port = pick_port(18861, tcp_free)
    extra = {}
    if port != 18861:
        extra["/etc/systemd/system/rpyc-serve@calculator.socket.d/zz-test-port.conf"] = (
            "[Socket]\nListenStream=\nListenStream=/run/rpyc-serve/calculator.sock\n"
            f"ListenStream=127.0.0.1:{port}\n")
    ct.run("apt-get", "install", "-y", "-q", "--no-install-recommends", "python3-rpyc",
           timeout=300)
    ct.run("sh", "-c", "id calculator >/dev/null 2>&1 || adduser --quiet --system --group "
           "--home /opt/calculator calculator")
    ct.copy_in(SERVE_EXAMPLE / "calculator.py", "/opt/calculator/calculator.py")
    ct.copy_in(SERVE_EXAMPLE / "rpycd" / "serve" / "calculator.conf",
               "/etc/rpycd/serve/calculator.conf")
    try:
        # an instance without settings refuses to start, and says why
        failed = ct.run("systemctl", "start", "rpyc-serve@nothing.service", check=False)
        assert failed.returncode != 0
        status = ct.run("systemctl", "status", "--no-pager", "rpyc-serve@nothing.service",
                        check=False).stdout
        assert "/etc/rpycd/serve/nothing.conf" in status, status
        with dropins(ct, "serve", extra=extra):
            assert_checks_ok_as_the_unit(ct, "rpyc-serve@calculator.service")
            ct.run("systemctl", "start", "rpyc-serve@calculator.socket")
            assert ct.is_active("rpyc-serve@calculator.service") == "inactive"
            conn = rpyc.connect("127.0.0.1", port)
            assert conn.root.add(2, 3) == 5
            assert conn.root.apply(lambda x: x * 2, 21) == 42
            with pytest.raises(ZeroDivisionError):
                conn.root.div(1, 0)
            assert conn.root.get_service_name() == "CALCULATOR"
            assert ct.is_active("rpyc-serve@calculator.service") == "active"
            pid = ct.run("systemctl", "show", "-p", "MainPID", "--value",
                         "rpyc-serve@calculator.service").stdout.strip()
            # /proc/PID belongs to the process's user (the container has no ps)
            user = ct.run("stat", "-c", "%U", f"/proc/{pid}").stdout.strip()
            assert user == "calculator", user
            # the instance's Unix socket, with Debian's rpyc client inside
            out = ct.run("python3", "-c", UNIX_CLIENT, "/run/rpyc-serve/calculator.sock").stdout
            assert out.split() == ["42", "CALCULATOR"], out
            # a member of the group rpyc-serve connects; another user cannot
            ct.run("sh", "-c", "adduser --quiet --disabled-password --gecos '' member && "
                   "adduser --quiet member rpyc-serve && "
                   "adduser --quiet --disabled-password --gecos '' outsider")
            out = ct.run("runuser", "-u", "member", "--", "python3", "-c", UNIX_CLIENT,
                         "/run/rpyc-serve/calculator.sock").stdout
            assert out.split() == ["42", "CALCULATOR"], out
            refused = ct.run("runuser", "-u", "outsider", "--", "python3", "-c", UNIX_CLIENT,
                             "/run/rpyc-serve/calculator.sock", check=False)
            assert refused.returncode != 0 and "Permission denied" in refused.stderr, refused
            conn.close()
            ct.run("systemctl", "stop", "rpyc-serve@calculator.service",
                   "rpyc-serve@calculator.socket", timeout=60)
            show = ct.run("systemctl", "show", "-p", "Result,ExecMainStatus",
                          "rpyc-serve@calculator.service").stdout.split()
            assert show == ["Result=success", "ExecMainStatus=0"], show
            assert refuses(port)
    finally:
        ct.run("systemctl", "stop", "rpyc-serve@calculator.socket",
               "rpyc-serve@calculator.service", check=False)
        ct.run("systemctl", "reset-failed", "rpyc-serve@nothing.service", check=False)
        ct.run("sh", "-c", "rm -rf /etc/rpycd/serve/calculator.conf /opt/calculator "
               "/var/lib/rpyc-serve; deluser --quiet calculator || true; "
               "deluser --quiet --remove-home member || true; "
               "deluser --quiet --remove-home outsider || true")
        ct.run("apt-get", "purge", "-y", "-q", "--autoremove", "python3-rpyc", timeout=300,
               check=False)
        ct.run("apt-get", "clean", check=False)


def _try_classic(port):
    try:
        return classic(port)
    except OSError:
        return None


# -- removal --------------------------------------------------------------------

def start_everything(ct, ports):
    ct.run("systemctl", "start", *SOCKETS)
    classic(ports["classic"]).close()
    UDPRegistryClient(ip="127.0.0.1", port=ports["registry"]).register(("RPYCDGONE",), 1)
    for unit in SOCKETS + SERVICES:
        assert ct.is_active(unit) == "active", unit


def rpyc_files(ct):
    """Every file or directory whose name says rpyc, outside /proc and /sys."""
    out = ct.run("find", "/", "-xdev", "(", "-path", "/proc", "-o", "-path", "/sys", ")",
                 "-prune", "-o", "-iname", "*rpyc*", "-print").stdout
    return sorted(out.split())


def test_remove_stops_everything_and_purge_leaves_nothing(ct, ports):
    # what the tests themselves made: not the package's to remove
    ct.run("sh", "-c", "id rpyc >/dev/null 2>&1 && deluser --quiet rpyc || true; "
           "rm -rf /srv/rpyc-project /tmp/rpycd_*.deb")
    start_everything(ct, ports)
    ct.run("apt-get", "remove", "-y", "-q", "rpycd", timeout=300)
    running = ct.run("systemctl", "list-units", "--no-legend", "--plain", "--all",
                     "--state=active,activating,deactivating", "rpyc*").stdout.strip()
    assert not running, running
    for port in (ports["classic"], ports["stdio"]):
        assert refuses(port), port
    # what policy keeps after remove: the conffiles
    assert ct.path("/etc/default/rpyc-classic").exists()
    assert not ct.path("/usr/bin/rpyc-classic").exists()
    ct.run("apt-get", "purge", "-y", "-q", "rpycd", timeout=300)
    assert rpyc_files(ct) == []
    status = ct.run("dpkg-query", "-W", "-f=${db:Status-Status}", "rpycd", check=False)
    assert status.returncode != 0 or status.stdout.strip() == "not-installed", status.stdout
