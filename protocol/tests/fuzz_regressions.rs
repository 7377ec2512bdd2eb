//! Replays the `protocol_decode` fuzz target's saved inputs — crashes it found (kept after the
//! fix) and hand-made nasty frames — through the very code the fuzzer runs (`fuzz/harness/`).
//! `cargo xtask fuzz` adds any new crash input to `fuzz/regressions/protocol_decode/`.

include!("../../fuzz/harness/protocol_decode.rs");
include!("../../fuzz/harness/replay.rs");

#[test]
fn saved_fuzz_inputs_and_golden_frames_keep_every_property() {
    replay(
        &["fuzz/regressions/protocol_decode", "protocol/tests/golden"],
        &[("protocol_decode", protocol_decode)],
    );
}
