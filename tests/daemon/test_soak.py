"""Soak (issue 10, point 3): a threaded and a forking rpyc-classic, side by
side, under a bounded loop of mixed work from stock rpyc clients in several
processes and threads -- calls, netrefs, callbacks, bulk transfers both
ways, exceptions and reconnects -- for RPYCD_SOAK_SECONDS (180 by default;
set it higher for a longer soak). Every result is checked against what the
client computed itself, so nothing is lost unnoticed; the server's memory
and file descriptors are sampled every few seconds and must stay flat.
The same soak runs against rpyc's own rpyc_classic, whose figures are
recorded for RELIABILITY.md, not judged.

This file is also the client: `python test_soak.py PORT KIND THREADS
SECONDS SEED` runs one worker process and prints its tally as JSON."""

import faulthandler
import hashlib
import json
import os
import random
import subprocess
import sys
import threading
import time

import rpyc

SOAK_SECONDS = int(os.environ.get("RPYCD_SOAK_SECONDS", "180"))
SAMPLE_EVERY = 3.0
# ops per client thread: a bound on count as well as on time (at about 40
# ops a second, a 3-minute soak does some 7000 per thread)
MAX_OPS = int(os.environ.get("RPYCD_SOAK_MAX_OPS", "200000"))
PAUSE = 0.01  # between ops: the machine is shared, leave it some CPU
MIB = 1024 * 1024

SERVER_CODE = """
import hashlib, random
def soak_apply(f, x):
    return f(x) * 2
def soak_digest(data):
    return hashlib.sha256(data).hexdigest(), len(data)
def soak_make(n, seed):
    return random.Random(seed).randbytes(n)
def soak_fail(n):
    raise ValueError("soak failure %d" % n)
"""

# how often each operation is chosen (a reconnecting worker also reconnects)
WEIGHTS = {"call": 4, "netref": 2, "callback": 3, "bulk_up": 1, "bulk_down": 1, "exception": 2}


class Mismatch(Exception):
    """A reply that is not what the client computed: a lost or wrong result."""


def open_conn(port):
    conn = rpyc.classic.connect("127.0.0.1", port)
    conn._config["sync_request_timeout"] = 60  # a bulk transfer on a busy, shared machine
    conn.execute(SERVER_CODE)
    return conn


def expect(got, want, what):
    if got != want:
        raise Mismatch(f"{what}: got {got!r:.80}, want {want!r:.80}")


def one_op(conn, op, rnd):
    if op == "call":
        a, b = rnd.randrange(1, 10**12), rnd.randrange(1, 10**6)
        expect(conn.builtins.divmod(a, b), divmod(a, b), "divmod")
        expect(conn.eval(f"{a} * {b}"), a * b, "eval")
    elif op == "netref":
        n = rnd.randrange(1, 200)
        lst = conn.builtins.list(range(n))
        lst.append(n)
        expect(len(lst), n + 1, "len")
        expect(conn.builtins.sum(lst), n * (n - 1) // 2 + n, "sum")
        expect(lst[n // 2], n // 2, "getitem")
        del lst
    elif op == "callback":
        k, v = rnd.randrange(1000), rnd.randrange(1000)
        expect(conn.namespace["soak_apply"](lambda x: x + k, v), (v + k) * 2, "callback")
    elif op == "bulk_up":
        data = rnd.randbytes(rnd.randrange(1 * MIB, 4 * MIB))
        expect(tuple(conn.namespace["soak_digest"](data)),
               (hashlib.sha256(data).hexdigest(), len(data)), "upload")
    elif op == "bulk_down":
        n, seed = rnd.randrange(1 * MIB, 4 * MIB), rnd.randrange(1 << 30)
        data = conn.namespace["soak_make"](n, seed)
        expect(hashlib.sha256(data).digest(),
               hashlib.sha256(random.Random(seed).randbytes(n)).digest(), "download")
    elif op == "exception":
        k = rnd.randrange(1000)
        which = k % 3
        try:
            if which == 0:
                conn.namespace["soak_fail"](k)
            elif which == 1:
                conn.eval("1 // 0")
            else:
                conn.modules["rpycd_soak_no_such_module"]
        except ValueError as e:
            expect((which, f"soak failure {k}" in str(e)), (0, True), "ValueError")
        except ZeroDivisionError:
            expect(which, 1, "ZeroDivisionError")
        except ImportError:
            expect(which, 2, "ImportError")
        else:
            raise Mismatch(f"exception {which} not raised")
    else:
        raise AssertionError(op)


def worker_thread(port, kind, seconds, seed, tally, lock):
    rnd = random.Random(seed)
    ops = [op for op, weight in WEIGHTS.items() for _ in range(weight)]
    if kind == "reconnect":
        ops.append("reconnect")
    counts, errors = {}, []
    deadline = time.monotonic() + seconds
    conn = open_conn(port)
    done = 0
    while done < MAX_OPS and time.monotonic() < deadline and len(errors) < 10:
        op = rnd.choice(ops)
        try:
            if op == "reconnect":
                conn.close()
                conn = open_conn(port)
                expect(conn.eval("6 * 7"), 42, "after reconnect")
            else:
                one_op(conn, op, rnd)
            counts[op] = counts.get(op, 0) + 1
        except Exception as e:  # noqa: BLE001 - every failure is reported, not raised
            errors.append(f"{op}: {type(e).__name__}: {str(e)[:200]}")
            try:
                conn.close()
            except Exception:  # noqa: BLE001
                pass
            try:
                conn = open_conn(port)
            except Exception as e2:  # noqa: BLE001
                errors.append(f"reconnect after an error: {e2!r}")
                break
        done += 1
        time.sleep(PAUSE)
    conn.close()
    with lock:
        for op, n in counts.items():
            tally["ops"][op] = tally["ops"].get(op, 0) + n
        tally["errors"].extend(errors)


def worker_main(port, kind, threads, seconds, seed):
    tally, lock = {"ops": {}, "errors": []}, threading.Lock()
    workers = [threading.Thread(target=worker_thread,
                                args=(port, kind, seconds, seed * 100 + i, tally, lock))
               for i in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    print(json.dumps(tally))


if __name__ == "__main__":
    faulthandler.dump_traceback_later(int(sys.argv[4]) + 300, exit=True)
    worker_main(int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), float(sys.argv[4]),
                int(sys.argv[5]))
    sys.exit(0)

# ---------------------------------------------------------------- the test

import pytest  # noqa: E402

from conftest import classic_daemon, held, python_classic, python_sessions, wait_until  # noqa: E402
from reliability import mib, record  # noqa: E402
from test_load import family, fds, pss_kib, rss_kib  # noqa: E402

# Memory may grow by this much from the first third of the run (after the
# warm-up) to the last third: 15 % plus a fixed 8 MiB, comparing each
# third's floor -- the 20th percentile of its samples, what stays resident
# when little is in flight. Not the peaks: each server has 4 connections,
# each of which may be moving a 1-4 MiB payload (plus its compressed copy
# and brine buffers) at the moment of a sample, so a third's peak is
# whichever sample caught the most transfers at once. Measured on a 2-CPU
# machine (debug build, 4 minutes, threaded): a floor of 27-29 MiB from
# the first minute to the last, with samples between it and 62 MiB in
# every third; a CI run compared peaks of 45 and 67 MiB with no leak
# behind them. What the bound catches is a leak of what the soak moves in
# bulk: keeping one transferred payload in 20 (some 300 per server in 3
# minutes, 2.5 MiB on average) raises the floor by about 20 MiB between
# thirds. Leaks of sessions, objects, descriptors and children are checked
# exactly, once the clients are gone.
GROWTH_FACTOR, GROWTH_SLACK_KIB = 1.15, 8 * 1024
WARMUP = min(60.0, SOAK_SECONDS / 6)


@pytest.fixture(autouse=True)
def per_test_timeout():
    """conftest's two minutes are too few for a soak."""
    faulthandler.dump_traceback_later(SOAK_SECONDS + 240, exit=True)
    yield
    faulthandler.cancel_dump_traceback_later()


def open_fds(pid):
    return {fd: os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")}


def thirds(samples, measure=max):
    """`measure` of the first and of the last third of the samples after the
    warm-up."""
    steady = [value for t, value in samples if t >= WARMUP]
    assert len(steady) >= 6, f"too few samples after the warm-up: {samples}"
    third = len(steady) // 3
    return measure(steady[:third]), measure(steady[-third:])


def floor(values):
    """The 20th percentile: what stays resident between transfers."""
    return sorted(values)[len(values) // 5]


@pytest.mark.parametrize("server", ["rpycd", "python"])
def test_soak_threaded_and_forking(daemons, tmp_path, server):
    ours = server == "rpycd"
    if ours:
        threaded, tport = classic_daemon(daemons, tmp_path, "-q", "-m", "threaded")
        forking, fport = classic_daemon(daemons, tmp_path, "-q", "-m", "forking")
    else:
        threaded, tport = python_classic(daemons, tmp_path, "threaded", "-q")
        forking, fport = python_classic(daemons, tmp_path, "forking", "-q")
    tpid, fpid = threaded.proc.pid, forking.proc.pid
    # the baseline, once each daemon is past its start (its signal socket
    # pair comes after the listener) and has served one connection
    if ours:
        assert held(tport) == (0, 0) and held(fport) is not None
    else:
        assert python_sessions(tport) == 0 and python_sessions(fport) is not None
    wait_until(lambda: family(fpid) == [fpid] or None, "the probe's child ended")
    time.sleep(0.5)
    fds_before = {"threaded": fds(tpid), "forking": fds(fpid)}
    # per server: one process of 2 threads that reconnect now and then, one
    # of 2 threads that keep their connection for the whole soak
    plan = [(port, kind) for port in (tport, fport) for kind in ("reconnect", "persistent")]
    workers = [subprocess.Popen([sys.executable, __file__, str(port), kind, "2", str(SOAK_SECONDS),
                                 str(seed)], stdout=subprocess.PIPE, text=True)
               for seed, (port, kind) in enumerate(plan, 1)]
    samples = {"threaded RSS": [], "forking PSS": [], "threaded fds": [], "forking fds": [],
               "forking parent RSS": []}
    start = time.monotonic()
    try:
        while any(w.poll() is None for w in workers):
            now = time.monotonic() - start
            assert now < SOAK_SECONDS + 180, "the workers overran their time"
            assert threaded.proc.poll() is None, threaded.log()
            assert forking.proc.poll() is None, forking.log()
            samples["threaded RSS"].append((now, rss_kib(tpid)))
            samples["threaded fds"].append((now, fds(tpid)))
            samples["forking PSS"].append((now, pss_kib(family(fpid))))
            samples["forking parent RSS"].append((now, rss_kib(fpid)))
            samples["forking fds"].append((now, fds(fpid)))
            time.sleep(SAMPLE_EVERY)
        tallies = [json.loads(w.communicate(timeout=60)[0]) for w in workers]
    finally:
        for w in workers:
            w.kill()
    assert all(w.returncode == 0 for w in workers), [w.returncode for w in workers]
    errors = [e for t in tallies for e in t["errors"]]
    if ours:
        assert not errors, errors
    ops = {}
    for t in tallies:
        for op, n in t["ops"].items():
            ops[op] = ops.get(op, 0) + n
    total = sum(ops.values())
    # every kind of work was done, and often
    assert set(ops) == set(WEIGHTS) | {"reconnect"}, ops
    assert min(ops.values()) >= 4 * SOAK_SECONDS // 60, ops

    growth, peaks = {}, {}
    for name in ("threaded RSS", "forking PSS", "forking parent RSS"):
        first, last = thirds(samples[name], floor)
        growth[name] = (first, last)
        peaks[name] = thirds(samples[name])
        if ours:
            assert last <= first * GROWTH_FACTOR + GROWTH_SLACK_KIB, (name, first, last,
                                                                      samples[name])
    for name in ("threaded fds", "forking fds"):
        first, last = thirds(samples[name])
        growth[name] = (first, last)
        # 4 connections, each maybe between a close and a reconnect
        if ours:
            assert last <= first + 4, (name, samples[name])
    if not ours:
        record_python_soak(total, ops, errors, growth, peaks, samples)
        return
    # once the clients are gone: no session, object, descriptor or child left
    wait_until(lambda: held(tport) == (0, 0) or None, "the threaded server's sessions freed")
    wait_until(lambda: family(fpid) == [fpid] or None, "the forking server's children ended")
    for pid, kind in ((tpid, "threaded"), (fpid, "forking")):
        try:
            wait_until(lambda: fds(pid) == fds_before[kind] or None, "")
        except AssertionError:
            raise AssertionError(f"the {kind} server's fds did not come back to "
                                 f"{fds_before[kind]}: {open_fds(pid)}") from None
    for daemon in (threaded, forking):
        assert "panicked" not in daemon.log(), daemon.log()

    summary = ", ".join(f"{op} {n}" for op, n in sorted(ops.items()))
    t_first, t_last = growth["threaded RSS"]
    f_first, f_last = growth["forking PSS"]
    record(SOAK_SCENARIO, SOAK_TRIED,
           f"{total} operations ({summary}), 0 errors; resident floor (20th percentile) first → "
           f"last third: threaded RSS {mib(t_first)} → {mib(t_last)}, forking PSS "
           f"{mib(f_first)} → {mib(f_last)}; peaks with transfers in flight up to threaded "
           f"{mib(max(peaks['threaded RSS']))}, forking {mib(max(peaks['forking PSS']))}; "
           "fds, sessions and children back to the start",
           seconds=SOAK_SECONDS, operations=total, ops=ops, growth_kib=growth, peaks_kib=peaks,
           samples={k: v for k, v in samples.items()})


SOAK_SCENARIO = f"soak, {SOAK_SECONDS} s (threaded and forking side by side)"
SOAK_TRIED = ("4 client processes × 2 threads (half reconnecting, half on one connection): calls, "
              "netrefs, callbacks, 1–4 MiB uploads and downloads, exceptions; every result checked")


def record_python_soak(total, ops, errors, growth, peaks, samples):
    """The same figures for rpyc_classic, measured and not judged: the
    bounds above are ours."""
    summary = ", ".join(f"{op} {n}" for op, n in sorted(ops.items()))
    t_first, t_last = growth["threaded RSS"]
    f_first, f_last = growth["forking PSS"]
    (tf_first, tf_last), (ff_first, ff_last) = growth["threaded fds"], growth["forking fds"]
    record(SOAK_SCENARIO, SOAK_TRIED,
           f"{total} operations ({summary}), {len(errors)} errors; resident floor (20th "
           f"percentile) first → last third: threaded RSS {mib(t_first)} → {mib(t_last)}, "
           f"forking PSS {mib(f_first)} → {mib(f_last)}; peaks with transfers in flight up to "
           f"threaded {mib(max(peaks['threaded RSS']))}, forking "
           f"{mib(max(peaks['forking PSS']))}; fds threaded {tf_first} → {tf_last}, forking "
           f"{ff_first} → {ff_last}",
           lost=len(errors), server="python", seconds=SOAK_SECONDS, operations=total, ops=ops,
           errors=errors[:20], growth_kib=growth, peaks_kib=peaks,
           samples={k: v for k, v in samples.items()})
