//! The `registry_request` fuzz target's property run as an ordinary test:
//! over the committed seeds (requests captured from rpyc's own registry
//! clients), deterministic mutants of them, and whatever corpus a local
//! `cargo fuzz` run has left in `fuzz/corpus/registry_request`.

use std::path::{Path, PathBuf};

use rpycd::registry::fuzz_checks::registry_request;
use rpycd::registry::protocol::Request;

/// Mutants per seed: every kind of damage at many positions, still well
/// under a second in all.
const MUTANTS_PER_SEED: usize = 300;

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
        5 if !data.is_empty() => {
            // a brine tag swapped for a neighbour (a tuple for a longer
            // one, a string for another kind): the shapes the decoder
            // tells apart
            let at = rng.below(data.len());
            data[at] = data[at].wrapping_add(1 + rng.below(3) as u8);
        }
        _ => {
            // a length or count pushed to an extreme
            if data.len() >= 4 {
                let at = rng.below(data.len() - 3);
                data[at..at + 4].copy_from_slice(&[0xff, 0xff, 0xff, 0xf0]);
            }
        }
    }
    data
}

fn files(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<(PathBuf, Vec<u8>)> = entries
        .filter_map(|entry| {
            let path = entry.ok()?.path();
            let data = std::fs::read(&path).ok()?;
            Some((path, data))
        })
        .collect();
    files.sort();
    files
}

fn fuzz_dir(kind: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz")
        .join(kind)
        .join("registry_request")
}

#[test]
fn the_seeds_are_real_requests_of_every_kind() {
    let seeds = files(&fuzz_dir("seeds"));
    let mut kinds = [false; 4];
    for (path, data) in &seeds {
        let request =
            Request::decode(data).unwrap_or_else(|error| panic!("{}: {error}", path.display()));
        let kind = match request {
            Request::Register { .. } => 0,
            Request::Unregister { .. } => 1,
            Request::Query { .. } => 2,
            Request::List { .. } => 3,
        };
        kinds[kind] = true;
    }
    assert_eq!(kinds, [true; 4], "REGISTER, UNREGISTER, QUERY and LIST");
}

#[test]
fn registry_request_decoder_holds_its_properties_on_seeds_and_mutants() {
    let seeds = files(&fuzz_dir("seeds"));
    assert!(
        !seeds.is_empty(),
        "no seeds in {}",
        fuzz_dir("seeds").display()
    );
    let (tried, decoded) = exercise(&seeds);
    println!("registry_request: {tried} mutants of the seeds, {decoded} of them requests");
    // the mutants reach past the decoder's first refusal often enough for
    // the round trip and prefix checks to run on other requests than the seeds
    assert!(decoded > tried / 50, "{decoded} of {tried} mutants decoded");
    let local = files(&fuzz_dir("corpus"));
    let (tried, decoded) = exercise(&local);
    println!("registry_request: {tried} mutants of a local corpus, {decoded} of them requests");
}

/// Checks each input and its mutants; returns how many mutants were
/// tried and how many of them decoded as requests.
fn exercise(inputs: &[(PathBuf, Vec<u8>)]) -> (usize, usize) {
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    let (mut tried, mut decoded) = (0, 0);
    for (_, input) in inputs {
        registry_request(input);
        for _ in 0..MUTANTS_PER_SEED {
            let mutant = mutate(input, &mut rng);
            registry_request(&mutant);
            tried += 1;
            decoded += usize::from(Request::decode(&mutant).is_ok());
        }
    }
    (tried, decoded)
}
