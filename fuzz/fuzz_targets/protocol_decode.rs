//! Any bytes as a frame for the protocol decoder (both sides); see `harness/protocol_decode.rs`.
#![no_main]

include!("../harness/protocol_decode.rs");

libfuzzer_sys::fuzz_target!(|data: &[u8]| protocol_decode(data));
