"""What connections leave behind: nothing."""

import rpyc

from conftest import classic_daemon


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_a_thousand_connections_leave_no_objects_and_no_memory(daemons, tmp_path):
    daemon, port = classic_daemon(daemons, tmp_path, "-q")
    pid = daemon.proc.pid
    rss_at_100 = None
    for cycle in range(1, 1001):
        conn = rpyc.classic.connect("127.0.0.1", port)
        # a call, a callback (the server iterates our list) and a reference kept
        assert conn.modules.math.sqrt(cycle * cycle) == cycle
        assert list(conn.builtins.list([1, 2, 3])) == [1, 2, 3]
        held = conn.builtins.dict(a=cycle)
        assert held["a"] == cycle
        conn.close()
        if cycle == 100:
            rss_at_100 = rss_kib(pid)
    rss_at_1000 = rss_kib(pid)
    probe = rpyc.classic.connect("127.0.0.1", port)
    sessions, objects = probe.modules.rpycd_classic.stats()
    own = probe.modules.rpycd_classic.stats()[1]
    probe.close()
    # only the probe's own session is open, holding only what it asked for
    assert sessions == 1
    assert objects == own and objects < 20
    assert rss_at_1000 - rss_at_100 < 5 * 1024, (rss_at_100, rss_at_1000)
