//! The `registry_request` fuzz target's property run as an ordinary test:
//! over the committed seeds (requests captured from rpyc's own registry
//! clients), deterministic mutants of them, and whatever corpus a local
//! `cargo fuzz` run has left in `fuzz/corpus/registry_request`.

#[path = "support/corpus.rs"]
mod corpus;

use rpycd_proto::fuzz_checks::registry_request;
use rpycd_proto::registry::Request;

/// Mutants per seed: every kind of damage at many positions, still well
/// under a second in all (the seeds are few and small).
const MUTANTS_PER_SEED: usize = 300;

#[test]
fn the_seeds_are_real_requests_of_every_kind() {
    let mut kinds = [false; 4];
    for data in corpus::inputs("seeds", "registry_request") {
        let request = Request::decode(&data).unwrap_or_else(|error| panic!("{data:?}: {error}"));
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
    let mut decoded = 0;
    let tried = corpus::exercise_with("registry_request", MUTANTS_PER_SEED, |input| {
        registry_request(input);
        decoded += usize::from(Request::decode(input).is_ok());
    });
    println!("registry_request: {tried} inputs, {decoded} of them requests");
    // the mutants reach past the decoder's first refusal often enough for
    // the round trip and prefix checks to run on other requests than the seeds
    assert!(decoded > tried / 50, "{decoded} of {tried} inputs decoded");
}
