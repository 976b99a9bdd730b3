"""What the fixtures and the tests share: the repository, and the figures
printed at the end of the run (the issue asks for the exposure figures in
the test output)."""

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
REPORT = []


def report(line):
    REPORT.append(line)
    print(line)
