#![no_main]

use libfuzzer_sys::fuzz_target;
use rpycd_proto::fuzz_checks;

fuzz_target!(|data: &[u8]| fuzz_checks::proxy_header(data));
