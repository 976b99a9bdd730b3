#!/usr/bin/env python3
"""One stock rpyc 6 client, timed: what a user of the server feels.

rpycd-bench runs this script with the venv's Python once per measurement and
reads the single JSON object it prints on stdout.  Every loop is bounded in
time (--seconds) and in count (--max-ops); every address is the loopback.

    client.py ping     --port P --seconds S   conn.ping() round trips
    client.py call     --port P --seconds S   math.sqrt(2.0) on a cached netref
    client.py callback --port P --seconds S   a remote call that calls back here
    client.py bulk     --port P --size N --data random|text --direction download|upload

Only the stock client is used (rpyc.connect / rpyc.classic.connect), so the
figures are those of any rpyc user, against whichever server is on the port.
"""

import argparse
import json
import sys
import time

import rpyc

HOST = "127.0.0.1"


def percentiles(samples):
    """p50 and p99 in microseconds, nearest rank (as rpycd-bench computes them)."""
    if not samples:
        return None, None
    ordered = sorted(samples)

    def rank(p):
        index = max(0, -(-len(ordered) * p // 100) - 1)
        return ordered[min(index, len(ordered) - 1)] * 1e6

    return rank(50), rank(99)


def timed_loop(op, seconds, max_ops):
    """Runs op() until the time or the count is used up; returns figures."""
    samples = []
    start = time.perf_counter()
    deadline = start + seconds
    now = start
    while now < deadline and len(samples) < max_ops:
        op()
        after = time.perf_counter()
        samples.append(after - now)
        now = after
    elapsed = now - start
    p50, p99 = percentiles(samples)
    return {
        "ops": len(samples),
        "seconds": elapsed,
        "per_sec": len(samples) / elapsed if elapsed > 0 else 0.0,
        "p50_us": p50,
        "p99_us": p99,
    }


def ping(args):
    # A void service on our side: the connection sends nothing but the pings,
    # so the same client also runs against the zero-cost ping server, which
    # answers PING and nothing else.
    conn = rpyc.connect(HOST, args.port, service=rpyc.VoidService)
    try:
        conn.ping()  # warm-up, and proof that the echo is right
        return timed_loop(conn.ping, args.seconds, args.max_ops)
    finally:
        conn.close()


def call(args):
    conn = rpyc.classic.connect(HOST, args.port)
    try:
        sqrt = conn.modules.math.sqrt
        if abs(sqrt(2.0) - 2.0 ** 0.5) > 1e-12:
            raise SystemExit("math.sqrt(2.0) came back wrong")
        return timed_loop(lambda: sqrt(2.0), args.seconds, args.max_ops)
    finally:
        conn.close()


def callback(args):
    conn = rpyc.classic.connect(HOST, args.port)
    try:
        conn.execute("def bench_apply(function, value):\n    return function(value)\n")
        apply = conn.eval("bench_apply")

        def increment(value):
            return value + 1

        if apply(increment, 1) != 2:
            raise SystemExit("the callback came back wrong")
        return timed_loop(lambda: apply(increment, 1), args.seconds, args.max_ops)
    finally:
        conn.close()


def make_data(kind, size):
    """Python source of the same data on both sides: random bytes, or text
    that zlib level 1 shrinks several times over (numbers and words, the
    pattern changing every line so it is not trivially repetitive)."""
    if kind == "random":
        return f"__import__('os').urandom({size})"
    # a megabyte of rows, repeated: zlib's 32 KiB window never sees the repeat
    return (
        "(lambda n, block: (block * (n // len(block) + 1))[:n])"
        f"({size}, b''.join(b'%d,%d,rpyc benchmark row %x\\n' % (i, i * i, i * 7919)"
        " for i in range(30000)))"
    )


def bulk(args):
    conn = rpyc.classic.connect(HOST, args.port)
    # rpyc's default 30 s sync timeout would end a slow transfer early; the
    # orchestrator bounds this process's life instead.
    conn._config["sync_request_timeout"] = args.timeout
    try:
        source = make_data(args.data, args.size)
        transfers = []
        if args.direction == "download":
            conn.execute(f"bench_blob = {source}")
            remote_eval = conn.eval

            def once():
                data = remote_eval("bench_blob")
                if len(data) != args.size:
                    raise SystemExit(f"downloaded {len(data)} bytes, not {args.size}")
        else:
            data = eval(source)  # noqa: S307 - our own constant expression
            remote_len = conn.builtins.len

            def once():
                if remote_len(data) != args.size:
                    raise SystemExit("the server saw a different length")

        start = time.perf_counter()
        while not transfers or (
            time.perf_counter() - start < args.seconds and len(transfers) < args.max_ops
        ):
            before = time.perf_counter()
            once()
            transfers.append(time.perf_counter() - before)
        total = sum(transfers)
        return {
            "transfers": len(transfers),
            "bytes": args.size * len(transfers),
            "seconds": total,
            "bytes_per_sec": args.size * len(transfers) / total if total > 0 else 0.0,
            "best_seconds": min(transfers),
        }
    finally:
        conn.close()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("workload", choices=["ping", "call", "callback", "bulk"])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--seconds", type=float, default=1.0)
    parser.add_argument("--max-ops", type=int, default=1_000_000)
    parser.add_argument("--size", type=int, default=10_000_000)
    parser.add_argument("--data", choices=["random", "text"], default="random")
    parser.add_argument("--direction", choices=["download", "upload"], default="download")
    parser.add_argument("--timeout", type=float, default=300.0)
    args = parser.parse_args()
    result = {"ping": ping, "call": call, "callback": callback, "bulk": bulk}[args.workload](args)
    result["rpyc"] = rpyc.__version__
    result["python"] = sys.version.split()[0]
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
