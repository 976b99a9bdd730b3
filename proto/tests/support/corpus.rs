//! The fuzz targets' inputs replayed as ordinary tests: their committed
//! seeds and deterministic mutants of them, their committed regression
//! inputs, and whatever a local `cargo fuzz` run left behind.

// each test binary that includes this uses a part of it
#![allow(dead_code)]

use std::path::Path;

/// Mutants made of each seed: enough to hit every kind of damage at several
/// positions, few enough to keep the test a few seconds long.
pub const MUTANTS_PER_SEED: usize = 40;

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
    match rng.below(9) {
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
            // a tag swapped for a neighbour (a tuple for a longer one, a
            // string for another kind): the shapes decoders tell apart
            let at = rng.below(data.len());
            data[at] = data[at].wrapping_add(1 + rng.below(3) as u8);
        }
        6 if data.len() > 2 => {
            // a one-byte length (DER's, brine's short forms): long forms,
            // zero, all ones
            let at = 1 + rng.below(data.len() - 1);
            data[at] = [0x80, 0x81, 0x84, 0x85, 0x00, 0x7f, 0xff][rng.below(7)];
        }
        7 => {
            // one digit of a DER time turned into another character
            if let Some(at) = data.windows(2).position(|w| w == [0x17, 0x0d]) {
                let at = at + 2 + rng.below(13);
                if at < data.len() {
                    data[at] = [b'0', b'9', b'+', b'-', b' ', 0xff][rng.below(6)];
                }
            }
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

/// Inputs under `fuzz/<folder>/<target>`: the committed seeds
/// (`fuzz/make-seeds` writes them from the vectors), the committed inputs
/// that once broke a property (`regressions`), and whatever a local
/// `cargo fuzz` run left in `corpus`.
pub fn inputs(folder: &str, target: &str) -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz")
        .join(folder)
        .join(target);
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<_> = entries
        .filter_map(|entry| Some(entry.ok()?.path()))
        .collect();
    files.sort();
    files
        .iter()
        .filter_map(|path| std::fs::read(path).ok())
        .collect()
}

/// Runs `check` over the target's seeds and their mutants, its regression
/// inputs and its local corpus; returns how many inputs it tried.
pub fn exercise(target: &str, check: impl FnMut(&[u8])) -> usize {
    exercise_with(target, MUTANTS_PER_SEED, check)
}

/// [`exercise`] with `mutants` mutants of each seed.
pub fn exercise_with(target: &str, mutants: usize, mut check: impl FnMut(&[u8])) -> usize {
    let seeds = inputs("seeds", target);
    assert!(
        !seeds.is_empty(),
        "no seeds in fuzz/seeds/{target}: run fuzz/make-seeds"
    );
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    let mut tried = 0;
    for seed in &seeds {
        check(seed);
        for _ in 0..mutants {
            check(&mutate(seed, &mut rng));
        }
        tried += 1 + mutants;
    }
    for input in inputs("regressions", target)
        .iter()
        .chain(&inputs("corpus", target))
    {
        check(input);
        tried += 1;
    }
    println!("{target}: {tried} inputs");
    tried
}
