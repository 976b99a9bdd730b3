//! The brine decoder's allocations stay within its memory budget for every
//! input of the brine fuzz corpus and their mutants, measured by a counting
//! allocator (alone in this test binary, so that no other test's
//! allocations are counted).

#[path = "support/corpus.rs"]
mod corpus;
#[path = "support/peak_alloc.rs"]
mod peak_alloc;

use rpycd_proto::fuzz_checks;

#[global_allocator]
static ALLOC: peak_alloc::PeakAlloc = peak_alloc::PeakAlloc::new();

#[test]
fn decoding_never_allocates_past_its_budget() {
    // (one test only: a second, running beside it, would be counted)
    let peak = ALLOC.peak_during(&mut || drop(std::hint::black_box(vec![1u8; 1 << 20])));
    assert!(peak >= 1 << 20, "the measure sees an allocation: {peak}");
    let tried = corpus::exercise("brine_memory", |data| {
        fuzz_checks::decoding_stays_in_budget(data, |work| ALLOC.peak_during(work))
    });
    assert!(tried > 1000);
}
