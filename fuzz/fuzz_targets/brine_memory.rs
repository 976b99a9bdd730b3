#![no_main]

use libfuzzer_sys::fuzz_target;
use rpycd_proto::fuzz_checks;

#[path = "../../proto/tests/support/peak_alloc.rs"]
mod peak_alloc;

#[global_allocator]
static ALLOC: peak_alloc::PeakAlloc = peak_alloc::PeakAlloc::new();

fuzz_target!(|data: &[u8]| fuzz_checks::decoding_stays_in_budget(data, |work| ALLOC
    .peak_during(work)));
