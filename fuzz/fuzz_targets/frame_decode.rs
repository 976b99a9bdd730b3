#![no_main]

use libfuzzer_sys::fuzz_target;
use rpycd_proto::fuzz_checks;

fuzz_target!(|data: &[u8]| fuzz_checks::frames_any_chunking(data));
