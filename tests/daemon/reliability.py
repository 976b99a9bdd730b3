"""Figures for RELIABILITY.md: a test that has passed
its assertions records what it tried and what it measured, one JSON line
per scenario, and scripts/reliability-report renders the table from them.

The lines go to $RPYCD_RELIABILITY_OUT, or to
target/reliability/figures.jsonl in the checkout. scripts/test empties the
file before the daemon suite, so a report shows one run; a scenario
recorded twice (a test run again by hand) keeps its last line."""

import json
import os
import platform
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def out_path():
    path = os.environ.get("RPYCD_RELIABILITY_OUT")
    return Path(path) if path else REPO / "target" / "reliability" / "figures.jsonl"


def record(scenario, tried, figure, lost=0, server="rpycd", **numbers):
    """Appends one scenario's figures.

    scenario: a short unique name (the table's first column), listed in
    tests/daemon/scenarios.txt;
    tried: what was done to the daemon, in words;
    figure: the result, in words, with its numbers;
    lost: requests the server acknowledged or started and never answered
    (0 for a test of ours that passed; tests that check every reply say so);
    server: "rpycd", or "python" for the same scenario against Python
    rpyc's own server (its column in the table);
    numbers: the raw figures, kept in the JSON for whoever wants them."""
    line = {
        "scenario": scenario,
        "server": server,
        "tried": tried,
        "figure": figure,
        "lost": lost,
        "numbers": numbers,
        "test": os.environ.get("PYTEST_CURRENT_TEST", "").split(" ")[0],
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "host": platform.node(),
    }
    path = out_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(line, sort_keys=True) + "\n")


def mib(kib):
    return f"{kib / 1024:.1f} MiB"
