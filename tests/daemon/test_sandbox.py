"""The daemon inside the packaged units' sandbox, where bind() and listen()
fail with EPERM (nobind.py installs the same denial): it serves the
sockets it is given, and `--register` still registers, from the server's
own address, as rpyc's registrar does with bind()."""

import os
import socket
import sys
import time
from pathlib import Path

import pytest
import rpyc

import nobind
from reliability import record
from conftest import (DEADLINE, accepts, binary, free_port, free_udp_and_tcp_port, python_classic,
                      wait_until)
from test_runtime import registrar_for

NOBIND = str(Path(__file__).with_name("nobind.py"))

pytestmark = pytest.mark.skipif(not nobind.supported(),
                                reason="nobind.py knows the syscall numbers of x86_64 and aarch64")


def start_registry(daemons, tmp_path, mode):
    port = free_udp_and_tcp_port()
    daemons([binary("rpyc-registry"), "-m", mode, "-p", str(port), "--host", "127.0.0.1"],
            tmp_path)
    wait_until(lambda: _answers(mode, port), f"the {mode} registry to answer")
    return port


def _answers(mode, port):
    try:
        return registrar_for(mode, port).list() is None
    except OSError:
        return False


def sandboxed_classic(daemons, tmp_path, host, *args):
    """rpyc-classic given a listening socket by systemd-socket-activate and
    running with bind() and listen() denied; returns (daemon, port)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    port = free_port(family, host)
    address = f"[{host}]:{port}" if family == socket.AF_INET6 else f"{host}:{port}"
    daemon = daemons(["systemd-socket-activate", "-l", address, sys.executable,
                      NOBIND, binary(), *args], tmp_path)
    wait_until(lambda: daemon.proc.poll() is not None or accepts(host, port, family),
               f"port {port} to accept")
    assert daemon.proc.poll() is None, daemon.log()
    return daemon, port


def test_the_sandbox_denies_binding_to_client_code(daemons, tmp_path):
    """What the other tests rely on: code in a session cannot bind or listen."""
    _, port = sandboxed_classic(daemons, tmp_path, "127.0.0.1")
    conn = rpyc.classic.connect("127.0.0.1", port)
    try:
        conn.execute("import socket; s = socket.socket()")
        with pytest.raises(PermissionError):
            conn.execute("s.bind(('127.0.0.1', 0))")
        with pytest.raises(PermissionError):
            conn.execute("s.listen()")
        # and the daemon itself serves on
        assert conn.eval("6 * 7") == 42
    finally:
        conn.close()


@pytest.mark.parametrize("mode", ["UDP", "TCP"])
def test_register_without_bind(daemons, tmp_path, mode):
    registry_port = start_registry(daemons, tmp_path, mode)
    daemon, port = sandboxed_classic(daemons, tmp_path, "127.0.0.1", "--register",
                                     "--registry-type", mode, "--registry-host", "127.0.0.1",
                                     "--registry-port", str(registry_port))
    client = registrar_for(mode, registry_port)
    found = wait_until(lambda: client.discover("SLAVE"), f"the registration:\n{daemon.log()}")
    assert tuple(found) == (("127.0.0.1", port),)
    assert "did not work" not in daemon.log(), daemon.log()


def test_udp_registration_comes_from_the_servers_address(daemons, tmp_path):
    """A server on 127.0.0.2 registering with a registry on 127.0.0.1: the
    route alone would send from 127.0.0.1, and the registry records the
    address a datagram comes from. rpyc binds to the server's address; here
    IP_PKTINFO picks it, with bind() denied."""
    registry_port = start_registry(daemons, tmp_path, "UDP")
    daemon, port = sandboxed_classic(daemons, tmp_path, "127.0.0.2", "--register",
                                     "--registry-type", "UDP", "--registry-host", "127.0.0.1",
                                     "--registry-port", str(registry_port))
    client = registrar_for("UDP", registry_port)
    found = wait_until(lambda: client.discover("SLAVE"), f"the registration:\n{daemon.log()}")
    assert tuple(found) == (("127.0.0.2", port),)


def test_udp_registration_over_ipv6(daemons, tmp_path):
    """The same over IPv6 (IPV6_PKTINFO): a server on ::1, a registry on ::1."""
    from rpyc.utils.registry import UDPRegistryClient
    registry_port = free_udp_and_tcp_port()
    daemons([binary("rpyc-registry"), "-m", "UDP", "-p", str(registry_port), "--ipv6",
             "--host", "::1"], tmp_path)
    client = UDPRegistryClient(ip="::1", port=registry_port, ipv6=True)
    wait_until(lambda: _lists(client), "the IPv6 registry to answer")
    daemon, port = sandboxed_classic(daemons, tmp_path, "::1", "--register",
                                     "--registry-type", "UDP", "--registry-host", "::1",
                                     "--registry-port", str(registry_port))
    found = wait_until(lambda: client.discover("SLAVE"), f"the registration:\n{daemon.log()}")
    assert tuple(found) == (("::1", port),)


def _lists(client):
    try:
        return client.list() is None
    except OSError:
        return False


# -- tasks: the units' TasksMax= and LimitNPROC= --------------------------------

# a user id no process on the machine has: RLIMIT_NPROC counts every task
# of the real user, so the daemon's must be the only ones
UNUSED_UID = 64123
TASKS = 64
# what a client's code does to use up the daemon's tasks
TASK_BOMB = (Path(__file__).resolve().parents[1] / "data" / "task_bomb.py").read_text()


def as_unused_user_with_few_tasks():
    import resource
    resource.setrlimit(resource.RLIMIT_NPROC, (TASKS, TASKS))
    os.setgroups([])
    os.setgid(UNUSED_UID)
    os.setuid(UNUSED_UID)


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


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run the daemon as a user of its own")
@pytest.mark.parametrize("mode", ["threaded", "threadpool", "forking"])
def test_a_quiet_session_survives_clients_code_holding_every_task(daemons, tmp_path, mode):
    """Clients' code takes every task the unit allows (as LimitNPROC= or
    TasksMax= count them) and keeps its session on its thread: it gets an
    error, and the daemon serves on. In threadpool and forking modes
    another session, quiet until then, has its worker or process and
    answers at once. In threaded mode a quiet session has no thread (it is
    parked); when it speaks while no thread can be started its connection
    is closed, and logged, and sessions opened once the bomb is over are
    served."""
    assert_unused_uid_is_free()
    port = free_port()
    daemon = daemons([binary(), "--host", "127.0.0.1", "-p", str(port), "-m", mode], tmp_path,
                     preexec_fn=as_unused_user_with_few_tasks)
    wait_until(lambda: daemon.proc.poll() is not None or accepts("127.0.0.1", port),
               f"port {port} to accept")
    assert daemon.proc.poll() is None, daemon.log()
    bomber, other = two_sessions(port)
    try:
        held = set_off_the_bomb(bomber, other)
        thread, answer = ask_in_background(other, "6 * 7")
        thread.join(DEADLINE if mode == "threaded" else 3)
        if mode == "threaded":
            # no thread for it: closed, and said so
            assert len(answer) == 1 and isinstance(answer[0], EOFError), answer
            daemon.wait_log("cannot start a thread for a connection")
        else:
            assert answer == [42], answer
        # a new client while the bomb holds every task (what ends
        # rpyc_classic): served or closed, and the daemon serves on
        with socket.create_connection(("127.0.0.1", port), timeout=5) as newcomer:
            newcomer.settimeout(2)
            try:
                newcomer.recv(1)
            except (socket.timeout, ConnectionResetError):
                pass
        assert daemon.proc.poll() is None, daemon.log()
        bomber.execute("release.set()\nfor thread in held: thread.join()")
        record(f"task bomb in clients' code ({mode})",
               f"RLIMIT_NPROC {TASKS} (as the units' LimitNPROC=/TasksMax= bound tasks); one "
               "session starts threads until refused, then os.fork(), and keeps its thread; "
               "another session, quiet for 6.5 s, then asks; then a new client connects",
               f"the bomb refused after {held} threads, fork refused; "
               + ("the quiet session, parked without a thread, was closed and logged; "
                  if mode == "threaded" else "the quiet session answered during the bomb; ")
               + "a new connection during the bomb left the daemon serving; new sessions "
               "served after the bomb",
               threads=held)
        late = rpyc.classic.connect("127.0.0.1", port)
        assert late.eval("2 + 2") == 4
        late.close()
        if mode != "threaded":
            assert other.eval("6 * 7") == 42
    finally:
        bomber.close()
        other.close()


def tasks_of_the_unused_user():
    return [p for p in os.listdir("/proc") if p.isdigit() and _uid_of(p) == UNUSED_UID]


def two_sessions(port):
    """The session that will set off the bomb, and a quiet one."""
    return rpyc.classic.connect("127.0.0.1", port), rpyc.classic.connect("127.0.0.1", port)


def set_off_the_bomb(bomber, other):
    """`other` speaks once, then is quiet long enough to be parked (and for
    the threads that served it to end: SPARE_WAIT); `bomber` takes every
    task it can and keeps its thread. The threads it holds."""
    assert other.eval("1") == 1
    time.sleep(6.5)
    bomber.execute(TASK_BOMB)
    held = bomber.eval("len(held)")
    assert bomber.eval("thread_error") and held < TASKS
    assert bomber.eval("fork_error"), "a process could still be started"
    time.sleep(0.5)   # the bomber is quiet too, on its own thread
    return held


def assert_unused_uid_is_free():
    # (a forking child of the test before may still be ending)
    wait_until(lambda: not tasks_of_the_unused_user(),
               f"uid {UNUSED_UID} to be free: {tasks_of_the_unused_user()} use it")


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run the server as a user of its own")
@pytest.mark.parametrize("mode", ["threaded", "forking"])
def test_python_rpyc_under_a_task_bomb(daemons, tmp_path, mode):
    """The same bomb against rpyc_classic. Each session has its thread or
    process, so the quiet one answers; but a connection that arrives while
    no task can be started ends the server: rpyc 6.0.2's accept loop lets
    the error from Thread.start() or os.fork() out of ThreadedServer.start()
    and closes every connection."""
    assert_unused_uid_is_free()
    daemon, port = python_classic(daemons, tmp_path, mode, preexec_fn=as_unused_user_with_few_tasks)
    bomber, other = two_sessions(port)
    try:
        held = set_off_the_bomb(bomber, other)
        thread, answer = ask_in_background(other, "6 * 7")
        thread.join(3)
        assert answer == [42], answer
        # a new client while the bomb holds every task
        newcomer = socket.create_connection(("127.0.0.1", port), timeout=5)
        status = daemon.wait(DEADLINE)
        newcomer.close()
        assert not accepts("127.0.0.1", port)
        if mode == "threaded":
            with pytest.raises(EOFError):
                other.eval("6 * 7")
            sessions = "every session with it"
        else:
            # the children serving open sessions outlive their parent
            assert other.eval("6 * 7") == 42
            sessions = "open sessions lived on in its orphaned children"
        record(f"task bomb in clients' code ({mode})",
               f"RLIMIT_NPROC {TASKS} (as the units' LimitNPROC=/TasksMax= bound tasks); one "
               "session starts threads until refused, then os.fork(), and keeps its thread; "
               "another session, quiet for 6.5 s, then asks; then a new client connects",
               f"the bomb refused after {held} threads, fork refused; the quiet session "
               f"answered during the bomb; then one new connection ended the server (exit status "
               f"{status}: {'Thread.start' if mode == 'threaded' else 'os.fork'} failed in its "
               f"accept loop), {sessions}; no new client served after", lost=1, server="python",
               threads=held, status=status)
    finally:
        bomber.close()
        other.close()
        end_every_task_of_the_unused_user()


def end_every_task_of_the_unused_user():
    """Forking children that outlived their server would count against
    the next test's tasks."""
    deadline = time.monotonic() + DEADLINE
    while pids := tasks_of_the_unused_user():
        assert time.monotonic() < deadline, pids
        for pid in pids:
            try:
                os.kill(int(pid), 9)
            except ProcessLookupError:
                pass
        time.sleep(0.1)


def _uid_of(pid):
    try:
        return os.stat(f"/proc/{pid}").st_uid
    except OSError:
        return None
