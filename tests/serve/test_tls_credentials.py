"""What a service gets as conn._config["credentials"] under TLS with a
client certificate: rpyc's SSLAuthenticator gives getpeercert()'s dict,
so the client certificate as Python's ssl module decodes it, field by
field (subject and issuer as tuples of RDN tuples, version, serialNumber,
notBefore, notAfter, subjectAltName), on the same certificate files."""

import ssl
import sys
from pathlib import Path

import pytest
import rpyc

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "daemon"))
from certs import make_pki, rich_client  # noqa: E402


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    pki = make_pki(tmp_path_factory.mktemp("pki"))
    rich = rich_client(pki)
    return pki, rich.key, rich.cert


def credentials_of(served, pki, key, cert):
    conn = rpyc.ssl_connect("127.0.0.1", served.port, ca_certs=pki.ca, keyfile=key,
                            certfile=cert)
    try:
        return dict(conn.root.credential_items())
    finally:
        conn.close()


@pytest.mark.parametrize("client", ["rich", "alice"])
def test_credentials_are_getpeercerts_dict(serve, pki, client):
    pki, rich_key, rich_cert = pki
    key, cert = (rich_key, rich_cert) if client == "rich" else (pki.alice.key, pki.alice.cert)
    pair = pki.servers["rsa"]
    served = serve("calculator:CalculatorService", ssl=(pair.key, pair.cert, pki.ca))
    got = credentials_of(served, pki, key, cert)
    expected = ssl._ssl._test_decode_cert(cert)
    assert got == expected
    if client == "rich":
        assert dict(expected)["serialNumber"] == "C0FFEE0001"
        assert ("DNS", "alice.example.com") in expected["subjectAltName"]


def test_without_tls_there_are_none(serve):
    served = serve("calculator:CalculatorService")
    with served.connect() as conn:
        assert conn.root.credential_items() is None
