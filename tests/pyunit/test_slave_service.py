"""rpycd.service.SlaveService: the classic root, as rpyc's own."""
import os.path

import pytest
import rpyc.core.service
from rpyc.lib import get_id_pack

from rpycd.introspect import id_pack
from rpycd.service import SlaveService


def test_execute_and_eval_share_a_namespace_per_root():
    root = SlaveService(conn=None)
    root.execute("x = 20\ndef double(v):\n    return 2 * v")
    assert root.eval("double(x) + 2") == 42
    assert "x" not in SlaveService(conn=None).namespace


def test_getmodule_takes_a_name_or_its_parts():
    root = SlaveService(conn=None)
    assert root.getmodule("os.path") is os.path
    assert root.getmodule(("os", "path")) is os.path
    with pytest.raises(ModuleNotFoundError):
        root.getmodule("no_such_module_xyz")


def test_getconn_is_the_connection_it_was_made_for(remote):
    assert SlaveService(remote).getconn() is remote


def test_names_are_rpycs_slave_services():
    assert SlaveService.get_service_name() == SlaveService.exposed_get_service_name() == "SLAVE"
    assert SlaveService.get_service_aliases() == ("SLAVE",)
    # the client builds its proxy class for the root by this name
    assert id_pack(SlaveService(None))[0] == get_id_pack(rpyc.core.service.SlaveService())[0]


def test_the_client_may_not_set_or_delete_its_attributes(remote):
    root = SlaveService(remote)
    with pytest.raises(AttributeError, match="access denied"):
        remote._handle_setattr(root, "namespace", {})
    with pytest.raises(AttributeError, match="access denied"):
        remote._handle_delattr(root, "namespace")
    assert remote._handle_getattr(root, "namespace") is root.namespace
