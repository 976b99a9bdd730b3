"""What the fixtures and the tests share: the repository, the previous
release, the figures printed at the end of the run (the exposure
figures, build and upgrade times), and waiting for a condition."""

import time
from pathlib import Path

WAIT = 20  # seconds any condition may take


def wait_until(what, condition, timeout=WAIT):
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout}s: {what}")
        time.sleep(0.1)

REPO = Path(__file__).resolve().parents[2]
REPORT = []


def report(line):
    REPORT.append(line)
    print(line)


# The release before this one, as its users have it installed: its version
# and the commit it was made from. Its package is built from that commit
# for the release under test (on Debian 13 a stand-in: that version was
# never built there, and only a newer Rust than Debian 13's builds its
# code), without lintian, which judged it when it was made.
PREVIOUS_RELEASE = ("0.1.0-1", "608f98a6c2ef2241b14b3e1ec2152a8ff3781633")
