"""rpycd.vinegar: exceptions as they go to the client (dump_exception) and
come back from it (load_exception), by rpyc 6.0.2's rules."""
import pytest

from rpycd import vinegar
from rpycd.consts import EXC_STOP_ITERATION


class Custom(Exception):
    """An exception class the loader can find: this module's."""

    def __init__(self, message, code):
        super().__init__(message)
        self.code = code
        self.details = ["not", "a", "brine", "value"]
        self._private = "never sent"


class ReadOnly(Exception):
    @property
    def fixed(self):
        return "fixed"


class Unprintable(Exception):
    def __str__(self):
        raise RuntimeError("no str for you")


def raised(exc):
    try:
        raise exc
    except BaseException as caught:
        return caught


def test_stop_iteration_is_a_code():
    assert vinegar.dump_exception(StopIteration()) == EXC_STOP_ITERATION
    assert type(vinegar.load_exception(EXC_STOP_ITERATION)) is StopIteration


def test_dump_gives_class_args_attrs_and_traceback():
    exc = raised(ValueError("bad value", 3))
    (module, name), args, attrs, tbtext = vinegar.dump_exception(exc)
    assert (module, name) == ("builtins", "ValueError")
    assert args == ("bad value", 3)
    assert attrs[-1] == ("_remote_version", "6.0.2")
    assert "in raised" in tbtext and tbtext.endswith("ValueError: ('bad value', 3)\n")


def test_dump_sends_what_brine_cannot_carry_as_its_repr():
    marker = object()
    exc = Custom("with attrs", code=7)
    exc.args = ("with attrs", marker, (1, frozenset({2})))
    _, args, attrs, _ = vinegar.dump_exception(exc)
    assert args == ("with attrs", repr(marker), (1, frozenset({2})))
    attrs = dict(attrs)
    assert attrs["code"] == 7
    assert attrs["details"] == repr(["not", "a", "brine", "value"])
    assert "_private" not in attrs and "with_traceback" not in attrs and "args" not in attrs


def test_dump_names_the_clients_protocol_version_and_takes_a_traceback():
    inner = raised(KeyError("k"))
    _, _, attrs, tbtext = vinegar.dump_exception(KeyError("k"), inner.__traceback__, "5.3.1")
    assert ("_remote_version", "5.3.1") in attrs
    assert "in raised" in tbtext


def test_load_raises_the_named_class_with_args_attrs_and_remote_traceback():
    dumped = (("builtins", "ValueError"), ("bad",), (("note", 5),), "Traceback: the client's\n")
    exc = vinegar.load_exception(dumped)
    assert isinstance(exc, ValueError)
    assert type(exc).__name__ == "ValueError" and type(exc).__module__ == "builtins"
    assert exc.args == ("bad",)
    assert exc.note == 5
    assert exc._remote_tb == "Traceback: the client's\n"
    assert str(exc) == "bad\n\n========= Remote Traceback (1) =========\nTraceback: the client's\n"
    assert repr(exc) == str(exc)
    # one derived class per class, not one per exception
    assert type(vinegar.load_exception(dumped)) is type(exc)


def test_load_counts_the_tracebacks_already_nested():
    nested = "outer" + vinegar.REMOTE_LINE.format(1) + "inner"
    exc = vinegar.load_exception((("builtins", "KeyError"), ("k",), (), nested))
    assert "========= Remote Traceback (2) =========" in str(exc)


def test_load_round_trips_a_custom_class_of_an_importable_module():
    exc = vinegar.load_exception(vinegar.dump_exception(Custom("again", code=9)))
    assert isinstance(exc, Custom)
    assert exc.args == ("again",) and exc.code == 9


def test_load_skips_attributes_it_cannot_set():
    exc = vinegar.load_exception(vinegar.dump_exception(ReadOnly("x")))
    assert isinstance(exc, ReadOnly) and exc.fixed == "fixed"


def test_unknown_class_becomes_a_generic_exception():
    dumped = (("no_such_module_xyz", "Gone"), ("why",), (), "tb")
    exc = vinegar.load_exception(dumped)
    assert isinstance(exc, vinegar.GenericException)
    assert type(exc).__name__ == "no_such_module_xyz.Gone"
    assert type(exc).__module__ == "rpycd.vinegar/no_such_module_xyz"
    assert exc.args == ("why",)
    assert type(vinegar.load_exception(dumped)) is type(exc)


def test_a_name_that_is_no_exception_class_becomes_a_generic_exception():
    exc = vinegar.load_exception((("builtins", "len"), (), (), "tb"))
    assert isinstance(exc, vinegar.GenericException)
    assert not isinstance(exc, TypeError)


def test_a_string_is_a_generic_exception():
    exc = vinegar.load_exception("an old string exception")
    assert type(exc) is vinegar.GenericException
    assert exc.args == ("an old string exception",)


def test_an_unprintable_exception_still_prints_its_remote_traceback():
    exc = vinegar.load_exception(vinegar.dump_exception(Unprintable()))
    assert str(exc).startswith("<Unprintable exception>\n\n========= Remote Traceback (1)")


def test_a_loaded_exception_raises():
    with pytest.raises(ZeroDivisionError) as info:
        raise vinegar.load_exception((("builtins", "ZeroDivisionError"), ("x",), (), "tb"))
    assert info.value._remote_tb == "tb"
