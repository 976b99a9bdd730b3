"""scripts/reliability-report: every expected scenario gets a row, one that
did not run says so, Python rpyc's figures go in their own column, and a
scenario recorded without being listed is refused."""

import json
import subprocess
import sys

from conftest import REPO

REPORT = REPO / "scripts" / "reliability-report"


def report(tmp_path, figures, scenarios):
    (tmp_path / "figures.jsonl").write_text(
        "".join(json.dumps(line) + "\n" for line in figures))
    (tmp_path / "scenarios.txt").write_text("# comment\n" + "".join(s + "\n" for s in scenarios))
    return subprocess.run([sys.executable, str(REPORT), "--figures", str(tmp_path / "figures.jsonl"),
                           "--scenarios", str(tmp_path / "scenarios.txt"), "--commit", "abc"],
                          capture_output=True, text=True, timeout=60)


def figure(scenario, text, lost=0, server="rpycd"):
    return {"scenario": scenario, "tried": f"tried {scenario}", "figure": text, "lost": lost,
            "server": server, "test": "tests/daemon/test_x.py::test_y", "time": "t"}


def rows(text):
    return [line for line in text.splitlines() if line.startswith("| ") and "---" not in line][1:]


def test_both_columns_and_a_scenario_that_did_not_run(tmp_path):
    done = report(tmp_path, [figure("a", "held"), figure("a", "dropped", lost=3, server="python"),
                             figure("c", "fine")], ["a", "b", "c"])
    assert done.returncode == 0, done.stderr
    table = rows(done.stdout)
    assert table == [
        "| a | tried a | held | 0 | dropped | 3 |",
        "| b |  | **not run** |  | \u2014 |  |",
        "| c | tried c | fine | 0 | \u2014 |  |",
    ], done.stdout
    assert "3 expected, 2 run, 1 not run" in done.stdout
    assert "Python rpyc 3 in the 1 run against it" in done.stdout


def test_a_scenario_that_is_not_listed_is_refused(tmp_path):
    done = report(tmp_path, [figure("a", "held"), figure("new", "x")], ["a"])
    assert done.returncode != 0
    assert "new" in done.stderr and "scenarios.txt" in done.stderr
