//! The `proxy_header` fuzz target's property run as an ordinary test: over
//! the committed seeds (headers as load balancers send them), deterministic
//! mutants of them, and whatever corpus a local `cargo fuzz` run has left.

#[path = "support/corpus.rs"]
mod corpus;

use rpycd_proto::fuzz_checks::proxy_header;
use rpycd_proto::proxy::{parse, Parsed};

const MUTANTS_PER_SEED: usize = 300;

#[test]
fn the_seeds_are_headers_of_every_kind() {
    let (mut proxied, mut local, mut invalid) = (0, 0, 0);
    for data in corpus::inputs("seeds", "proxy_header") {
        match parse(&data) {
            Parsed::Proxied { .. } => proxied += 1,
            Parsed::Local { .. } => local += 1,
            Parsed::Invalid(_) => invalid += 1,
            other => panic!("{data:?}: {other:?}"),
        }
    }
    assert!(
        proxied >= 5 && local >= 4 && invalid >= 1,
        "{proxied} {local} {invalid}"
    );
}

#[test]
fn proxy_header_parser_holds_its_properties_on_seeds_and_mutants() {
    let mut headers = 0;
    let tried = corpus::exercise_with("proxy_header", MUTANTS_PER_SEED, |input| {
        proxy_header(input);
        headers += usize::from(parse(input).length().is_some());
    });
    println!("proxy_header: {tried} inputs, {headers} of them headers");
    assert!(
        tried > 3000 && headers > 300,
        "{tried} inputs, {headers} headers"
    );
}
