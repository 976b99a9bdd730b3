"""Unit tests of the object space's Python modules (src/service/python/rpycd),
imported from the files, outside the binaries, with a fake of the Rust
link (fakelink.py)."""
import sys
from pathlib import Path

import pytest

from fakelink import FakeLink

# the package the binaries embed, from its files
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src" / "service" / "python"))

from rpycd.remote import Remote  # after the path it is found by


@pytest.fixture
def link():
    return FakeLink()


@pytest.fixture
def remote(link):
    return Remote(link)
