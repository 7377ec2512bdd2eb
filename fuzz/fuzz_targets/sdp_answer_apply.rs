//! Any bytes as a client's answer, applied to a real server-side peer connection after a real
//! offer (slow: a connection per input); see `harness/sdp_answer_apply.rs`.
#![no_main]

include!("../harness/sdp_answer_apply.rs");

libfuzzer_sys::fuzz_target!(|data: &[u8]| sdp_answer_apply(data));
