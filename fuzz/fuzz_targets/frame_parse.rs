//! Fuzz target: any bytes through framing, parsing, classification and
//! every encoder (see `sluice::harness`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    sluice::harness::frame_parse_all(data);
});
