//! The fuzz targets' properties (`rpycd::protocol::fuzz_checks`) run as
//! ordinary tests over the captured vectors, deterministic mutations of them,
//! and whatever corpus a local `cargo fuzz` run has left in `fuzz/corpus`.
//! This is what stands in for fuzzing on a machine without nightly, and a
//! cheap regression net everywhere else.

mod support;

use std::path::Path;

use rpycd::protocol::fuzz_checks;
use support::{field, hex};

/// Mutants made of each seed: enough to hit every kind of damage at several
/// positions, few enough to keep the test a few seconds long.
const MUTANTS_PER_SEED: usize = 40;

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
    match rng.below(6) {
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
        _ => {
            // a length or count field pushed to an extreme
            if data.len() >= 4 {
                let at = rng.below(data.len() - 3);
                data[at..at + 4].copy_from_slice(&[0xff, 0xff, 0xff, 0xf0]);
            }
        }
    }
    data
}

fn seeds(file: &str, key: &str) -> Vec<Vec<u8>> {
    support::vectors(file)
        .iter()
        .map(|entry| hex(field(entry, key)))
        .collect()
}

fn local_corpus(target: &str) -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| std::fs::read(entry.ok()?.path()).ok())
        .collect()
}

fn exercise(target: &str, seeds: Vec<Vec<u8>>, check: fn(&[u8])) -> usize {
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    let mut inputs = 0;
    for seed in seeds.iter().chain(&local_corpus(target)) {
        check(seed);
        for _ in 0..MUTANTS_PER_SEED {
            check(&mutate(seed, &mut rng));
        }
        inputs += 1 + MUTANTS_PER_SEED;
    }
    println!("{target}: {inputs} inputs");
    inputs
}

#[test]
fn brine_decoder_holds_its_properties_on_mutated_vectors() {
    let mut seeds = seeds("brine.json", "hex");
    seeds.extend(
        self::seeds("messages.json", "hex")
            .iter()
            .map(|m| m[1..].to_vec()),
    );
    assert!(exercise("brine_decode", seeds, fuzz_checks::brine_round_trip) > 1000);
}

#[test]
fn frame_decoder_holds_its_properties_on_mutated_vectors() {
    let seeds = seeds("frames.json", "frame_hex");
    assert!(exercise("frame_decode", seeds, fuzz_checks::frames_any_chunking) > 100);
}

#[test]
fn message_decoder_holds_its_properties_on_mutated_vectors() {
    let seeds = seeds("messages.json", "hex");
    assert!(exercise("message_decode", seeds, fuzz_checks::message_round_trip) > 1000);
}
