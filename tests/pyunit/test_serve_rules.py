"""rpycd.serve: what rpyc-serve adds to the object space for any rpyc
Service class: rpyc 6.0.2's protocol configuration and attribute rules, the
service's lifecycle, loading the class."""
import sys

import pytest

from fakelink import FakeLink
from rpycd import serve


class Calculator:
    """A service shaped as rpyc's (without importing rpyc)."""

    def __init__(self):
        self.events = []

    def on_connect(self, conn):
        self.events.append(("connect", conn))

    def on_disconnect(self, conn):
        self.events.append(("disconnect", conn))

    def exposed_add(self, a, b):
        return a + b

    def exposed_both(self):
        return "exposed"

    def both(self):
        return "plain"

    def public(self):
        return "public"

    def _private(self):
        return "private"


def remote_for(**overrides):
    return serve.ServiceRemote(FakeLink(), serve.make_config(overrides))


def test_make_config_is_rpycs_defaults_with_the_overrides():
    config = serve.make_config({"allow_public_attrs": True, "safe_attrs": ["__len__"]})
    assert config["allow_public_attrs"] is True
    assert config["safe_attrs"] == frozenset({"__len__"})
    assert config["allow_pickle"] is False and config["exposed_prefix"] == "exposed_"
    assert serve.DEFAULT_CONFIG["allow_public_attrs"] is False


@pytest.mark.parametrize("key", ["no_such_key", "credentials", "endpoints", "connid"])
def test_make_config_refuses_keys_it_does_not_apply(key):
    with pytest.raises(KeyError):
        serve.make_config({key: 1})


def test_service_aliases():
    class CalculatorService:
        pass

    class Named:
        ALIASES = ["calc", "adder"]

    class Own:
        @classmethod
        def get_service_aliases(cls):
            return ["Exactly", 5]

    assert serve.service_aliases(CalculatorService) == ("CALCULATOR",)
    assert serve.service_aliases(Calculator) == ("CALCULATOR",)
    assert serve.service_aliases(Named) == ("CALC", "ADDER")
    assert serve.service_aliases(Own) == ("Exactly", "5")
    assert serve.service_aliases(Named()) == ("CALC", "ADDER")


def test_exposed_names_are_reached_without_their_prefix():
    remote, obj = remote_for(), Calculator()
    assert remote._handle_getattr(obj, "add")(2, 3) == 5
    assert remote._handle_getattr(obj, "exposed_add")(2, 3) == 5
    assert remote._handle_callattr(obj, "add", (4, 5)) == 9
    # a name both plain and exposed: the exposed one, unless the plain one
    # is allowed too
    assert remote._handle_getattr(obj, "both")() == "exposed"
    assert remote_for(allow_public_attrs=True)._handle_getattr(obj, "both")() == "plain"
    # a plain name the object lacks: the exposed one
    assert remote_for(allow_public_attrs=True)._handle_getattr(obj, "add")(2, 3) == 5


def test_other_names_need_the_configuration_to_allow_them():
    obj = Calculator()
    with pytest.raises(AttributeError, match="cannot access 'public'"):
        remote_for()._handle_getattr(obj, "public")
    assert remote_for(allow_public_attrs=True)._handle_getattr(obj, "public")() == "public"
    with pytest.raises(AttributeError, match="cannot access '_private'"):
        remote_for(allow_public_attrs=True)._handle_getattr(obj, "_private")
    assert remote_for(allow_all_attrs=True)._handle_getattr(obj, "_private")() == "private"
    assert remote_for()._handle_getattr([1, 2], "__len__")() == 2  # a safe name


def test_setattr_and_delattr_are_off_by_default():
    obj = Calculator()
    with pytest.raises(AttributeError, match="cannot access 'exposed_x'"):
        remote_for()._handle_setattr(obj, "exposed_x", 1)
    with pytest.raises(AttributeError, match="cannot access 'exposed_add'"):
        remote_for()._handle_delattr(obj, "exposed_add")
    remote_for(allow_setattr=True)._handle_setattr(obj, "exposed_x", 1)
    assert obj.exposed_x == 1


def test_comparison_goes_through_the_rules():
    assert remote_for()._handle_cmp(1, 2, "__lt__") is True
    with pytest.raises(AttributeError):
        remote_for(allow_safe_attrs=False)._handle_cmp(1, 2, "__lt__")


def test_pickle_is_off_by_default():
    with pytest.raises(ValueError, match="pickling is disabled"):
        remote_for()._handle_pickle([1], 2)
    assert type(remote_for(allow_pickle=True)._handle_pickle([1], 2)) is bytes


def test_a_class_is_a_root_per_connection_an_instance_is_shared():
    first, second = remote_for(), remote_for()
    make = serve.root_factory(Calculator)
    assert make(first) is not make(second)
    shared = Calculator()
    make = serve.root_factory(shared)
    assert make(first) is shared and make(second) is shared


def test_the_service_hears_of_connect_and_disconnect():
    remote = remote_for()
    root = serve.root_factory(Calculator)(remote)
    remote._connected((("127.0.0.1", 1), ("127.0.0.1", 2)), "CN=client")
    assert remote._config["endpoints"] == (("127.0.0.1", 1), ("127.0.0.1", 2))
    assert remote._config["credentials"] == "CN=client"
    remote.forget()
    remote.forget()
    assert root.events == [("connect", remote), ("disconnect", remote)]


def test_forget_finishes_even_when_on_disconnect_raises():
    class Failing(Calculator):
        def on_disconnect(self, conn):
            raise RuntimeError("on_disconnect failed")

    remote = remote_for()
    serve.root_factory(Failing)(remote)
    remote._last_traceback = "a traceback"
    with pytest.raises(RuntimeError):
        remote.forget()
    assert remote._last_traceback is None and remote._local_root is None


@pytest.fixture
def service_dir(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "path", list(sys.path))
    (tmp_path / "pyunit_services_xyz.py").write_text(
        "class Good:\n"
        "    def exposed_hello(self):\n"
        "        return 'hello'\n"
        "class NeedsArgs:\n"
        "    def __init__(self, required):\n"
        "        pass\n"
        "    def on_connect(self, conn):\n"
        "        pass\n"
        "class NotAService:\n"
        "    pass\n"
        "class Connects:\n"
        "    def on_connect(self, conn):\n"
        "        pass\n"
        "instance = Connects()\n"
        "not_a_service = Good()\n"
    )
    yield str(tmp_path)
    sys.modules.pop("pyunit_services_xyz", None)


def test_load_service_imports_the_class_from_the_paths_given(service_dir):
    cls = serve.load_service("pyunit_services_xyz:Good", [service_dir])
    assert cls.__name__ == "Good" and sys.path[0] == service_dir
    instance = serve.load_service("pyunit_services_xyz:instance", [service_dir])
    assert type(instance).__name__ == "Connects"


@pytest.mark.parametrize("spec, error, message", [
    ("pyunit_services_xyz", ValueError, "is not package.module:ClassName"),
    ("pyunit_services_xyz:NotAService", TypeError, "is not an rpyc Service"),
    ("pyunit_services_xyz:not_a_service", TypeError, "neither a class nor a service instance"),
    ("pyunit_services_xyz:NeedsArgs", TypeError, "cannot be made without arguments"),
    ("pyunit_services_xyz:Missing", AttributeError, "Missing"),
])
def test_load_service_says_what_is_wrong(service_dir, spec, error, message):
    with pytest.raises(error, match=message):
        serve.load_service(spec, [service_dir])


def test_load_service_refuses_a_path_that_is_no_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such directory"):
        serve.load_service("x:Y", [str(tmp_path / "missing")])
