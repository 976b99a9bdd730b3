"""The benchmark's server CPU figures (`rpycd-bench compare --only cpu`),
run quick against the real servers: ours from the build under test, and
rpyc 6.0.2's own. The figures themselves are the benchmark's to judge;
this checks that every row has both, from a meter that reads the whole
process tree (threads and forked children), and says how it read them,
and that pings have the floor: the harness's zero-cost server."""

import faulthandler
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import rpyc

pytestmark = pytest.mark.skipif(
    int(rpyc.__version__.split(".")[0]) < 6, reason="the harness's clients speak rpyc 6"
)

REPO = Path(__file__).resolve().parents[2]
WORKLOADS = ["ping", "sqrt call", "connect+close", "16 MB download"]


@pytest.fixture(autouse=True)
def per_test_timeout():
    faulthandler.dump_traceback_later(300, exit=True)
    yield
    faulthandler.cancel_dump_traceback_later()


def test_server_cpu_per_operation_is_reported_for_both_servers(tmp_path):
    bin_dir = os.environ.get("RPYCD_BIN_DIR") or str(REPO / "target" / "debug")
    harness = os.path.join(bin_dir, "rpycd-bench")
    if not os.path.exists(harness):
        pytest.fail(f"{harness} not found: build it with `cargo build --workspace --bins`")
    out = tmp_path / "bench"
    done = subprocess.run([harness, "compare", "--quick", "--only", "cpu", "--bin-dir", bin_dir,
                           "--python", sys.executable, "--out", str(out)],
                          capture_output=True, text=True, timeout=280)
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads((out / "results.json").read_text())
    rows = {row["workload"]: row for row in results["rows"]
            if row["group"].startswith("server CPU per operation")}
    assert sorted(rows) == sorted(f"{w}, {mode}" for w in WORKLOADS
                                  for mode in ("threaded", "forking"))
    for name, row in rows.items():
        assert row["better"] == "lower", name
        assert row["ours"] > 0 and row["python"] > 0, row
        assert row["unit"] == ("µs/MB" if "download" in name else "µs/op"), row
        assert row["targets"] == (["≥100×"] if "download" in name else ["≥10×"]), row
        assert row["note"].startswith("rounds: ours "), row
    measured = [m for m in results["measurements"] if m["workload"].startswith("server CPU:")]
    assert measured and all("error" not in m["figures"] for m in measured), measured
    for m in measured:
        figures = m["figures"]
        assert figures["server_cpu_seconds"] > 0, m
        assert figures["server_cpu_method"], m
    # a forking server's work is done in its children: a meter that saw the
    # parent alone would find a connection nearly free there
    forking = rows["connect+close, forking"]
    threaded = rows["connect+close, threaded"]
    assert forking["python"] > threaded["python"], (forking, threaded)
    # the floor: a server that does no work, metered the same way
    floor = rows["ping, threaded"]["ceiling"]
    assert floor and 0 < floor < rows["ping, threaded"]["python"], rows["ping, threaded"]
    assert "cpu.png" in os.listdir(out)
