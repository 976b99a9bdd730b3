"""Test certificates made with the `openssl` CLI, the way rpyc's docs make them:
a self-signed CA, a server certificate signed by it, client certificates from
that CA and from another one.

    make_pki(directory) -> Pki

Everything is PEM. Every openssl run is bounded by a timeout.
"""

import secrets
import subprocess
from dataclasses import dataclass
from pathlib import Path

OPENSSL_TIMEOUT = 60

# A minimal configuration, so that the machine's openssl.cnf adds nothing.
REQ_CONFIG = """\
[req]
distinguished_name = dn
prompt = no
[dn]
[v3_ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
"""

LEAF_EXTENSIONS = """\
basicConstraints = critical, CA:FALSE
keyUsage = critical, {key_usage}
extendedKeyUsage = {purpose}
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
{san}"""

INTERMEDIATE_EXTENSIONS = """\
basicConstraints = critical, CA:TRUE, pathlen:0
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
"""

# `openssl genpkey` arguments for each key type
KEY_TYPES = {
    "rsa": ["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"],
    "ecdsa": ["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:prime256v1"],
    "ed25519": ["-algorithm", "ED25519"],
}


def openssl(*args, cwd):
    out = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True,
                         timeout=OPENSSL_TIMEOUT)
    if out.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(args)} failed ({out.returncode}):\n{out.stderr}")
    return out.stdout


@dataclass(frozen=True)
class Pair:
    """A private key and its certificate (the certificate file may hold a chain)."""
    key: str
    cert: str


@dataclass(frozen=True)
class Pki:
    ca: str                 # the CA that signs the server and alice
    other_ca: str           # the CA that signs mallory
    servers: dict           # key type -> Pair, CN=localhost, SAN DNS:localhost, IP:127.0.0.1
    chained_server: Pair    # RSA server signed by an intermediate; cert file = leaf + intermediate
    alice: Pair             # client certificate from `ca`
    mallory: Pair           # client certificate from `other_ca`
    directory: str


class _Maker:
    def __init__(self, directory):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "req.cnf").write_text(REQ_CONFIG)

    def path(self, name):
        return str(self.dir / name)

    def key(self, name, kind):
        openssl("genpkey", *KEY_TYPES[kind], "-out", self.path(name), cwd=self.dir)
        return self.path(name)

    def ca(self, name, cn, kind="rsa"):
        key = self.key(f"{name}.key", kind)
        openssl("req", "-x509", "-new", "-config", "req.cnf", "-extensions", "v3_ca",
                "-key", key, "-subj", f"/O=rpycd tests/CN={cn}", "-days", "3",
                "-sha256", "-out", self.path(f"{name}.crt"), cwd=self.dir)
        return Pair(key, self.path(f"{name}.crt"))

    def signed(self, name, cn, kind, issuer, extensions):
        key = self.key(f"{name}.key", kind)
        csr = self.path(f"{name}.csr")
        openssl("req", "-new", "-config", "req.cnf", "-key", key,
                "-subj", f"/O=rpycd tests/CN={cn}", "-out", csr, cwd=self.dir)
        ext = self.dir / f"{name}.ext"
        ext.write_text(extensions)
        digest = [] if kind == "ed25519" else ["-sha256"]
        openssl("x509", "-req", "-in", csr, "-CA", issuer.cert, "-CAkey", issuer.key,
                "-set_serial", "0x" + secrets.token_hex(16), "-days", "2", *digest,
                "-extfile", str(ext), "-out", self.path(f"{name}.crt"), cwd=self.dir)
        return Pair(key, self.path(f"{name}.crt"))

    def leaf(self, name, cn, kind, issuer, server):
        usage = "digitalSignature, keyEncipherment" if kind == "rsa" else "digitalSignature"
        extensions = LEAF_EXTENSIONS.format(
            key_usage=usage,
            purpose="serverAuth" if server else "clientAuth",
            san="subjectAltName = DNS:localhost, IP:127.0.0.1\n" if server else "")
        return self.signed(name, cn, kind, issuer, extensions)


def make_pki(directory):
    m = _Maker(directory)
    ca = m.ca("ca", "rpycd test CA")
    other = m.ca("other-ca", "another CA")
    servers = {kind: m.leaf(f"server-{kind}", "localhost", kind, ca, server=True)
               for kind in KEY_TYPES}
    intermediate = m.signed("intermediate", "rpycd intermediate CA", "rsa", ca,
                            INTERMEDIATE_EXTENSIONS)
    leaf = m.leaf("server-chained", "localhost", "rsa", intermediate, server=True)
    chain = m.path("server-chained-chain.crt")
    Path(chain).write_text(Path(leaf.cert).read_text() + Path(intermediate.cert).read_text())
    return Pki(
        ca=ca.cert,
        other_ca=other.cert,
        servers=servers,
        chained_server=Pair(leaf.key, chain),
        alice=m.leaf("alice", "alice", "rsa", ca, server=False),
        mallory=m.leaf("mallory", "mallory", "rsa", other, server=False),
        directory=str(m.dir),
    )
