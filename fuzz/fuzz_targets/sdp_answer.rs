//! Any bytes as the SDP of a client's answer, through the server's checks and the `webrtc` SDP
//! parser; see `harness/sdp_answer.rs`.
#![no_main]

include!("../harness/sdp_answer.rs");

libfuzzer_sys::fuzz_target!(|data: &[u8]| sdp_answer(data));
