//! The `x509_parse` fuzz target's property (`rpycd::server::x509::fuzz_parse`)
//! run as an ordinary test over the committed seeds (real certificates made
//! by `openssl`, see `fuzz/x509_seeds.py`), deterministic mutants of them,
//! and whatever corpus a local `cargo fuzz` run left in `fuzz/corpus/x509_parse`.

use std::path::{Path, PathBuf};

use rpycd::server::x509::{self, Certificate};

/// Enough mutants to damage every part of a certificate at several places;
/// the parser is cheap, so this stays well under a second.
const MUTANTS_PER_SEED: usize = 400;

struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, bound: usize) -> usize {
        (self.next() % bound.max(1) as u64) as usize
    }
}

/// One random damage: a bit flipped, a byte replaced, cut short, a byte
/// inserted, a piece repeated, or a DER length byte pushed to an extreme.
fn mutate(seed: &[u8], rng: &mut XorShift) -> Vec<u8> {
    let mut data = seed.to_vec();
    match rng.below(7) {
        0 if !data.is_empty() => {
            let at = rng.below(data.len());
            data[at] ^= 1 << rng.below(8);
        }
        1 if !data.is_empty() => {
            let at = rng.below(data.len());
            data[at] = rng.next() as u8;
        }
        2 => data.truncate(rng.below(data.len() + 1)),
        3 => {
            let at = rng.below(data.len() + 1);
            data.insert(at, rng.next() as u8);
        }
        4 if !data.is_empty() => {
            let start = rng.below(data.len());
            let end = (start + 1 + rng.below(16)).min(data.len());
            let piece = data[start..end].to_vec();
            let at = rng.below(data.len() + 1);
            data.splice(at..at, piece);
        }
        5 if data.len() > 2 => {
            // a length octet: long forms, zero, all ones
            let at = 1 + rng.below(data.len() - 1);
            data[at] = [0x80, 0x81, 0x84, 0x85, 0x00, 0x7f, 0xff][rng.below(7)];
        }
        _ => {
            // one digit of a time turned into another character
            if let Some(at) = data.windows(2).position(|w| w == [0x17, 0x0d]) {
                let at = at + 2 + rng.below(13);
                if at < data.len() {
                    data[at] = [b'0', b'9', b'+', b'-', b' ', 0xff][rng.below(6)];
                }
            }
        }
    }
    data
}

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

fn fuzz_dir(which: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz")
        .join(which)
        .join("x509_parse")
}

fn seeds() -> Vec<(PathBuf, Vec<u8>)> {
    let seeds = files_in(&fuzz_dir("seeds"));
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
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    let mut inputs = 0;
    let mut read = 0;
    for (_, seed) in seeds().iter().chain(&files_in(&fuzz_dir("corpus"))) {
        x509::fuzz_parse(seed);
        for _ in 0..MUTANTS_PER_SEED {
            let mutant = mutate(seed, &mut rng);
            x509::fuzz_parse(&mutant);
            read += usize::from(Certificate::parse(&mutant).is_some());
        }
        inputs += 1 + MUTANTS_PER_SEED;
    }
    println!("x509_parse: {inputs} inputs, {read} mutants still read");
    assert!(inputs > 5000);
    // some damage (inside a signature or a key, a name's text) still reads:
    // the property was checked on readable mutants too, not only on refusals
    assert!(read > 100, "{read}");
}
