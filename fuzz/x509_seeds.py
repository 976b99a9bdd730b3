#!/usr/bin/env python3
"""Makes fuzz/seeds/x509_parse/: real certificates, in DER, made with the
`openssl` CLI by the test suite's own recipes (tests/daemon/certs.py), one
of each shape the parser meets: v1 and v3, CA and leaf, with and without
SAN, RSA, EC and Ed25519 keys, UTCTime and GeneralizedTime, the
year-0000 date that once overflowed, and a client certificate with every
kind of name and subjectAltName.

    python3 fuzz/x509_seeds.py      (rewrites the seed directory)
"""

import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests" / "daemon"))

from certs import _Maker, make_pki, make_trust, openssl, rich_client  # noqa: E402


def der(pem_path, out):
    subprocess.run(["openssl", "x509", "-in", pem_path, "-outform", "DER", "-out", str(out)],
                   check=True, timeout=60)


def main():
    seeds = HERE / "seeds" / "x509_parse"
    seeds.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        pki = make_pki(Path(tmp) / "pki")
        trust = make_trust(pki, Path(tmp) / "trust")
        m = _Maker(Path(tmp) / "more")
        ec_ca = m.ca("ec-ca", "EC CA", kind="ecdsa")
        ec_v1 = m.v1("ec-v1", "EC v1 client", ec_ca, kind="ecdsa")
        year_zero = m.dated_ca("year-zero", "year 0000 CA", "00000101000000Z", "99991231235959Z")
        # `openssl ca` without -extensions: a v1 certificate dated 0000
        openssl("ca", "-batch", "-config", "year-zero.cnf", "-selfsign", "-keyfile",
                year_zero.key, "-in", m.path("year-zero.csr"), "-startdate", "00000101000000Z",
                "-enddate", "00010101000000Z", "-notext", "-out", m.path("year-zero-v1.crt"),
                cwd=m.dir)
        shapes = {
            "v3-rsa-ca": pki.ca,
            "v3-ec-ca": ec_ca.cert,
            "v3-rsa-intermediate-pathlen0": str(Path(pki.directory) / "intermediate.crt"),
            "v3-rsa-ca-without-keycertsign": trust_bundle_entry(trust, "ca+kim-ca"),
            "v3-rsa-leaf-san": pki.servers["rsa"].cert,
            "v3-ec-leaf-san": pki.servers["ecdsa"].cert,
            "v3-ed25519-leaf-san": pki.servers["ed25519"].cert,
            "v3-rsa-client-ca-false": pki.alice.cert,
            # every kind of name getpeercert() shows (x509/peercert.rs)
            "v3-rsa-client-rich-names": rich_client(pki).cert,
            "v3-rsa-ca-serverauth-only": trust_bundle_entry(trust, "ca+sam-ca"),
            "v3-rsa-ca-expired-2020": trust_bundle_entry(trust, "ca+expired"),
            "v3-rsa-ca-generalizedtime-2090": trust_bundle_entry(trust, "ca+future"),
            "v3-rsa-ca-year-0000": year_zero.cert,
            "v1-rsa-year-0000": m.path("year-zero-v1.crt"),
            "v1-rsa-client": trust.clients["alice-v1"].cert,
            "v1-rsa-self-signed-root": trust.bundles["v1-root"],
            "v1-ec-client": ec_v1.cert,
        }
        for name, pem in shapes.items():
            der(pem, seeds / f"{name}.der")


def trust_bundle_entry(trust, bundle):
    """The second certificate of a two-certificate bundle."""
    pem = Path(trust.bundles[bundle]).read_text()
    end = "-----END CERTIFICATE-----"
    second = pem.split(end)[1] + end + "\n"
    path = Path(trust.bundles[bundle]).with_suffix(".second.pem")
    path.write_text(second.lstrip())
    return str(path)


if __name__ == "__main__":
    main()
