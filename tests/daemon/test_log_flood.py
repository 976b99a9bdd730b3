"""What a peer can make the daemons write: the lines it can cause at will
(one per connection, per failed handshake, per datagram) are kept to a
burst per kind and interval, the rest counted in one "N similar messages
suppressed" line, as journald does; and what it chooses to be logged
(registry names) reaches the log with its invisible characters escaped.

Every count is checked exactly: the lines written of a kind plus the
counts of that kind are the events that happened."""

import re
import signal
import socket
import time

import pytest
import rpyc
from rpyc.core import brine

from certs import make_pki
from conftest import (binary, classic_daemon, free_udp_and_tcp_port, python_classic,
                      python_registry, wait_until)
from reliability import record

HOST = "127.0.0.1"
# the daemons' rule: BURST lines of a kind per 30 s (src/daemon/log/ratelimit.rs)
BURST = 100
CYCLES = 500
SUPPRESSED = re.compile(r":(\d+) similar messages suppressed \(([^:]+): more than (\d+) in (\d+)s\)$")


def stopped_log(daemon):
    """The whole log of a daemon stopped by SIGTERM (which writes the
    counts not yet written)."""
    daemon.signal(signal.SIGTERM)
    assert daemon.wait(30) == 0, daemon.log()
    return daemon.log()


def lines_with(log, text):
    return [line for line in log.splitlines() if text in line and "similar messages" not in line]


def suppressed(log, what):
    counts = []
    for line in log.splitlines():
        match = SUPPRESSED.search(line)
        if match and match.group(2) == what:
            assert line.startswith("WARNING:"), line
            assert (int(match.group(3)), int(match.group(4))) == (BURST, 30), line
            counts.append(int(match.group(1)))
    return counts


def written_and_counted(log, text, what):
    """(lines written, their total with the suppressed ones) of a kind."""
    written = len(lines_with(log, text))
    counts = suppressed(log, what)
    # a burst per interval: a test this short spans one interval, or two
    assert written <= BURST * (len(counts) + 1), (written, counts)
    return written, written + sum(counts)


def half_closed(port):
    """Connections to `port` that the client closed and the server has not
    yet (TCP state CLOSE_WAIT, from /proc/net/tcp)."""
    with open("/proc/net/tcp") as table:
        rows = [line.split() for line in table.readlines()[1:]]
    return sum(1 for row in rows if int(row[1].split(":")[1], 16) == port and row[3] == "08")


def connect_and_close(port, count):
    for _ in range(count):
        with socket.create_connection((HOST, port), timeout=5):
            pass


def session_after_flood(port):
    """Opens a session and uses it; how many connections that took (a
    busy thread pool drops connections it has no worker for)."""
    for attempt in range(1, 51):
        try:
            conn = rpyc.classic.connect(HOST, port)
            assert conn.eval("6 * 7") == 42
            conn.close()
            return attempt
        except EOFError:
            time.sleep(0.1)
    raise AssertionError("no session after 50 attempts")


@pytest.mark.parametrize("mode", ["threaded", "threadpool", "forking"])
def test_a_connection_flood_writes_a_burst_and_counts_the_rest(daemons, tmp_path, mode):
    daemon, port = classic_daemon(daemons, tmp_path, "-m", mode)
    connect_and_close(port, CYCLES)
    # a real session after the flood: the server has accepted every
    # connection before it (the backlog is first in, first out)
    attempts = session_after_flood(port)
    log = stopped_log(daemon)
    # the flood, the session, and the start-up probe
    accepts = CYCLES + attempts + 1
    written, total = written_and_counted(log, ":accepted ", "accepted connections")
    assert written == BURST and total == accepts, (written, total)
    if mode != "forking":
        # a forked child writes its own welcome and goodbye, once: the
        # flood shows in the parent's accept lines; a busy pool drops some
        _, dropped = written_and_counted(log, ":thread pool exhausted", "refused connections")
        for text, what in [(":welcome ", "welcomes"), (":goodbye ", "goodbyes")]:
            written, total = written_and_counted(log, text, what)
            assert total == accepts - dropped, (text, written, total, dropped)
            assert written == min(BURST, total), (text, written, total)
        assert len(log) < 40_000, f"{len(log)} bytes of log"
    if mode == "threaded":
        record("connection flood, log volume", FLOOD_TRIED,
               f"{len(log)} bytes of log in all ({len(log) / accepts:.0f} per connection): "
               f"{BURST} lines of each kind, then one count per kind and 30 s",
               log_bytes=len(log), connections=accepts)


FLOOD_TRIED = f"{CYCLES} TCP connect/close cycles against the threaded server"


def test_python_rpyc_under_a_connection_flood(daemons, tmp_path):
    daemon, port = python_classic(daemons, tmp_path)
    connect_and_close(port, CYCLES)
    attempts = session_after_flood(port)
    # the last goodbye is written after the session's socket closes
    time.sleep(1)
    log = daemon.log()
    accepts = CYCLES + attempts + 1
    lines = len(log.splitlines())
    record("connection flood, log volume", FLOOD_TRIED,
           f"{len(log)} bytes of log in all ({len(log) / accepts:.0f} per connection): "
           f"{lines} lines, each connection's written, no bound",
           server="python", log_bytes=len(log), connections=accepts, lines=lines)


def test_refusals_beyond_max_connections_are_counted(daemons, tmp_path):
    daemon, port = classic_daemon(daemons, tmp_path, "--max-connections", "1")
    # the start-up probe holds the one slot until the server has seen it close
    daemon.wait_log("goodbye")
    holder = rpyc.classic.connect(HOST, port)
    assert holder.eval("1") == 1
    connect_and_close(port, 300)
    assert holder.eval("2") == 2
    holder.close()
    log = stopped_log(daemon)
    written, refused = written_and_counted(log, ":refusing ", "refused connections")
    _, accepts = written_and_counted(log, ":accepted ", "accepted connections")
    _, welcomes = written_and_counted(log, ":welcome ", "welcomes")
    # the start-up probe, the holder and the flood; each flood connection
    # refused, or served if it came as another one's count went down
    assert accepts == 302 and refused + welcomes == accepts, (accepts, refused, welcomes)
    assert refused > BURST and written == BURST, (written, refused)


def test_failed_tls_handshakes_are_counted(daemons, tmp_path):
    pki = make_pki(tmp_path / "pki")
    server = pki.servers["ecdsa"]
    daemon, port = classic_daemon(daemons, tmp_path, "--ssl-keyfile", server.key,
                                  "--ssl-certfile", server.cert)
    for _ in range(300):
        with socket.create_connection((HOST, port), timeout=5) as sock:
            sock.sendall(b"GET / HTTP/1.0\r\n\r\n")
    # (handshakes still in flight would end after the last count)
    wait_until(lambda: half_closed(port) == 0, "the server to close every connection")
    log = stopped_log(daemon)
    failed, failures = written_and_counted(log, "failed to authenticate", "failed authentications")
    accepted, accepts = written_and_counted(log, ":accepted ", "accepted connections")
    assert failed == BURST and accepted == BURST, (failed, accepted)
    # the flood, and the start-up probe
    assert failures == accepts == 301, (failures, accepts)


def registry(daemons, tmp_path):
    port = free_udp_and_tcp_port()
    daemon = daemons([binary("rpyc-registry"), "-m", "UDP", "--host", HOST, "-p", str(port)],
                     tmp_path)
    wait_until(lambda: daemon.proc.poll() is not None or "server started" in daemon.log(),
               "the registry to start")
    assert daemon.proc.poll() is None, daemon.log()
    return daemon, port


def ask(port, source, *message):
    """One request from `source` (an address of 127/8); its answer, or
    None if none came."""
    data = brine.dump(("RPYC", *message))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((source, 0))
        sock.settimeout(2)
        sock.sendto(data, (HOST, port))
        try:
            return brine.load(sock.recvfrom(65536)[0]), len(data)
        except socket.timeout:
            return None, len(data)


REGISTRATION_SOURCES = [f"127.0.{1 + n // 250}.{1 + n % 250}" for n in range(1000)]


def register_and_unregister_from_each_source(port):
    """A register of about 1.2 KB of names from each source (as spoofed
    ones would be), and its unregister; returns the bytes sent."""
    aliases = tuple(f"{letter}" * 290 for letter in "ABCD")
    sent = 0
    for source in REGISTRATION_SOURCES:
        answer, size = ask(port, source, "REGISTER", (aliases, 40000))
        sent += size
        assert answer == "OK", answer
        answer, size = ask(port, source, "UNREGISTER", (40000,))
        sent += size
        assert answer == "OK", answer
    return sent


def test_a_registration_flood_writes_a_burst_and_counts_the_rest(daemons, tmp_path):
    daemon, port = registry(daemons, tmp_path)
    sent = register_and_unregister_from_each_source(port)
    sources = REGISTRATION_SOURCES
    log = stopped_log(daemon)
    for text, what in [(":registering ", "registrations"), (":unregistering ", "unregistrations")]:
        written, total = written_and_counted(log, text, what)
        assert written == BURST and total == len(sources), (text, written, total)
    # a burst of each kind, whatever the flood's length
    assert len(log) < (2 * BURST + 10) * 1300, f"{len(log)} bytes of log"
    ratio = len(log) / sent
    record("registration flood, log volume",
           f"{len(sources)} REGISTERs of 1.2 KB of names and their UNREGISTERs, "
           f"each pair from its own source",
           f"{len(log)} bytes of log for {sent} bytes of requests (x{ratio:.2f}); "
           f"at most {BURST} lines per kind and 30 s, whatever the rate",
           log_bytes=len(log), request_bytes=sent)


def test_python_rpyc_under_a_registration_flood(daemons, tmp_path):
    daemon, port = python_registry(daemons, tmp_path)
    before = len(daemon.log())
    sent = register_and_unregister_from_each_source(port)
    daemon.stop()
    log = daemon.log()[before:]
    registering = log.count("registering 127.0.")
    # rpyc_registry writes every request at its default level (debug)
    assert registering >= 2 * len(REGISTRATION_SOURCES), registering
    record("registration flood, log volume",
           f"{len(REGISTRATION_SOURCES)} REGISTERs of 1.2 KB of names and their UNREGISTERs, "
           f"each pair from its own source",
           f"{len(log)} bytes of log for {sent} bytes of requests (x{len(log) / sent:.2f}); "
           "every request written, no bound", server="python",
           log_bytes=len(log), request_bytes=sent)


def test_a_name_with_invisible_characters_is_logged_escaped(daemons, tmp_path):
    daemon, port = registry(daemons, tmp_path)
    # a line separator would end the line in some viewers; the override
    # shows "...exe.txt" as "...txt.exe"
    name = "EVIL\u2028INFO:FORGED\u202etxt.exe\u2066\u200b"
    answer, _ = ask(port, HOST, "REGISTER", ((name,), 40001))
    assert answer == "OK", answer
    daemon.wait_log("registering")
    log = daemon.log()
    line = lines_with(log, ":registering ")[0]
    assert line.endswith(r"as EVIL\u{2028}INFO:FORGED\u{202e}TXT.EXE\u{2066}\u{200b}"), line
    for raw in "\u2028\u202e\u2066\u200b":
        assert raw not in log, ascii(log)


def few_descriptors():
    import resource
    resource.setrlimit(resource.RLIMIT_NOFILE, (128, 128))


def take_every_descriptor(conn):
    conn.execute("import os\n"
                 "taken = []\n"
                 "while True:\n"
                 "    try:\n"
                 "        taken.append(os.open('/dev/null', os.O_RDONLY))\n"
                 "    except OSError:\n"
                 "        break\n")


def test_accepts_failing_for_want_of_descriptors_rest_and_are_counted(daemons, tmp_path):
    # a daemon whose descriptors are all taken (here by a session's code)
    # and a connection waiting: every try to accept it fails until one is
    # free again. The loop rests between tries (it used to retry at once,
    # a line each), and their lines are limited.
    port = free_udp_and_tcp_port()
    daemon = daemons([binary(), "--host", HOST, "-p", str(port)], tmp_path,
                     preexec_fn=few_descriptors)
    wait_until(lambda: daemon.proc.poll() is not None or "server started" in daemon.log(),
               "the server to start")
    conn = rpyc.classic.connect(HOST, port)
    take_every_descriptor(conn)
    started = time.monotonic()
    waiting = socket.create_connection((HOST, port), timeout=5)
    daemon.wait_log("accept failed")
    time.sleep(2)
    # the session is still served meanwhile, and the waiting client is
    # accepted once a descriptor is free
    conn.execute("for fd in taken: os.close(fd)")
    wait_until(lambda: len(lines_with(daemon.log(), ":welcome ")) == 2, "the waiting client")
    conn.close()
    waiting.close()
    log = stopped_log(daemon)
    seconds = time.monotonic() - started
    written, total = written_and_counted(log, "accept failed", "failed accepts")
    # ten tries a second, and a few for the scheduler's sake
    assert written == total <= 10 * seconds + 5, (written, total, seconds)
    record("accept failing for want of descriptors",
           "RLIMIT_NOFILE 128, every descriptor taken by a session's code, one more "
           "connection waiting, against threaded rpyc-classic",
           f"{total} failed accepts in {seconds:.1f} s, a line each (the loop used to retry at "
           f"once, a core busy and a line per try); the connection served once a "
           f"descriptor was free",
           failed_accepts=total, seconds=round(seconds, 2), lines=written)


def test_python_rpyc_when_accepts_fail_for_want_of_descriptors(daemons, tmp_path):
    # the same descriptors taken against rpyc's ThreadedServer: its accept
    # loop treats any error but EINTR and EAGAIN as the listener closed
    # (rpyc 6.0.2 utils/server.py, accept), so EMFILE ends the server
    daemon, port = python_classic(daemons, tmp_path, preexec_fn=few_descriptors)
    conn = rpyc.classic.connect(HOST, port)
    take_every_descriptor(conn)
    waiting = socket.create_connection((HOST, port), timeout=5)
    status = daemon.wait(30)
    session_ended = False
    try:
        conn.eval("1")
    except EOFError:
        session_ended = True
    waiting.settimeout(5)
    try:
        # closing the listener resets what waited in its backlog
        assert waiting.recv(1) == b""
    except ConnectionResetError:
        pass
    waiting.close()
    assert status == 0, daemon.log()
    assert session_ended
    record("accept failing for want of descriptors",
           "RLIMIT_NOFILE 128, every descriptor taken by a session's code, one more "
           "connection waiting, against threaded rpyc_classic",
           f"the first failed accept (EMFILE) stopped the server: exit status {status}, "
           "its open session cut, the waiting connection never served",
           lost=1, server="python", status=status)
