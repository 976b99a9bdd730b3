"""Input written to hurt the daemon: frames whose counts lie about what
they hold, zlib bombs, nesting at the allowed maximum, connections that
stall halfway through a frame or trickle it. Each costs only the
connection that sends it: the daemon lives, and a session opened before
keeps answering, in every serving mode and in rpyc-serve."""

import socket
import struct
import time
import zlib
from pathlib import Path

import pytest
import rpyc

from conftest import REPO, binary, classic_daemon, wait_until
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
        return serve_daemon(daemons, tmp_path, *args)
    return classic_daemon(daemons, tmp_path, "-m", server, *args)


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
