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
from certs import make_pki, openssl  # noqa: E402

# a subject with a multi-valued RDN, text beyond ASCII, an e-mail address,
# and every kind of subjectAltName a client certificate is likely to carry
RICH_SUBJECT = ("/C=FR/ST=Île-de-France/L=Paris/O=Société Générale+OU=R&D/"
                "CN=alice \u00e9\u4e2d/emailAddress=alice@example.com/DC=example/DC=com")
RICH_EXTENSIONS = """\
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = clientAuth
subjectAltName = @names
[names]
DNS.1 = alice.example.com
DNS.2 = *.example.org
email.1 = alice@example.com
URI.1 = https://example.com/alice
IP.1 = 192.0.2.7
IP.2 = 2001:db8::1
RID.1 = 1.2.3.4.5
dirName.1 = directory
[directory]
C = DE
O = Example
CN = Alice Directory
"""


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    directory = tmp_path_factory.mktemp("pki")
    pki = make_pki(directory)
    ext = directory / "rich.ext"
    ext.write_text(RICH_EXTENSIONS)
    openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048",
            "-out", "rich.key", cwd=directory)
    openssl("req", "-new", "-config", "req.cnf", "-utf8", "-multivalue-rdn", "-key", "rich.key",
            "-subj", RICH_SUBJECT, "-out", "rich.csr", cwd=directory)
    openssl("x509", "-req", "-in", "rich.csr", "-CA", pki.ca,
            "-CAkey", str(directory / "ca.key"), "-set_serial", "0x00C0FFEE0001", "-days", "2",
            "-sha256", "-extfile", "rich.ext", "-out", "rich.crt", cwd=directory)
    return pki, str(directory / "rich.key"), str(directory / "rich.crt")


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
