//! The fuzz targets' properties (`rpycd_proto::fuzz_checks`) run as
//! ordinary tests over the captured vectors, deterministic mutations of them,
//! and whatever corpus a local `cargo fuzz` run has left in `fuzz/corpus`.
//! This is what stands in for fuzzing on a machine without nightly, and a
//! cheap regression net everywhere else.

#[path = "support/corpus.rs"]
mod corpus;

use corpus::exercise;
use rpycd_proto::fuzz_checks;

#[test]
fn brine_decoder_holds_its_properties_on_mutated_vectors() {
    assert!(exercise("brine_decode", fuzz_checks::brine_round_trip) > 1000);
}

#[test]
fn frame_decoder_holds_its_properties_on_mutated_vectors() {
    assert!(exercise("frame_decode", fuzz_checks::frames_any_chunking) > 100);
}

#[test]
fn message_decoder_holds_its_properties_on_mutated_vectors() {
    assert!(exercise("message_decode", fuzz_checks::message_round_trip) > 1000);
}

#[test]
fn bulk_strings_read_apart_decode_as_read_whole_on_mutated_vectors() {
    assert!(exercise("bulk_frames", fuzz_checks::bulk_frames_agree) > 1000);
}
