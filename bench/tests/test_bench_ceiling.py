"""The benchmark's zero-cost ping server, checked by the stock rpyc client.

`rpycd-bench ceiling` answers PING by rewriting the request's bytes into the
reply without decoding them (bench/src/ceiling.rs). rpyc's own `conn.ping()`
compares the echo with what it sent and raises PingError on a mismatch, so
these pings passing is the proof that the rewritten reply is a valid one.
Not parametrised by server kind: there is only this one server.
"""

import faulthandler
import os
import subprocess
from pathlib import Path

import pytest
import rpyc

# The ceiling is a benchmark tool for rpyc 6's envelope only (the harness's
# clients speak 6.x): skipped if pytest runs it with an rpyc 5 client.
pytestmark = pytest.mark.skipif(
    int(rpyc.__version__.split(".")[0]) < 6, reason="the ceiling server speaks rpyc 6 only"
)

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def per_test_timeout():
    """No test may hang: dump the stacks and fail after two minutes (as
    tests/python's and tests/daemon's conftest.py do for theirs)."""
    faulthandler.dump_traceback_later(120, exit=True)
    yield
    faulthandler.cancel_dump_traceback_later()


@pytest.fixture
def ceiling_port():
    bin_dir = os.environ.get("RPYCD_BIN_DIR") or str(REPO / "target" / "debug")
    binary = os.path.join(bin_dir, "rpycd-bench")
    if not os.path.exists(binary):
        pytest.fail(f"{binary} not found: build it with `cargo build -p rpycd-bench` or set RPYCD_BIN_DIR")
    proc = subprocess.Popen(
        [binary, "ceiling", "--seconds", "60"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        # "zero-cost ping server on 127.0.0.1:PORT", printed once it listens
        line = proc.stdout.readline()
        assert line.startswith("zero-cost ping server on 127.0.0.1:"), line
        yield int(line.rsplit(":", 1)[1])
    finally:
        proc.kill()
        proc.wait(timeout=10)


@pytest.mark.parametrize(
    "data",
    [
        None,  # rpyc's default payload, the one the benchmark pings with
        "x",
        b"\x00\xff bytes",
        12345678901234567890,
        ("a", 1, 2.5, None),
        b"z" * 100_000,  # over 3000 bytes: compressed, so the decoding path
    ],
    ids=["default", "str", "bytes", "bigint", "tuple", "compressed"],
)
def test_stock_client_accepts_the_rewritten_echo(ceiling_port, data):
    conn = rpyc.connect("127.0.0.1", ceiling_port, service=rpyc.VoidService)
    try:
        # past seq 159, where brine's one-byte ints end and the seq grows
        for _ in range(3 if isinstance(data, bytes) and len(data) > 3000 else 200):
            conn.ping(data)  # raises PingError if the echo differs
    finally:
        conn.close()
