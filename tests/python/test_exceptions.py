"""Remote exceptions: class, args, attributes and the remote traceback text."""

import json

import pytest
from rpyc.core.vinegar import GenericException

from conftest import CLIENT_MAJOR


# what a 4.x client adds to a remote traceback from a server it sees as
# 5.x (its envelope is 5.x's, so a 4.x client looks like a 5.x one, and
# rpycd answers it as rpyc 5.3.1 would)
RPYC4_WARNING = "WARNING: Remote is on RPyC 5.3.1 and local is on RPyC 4.1.5."


def last_line(tb):
    lines = tb.rstrip("\n").splitlines()
    if CLIENT_MAJOR < 5:
        assert lines[-1] == RPYC4_WARNING, lines[-1]
        lines.pop()
        while lines and not lines[-1]:
            lines.pop()
    return lines[-1]


def test_zero_division_error(conn):
    with pytest.raises(ZeroDivisionError) as info:
        conn.eval("1 / 0")
    e = info.value
    assert e.args == ("division by zero",)
    assert e._remote_tb.startswith("Traceback (most recent call last):")
    assert "ZeroDivisionError" in e._remote_tb
    assert last_line(e._remote_tb) == "ZeroDivisionError: division by zero"
    # str() of a remote exception carries the remote traceback.
    assert "Remote Traceback" in str(e)
    assert "division by zero" in str(e)


def test_key_error(conn):
    with pytest.raises(KeyError) as info:
        conn.eval("{'a': 1}['missing']")
    assert info.value.args == ("missing",)
    assert last_line(info.value._remote_tb) == "KeyError: 'missing'"
    # Through a netref dict's __getitem__ as well.
    d = conn.eval("{'a': 1}")
    with pytest.raises(KeyError) as info:
        d["nope"]
    assert info.value.args == ("nope",)


def test_builtin_exception_attributes(conn):
    with pytest.raises(FileNotFoundError) as info:
        conn.builtins.open("/nonexistent-rpycd-dir/file")
    e = info.value
    assert isinstance(e, OSError)
    assert e.errno == 2
    assert e.filename == "/nonexistent-rpycd-dir/file"
    assert e.strerror == "No such file or directory"
    assert e.args == (2, "No such file or directory")


def test_attribute_and_name_errors(conn):
    with pytest.raises(AttributeError):
        conn.modules.sys.no_such_attribute_rpycd
    with pytest.raises(NameError) as info:
        conn.eval("undefined_name_rpycd")
    assert "undefined_name_rpycd" in info.value.args[0]
    with pytest.raises(TypeError):
        conn.builtins.len(5)
    with pytest.raises(ValueError):
        conn.builtins.int("not a number")


def test_exception_from_execute_has_string_frame(conn):
    conn.execute("def inner():\n    raise RuntimeError('deep', 42)\n")
    with pytest.raises(RuntimeError) as info:
        conn.execute("inner()")
    e = info.value
    assert e.args == ("deep", 42)
    tb = e._remote_tb
    assert 'File "<string>", line 2, in inner' in tb
    assert last_line(tb) == "RuntimeError: ('deep', 42)"


def test_custom_exception_defined_by_execute(conn):
    conn.execute(
        "class RpycdCustomError(Exception):\n"
        "    def __init__(self, a, b):\n"
        "        super().__init__(a, b)\n"
        "        self.extra = 'attr-value'\n"
        "        self.number = 17\n"
    )
    with pytest.raises(Exception) as info:
        conn.execute("raise RpycdCustomError('m', 2)")
    e = info.value
    # The class lives in the server's namespace (module 'builtins' for exec'd
    # code), so the client cannot import it and builds a GenericException
    # subclass named after it.
    assert isinstance(e, GenericException)
    assert "RpycdCustomError" in type(e).__mro__[1].__name__
    assert e.args == ("m", 2)
    # Public attributes travel with the exception.
    assert e.extra == "attr-value"
    assert e.number == 17
    assert last_line(e._remote_tb) == "RpycdCustomError: ('m', 2)"


def test_non_builtin_exception_importable_on_client(conn):
    # json.JSONDecodeError lives in json.decoder, importable on both sides:
    # the client re-raises that very class, with its attributes.
    with pytest.raises(json.JSONDecodeError) as info:
        conn.modules.json.loads("{")
    e = info.value
    assert isinstance(e, ValueError)
    assert e.pos == 1
    assert e.lineno == 1
    assert e.colno == 2
    assert "JSONDecodeError" in e._remote_tb


def test_stop_iteration(conn):
    it = conn.eval("iter([])")
    with pytest.raises(StopIteration):
        next(it)
    with pytest.raises(StopIteration):
        conn.eval("next(iter(()))")
    gen = conn.eval("(i for i in range(1))")
    assert next(gen) == 0
    with pytest.raises(StopIteration):
        next(gen)


def test_exception_does_not_break_connection(conn):
    for i in range(20):
        with pytest.raises(ZeroDivisionError):
            conn.eval(f"{i} / 0")
        assert conn.eval(f"{i} + 1") == i + 1


def test_client_exception_through_server(conn):
    """A client callback raises; the server sees a real exception it can catch."""
    conn.execute(
        "def catch(f):\n"
        "    try:\n"
        "        f()\n"
        "    except ValueError as e:\n"
        "        return ('caught', type(e).__name__, e.args, isinstance(e, ValueError))\n"
        "    return 'not caught'\n"
        "def call(f, *a):\n"
        "    return f(*a)\n"
    )

    def bad():
        raise ValueError("client side")

    assert conn.namespace["catch"](bad) == ("caught", "ValueError", ("client side",), True)
    # Uncaught on the server, it comes back to the client as a ValueError.
    with pytest.raises(ValueError) as info:
        conn.namespace["call"](bad)
    assert info.value.args == ("client side",)
    assert "client side" in info.value._remote_tb
    # And the connection still works.
    assert conn.namespace["call"](lambda: 5) == 5


def test_keyboard_interrupt_in_client_code_ends_only_its_connection(server, connect):
    # rpyc's propagate_KeyboardInterrupt_locally, on by default: the
    # server raises it where it is instead of sending it back, which ends
    # the connection serving it (and no other)
    doomed, other = connect(), connect()
    with pytest.raises(EOFError):
        doomed.execute("raise KeyboardInterrupt('stop')")
    assert other.eval("6 * 7") == 42
    assert connect().eval("1") == 1
    assert server.alive()


def test_system_exit_in_client_code_is_sent_back(conn):
    # propagate_SystemExit_locally is off by default: the client gets it
    with pytest.raises(SystemExit) as info:
        conn.execute("raise SystemExit(3)")
    assert info.value.args == (3,)
    assert conn.eval("1") == 1
