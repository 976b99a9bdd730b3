#![no_main]

use libfuzzer_sys::fuzz_target;
use rpycd_proto::x509;

fuzz_target!(|data: &[u8]| x509::fuzz_parse(data));
