//! Replays the SDP fuzz targets' saved inputs — crashes they found (kept after the fix) and
//! hand-made nasty answers — through the very code the fuzzer runs (`fuzz/harness/`): the
//! server's answer checks, and applying the answer to a real peer connection after an offer.
//! `cargo xtask fuzz` adds any new crash input to `fuzz/regressions/<target>/`.

include!("../../fuzz/harness/sdp_answer.rs");
include!("../../fuzz/harness/sdp_answer_apply.rs");
include!("../../fuzz/harness/replay.rs");

/// One test for both targets: the replay swaps the process-wide panic hook, and the two
/// targets' inputs are interchangeable (both are answer SDPs).
#[test]
fn saved_fuzz_inputs_and_seeds_keep_every_property() {
    replay(
        &[
            "fuzz/regressions/sdp_answer",
            "fuzz/regressions/sdp_answer_apply",
            "fuzz/seeds/sdp",
        ],
        &[
            ("sdp_answer", sdp_answer),
            ("sdp_answer_apply", sdp_answer_apply),
        ],
    );
}
