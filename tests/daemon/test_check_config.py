"""--check-config, as `nginx -t`: it opens and validates what start-up
would, by the same code, binds nothing, and says "configuration ok" (0) or
what start-up would have said, with its exit code (78 for a file or a
service that cannot be used)."""

import os
import subprocess

import pytest

from certs import make_pki
from conftest import REPO, binary, server_env

SERVICES = REPO / "tests" / "serve" / "services"
EX_CONFIG = 78


def check(name, *args):
    return subprocess.run([binary(name), "--check-config", *args], capture_output=True,
                          text=True, env=server_env(), timeout=60)


def refused(name, *args, says):
    result = check(name, *args)
    assert result.returncode == EX_CONFIG, result
    assert result.stdout == "", result
    assert says in result.stderr, result.stderr
    return result


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_pki(tmp_path_factory.mktemp("pki"))


def test_a_good_configuration_is_ok_and_binds_nothing(tmp_path, pki):
    pair = pki.servers["rsa"]
    log = tmp_path / "classic.log"
    # port 1 cannot be bound by the tests' user... nor is it tried
    result = check("rpyc-classic", "-p", "1", "--logfile", str(log),
                   "--ssl-keyfile", pair.key, "--ssl-certfile", pair.cert, "--ssl-cafile", pki.ca)
    assert (result.returncode, result.stdout) == (0, "configuration ok\n"), result
    result = check("rpyc-serve", "--path", str(SERVICES), "calculator:CalculatorService")
    assert (result.returncode, result.stdout) == (0, "configuration ok\n"), result
    result = check("rpyc-registry", "--logfile", str(tmp_path / "registry.log"))
    assert (result.returncode, result.stdout) == (0, "configuration ok\n"), result


def test_files_start_up_could_not_use_are_found(tmp_path, pki):
    pair = pki.servers["rsa"]
    missing = str(tmp_path / "missing.pem")
    refused("rpyc-classic", "--ssl-keyfile", missing, "--ssl-certfile", pair.cert, says=missing)
    # a private key given as the CA bundle
    refused("rpyc-classic", "--ssl-keyfile", pair.key, "--ssl-certfile", pair.cert,
            "--ssl-cafile", pair.key, says=pair.key)
    for name in ("rpyc-classic", "rpyc-registry"):
        refused(name, "--logfile", str(tmp_path / "no-such-dir" / "x.log"), says="no-such-dir")


def test_a_key_that_is_not_the_certificates_is_named(pki):
    pair = pki.servers["rsa"]
    other = pki.servers["ecdsa"]
    refused("rpyc-classic", "--ssl-keyfile", other.key, "--ssl-certfile", pair.cert,
            says=f"{other.key} does not fit {pair.cert}")


@pytest.mark.skipif(os.path.exists("/dev/log"), reason="this machine has a syslog socket")
def test_syslog_without_a_syslog_daemon_is_found():
    for name in ("rpyc-classic", "rpyc-registry"):
        refused(name, "--syslog", says="/dev/log")


@pytest.mark.parametrize("spec, says", [
    ("collections:OrderedDict", "is not an rpyc Service"),
    ("calculator:NeedsArgument", "cannot be made without arguments"),
    ("no_such_module:Service", "No module named 'no_such_module'"),
])
def test_a_service_rpyc_serve_could_not_serve_is_found(spec, says):
    refused("rpyc-serve", "--path", str(SERVICES), spec, says=says)


def test_a_missing_path_is_found(tmp_path):
    missing = tmp_path / "nowhere"
    refused("rpyc-serve", "--path", str(missing), "calculator:CalculatorService",
            says=f"--path {missing}: no such directory")
