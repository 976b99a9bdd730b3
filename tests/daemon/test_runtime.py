"""rpyc-classic as a daemon: every serving mode and socket source, signals,
readiness, driven with the real rpyc client."""

import os
import signal
import socket
import subprocess
import time

import pytest
import rpyc
from rpyc.core.stream import SocketStream
from rpyc.utils.factory import connect_stream

from conftest import accepts, binary, classic_daemon, free_port, server_env, wait_until


def children_of(pid):
    """(pid, state) of the processes whose parent is `pid`."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append((int(entry), fields[0]))
    return found


def test_threaded_serves_clients_concurrently(daemons, tmp_path):
    daemon, port = classic_daemon(daemons, tmp_path)
    conns = [rpyc.classic.connect("127.0.0.1", port) for _ in range(4)]
    results = [rpyc.async_(c.modules.time.sleep)(0.5) for c in conns]
    start = time.monotonic()
    for r in results:
        r.wait()
    # four half-second calls at once: well under the two seconds in series
    assert time.monotonic() - start < 1.9
    assert {c.modules.os.getpid() for c in conns} == {daemon.proc.pid}
    for c in conns:
        c.close()
    daemon.wait_log(f"INFO:SLAVE/{port}:server started on [127.0.0.1]:{port}")
    assert "welcome [127.0.0.1]:" in daemon.log()


def test_threadpool_drops_the_connection_beyond_its_workers(daemons, tmp_path):
    daemon, port = classic_daemon(daemons, tmp_path, "-m", "threadpool", "--pool-size", "2")
    # the readiness probe held a worker briefly: wait until it is back
    daemon.wait_log("goodbye")
    first = rpyc.classic.connect("127.0.0.1", port)
    second = rpyc.classic.connect("127.0.0.1", port)
    with pytest.raises(EOFError):
        rpyc.classic.connect("127.0.0.1", port)
    daemon.wait_log("thread pool exhausted (2 workers busy): dropping")
    assert first.eval("1 + 1") == 2 and second.eval("2 + 2") == 4
    first.close()
    wait_until(lambda: daemon.log().count("goodbye") >= 2, "the first client's goodbye")
    third = rpyc.classic.connect("127.0.0.1", port)
    assert third.eval("3 + 3") == 6


def test_sigint_stops_like_rpyc(daemons, tmp_path):
    daemon, port = classic_daemon(daemons, tmp_path)
    conn = rpyc.classic.connect("127.0.0.1", port)
    assert conn.eval("1") == 1
    daemon.signal(signal.SIGINT)
    assert daemon.wait() == 0
    lines = daemon.log().splitlines()
    expected = [f"WARNING:SLAVE/{port}:keyboard interrupt!",
                f"INFO:SLAVE/{port}:server has terminated",
                f"INFO:SLAVE/{port}:listener closed"]
    assert [line for line in lines if line in expected] == expected


def test_sigterm_lets_a_long_call_finish(daemons, tmp_path):
    daemon, port = classic_daemon(daemons, tmp_path)
    conn = rpyc.classic.connect("127.0.0.1", port)
    idle = rpyc.classic.connect("127.0.0.1", port)
    call = rpyc.async_(conn.modules.time.sleep)(1.0)
    wait_until(lambda: daemon.log().count("welcome") >= 3, "both clients welcomed")
    time.sleep(0.1)  # let the call reach the server; the reply is what we check
    daemon.signal(signal.SIGTERM)
    call.wait()
    assert call.ready and not call.error
    assert daemon.wait() == 0
    assert f"INFO:SLAVE/{port}:server has terminated" in daemon.log()
    with pytest.raises(EOFError):
        idle.eval("1")


def test_forking_serves_each_client_in_its_own_process_and_reaps_them(daemons, tmp_path):
    daemon, port = classic_daemon(daemons, tmp_path, "-m", "forking")
    pids = set()
    for _ in range(200):
        conn = rpyc.classic.connect("127.0.0.1", port)
        pids.add(conn.modules.os.getpid())
        conn.close()
    assert len(pids) == 200 and daemon.proc.pid not in pids
    wait_until(lambda: not children_of(daemon.proc.pid), "every child reaped")


def test_forking_child_exit_leaves_the_parent_serving(daemons, tmp_path):
    daemon, port = classic_daemon(daemons, tmp_path, "-m", "forking")
    doomed = rpyc.classic.connect("127.0.0.1", port)
    with pytest.raises(EOFError):
        doomed.modules.os._exit(3)
    daemon.wait_log("exited with status 3")
    conn = rpyc.classic.connect("127.0.0.1", port)
    assert conn.eval("6 * 7") == 42


def test_oneshot_prints_rpycs_banner_and_serves_one_client(tmp_path):
    proc = subprocess.Popen([binary(), "--mode=oneshot", "--host=localhost", "-p0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=server_env())
    try:
        assert proc.stdout.readline() == b"rpyc-oneshot\n"
        host, port = proc.stdout.readline().decode().rstrip("\n").split("\t")
        assert host == "127.0.0.1"
        conn = rpyc.classic.connect(host, int(port))
        assert conn.modules.sys.version_info[0] == 3
        conn.close()
        assert proc.wait(20) == 0
        assert not accepts(host, int(port))
    finally:
        proc.kill()
        proc.wait()


def stdio_client(sock):
    return connect_stream(SocketStream(sock), rpyc.classic.ClassicService)


def test_stdio_with_the_socket_as_fds_0_1_and_2(tmp_path):
    ours, theirs = socket.socketpair()
    # openbsd-inetd passes the client's socket as stdin, stdout and stderr
    proc = subprocess.Popen([binary(), "-m", "stdio"], stdin=theirs, stdout=theirs, stderr=theirs,
                            env=server_env())
    theirs.close()
    try:
        conn = stdio_client(ours)
        # one process per connection: logrotate's SIGHUP must not end it
        proc.send_signal(signal.SIGHUP)
        conn.execute("import sys; print('to stdout'); print('to stderr', file=sys.stderr)")
        assert conn.eval("sum(range(10))") == 45
        assert list(conn.builtins.list([1, 2, 3])) == [1, 2, 3]
        with pytest.raises(ZeroDivisionError):
            conn.eval("1 / 0")
        conn.close()
        assert proc.wait(20) == 0
    finally:
        proc.kill()
        proc.wait()


def test_stdio_under_systemd_socket_activate_inetd(daemons, tmp_path):
    port = free_port()
    daemon = daemons(["systemd-socket-activate", "-l", f"127.0.0.1:{port}", "--inetd", "-a",
                      binary(), "-m", "stdio"], tmp_path)
    wait_until(lambda: accepts("127.0.0.1", port), "the activation socket")
    first = rpyc.classic.connect("127.0.0.1", port)
    second = rpyc.classic.connect("127.0.0.1", port)
    # one process per connection, the inetd way
    assert first.modules.os.getpid() != second.modules.os.getpid()
    assert first.eval("2 ** 8") == 256 and second.eval("3 ** 3") == 27
    # stderr is not the socket here, so the sessions log there, naming the client
    first_port = first._channel.stream.sock.getsockname()[1]
    daemon.wait_log(f"welcome [127.0.0.1]:{first_port}")


def test_socket_activation_serves_the_passed_sockets_and_binds_nothing(daemons, tmp_path):
    ports = [free_port(), free_port()]
    unused = free_port()
    daemon = daemons(["systemd-socket-activate", "-l", f"127.0.0.1:{ports[0]}",
                      "-l", f"127.0.0.1:{ports[1]}", binary(), "-p", str(unused)], tmp_path)
    wait_until(lambda: accepts("127.0.0.1", ports[0]), "the first passed socket")
    for port in ports:
        conn = rpyc.classic.connect("127.0.0.1", port)
        assert conn.eval("40 + 2") == 42
        conn.close()
    for port in ports:
        daemon.wait_log(f"server started on [127.0.0.1]:{port}")
    assert not accepts("127.0.0.1", unused)


def test_socket_activation_with_accept(daemons, tmp_path):
    port = free_port()
    daemons(["systemd-socket-activate", "-l", f"127.0.0.1:{port}", "--accept", binary()],
            tmp_path)
    wait_until(lambda: accepts("127.0.0.1", port), "the activation socket")
    first = rpyc.classic.connect("127.0.0.1", port)
    second = rpyc.classic.connect("127.0.0.1", port)
    assert first.modules.os.getpid() != second.modules.os.getpid()
    assert first.eval("1 + 1") == 2 and second.eval("2 + 2") == 4


def test_ipv6_loopback(daemons, tmp_path):
    daemon, port = classic_daemon(daemons, tmp_path, "--ipv6", host="::1", family=socket.AF_INET6)
    conn = rpyc.classic.connect("::1", port, ipv6=True)
    assert conn.eval("'v6'") == "v6"
    daemon.wait_log(f"server started on [::1]:{port}")


def test_unix_socket(daemons, tmp_path):
    path = tmp_path / "classic.sock"
    daemon = daemons([binary(), "--unix-socket", str(path)], tmp_path)
    wait_until(path.exists, "the socket file")
    conn = rpyc.classic.unix_connect(str(path))
    assert conn.eval("'unix'") == "unix"
    conn.close()
    daemon.signal(signal.SIGTERM)
    assert daemon.wait() == 0
    assert not path.exists()


def test_a_stale_unix_socket_is_replaced_and_a_live_one_or_a_file_is_not(daemons, tmp_path):
    path = tmp_path / "classic.sock"
    # what a server killed with SIGKILL leaves: a socket nothing accepts on
    first = daemons([binary(), "--unix-socket", str(path)], tmp_path)
    wait_until(path.exists, "the socket file")
    first.signal(signal.SIGKILL)
    first.wait()
    assert path.is_socket()
    restarted = daemons([binary(), "--unix-socket", str(path)], tmp_path)
    restarted.wait_log("server started")
    conn = rpyc.classic.unix_connect(str(path))
    assert conn.eval("'restarted'") == "restarted"
    # a second server does not take the socket of one that serves
    second = daemons([binary(), "--unix-socket", str(path)], tmp_path)
    assert second.wait() == 69
    assert "another server accepts connections on it" in second.log()
    assert conn.eval("1 + 1") == 2
    conn.close()
    # nor does it remove what is not a socket
    other = tmp_path / "not-a-socket"
    other.write_text("keep me")
    refused = daemons([binary(), "--unix-socket", str(other)], tmp_path)
    assert refused.wait() == 69
    assert "is not a socket; it is left alone" in refused.log()
    assert other.read_text() == "keep me"


def test_max_connections_closes_the_extra_one(daemons, tmp_path):
    daemon, port = classic_daemon(daemons, tmp_path, "--max-connections", "1")
    daemon.wait_log("goodbye")
    conn = rpyc.classic.connect("127.0.0.1", port)
    with pytest.raises(EOFError):
        rpyc.classic.connect("127.0.0.1", port)
    daemon.wait_log("--max-connections")
    assert conn.eval("5") == 5


def test_ready_is_sent_once_the_port_accepts(daemons, tmp_path):
    notify_path = str(tmp_path / "notify.sock")
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(notify_path)
    notify.settimeout(20)
    port = free_port()
    daemon = daemons([binary(), "--host", "127.0.0.1", "-p", str(port)], tmp_path,
                     env=server_env(NOTIFY_SOCKET=notify_path))
    message = notify.recv(4096).decode()
    assert "READY=1" in message.splitlines()
    assert accepts("127.0.0.1", port)
    assert "STATUS=" in message
    conn = rpyc.classic.connect("127.0.0.1", port)
    statuses = []
    while "STATUS=serving 1 connection(s)" not in statuses:
        statuses.extend(notify.recv(4096).decode().splitlines())
    conn.close()
    daemon.signal(signal.SIGTERM)
    while "STOPPING=1" not in statuses:
        statuses.extend(notify.recv(4096).decode().splitlines())
    assert daemon.wait() == 0


def test_non_loopback_without_tls_warns(daemons, tmp_path):
    daemon, port = classic_daemon(daemons, tmp_path, host="127.0.0.1")
    assert "remote code execution" not in daemon.log()
    port = free_port(host="0.0.0.0")
    daemon = daemons([binary(), "--host", "0.0.0.0", "-p", str(port)], tmp_path)
    daemon.wait_log("remote code execution")
    assert "WARNING:" in daemon.log()


def test_logfile_gets_timestamped_lines_and_is_reopened_on_sighup(daemons, tmp_path):
    logfile = tmp_path / "classic.log"
    port = free_port()
    daemon = daemons([binary(), "--host", "127.0.0.1", "-p", str(port), "--logfile", str(logfile)],
                     tmp_path)
    wait_until(lambda: logfile.exists() and "server started" in logfile.read_text(), "the logfile")
    first = logfile.read_text().splitlines()[0]
    stamp, line = first.split(" ", 1)
    assert stamp.endswith("Z") and "T" in stamp
    assert line == f"INFO:SLAVE/{port}:server started on [127.0.0.1]:{port}"
    rotated = tmp_path / "classic.log.1"
    logfile.rename(rotated)
    daemon.signal(signal.SIGHUP)
    wait_until(logfile.exists, "the reopened logfile")
    conn = rpyc.classic.connect("127.0.0.1", port)
    conn.close()
    wait_until(lambda: "goodbye" in logfile.read_text(), "a goodbye in the new file")
    assert "goodbye" not in rotated.read_text()
    assert daemon.log() == ""


def test_unusable_logfile_is_a_config_error_before_binding(tmp_path):
    port = free_port()
    out = subprocess.run([binary(), "-p", str(port), "--logfile", str(tmp_path / "no" / "dir.log")],
                         capture_output=True, text=True, timeout=20, env=server_env())
    assert out.returncode == 78
    assert out.stderr.count("\n") == 1 and "dir.log" in out.stderr
    assert not accepts("127.0.0.1", port)


def test_stdio_logs_to_the_logfile_only(tmp_path):
    logfile = tmp_path / "stdio.log"
    ours, theirs = socket.socketpair()
    proc = subprocess.Popen([binary(), "-m", "stdio", "--logfile", str(logfile)],
                            stdin=theirs, stdout=theirs, stderr=theirs, env=server_env())
    theirs.close()
    try:
        conn = stdio_client(ours)
        assert conn.eval("7 * 6") == 42
        conn.close()
        assert proc.wait(20) == 0
    finally:
        proc.kill()
        proc.wait()
    text = logfile.read_text()
    assert "welcome stdio" in text and "goodbye stdio" in text


def test_idle_timeout_closes_only_idle_connections(daemons, tmp_path):
    daemon, port = classic_daemon(daemons, tmp_path, "--idle-timeout", "0.5")
    busy = rpyc.classic.connect("127.0.0.1", port)
    # a request longer than the timeout is not idleness
    busy.modules.time.sleep(1.2)
    # nor is the server waiting for a callback of ours that takes long
    busy.execute("def call(f): return f()")
    assert busy.namespace["call"](lambda: time.sleep(1.2) or "called back") == "called back"
    idle = rpyc.classic.connect("127.0.0.1", port)
    assert idle.eval("1") == 1
    idle_port = idle._channel.stream.sock.getsockname()[1]
    daemon.wait_log(f"closing [127.0.0.1]:{idle_port}: idle for longer than --idle-timeout")
    with pytest.raises(EOFError):
        idle.eval("2")


def test_idle_timeout_in_stdio_mode_over_pipes(tmp_path):
    """connect_subproc's pipes have no socket timeouts: the idle clock
    still ticks, and a long request is still not idleness."""
    from rpyc.core.stream import PipeStream
    logfile = tmp_path / "stdio.log"
    proc = subprocess.Popen([binary(), "-m", "stdio", "--idle-timeout", "0.5",
                             "--logfile", str(logfile)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=server_env())
    try:
        conn = connect_stream(PipeStream(proc.stdout, proc.stdin), rpyc.classic.ClassicService)
        conn.modules.time.sleep(1.2)
        assert conn.eval("6 * 7") == 42
        assert proc.wait(20) == 0
        assert "idle for longer than --idle-timeout" in logfile.read_text()
    finally:
        proc.kill()
        proc.wait()


def test_watchdog_pings(daemons, tmp_path):
    notify_path = str(tmp_path / "notify.sock")
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(notify_path)
    notify.settimeout(20)
    daemons([binary(), "--host", "127.0.0.1", "-p", str(free_port())], tmp_path,
            env=server_env(NOTIFY_SOCKET=notify_path, WATCHDOG_USEC="400000"))
    lines = []
    while lines.count("WATCHDOG=1") < 2:
        lines.extend(notify.recv(4096).decode().splitlines())
    assert "READY=1" in lines


def start_registry(daemons, tmp_path, kind, mode):
    """A registry on a free loopback port: rpyc 6.0.2's own, or ours."""
    import sys
    import sysconfig
    port = free_port()
    if kind == "python":
        script = os.path.join(sysconfig.get_paths()["scripts"], "rpyc_registry")
        daemons([sys.executable, script, "-m", mode, "-p", str(port)], tmp_path)
    else:
        daemons([binary("rpyc-registry"), "-m", mode, "-p", str(port), "--host", "127.0.0.1"],
                tmp_path)
    wait_until(lambda: registry_answers(mode, port), f"the {kind} {mode} registry to answer")
    return port


def registry_answers(mode, port):
    """A registry with listing off answers LIST with None; silence is ()."""
    try:
        return registrar_for(mode, port).list() is None
    except OSError:
        return False


def registrar_for(mode, port):
    from rpyc.utils.registry import TCPRegistryClient, UDPRegistryClient
    if mode == "UDP":
        return UDPRegistryClient(ip="127.0.0.1", port=port)
    return TCPRegistryClient("127.0.0.1", port=port)


@pytest.mark.parametrize("kind", ["python", "rpycd"])
@pytest.mark.parametrize("mode", ["UDP", "TCP"])
def test_register_discover_and_connect(daemons, tmp_path, mode, kind):
    registry_port = start_registry(daemons, tmp_path, kind, mode)
    client = registrar_for(mode, registry_port)
    daemon, port = classic_daemon(daemons, tmp_path, "--register", "--registry-type", mode,
                                  "--registry-host", "127.0.0.1",
                                  "--registry-port", str(registry_port))
    found = wait_until(lambda: client.discover("SLAVE"), "the registration")
    assert tuple(found) == (("127.0.0.1", port),)
    # what a user does with it: rpyc.discover, then connect
    conn = rpyc.classic.connect(*rpyc.discover("SLAVE", registrar=client)[0])
    assert conn.eval("'found'") == "found"
    conn.close()
    daemon.wait_log("acknowledged")
    daemon.signal(signal.SIGTERM)
    assert daemon.wait() == 0
    # a clean stop unregisters
    wait_until(lambda: not client.discover("SLAVE"), "the unregistration")


def test_register_keeps_retrying_until_a_registry_answers(daemons, tmp_path):
    registry_port = free_port()
    daemon, port = classic_daemon(daemons, tmp_path, "--register", "--registry-type", "UDP",
                                  "--registry-host", "127.0.0.1",
                                  "--registry-port", str(registry_port))
    daemon.wait_log("registering services did not work - retry")
    # the server serves meanwhile
    conn = rpyc.classic.connect("127.0.0.1", port)
    assert conn.eval("1") == 1
    # a registry that comes up late gets the registration
    import sys
    import sysconfig
    script = os.path.join(sysconfig.get_paths()["scripts"], "rpyc_registry")
    daemons([sys.executable, script, "-m", "UDP", "-p", str(registry_port)], tmp_path)
    wait_until(lambda: registry_answers("UDP", registry_port), "the late registry to answer")
    client = registrar_for("UDP", registry_port)
    found = wait_until(lambda: client.discover("SLAVE"), "the late registration")
    assert tuple(found) == (("127.0.0.1", port),)


def test_socket_activation_with_a_unix_socket(daemons, tmp_path):
    path = tmp_path / "activated.sock"
    daemon = daemons(["systemd-socket-activate", "-l", str(path), binary()], tmp_path)
    wait_until(path.exists, "the activation socket")
    conn = rpyc.classic.unix_connect(str(path))
    assert conn.eval("'via systemd'") == "via systemd"
    daemon.wait_log(f"server started on {path}")


def test_sys_executable_is_the_embedded_python_not_the_first_on_path(daemons, tmp_path):
    # a python3 first on PATH that is not the embedded interpreter
    decoy = tmp_path / "bin"
    decoy.mkdir()
    (decoy / "python3").write_text("#!/bin/sh\necho decoy\n")
    (decoy / "python3").chmod(0o755)
    port = free_port()
    env = server_env(PATH=f"{decoy}:{os.environ['PATH']}")
    daemon = daemons([binary(), "--host", "127.0.0.1", "-p", str(port)], tmp_path, env=env)
    wait_until(lambda: daemon.proc.poll() is not None or accepts("127.0.0.1", port), "the port")
    conn = rpyc.classic.connect("127.0.0.1", port)
    executable = conn.modules.sys.executable
    assert not executable.startswith(str(decoy)), executable
    # it starts the same Python: same version, same installation
    out = conn.modules.subprocess.run(
        [executable, "-c", "import sys; print(sys.version_info[:2], sys.base_prefix)"],
        capture_output=True, text=True, check=True).stdout.strip()
    assert out == f"{tuple(conn.modules.sys.version_info[:2])} {conn.modules.sys.base_prefix}"
