"""Input written to hurt the daemon: frames whose counts lie about what
they hold, zlib bombs, nesting at the allowed maximum, connections that
stall halfway through a frame or trickle it. Each costs only the
connection that sends it: the daemon lives, and a session opened before
keeps answering, in every serving mode and in rpyc-serve."""

import functools
import os
import socket
import struct
import time
import zlib
from pathlib import Path

import pytest
import rpyc

from conftest import REPO, binary, classic_daemon, python_classic, wait_until
from reliability import record

SERVICES = REPO / "tests" / "serve" / "services"
TUP_L4 = 0x15
TAG_NONE = 0x00


def frame(payload, compressed=0):
    return struct.pack("!LB", len(payload), compressed) + payload + b"\n"


def serve_daemon(daemons, tmp_path, *args):
    """rpyc-serve hosting the test calculator, threaded, on a free port."""
    from conftest import accepts, free_port
    port = free_port()
    daemon = daemons([binary("rpyc-serve"), "--host", "127.0.0.1", "-p", str(port),
                      "--path", str(SERVICES), *args, "calculator:CalculatorService"], tmp_path)
    wait_until(lambda: daemon.proc.poll() is not None or accepts("127.0.0.1", port),
               f"port {port} to accept")
    assert daemon.proc.poll() is None, daemon.log()
    return daemon, port


SERVERS = ["threaded", "threadpool", "forking", "serve"]


def start(daemons, tmp_path, server, *args):
    if server == "serve":
        daemon, port = serve_daemon(daemons, tmp_path, *args)
    else:
        daemon, port = classic_daemon(daemons, tmp_path, "-m", server, *args)
    # the start-up probe counts against --max-connections until it is gone
    # (a hosted service's session cannot even start: it asks the peer
    # first; a TLS handshake fails)
    gone = ("goodbye", "cannot start a session", "failed to authenticate")
    wait_until(lambda: any(line in daemon.log() for line in gone), "the start-up probe to be gone")
    return daemon, port


def session(server, port):
    """A session opened before the attack, and how to ask it something."""
    if server == "serve":
        conn = rpyc.connect("127.0.0.1", port)
        # a session is open once it has spoken (rpyc.connect sends nothing)
        assert conn.root.add(1, 2) == 3
        return conn, lambda: conn.root.add(20, 22) == 42
    conn = rpyc.classic.connect("127.0.0.1", port)
    return conn, lambda: conn.eval("6 * 7") == 42


def peak_rss(pid):
    """VmHWM of a process, in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


@functools.lru_cache(maxsize=2)
def nested_counts_bomb(inflated, depth=64):
    """A compressed frame whose payload is a request whose brine value opens
    `depth` tuples, each claiming about as many items as bytes remain, then
    zeros (None items): `inflated` bytes once inflated, about a thousandth
    of that on the wire."""
    head = b"\x01"
    for level in range(depth):
        remaining = inflated - len(head) - 5
        head += bytes([TUP_L4]) + struct.pack("!L", remaining - 5 * (depth - level))
    deflater = zlib.compressobj(9)
    body = [deflater.compress(head)]
    zeros = bytes(1 << 20)
    left = inflated - len(head)
    while left > 0:
        chunk = zeros[:min(left, len(zeros))]
        body.append(deflater.compress(chunk))
        left -= len(chunk)
    body.append(deflater.flush())
    return frame(b"".join(body), compressed=1)


def send_and_see_closed(port, data, deadline=60):
    with socket.create_connection(("127.0.0.1", port), timeout=deadline) as sock:
        try:
            sock.sendall(data)
        except OSError:
            return
        # the server ends the connection without a reply
        end = time.monotonic() + deadline
        while time.monotonic() < end:
            try:
                if sock.recv(65536) == b"":
                    return
            except (ConnectionResetError, socket.timeout):
                return
        raise AssertionError("the connection was not ended")


@pytest.mark.parametrize("server", SERVERS)
def test_counts_that_lie_under_a_zlib_bomb_cost_only_their_connection(daemons, tmp_path, server):
    # the default --max-message-size (1G): a 1 MiB frame inflates to 1 GiB
    daemon, port = start(daemons, tmp_path, server)
    conn, answers = session(server, port)
    bomb = nested_counts_bomb(1 << 30)
    assert len(bomb) < 2 << 20
    send_and_see_closed(port, bomb)
    daemon.wait_log("more memory than")
    assert daemon.proc.poll() is None, daemon.log()
    assert answers()
    assert session(server, port)[1]()
    peak = peak_rss(daemon.proc.pid)
    if server != "forking":
        # payload, plus at most twice the limit decoded (the budget), plus
        # the interpreter
        assert peak < 2.5 * (1 << 30), peak
    record(f"nested-count zlib bomb, default limits ({server})",
           f"one {len(bomb) >> 10} KiB frame inflating to 1 GiB, opening 64 tuples that each "
           "claim as many items as bytes remain",
           f"refused once its decoded values passed the connection's budget; peak RSS "
           f"{peak >> 20} MiB{' (parent; the child ended)' if server == 'forking' else ''}; "
           "a session opened before kept answering",
           peak_rss=peak, frame_bytes=len(bomb))


def test_python_rpyc_under_the_zlib_bomb(daemons, tmp_path):
    # rpyc_classic inflates the whole frame, then builds the tuples the
    # counts claim, item by item, with nothing to bound them: watched for
    # OBSERVE seconds (it would take minutes and tens of GiB to finish),
    # with the session opened before asked meanwhile
    observe = 20
    daemon, port = python_classic(daemons, tmp_path)
    conn = rpyc.classic.connect("127.0.0.1", port)
    assert conn.eval("6 * 7") == 42
    bomb = nested_counts_bomb(1 << 30)
    with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
        sock.sendall(bomb)
        started = time.monotonic()
        slowest = 0.0
        rss = []
        while time.monotonic() - started < observe:
            asked = time.monotonic()
            assert conn.eval("6 * 7") == 42
            slowest = max(slowest, time.monotonic() - asked)
            rss.append(resident(daemon.proc.pid))
            time.sleep(0.5)
        assert daemon.proc.poll() is None
        peak = peak_rss(daemon.proc.pid)
        # still growing at the end: the decoding had not finished
        assert rss[-1] > rss[len(rss) // 2] > (1 << 30), rss
    record("nested-count zlib bomb, default limits (threaded)",
           f"one {len(bomb) >> 10} KiB frame inflating to 1 GiB, opening 64 tuples that each "
           "claim as many items as bytes remain",
           f"inflated whole, then decoded with no bound: RSS {rss[0] >> 20} MiB after 0.5 s, "
           f"{rss[-1] >> 20} MiB after {observe} s and still growing when the test stopped it; "
           f"a session opened before answered throughout (slowest {slowest * 1000:.0f} ms)", server="python", peak_rss=peak, frame_bytes=len(bomb),
           slowest_answer=round(slowest, 3), observed_seconds=observe)


def resident(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


@pytest.mark.parametrize("server", ["threaded", "serve"])
def test_decoded_memory_is_bounded_by_the_message_size(daemons, tmp_path, server):
    daemon, port = start(daemons, tmp_path, server, "--max-message-size", "32M")
    conn, answers = session(server, port)
    before = peak_rss(daemon.proc.pid)
    bomb = nested_counts_bomb(32 << 20)
    send_and_see_closed(port, bomb)
    daemon.wait_log("more memory than")
    assert answers()
    peak = peak_rss(daemon.proc.pid)
    # the 32 MiB payload and at most twice that decoded
    assert peak - before < 3 * (32 << 20) + (16 << 20), (before, peak)
    record(f"nested-count zlib bomb, --max-message-size 32M ({server})",
           f"one {len(bomb) >> 10} KiB frame inflating to 32 MiB of lying tuple counts",
           f"peak RSS {before >> 20} -> {peak >> 20} MiB; refused and logged; "
           "a session opened before kept answering",
           before=before, peak=peak, frame_bytes=len(bomb))


def greeted(port):
    """A raw connection that has sent one whole message (a PING), so the
    handshake timeout no longer applies to it."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    ping = b"\x01" + bytes([0x11]) + bytes([0x50 + 1]) + bytes([0x11, 0x50 + 1, 0x11, 0x51, 0x10, 0x01])
    sock.sendall(frame(ping))
    # the reply (rpyc-serve may first ask for this side's root: a request)
    reply = sock.recv(4096)
    assert len(reply) >= 6 and reply[5:6] in (b"\x01", b"\x02"), reply
    return sock


def ended(sock, deadline, keep_busy=None):
    """Whether the server ends `sock` within `deadline` seconds; meanwhile
    `keep_busy` (a session's request) runs every 0.1 s or so, so that an
    idle timeout does not end that session too."""
    sock.settimeout(0.1)
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if keep_busy:
            assert keep_busy()
        try:
            if sock.recv(4096) == b"":
                return True
        except socket.timeout:
            continue
        except ConnectionResetError:
            return True
    return False


@pytest.mark.parametrize("server", SERVERS)
def test_part_of_a_frame_that_stops_coming_is_idleness(daemons, tmp_path, server):
    daemon, port = start(daemons, tmp_path, server, "--idle-timeout", "1", "--max-connections", "3")
    conn, answers = session(server, port)
    stalled = []
    for _ in range(2):
        sock = greeted(port)
        sock.sendall(b"\x00\x00")  # two bytes of a frame's header, then nothing
        stalled.append(sock)
    began = time.monotonic()
    for sock in stalled:
        assert ended(sock, 10, answers), "a stalled frame held its connection"
    took = time.monotonic() - began
    assert answers()
    # the slots they held are free again
    assert session(server, port)[1]()
    record(f"frame stalled after 2 header bytes ({server})",
           "--idle-timeout 1 --max-connections 3; two greeted clients send 2 bytes of a header and stop",
           f"both closed after {took:.1f} s; the slots served new clients", seconds=took)


@pytest.mark.parametrize("server", SERVERS)
def test_a_frame_begun_with_the_message_before_it_is_timed_too(daemons, tmp_path, server):
    """The first two bytes of a frame sent in the same packet as a whole
    message: the frame began when that message was read, so it stalls from
    then on, whichever thread reads next (rpyc-serve's session start is
    waiting for the peer's root at that moment)."""
    daemon, port = start(daemons, tmp_path, server, "--idle-timeout", "1")
    conn, answers = session(server, port)
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    ping = b"\x01" + bytes([0x11]) + bytes([0x50 + 1]) + bytes([0x11, 0x50 + 1, 0x11, 0x51, 0x10, 0x01])
    sock.sendall(frame(ping) + b"\x00\x00")
    began = time.monotonic()
    assert ended(sock, 10, answers), "a frame begun beside a whole message held its connection"
    assert answers()
    record(f"frame begun beside a whole message, then stalled ({server})",
           "--idle-timeout 1; a PING and 2 bytes of the next frame's header in one packet, then nothing",
           f"closed after {time.monotonic() - began:.1f} s", seconds=time.monotonic() - began)


@pytest.mark.parametrize("server", SERVERS)
def test_a_frame_trickled_below_the_floor_rate_ends(daemons, tmp_path, server):
    daemon, port = start(daemons, tmp_path, server, "--idle-timeout", "1")
    conn, answers = session(server, port)
    sock = greeted(port)
    # a 4000-byte frame, a byte every 0.5 s: never quiet for the idle
    # timeout, and hours from done
    sock.sendall(struct.pack("!LB", 4000, 0))
    began = time.monotonic()
    cut = False
    for _ in range(40):
        try:
            sock.sendall(b"\x00")
        except OSError:
            cut = True
            break
        if ended(sock, 0.5, answers):
            cut = True
            break
    took = time.monotonic() - began
    assert cut, "a trickled frame was never ended"
    assert took < 10, took
    daemon.wait_log("slower than 500 bytes/s")
    assert answers()
    record(f"frame trickled a byte per 0.5 s ({server})",
           "--idle-timeout 1; a greeted client sends a 4000-byte frame one byte every 0.5 s",
           f"closed after {took:.1f} s (floor: 500 bytes/s once a frame took longer than the idle timeout)",
           seconds=took)


def test_a_slow_but_steady_frame_is_served(daemons, tmp_path):
    daemon, port = start(daemons, tmp_path, "threaded", "--idle-timeout", "1")
    conn = rpyc.classic.connect("127.0.0.1", port)
    conn.execute("import time")
    sock = greeted(port)
    # a PING whose payload is 6000 bytes, sent at ~2.4 KB/s over 2.5 s
    data = bytes([0x0F]) + struct.pack("!L", 6000) + b"x" * 6000
    ping = b"\x01" + bytes([0x11, 0x52, 0x11, 0x51, 0x11, 0x51, 0x10]) + data
    wire = frame(ping)
    for at in range(0, len(wire), 600):
        sock.sendall(wire[at:at + 600])
        time.sleep(0.25)
    sock.settimeout(10)
    reply = b""
    while len(reply) < 5 or len(reply) < 5 + struct.unpack("!L", reply[:4])[0] + 1:
        chunk = sock.recv(65536)
        assert chunk, f"closed: {daemon.log()}"
        reply += chunk
    payload = zlib.decompress(reply[5:-1]) if reply[4] else reply[5:-1]
    assert b"x" * 6000 in payload


def threads_of(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Threads:"):
            return int(line.split()[1])
    raise AssertionError("no Threads line")


@pytest.mark.parametrize("server", SERVERS)
def test_connections_in_their_tls_handshake_count_against_max_connections(daemons, tmp_path, server):
    from certs import make_pki
    pki = make_pki(tmp_path / "pki")
    pair = pki.servers["rsa"]
    daemon, port = start(daemons, tmp_path, server, "--max-connections", "2",
                         "--handshake-timeout", "3",
                         "--ssl-keyfile", pair.key, "--ssl-certfile", pair.cert)

    def tls_session():
        if server == "serve":
            conn = rpyc.ssl_connect("127.0.0.1", port, ca_certs=pki.ca)
            return conn, lambda: conn.root.add(20, 22) == 42
        conn = rpyc.classic.ssl_connect("127.0.0.1", port, ca_certs=pki.ca)
        return conn, lambda: conn.eval("6 * 7") == 42

    conn, answers = tls_session()
    assert answers()
    before = threads_of(daemon.proc.pid)
    # 200 TCP connections that never start their handshake
    silent = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(200)]
    time.sleep(0.5)
    during = threads_of(daemon.proc.pid)
    refused = sum(ended(sock, 0.05) for sock in silent)
    assert answers()
    # one slot was free: one of them holds it, the others are refused at once
    assert refused >= 198, refused
    assert during <= before + 4, (before, during)
    daemon.wait_log("already serving 2 connections")
    # the one that got in is cut at the handshake timeout; its slot serves again
    wait_until(lambda: all(ended(sock, 0.05) for sock in silent), "the silent ones to be cut", 10)

    def served():
        # the client sees the cut connection end a moment before the
        # server frees its slot (a forked child's end is seen when it is
        # reaped, a pool worker's when it returns): until then a new
        # session is refused as the limit says
        try:
            return tls_session()[1]()
        except (EOFError, OSError):
            return None
    wait_until(served, "a new session served once the slot freed", 10)
    for sock in silent:
        sock.close()
    record(f"TLS handshake flood ({server})",
           "--max-connections 2 --handshake-timeout 3; one TLS session, then 200 TCP connections "
           "that never start their handshake",
           f"{refused} refused at accept; daemon threads {before} -> {during}; the session kept "
           "answering, and a new one was served once the slot freed",
           threads_before=before, threads_during=during, refused=refused)


@pytest.fixture
def deep_recursion():
    """rpyc's brine.dump recurses twice a level: room for 1024 levels."""
    import sys
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(20_000)
    yield
    sys.setrecursionlimit(limit)


def nested(depth, leaf=1):
    value = leaf
    for _ in range(depth):
        value = (value,)
    return value


def raw_ping(port, data_depth):
    """A PING whose data is a tuple nested `data_depth` deep (the message
    itself adds four levels): what comes back, or b'' if the server
    closed the connection."""
    with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
        body = (b"\x01" + bytes([0x11, 0x51, 0x11, 0x51, 0x11, 0x51, 0x10])
                + bytes([0x10]) * data_depth + b"\x50")
        data = zlib.compress(body)
        sock.sendall(struct.pack("!LB", len(data), 1) + data + b"\n")
        # the answer: the first frame that is not a request of the
        # server's own (rpyc-serve asks for this side's root first)
        received = b""
        while True:
            while len(received) < 5 or len(received) < 6 + struct.unpack("!L", received[:4])[0]:
                chunk = sock.recv(1 << 16)
                if not chunk:
                    return b""
                received += chunk
            end = 6 + struct.unpack("!L", received[:4])[0]
            head, received = received[:end], received[end:]
            payload = zlib.decompress(head[5:-1]) if head[4] else head[5:-1]
            if payload[:1] != b"\x01":
                return head[:5] + payload


@pytest.mark.parametrize("server", ["threaded", "threadpool", "forking"])
def test_the_deepest_nesting_allowed_is_carried_on_every_path(daemons, tmp_path, server, deep_recursion):
    daemon, port = start(daemons, tmp_path, server, "--max-depth", "1024")
    conn, answers = session(server, port)
    # decoded, converted to Python and back, counted, dropped: at the limit
    assert conn.builtins.len(nested(1010)) == 1
    # and back: too deep for brine's encoder, so the outer levels come as
    # tuples and the rest by reference
    inner = conn.eval("lambda value: value[0]")(nested(1010))
    levels = 0
    while type(inner) is tuple:
        inner, levels = inner[0], levels + 1
    assert isinstance(inner, rpyc.core.netref.BaseNetref) and 0 < levels < 1009
    assert len(inner) == 1
    # a tuple around an object of the client's is boxed level by level:
    # two brine levels each, so about half as deep
    assert conn.builtins.len(nested(505, leaf=lambda: 1)) == 1
    # the echo is decoded at the limit; its reply is refused by the encoder
    # (no peer could decode it either) with an exception, not a crash
    assert raw_ping(port, 1020)[5:6] == b"\x03"
    # one level more is refused and costs only its connection
    assert raw_ping(port, 1021) == b""
    daemon.wait_log("nests deeper than 1024 levels")
    assert daemon.proc.poll() is None, daemon.log()
    assert answers()
    record(f"nesting at the --max-depth maximum ({server})",
           "--max-depth 1024; a 1010-deep tuple argument through Python and back, a PING echo "
           "at 1024 levels, one at 1025",
           "served at the limit (the echo's too-deep reply is an exception), refused past it; "
           "no stack overflow")


@pytest.mark.parametrize("server", ["threaded", "forking"])
def test_client_code_that_builds_a_deeper_tuple_gets_a_reference(daemons, tmp_path, server):
    daemon, port = start(daemons, tmp_path, server)
    conn, answers = session(server, port)
    other, other_answers = session(server, port)
    conn.execute("t = 1\nfor _ in range(1_000_000): t = (t,)")
    deep = conn.eval("t")
    # too deep for brine: the outer levels come as tuples, the rest by
    # reference, as any other object
    levels = 0
    while type(deep) is tuple:
        deep, levels = deep[0], levels + 1
    assert isinstance(deep, rpyc.core.netref.BaseNetref) and levels < 1000
    assert len(deep) == 1
    assert conn.eval("len(t)") == 1
    assert other_answers()
    assert daemon.proc.poll() is None, daemon.log()


def test_rpyc_serve_carries_the_deepest_nesting_allowed(daemons, tmp_path, deep_recursion):
    daemon, port = start(daemons, tmp_path, "serve", "--max-depth", "1024")
    conn, answers = session("serve", port)
    assert conn.root.add(nested(1000), ()) == nested(1000) + ()
    assert raw_ping(port, 1020)[5:6] == b"\x03"
    assert raw_ping(port, 1021) == b""
    daemon.wait_log("nests deeper than 1024 levels")
    assert daemon.proc.poll() is None, daemon.log()
    assert answers()


def cpu_seconds(pid):
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_the_tcp_registry_rests_when_it_has_no_descriptor_left(daemons, tmp_path):
    import resource
    from conftest import free_udp_and_tcp_port

    def few_descriptors():
        resource.setrlimit(resource.RLIMIT_NOFILE, (48, 48))

    port = free_udp_and_tcp_port()
    daemon = daemons([binary("rpyc-registry"), "-m", "TCP", "--host", "127.0.0.1", "-p", str(port)],
                     tmp_path, preexec_fn=few_descriptors)
    wait_until(lambda: daemon.proc.poll() is not None or "server started" in daemon.log(),
               "the registry to start")
    # silent connections from several sources until the registry has no
    # descriptor left, then one more waiting in the backlog
    held = []
    for source in range(2, 10):
        for _ in range(8):
            sock = socket.socket()
            sock.bind((f"127.0.0.{source}", 0))
            sock.connect(("127.0.0.1", port))
            held.append(sock)
    daemon.wait_log("accept failed")
    before = cpu_seconds(daemon.proc.pid)
    time.sleep(2)
    spent = cpu_seconds(daemon.proc.pid) - before
    assert daemon.proc.poll() is None, daemon.log()
    # it used to retry as fast as it turned: two seconds of a core
    assert spent < 0.5, spent
    for sock in held:
        sock.close()
    # with descriptors free again, a client is served
    from rpyc.utils.registry import TCPRegistryClient
    client = TCPRegistryClient("127.0.0.1", port=port)
    assert client.register(("HOSTILE",), 18812)
    record("TCP registry out of descriptors",
           "rpyc-registry -m TCP with RLIMIT_NOFILE 48, 64 silent connections from 8 sources",
           f"{spent:.2f} s of CPU in 2 s while accepts failed (it used to spin); served once "
           "descriptors were free", cpu_seconds=spent)
