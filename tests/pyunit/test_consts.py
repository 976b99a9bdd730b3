"""rpycd.consts against rpyc's own (the venv's rpyc 6.0.2): the numbers
are the protocol, so each must be rpyc's."""
import rpyc
from rpyc.core import consts as rpyc_consts

from rpycd import consts


def test_every_handler_code_is_rpycs():
    ours = {name: value for name, value in vars(consts).items() if name.startswith("HANDLE_")}
    theirs = {name: value for name, value in vars(rpyc_consts).items() if name.startswith("HANDLE_")}
    # rpyc's HANDLE_CLOSE is the connection's (Rust's) alone
    assert ours == {name: value for name, value in theirs.items() if name != "HANDLE_CLOSE"}


def test_stop_iteration_code_and_version_are_rpycs():
    assert consts.EXC_STOP_ITERATION == rpyc_consts.EXC_STOP_ITERATION
    assert consts.RPYC_VERSION == rpyc.__version__ == "6.0.2"
