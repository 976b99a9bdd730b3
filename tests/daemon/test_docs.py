"""The README's worked examples, run exactly as written: the commands are
taken from the README itself, so the document and the product cannot
drift apart."""

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from conftest import REPO, accepts, binary, server_env, wait_until

TLS_PORT = 18821
SERVE_PORT = 18861


def blocks(section, language):
    """The fenced `language` blocks of the README section titled `section`."""
    text = (REPO / "README.md").read_text()
    start = text.index(f"## {section}\n")
    end = text.find("\n## ", start + 1)
    body = text[start:end if end != -1 else None]
    return re.findall(rf"```{language}\n(.*?)```", body, flags=re.S)


def test_the_tls_example_runs_as_written(daemons, tmp_path):
    setup, serve = blocks("TLS between a server and its clients", "sh")
    [client] = blocks("TLS between a server and its clients", "python")
    env = server_env(PATH=f"{Path(binary()).parent}:{os.environ['PATH']}")
    made = subprocess.run(["bash", "-euo", "pipefail", "-c", setup], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert made.returncode == 0, made.stderr
    assert made.stdout.strip().endswith("configuration ok"), made.stdout
    [command] = [line for line in serve.splitlines() if line.strip()]
    daemon = daemons(shlex.split(command), tmp_path, env=env, cwd=tmp_path)
    wait_until(lambda: daemon.proc.poll() is not None or accepts("127.0.0.1", TLS_PORT),
               f"port {TLS_PORT}")
    assert daemon.proc.poll() is None, daemon.log()
    ran = subprocess.run([sys.executable, "-c", client], cwd=tmp_path, capture_output=True,
                         text=True, timeout=60)
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.strip() == sys.platform
    # and a client without a certificate of that CA does not get in
    stranger = client.replace('keyfile="alice.key",', "").replace('certfile="alice.crt", ', "")
    assert "alice" not in stranger, stranger
    refused = subprocess.run([sys.executable, "-c", stranger], cwd=tmp_path,
                             capture_output=True, text=True, timeout=60)
    assert refused.returncode != 0, refused.stdout


def test_the_authenticator_example_runs_as_written(daemons, tmp_path):
    section = "Authenticating the clients of your own service"
    auth, client = blocks(section, "python")
    [commands] = blocks(section, "sh")
    make_secret, serve = [line for line in commands.splitlines() if line.strip()]
    (tmp_path / "auth.py").write_text(auth)
    shutil.copy(REPO / "tests" / "serve" / "services" / "calculator.py", tmp_path)
    env = server_env(PATH=f"{Path(binary()).parent}:{os.environ['PATH']}")
    subprocess.run(["bash", "-euo", "pipefail", "-c", make_secret], cwd=tmp_path, env=env,
                   check=True, timeout=30)
    daemon = daemons(shlex.split(serve), tmp_path, env=env, cwd=tmp_path)
    wait_until(lambda: daemon.proc.poll() is not None or accepts("127.0.0.1", SERVE_PORT),
               f"port {SERVE_PORT}")
    assert daemon.proc.poll() is None, daemon.log()
    ran = subprocess.run([sys.executable, "-c", client], cwd=tmp_path, capture_output=True,
                         text=True, timeout=60)
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.strip() == "42"
    # a client without the secret is turned away, and the log says so
    guess = client.replace('open("calc.secret", "rb").read().strip()', 'b"guess"')
    assert "calc.secret" not in guess, guess
    refused = subprocess.run([sys.executable, "-c", guess], cwd=tmp_path,
                             capture_output=True, text=True, timeout=60)
    assert refused.returncode != 0 and "EOFError" in refused.stderr, refused.stderr
    daemon.wait_log("failed to authenticate: wrong secret")
