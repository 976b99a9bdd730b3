"""Exceptions raised while serving a client's requests, in the log: rpyc's
servers log each one with its traceback at debug level ("Exception
caught", rpyc's log_exceptions); rpyc_classic logs at debug unless -q,
rpycd at info unless --log-level debug says otherwise."""

import subprocess

import pytest
import rpyc

from conftest import binary, classic_daemon, python_classic, server_env, wait_until

ZERO = "ZeroDivisionError: division by zero"


def raise_one(port):
    conn = rpyc.classic.connect("127.0.0.1", port)
    with pytest.raises(ZeroDivisionError):
        conn.eval("1 / 0")
    # and one that ends an iteration, which rpyc does not log
    with pytest.raises(StopIteration):
        conn.eval("next(iter([]))")
    conn.close()


@pytest.mark.parametrize("server", ["rpycd", "python"])
def test_a_request_exception_is_logged_at_debug_with_its_traceback(daemons, tmp_path, server):
    if server == "rpycd":
        daemon, port = classic_daemon(daemons, tmp_path, "--log-level", "debug")
    else:
        daemon, port = python_classic(daemons, tmp_path)
    raise_one(port)
    wait_until(lambda: ZERO in daemon.log(), f"the exception in the log:\n{daemon.log()}")
    log = daemon.log()
    caught = [line for line in log.splitlines() if "Exception caught" in line]
    assert caught, log
    assert "DEBUG" in caught[0]
    # the traceback: where it was raised, and what
    assert "Traceback (most recent call last)" in log
    assert '<string>", line 1' in log
    assert "StopIteration" not in log
    if server == "rpycd":
        # one line per event: the traceback's lines escaped
        assert len(caught) == 1 and caught[0].endswith(ZERO), caught


def test_request_exceptions_are_not_logged_at_the_default_level(daemons, tmp_path):
    daemon, port = classic_daemon(daemons, tmp_path)
    raise_one(port)
    conn = rpyc.classic.connect("127.0.0.1", port)
    conn.close()
    wait_until(lambda: daemon.log().count("goodbye") >= 2, "both sessions to end")
    assert "Exception caught" not in daemon.log()
    assert "DEBUG" not in daemon.log()


def test_log_exceptions_off_keeps_them_out_of_a_debug_log(daemons, tmp_path):
    daemon, port = classic_daemon(daemons, tmp_path, "--log-level", "debug",
                                  "--protocol-config", "log_exceptions=False")
    raise_one(port)
    wait_until(lambda: "goodbye" in daemon.log(), "the session to end")
    assert "Exception caught" not in daemon.log()


@pytest.mark.parametrize("program", ["rpyc-classic", "rpyc-registry", "rpyc-serve"])
def test_quiet_and_a_louder_log_level_contradict(program):
    for argv, env in [(["-q", "--log-level", "debug"], {}),
                      (["--log-level", "info"], {"QUIET": "true"})]:
        prefix = {"rpyc-classic": "RPYC_CLASSIC_", "rpyc-registry": "RPYC_REGISTRY_",
                  "rpyc-serve": "RPYC_SERVE_"}[program]
        extra = ["x:Y"] if program == "rpyc-serve" else []
        out = subprocess.run([binary(program), *argv, "--check-config", *extra],
                             env=server_env(**{prefix + k: v for k, v in env.items()}),
                             capture_output=True, text=True, timeout=30)
        assert out.returncode == 64, out
        assert "-q/--quiet" in out.stderr and "--log-level" in out.stderr, out.stderr


def test_the_log_level_comes_from_the_environment_too(daemons, tmp_path):
    port_daemon = daemons([binary(), "--host", "127.0.0.1", "-p", "0", "--check-config"], tmp_path,
                          env=server_env(RPYC_CLASSIC_LOG_LEVEL="loud"))
    assert port_daemon.wait(30) == 64
    assert "RPYC_CLASSIC_LOG_LEVEL" in port_daemon.log(), port_daemon.log()
