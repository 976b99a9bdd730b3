//! The `x509_parse` fuzz target's property (`rpycd_proto::x509::fuzz_parse`)
//! run as an ordinary test over the committed seeds (real certificates made
//! by `openssl`, see `fuzz/x509_seeds.py`), deterministic mutants of them,
//! and whatever corpus a local `cargo fuzz` run left in `fuzz/corpus/x509_parse`.

#[path = "support/corpus.rs"]
mod corpus;

use std::path::{Path, PathBuf};

use rpycd_proto::x509::{self, Certificate};

/// Enough mutants to damage every part of a certificate at several places;
/// the parser is cheap, so this stays well under a second.
const MUTANTS_PER_SEED: usize = 400;

fn files_in(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<_> = entries
        .filter_map(|entry| {
            let path = entry.ok()?.path();
            let data = std::fs::read(&path).ok()?;
            Some((path, data))
        })
        .collect();
    files.sort();
    files
}

fn seeds() -> Vec<(PathBuf, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/seeds/x509_parse");
    let seeds = files_in(&dir);
    assert!(
        seeds.len() >= 10,
        "the committed x509_parse seeds are missing"
    );
    seeds
}

fn name_of(path: &Path) -> String {
    path.file_stem()
        .map(|stem| stem.to_string_lossy().into_owned())
        .unwrap_or_default()
}

#[test]
fn every_seed_is_a_certificate_that_reads() {
    for (path, der) in seeds() {
        let cert =
            Certificate::parse(&der).unwrap_or_else(|| panic!("{} does not read", path.display()));
        let name = name_of(&path);
        assert_eq!(cert.version == 0, name.starts_with("v1-"), "{name}");
        assert!(cert.subject_cn().is_some(), "{name}");
        assert!(cert.not_before <= cert.not_after, "{name}");
    }
}

#[test]
fn seeds_are_judged_as_trust_anchors_as_openssl_judges_them() {
    for (path, der) in seeds() {
        let name = name_of(&path);
        let cert = Certificate::parse(&der).expect("reads");
        let may_anchor = match name.as_str() {
            "v1-rsa-self-signed-root" | "v1-rsa-year-0000" => true,
            n if n.starts_with("v1-") => false,
            n if n.contains("leaf") || n.contains("client") => false,
            "v3-rsa-ca-without-keycertsign" | "v3-rsa-ca-serverauth-only" => false,
            n if n.contains("-ca") || n.contains("intermediate") => true,
            other => panic!("no expectation for the seed {other}"),
        };
        assert_eq!(
            cert.anchor_refusal().is_none(),
            may_anchor,
            "{name}: {:?}",
            cert.anchor_refusal()
        );
    }
}

#[test]
fn the_year_0000_seeds_read_without_overflow() {
    for (path, der) in seeds() {
        if name_of(&path).contains("year-0000") {
            let cert = Certificate::parse(&der).expect("reads");
            assert_eq!(cert.not_before, -62_167_219_200, "{}", path.display());
        }
    }
}

#[test]
fn seeds_and_mutants_hold_the_property() {
    let mut read = 0;
    let inputs = corpus::exercise_with("x509_parse", MUTANTS_PER_SEED, |input| {
        x509::fuzz_parse(input);
        read += usize::from(Certificate::parse(input).is_some());
    });
    println!("x509_parse: {inputs} inputs, {read} of them still read");
    assert!(inputs > 5000);
    // some damage (inside a signature or a key, a name's text) still reads:
    // the property was checked on readable inputs too, not only on refusals
    assert!(read > 100, "{read}");
}
