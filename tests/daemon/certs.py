"""Test certificates made with the `openssl` CLI, the way rpyc's docs make them:
a self-signed CA, a server certificate signed by it, client certificates from
that CA and from another one.

    make_pki(directory) -> Pki
    make_trust(pki, directory) -> Trust   (CA bundles that test what a bundle entry may vouch for)

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
[v3_ca_pathlen0]
basicConstraints = critical, CA:TRUE, pathlen:0
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

# `openssl ca`, for CAs whose validity lies wholly in the past or the future
# (this openssl's `x509` has no -not_before/-not_after)
DATED_CA_CONFIG = """\
[ca]
default_ca = dated
[dated]
database = {name}.index
new_certs_dir = .
serial = {name}.serial
default_md = sha256
policy = anything
unique_subject = no
[anything]
commonName = supplied
organizationName = optional
[v3_ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
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

    def ca(self, name, cn, kind="rsa", extensions="v3_ca"):
        key = self.key(f"{name}.key", kind)
        openssl("req", "-x509", "-new", "-config", "req.cnf", "-extensions", extensions,
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

    def v1(self, name, cn, issuer, kind="rsa"):
        """A v1 certificate: `x509 -req` without extensions, as rpyc's docs make clients."""
        key = self.key(f"{name}.key", kind)
        csr = self.path(f"{name}.csr")
        openssl("req", "-new", "-config", "req.cnf", "-key", key,
                "-subj", f"/O=rpycd tests/CN={cn}", "-out", csr, cwd=self.dir)
        signer = ["-signkey", key] if issuer is None else ["-CA", issuer.cert, "-CAkey", issuer.key]
        openssl("x509", "-req", "-in", csr, *signer, "-set_serial", "0x" + secrets.token_hex(16),
                "-days", "2", "-sha256", "-out", self.path(f"{name}.crt"), cwd=self.dir)
        return Pair(key, self.path(f"{name}.crt"))

    def dated_ca(self, name, cn, start, end):
        """A self-signed v3 CA valid from `start` to `end` (YYYYMMDDHHMMSSZ)."""
        key = self.key(f"{name}.key", "rsa")
        csr = self.path(f"{name}.csr")
        openssl("req", "-new", "-config", "req.cnf", "-key", key,
                "-subj", f"/O=rpycd tests/CN={cn}", "-out", csr, cwd=self.dir)
        (self.dir / f"{name}.cnf").write_text(DATED_CA_CONFIG.format(name=name))
        (self.dir / f"{name}.index").write_text("")
        (self.dir / f"{name}.serial").write_text(secrets.token_hex(8) + "\n")
        openssl("ca", "-batch", "-config", f"{name}.cnf", "-selfsign", "-keyfile", key,
                "-in", csr, "-startdate", start, "-enddate", end, "-extensions", "v3_ca",
                "-notext", "-out", self.path(f"{name}.crt"), cwd=self.dir)
        return Pair(key, self.path(f"{name}.crt"))

    def bundle(self, name, *certs):
        path = self.path(f"{name}.pem")
        Path(path).write_text("".join(Path(cert).read_text() for cert in certs))
        return path

    def leaf(self, name, cn, kind, issuer, server):
        usage = "digitalSignature, keyEncipherment" if kind == "rsa" else "digitalSignature"
        extensions = LEAF_EXTENSIONS.format(
            key_usage=usage,
            purpose="serverAuth" if server else "clientAuth",
            san="subjectAltName = DNS:localhost, IP:127.0.0.1\n" if server else "")
        return self.signed(name, cn, kind, issuer, extensions)


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


def rich_client(pki):
    """A client certificate from `pki`'s CA with the names above: what
    getpeercert() turns into its fullest dict."""
    directory = Path(pki.directory)
    (directory / "rich.ext").write_text(RICH_EXTENSIONS)
    openssl("genpkey", *KEY_TYPES["rsa"], "-out", "rich.key", cwd=directory)
    openssl("req", "-new", "-config", "req.cnf", "-utf8", "-multivalue-rdn", "-key", "rich.key",
            "-subj", RICH_SUBJECT, "-out", "rich.csr", cwd=directory)
    openssl("x509", "-req", "-in", "rich.csr", "-CA", pki.ca,
            "-CAkey", str(directory / "ca.key"), "-set_serial", "0x00C0FFEE0001", "-days", "2",
            "-sha256", "-extfile", "rich.ext", "-out", "rich.crt", cwd=directory)
    return Pair(str(directory / "rich.key"), str(directory / "rich.crt"))


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


@dataclass(frozen=True)
class Trust:
    """CA bundles (`bundles`: name -> PEM file) and the client certificates
    each is asked to vouch for (`clients`: name -> Pair)."""
    bundles: dict
    clients: dict


# a client certificate without authorityKeyIdentifier: some issuers here are
# v1 certificates, which have no key identifier to point at
CLIENT_EXTENSIONS = """\
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
"""

CA_WITHOUT_CERT_SIGN = """\
basicConstraints = critical, CA:TRUE
keyUsage = critical, digitalSignature, cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
"""

CA_FOR_SERVERS_ONLY = """\
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
"""


def make_trust(pki, directory):
    """Bundles that each hold one kind of would-be trust anchor next to the
    good CA (`pki.ca`), and clients, v1 and v3, that only it could vouch for:
    - bob: a v3 leaf (CA:FALSE) from the CA; eve-* signed with bob's key;
    - the good CA's own v1 client alice-v1; vic-* signed with alice-v1's key
      (a v1 certificate that is not self-signed);
    - kim-*: from a CA:TRUE certificate whose keyUsage lacks keyCertSign;
    - sam-*: from a CA whose extendedKeyUsage is serverAuth only;
    - carol-*: from a CA that expired in 2020; frank-*: from one valid from 2090;
    - dave-*: from a self-signed v1 root (a valid anchor, as in OpenSSL);
    - ivy-*: from the good CA's intermediate (pathlen:0), trusted only with its root;
    - otto-*: from an intermediate, valid now, of the CA that expired in 2020;
    - tia-*: from a root with pathlen:0; pat-*: from an intermediate below it
      (pat-chain-v3's file holds pat-v3 and that intermediate)."""
    m = _Maker(directory)
    ca = Pair(str(Path(pki.ca).with_suffix(".key")), pki.ca)
    bob = m.leaf("bob", "bob", "rsa", ca, server=False)
    alice_v1 = m.v1("alice-v1", "alice v1", ca)
    kim_ca = m.signed("kim-ca", "CA without keyCertSign", "rsa", ca, CA_WITHOUT_CERT_SIGN)
    sam_ca = m.signed("sam-ca", "CA for servers only", "rsa", ca, CA_FOR_SERVERS_ONLY)
    expired = m.dated_ca("expired-ca", "expired CA", "20200101000000Z", "20200201000000Z")
    future = m.dated_ca("future-ca", "future CA", "20900101000000Z", "20900201000000Z")
    v1_root = m.v1("v1-root", "v1 root", None)
    intermediate = Pair(str(Path(pki.directory) / "intermediate.key"),
                        str(Path(pki.directory) / "intermediate.crt"))
    old_intermediate = m.signed("old-intermediate", "intermediate of the expired CA", "rsa",
                                expired, INTERMEDIATE_EXTENSIONS)
    tight = m.ca("tight-ca", "root with pathlen 0", extensions="v3_ca_pathlen0")
    below_tight = m.signed("below-tight", "intermediate below pathlen 0", "rsa", tight,
                           INTERMEDIATE_EXTENSIONS)
    clients = {"alice-v3": pki.alice, "alice-v1": alice_v1}
    for name, issuer in (("eve", bob), ("vic", alice_v1), ("kim", kim_ca), ("sam", sam_ca),
                         ("carol", expired), ("frank", future), ("dave", v1_root),
                         ("ivy", intermediate), ("otto", old_intermediate), ("tia", tight),
                         ("pat", below_tight)):
        clients[f"{name}-v3"] = m.signed(f"{name}-v3", f"{name} v3", "rsa", issuer,
                                         CLIENT_EXTENSIONS)
        clients[f"{name}-v1"] = m.v1(f"{name}-v1", f"{name} v1", issuer)
    pat = clients["pat-v3"]
    clients["pat-chain-v3"] = Pair(pat.key, m.bundle("pat-chain-v3", pat.cert, below_tight.cert))
    bundles = {
        "ca": pki.ca,
        "ca+bob": m.bundle("ca+bob", pki.ca, bob.cert),
        "bob": m.bundle("bob-only", bob.cert),
        "ca+alice-v1": m.bundle("ca+alice-v1", pki.ca, alice_v1.cert),
        "ca+kim-ca": m.bundle("ca+kim-ca", pki.ca, kim_ca.cert),
        "ca+sam-ca": m.bundle("ca+sam-ca", pki.ca, sam_ca.cert),
        "ca+expired": m.bundle("ca+expired", pki.ca, expired.cert),
        "ca+future": m.bundle("ca+future", pki.ca, future.cert),
        "v1-root": m.bundle("v1-root", v1_root.cert),
        "ca+intermediate": m.bundle("ca+intermediate", pki.ca, intermediate.cert),
        "intermediate": m.bundle("intermediate-only", intermediate.cert),
        "expired+intermediate": m.bundle("expired+intermediate", expired.cert,
                                         old_intermediate.cert),
        "tight": m.bundle("tight", tight.cert),
        "tight+intermediate": m.bundle("tight+intermediate", tight.cert, below_tight.cert),
    }
    return Trust(bundles=bundles, clients=clients)
