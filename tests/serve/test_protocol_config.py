"""The protocol configuration keys the server applies to any service
(`--protocol-config`), against rpyc's ThreadedServer given the same
protocol_config: what the client sees of the server's exceptions, and
which exceptions end the connection instead of going back."""

import pytest


def raises_back(conn, name, *args):
    with pytest.raises(BaseException) as raised:
        conn.root.raise_builtin(name, *args)
    return raised.value


def test_by_default_the_traceback_and_version_go_with_an_exception(serve):
    with serve("calculator:CalculatorService").connect() as conn:
        error = raises_back(conn, "ValueError", "shown")
        assert isinstance(error, ValueError)
        assert "Traceback (most recent call last)" in error._remote_tb
        assert error._remote_version == "6.0.2"


def test_include_local_traceback_and_version_off(serve):
    served = serve("calculator:CalculatorService",
                   config={"include_local_traceback": False, "include_local_version": False})
    with served.connect() as conn:
        error = raises_back(conn, "ValueError", "hidden")
        assert isinstance(error, ValueError) and error.args == ("hidden",)
        assert error._remote_tb == "<traceback denied>"
        assert error._remote_version == "<version denied>"


def test_a_keyboard_interrupt_ends_the_connection_by_default(serve):
    served = serve("calculator:CalculatorService")
    doomed, other = served.connect(), served.connect()
    with pytest.raises(EOFError):
        doomed.root.raise_builtin("KeyboardInterrupt", "stop")
    assert other.root.add(1, 2) == 3
    other.close()
    assert served.alive()


def test_propagate_keyboard_interrupt_locally_off_sends_it_back(serve):
    served = serve("calculator:CalculatorService",
                   config={"propagate_KeyboardInterrupt_locally": False})
    with served.connect() as conn:
        error = raises_back(conn, "KeyboardInterrupt", "back")
        assert isinstance(error, KeyboardInterrupt)
        assert conn.root.add(2, 2) == 4


def test_propagate_system_exit_locally_ends_the_connection(serve):
    served = serve("calculator:CalculatorService",
                   config={"propagate_SystemExit_locally": True})
    doomed, other = served.connect(), served.connect()
    with pytest.raises(EOFError):
        doomed.root.raise_builtin("SystemExit", 2)
    assert other.root.add(1, 2) == 3
    other.close()
    assert served.alive()


def test_system_exit_goes_back_by_default(serve):
    with serve("calculator:CalculatorService").connect() as conn:
        error = raises_back(conn, "SystemExit", 5)
        assert isinstance(error, SystemExit) and error.args == (5,)
        assert conn.root.add(1, 1) == 2


def test_a_client_with_threads_bound_gets_its_callbacks_on_the_waiting_thread(serve, kind):
    # rpyc's server binds threads when RPYC_BIND_THREADS=true is in its
    # environment (and then serves only such clients); rpycd learns it
    # from the client's first message
    import threading

    if kind == "python":
        # rpyc 6.0.2's ThreadedServer with threads bound loses a reply now
        # and then with several client threads (half the runs on a busy
        # machine); tests/python checks these semantics against rpyc_classic
        pytest.skip("rpyc's own server with threads bound is unreliable here")

    # (not the calculator, whose on_connect calls the client at once: with
    # several client threads starting their calls meanwhile, rpyc 6.0.2's
    # client with threads bound now and then leaves one waiting for good,
    # against rpyc's own server as against ours)
    served = serve("calculator:QuietCalculatorService", env={"RPYC_BIND_THREADS": "true"})
    import rpyc
    conn = rpyc.connect("127.0.0.1", served.port,
                        config={"bind_threads": True, "sync_request_timeout": 30})
    errors = []

    def work():
        try:
            for i in range(10):
                mine = threading.get_ident()
                got = conn.root.apply(lambda x: (x, threading.get_ident()), i)
                assert tuple(got) == (i, mine), (got, mine)
        except Exception as error:
            errors.append(repr(error))

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    conn.close()
    assert errors == []


def test_a_client_that_only_listens_is_called_by_on_connect(serve):
    # the calculator's on_connect asks for the client's root before the
    # client has said anything: a client that only serves (in a
    # background thread) answers it all the same
    import time

    import rpyc

    served = serve("calculator:CalculatorService")
    listener = rpyc.connect("127.0.0.1", served.port)
    background = rpyc.BgServingThread(listener)
    try:
        deadline = time.monotonic() + 15
        with served.connect() as probe:
            # the probe's own on_connect is one of the two
            while [tuple(e) for e in probe.root.events()].count(("connect", True)) < 2:
                assert time.monotonic() < deadline, "on_connect never reached the listener"
                time.sleep(0.1)
    finally:
        background.stop()
        listener.close()


@pytest.mark.parametrize("config, made", [
    # rpyc's defaults: a class that is not a builtin is not made; the
    # service catches a stand-in named after it
    ({}, ("json.decoder.JSONDecodeError", False)),
    ({"import_custom_exceptions": True, "instantiate_custom_exceptions": True},
     ("JSONDecodeError", True)),
])
def test_custom_exceptions_from_the_client_as_configured(serve, config, made):
    import json

    def bad_json():
        json.loads("{")

    with serve("calculator:CalculatorService", config=config).connect() as conn:
        assert tuple(conn.root.caught(bad_json)) == made
        # builtins are always made as themselves
        assert tuple(conn.root.caught(lambda: int("x"))) == ("ValueError", True)
