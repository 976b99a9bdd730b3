"""Running the Rust example service (examples/counter_service.rs) for the
Python tests: find or build the binary, start it on a free loopback port,
and stop it."""

import os
import re
import signal
import subprocess
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = "counter_service"
START_DEADLINE = 20.0
BUILD_DEADLINE = 900


def _candidates():
    bin_dir = os.environ.get("RPYCD_BIN_DIR")
    if bin_dir:
        yield Path(bin_dir) / "examples" / EXAMPLE
    target = os.environ.get("CARGO_TARGET_DIR")
    if target:
        yield Path(target) / "debug" / "examples" / EXAMPLE
    yield REPO / "target" / "debug" / "examples" / EXAMPLE


def example_binary():
    """The example's binary; built with cargo if no build of it is found
    (`cargo build --bins` does not build examples)."""
    for path in _candidates():
        if path.exists():
            return str(path)
    subprocess.run(
        ["cargo", "build", "--example", EXAMPLE],
        cwd=REPO,
        check=True,
        timeout=BUILD_DEADLINE,
    )
    for path in _candidates():
        if path.exists():
            return str(path)
    raise FileNotFoundError(f"{EXAMPLE} not found after building it")


class RustService:
    """The example service on a loopback port, in its own process group."""

    def __init__(self, mode="threaded", log_dir=None):
        self.mode = mode
        self.log_path = Path(log_dir or "/tmp") / f"{EXAMPLE}-{mode}-{os.getpid()}.log"
        self.log_file = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            [example_binary(), "0", "--mode", mode],
            stdout=subprocess.PIPE,
            stderr=self.log_file,
            text=True,
            start_new_session=True,
        )
        self.port = self._read_port()

    def _read_port(self):
        deadline = time.monotonic() + START_DEADLINE
        # the binary prints one line once bound; readline returns at EOF too
        line = self.proc.stdout.readline()
        match = re.search(r"listening on .*:(\d+)$", line.strip())
        if not match or time.monotonic() > deadline:
            self.stop()
            raise RuntimeError(f"{EXAMPLE} did not start: {line!r}\n{self.log()}")
        return int(match.group(1))

    def log(self):
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def stop(self, sig=signal.SIGTERM, timeout=15):
        """Stops the service (SIGTERM drains); its exit status."""
        if self.proc.poll() is None:
            try:
                os.kill(self.proc.pid, sig)
            except ProcessLookupError:
                pass
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            code = self.proc.wait(timeout=timeout)
        self.log_file.close()
        if self.proc.stdout:
            self.proc.stdout.close()
        return code
