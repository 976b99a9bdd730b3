"""rpycd.classic and the rest of the package as Rust uses them: every name
src/service/python/*.rs looks up or calls is there, warm() and freeze()."""
import gc
import re
from pathlib import Path

import pytest

from rpycd import classic, introspect, serve
from rpycd.handlers import Handlers
from rpycd.remote import Remote

SERVICE = Path(__file__).resolve().parents[2] / "src" / "service" / "python"
CLASSIC_RS = (SERVICE / "classic.rs").read_text()
HOSTED_RS = (SERVICE / "hosted.rs").read_text()


def names(pattern, text):
    found = set(re.findall(pattern, text))
    assert found, f"{pattern} finds nothing: has the Rust side changed?"
    return found


def test_the_names_classic_rs_looks_up_in_the_object_space():
    looked_up = names(r'space\s*(?:\.bind\(py\)\s*)?\.(?:getattr|call_method0)\("(\w+)"\)', CLASSIC_RS)
    assert looked_up >= {"Remote", "SlaveService", "BaseNetref", "id_pack", "dump_exception",
                         "load_exception", "warm", "freeze"}
    for name in looked_up:
        assert name in classic.__all__ and callable(getattr(classic, name)), name


def test_the_handler_methods_classic_rs_dispatches_to():
    methods = names(r'"(_handle_\w+)"', CLASSIC_RS)
    # each of the handlers, and no other
    assert methods == {name for name in vars(Handlers) if name.startswith("_handle_")}
    for name in methods | {"proxy", "forget"}:
        assert callable(getattr(Remote, name)), name
        assert callable(getattr(serve.ServiceRemote, name)), name


def test_the_names_hosted_rs_looks_up_in_serve():
    looked_up = names(r'module\s*\.getattr\("(\w+)"\)', HOSTED_RS)
    assert looked_up == {"load_service", "make_config", "SETTABLE", "ServiceRemote",
                         "root_factory", "service_aliases"}
    for name in looked_up:
        assert hasattr(serve, name), name
    assert names(r'call_method1\("(\w+)"', HOSTED_RS) == {"_connected"}
    assert callable(serve.ServiceRemote._connected)


def test_warm_makes_the_builtin_proxy_classes(monkeypatch):
    monkeypatch.setattr(introspect, "_builtin_classes_cache", None)
    classic.warm()
    assert introspect._builtin_classes_cache is not None
    assert "builtins.list" in introspect._builtin_classes_cache


@pytest.fixture
def unfrozen():
    yield
    gc.unfreeze()


def test_freeze_moves_what_exists_out_of_the_collections(unfrozen):
    gc.unfreeze()
    assert gc.get_freeze_count() == 0
    classic.freeze()
    assert gc.get_freeze_count() > 0
