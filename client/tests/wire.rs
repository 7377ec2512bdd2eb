//! The client's wire path (the browser's `JSON.parse` read by the protocol's `FromTree`
//! decoder, and its `ToJson` writer, which keep serde out of the bundle) against serde_json,
//! in the browser: every golden frame and thousands of its mutations get the same answer,
//! every golden client frame encodes to the golden text, refusals stay refusals, and the
//! fuzzers' nasty inputs never panic.
#![cfg(target_arch = "wasm32")]

use client::socket::decode;
use protocol::{ClientMessage, DecodeError, ServerMessage, MAX_SERVER_FRAME_BYTES};
use serde_json::Value;
use wasm_bindgen_test::{wasm_bindgen_test, wasm_bindgen_test_configure};

wasm_bindgen_test_configure!(run_in_browser);

/// The protocol's golden frames (`protocol/tests/golden`).
const GOLDEN: &[(&str, &str)] = &[
    (
        "client_candidate.json",
        include_str!("../../protocol/tests/golden/client_candidate.json"),
    ),
    (
        "client_channel_join.json",
        include_str!("../../protocol/tests/golden/client_channel_join.json"),
    ),
    (
        "client_channel_join_with_token.json",
        include_str!("../../protocol/tests/golden/client_channel_join_with_token.json"),
    ),
    (
        "client_channel_leave.json",
        include_str!("../../protocol/tests/golden/client_channel_leave.json"),
    ),
    (
        "client_join.json",
        include_str!("../../protocol/tests/golden/client_join.json"),
    ),
    (
        "client_join_reconnecting.json",
        include_str!("../../protocol/tests/golden/client_join_reconnecting.json"),
    ),
    (
        "client_leave.json",
        include_str!("../../protocol/tests/golden/client_leave.json"),
    ),
    (
        "client_renegotiate_tracks.json",
        include_str!("../../protocol/tests/golden/client_renegotiate_tracks.json"),
    ),
    (
        "client_renegotiate_tracks_for_a_screen.json",
        include_str!("../../protocol/tests/golden/client_renegotiate_tracks_for_a_screen.json"),
    ),
    (
        "client_renegotiate_tracks_ice_restart.json",
        include_str!("../../protocol/tests/golden/client_renegotiate_tracks_ice_restart.json"),
    ),
    (
        "client_sdp_answer.json",
        include_str!("../../protocol/tests/golden/client_sdp_answer.json"),
    ),
    (
        "client_send_chat_message.json",
        include_str!("../../protocol/tests/golden/client_send_chat_message.json"),
    ),
    (
        "client_update_peer_metadata.json",
        include_str!("../../protocol/tests/golden/client_update_peer_metadata.json"),
    ),
    (
        "client_update_track_metadata.json",
        include_str!("../../protocol/tests/golden/client_update_track_metadata.json"),
    ),
    (
        "server_candidate.json",
        include_str!("../../protocol/tests/golden/server_candidate.json"),
    ),
    (
        "server_channel_join_error.json",
        include_str!("../../protocol/tests/golden/server_channel_join_error.json"),
    ),
    (
        "server_channel_joined.json",
        include_str!("../../protocol/tests/golden/server_channel_joined.json"),
    ),
    (
        "server_chat_message.json",
        include_str!("../../protocol/tests/golden/server_chat_message.json"),
    ),
    (
        "server_error.json",
        include_str!("../../protocol/tests/golden/server_error.json"),
    ),
    (
        "server_media_error.json",
        include_str!("../../protocol/tests/golden/server_media_error.json"),
    ),
    (
        "server_peer_accepted.json",
        include_str!("../../protocol/tests/golden/server_peer_accepted.json"),
    ),
    (
        "server_peer_accepted_with_chat_and_token.json",
        include_str!("../../protocol/tests/golden/server_peer_accepted_with_chat_and_token.json"),
    ),
    (
        "server_peer_accepted_with_turn.json",
        include_str!("../../protocol/tests/golden/server_peer_accepted_with_turn.json"),
    ),
    (
        "server_peer_denied.json",
        include_str!("../../protocol/tests/golden/server_peer_denied.json"),
    ),
    (
        "server_peer_joined.json",
        include_str!("../../protocol/tests/golden/server_peer_joined.json"),
    ),
    (
        "server_peer_left.json",
        include_str!("../../protocol/tests/golden/server_peer_left.json"),
    ),
    (
        "server_peer_updated.json",
        include_str!("../../protocol/tests/golden/server_peer_updated.json"),
    ),
    (
        "server_sdp_offer.json",
        include_str!("../../protocol/tests/golden/server_sdp_offer.json"),
    ),
    (
        "server_track_updated.json",
        include_str!("../../protocol/tests/golden/server_track_updated.json"),
    ),
    (
        "server_tracks_added.json",
        include_str!("../../protocol/tests/golden/server_tracks_added.json"),
    ),
    (
        "server_tracks_removed.json",
        include_str!("../../protocol/tests/golden/server_tracks_removed.json"),
    ),
    (
        "server_downlink.json",
        include_str!("../../protocol/tests/golden/server_downlink.json"),
    ),
    (
        "server_downlink_unlimited.json",
        include_str!("../../protocol/tests/golden/server_downlink_unlimited.json"),
    ),
    (
        "server_voice_activity.json",
        include_str!("../../protocol/tests/golden/server_voice_activity.json"),
    ),
];

/// The protocol fuzzer's saved inputs (`fuzz/regressions/protocol_decode`).
const NASTY: &[(&str, &[u8])] = &[
    (
        "crash-26a18ede744b47dcc73f4aad523e9e53a9e6f27b",
        include_bytes!(
            "../../fuzz/regressions/protocol_decode/crash-26a18ede744b47dcc73f4aad523e9e53a9e6f27b"
        ),
    ),
    (
        "deeply-nested-arrays",
        include_bytes!("../../fuzz/regressions/protocol_decode/deeply-nested-arrays"),
    ),
    (
        "deeply-nested-objects",
        include_bytes!("../../fuzz/regressions/protocol_decode/deeply-nested-objects"),
    ),
    (
        "duplicate-keys",
        include_bytes!("../../fuzz/regressions/protocol_decode/duplicate-keys"),
    ),
    (
        "empty",
        include_bytes!("../../fuzz/regressions/protocol_decode/empty"),
    ),
    (
        "float-version",
        include_bytes!("../../fuzz/regressions/protocol_decode/float-version"),
    ),
    (
        "huge-numbers",
        include_bytes!("../../fuzz/regressions/protocol_decode/huge-numbers"),
    ),
    (
        "invalid-utf8",
        include_bytes!("../../fuzz/regressions/protocol_decode/invalid-utf8"),
    ),
    (
        "lone-surrogate",
        include_bytes!("../../fuzz/regressions/protocol_decode/lone-surrogate"),
    ),
    (
        "long-unknown-field",
        include_bytes!("../../fuzz/regressions/protocol_decode/long-unknown-field"),
    ),
    (
        "long-unknown-type",
        include_bytes!("../../fuzz/regressions/protocol_decode/long-unknown-type"),
    ),
    (
        "mline-index-overflow",
        include_bytes!("../../fuzz/regressions/protocol_decode/mline-index-overflow"),
    ),
    (
        "muted-defaults-outgrow-the-frame",
        include_bytes!("../../fuzz/regressions/protocol_decode/muted-defaults-outgrow-the-frame"),
    ),
    (
        "negative-zero-version",
        include_bytes!("../../fuzz/regressions/protocol_decode/negative-zero-version"),
    ),
    (
        "nul-in-topic",
        include_bytes!("../../fuzz/regressions/protocol_decode/nul-in-topic"),
    ),
    (
        "oversized-frame",
        include_bytes!("../../fuzz/regressions/protocol_decode/oversized-frame"),
    ),
];

#[wasm_bindgen_test]
fn every_golden_server_frame_decodes_as_serde_json_decodes_it() {
    let mut seen = 0;
    for (name, text) in GOLDEN.iter().filter(|(n, _)| n.starts_with("server_")) {
        let expected = ServerMessage::decode(text.trim()).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(decode(text.trim()), Ok(expected), "{name}");
        seen += 1;
    }
    assert!(seen >= 15, "only {seen} server goldens");
}

#[wasm_bindgen_test]
fn every_golden_client_frame_encodes_to_the_same_text() {
    let mut seen = 0;
    for (name, text) in GOLDEN.iter().filter(|(n, _)| n.starts_with("client_")) {
        let message = ClientMessage::decode(text.trim()).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(
            message.encode(),
            text.trim(),
            "{name} is not the golden text"
        );
        seen += 1;
    }
    assert!(seen >= 10, "only {seen} client goldens");
}

include!("../../protocol/tests/support/mutations.rs");

#[wasm_bindgen_test]
fn mutated_server_frames_get_the_answer_serde_gives() {
    let frames: Vec<&str> = GOLDEN
        .iter()
        .filter(|(n, _)| n.starts_with("server_"))
        .map(|(_, t)| t.trim())
        .collect();
    let tags = tags(frames.iter().copied());
    let mut checked = 0;
    for frame in &frames {
        let value: Value = serde_json::from_str(frame).expect("golden");
        for m in mutations(&value, &tags) {
            let text = serde_json::to_string(&m).expect("JSON");
            match (decode(&text), ServerMessage::decode(&text)) {
                (Ok(ours), Ok(theirs)) => assert_eq!(ours, theirs, "{text}"),
                (Err(_), Err(_)) => {}
                (Err(_), Ok(_)) if numeric_tag(&m) => {}
                (ours, theirs) => panic!("{text}: client {ours:?}, serde {theirs:?}"),
            }
            checked += 1;
        }
    }
    assert!(checked > 3000, "only {checked} mutations");
}

#[wasm_bindgen_test]
fn refusals_stay_refusals() {
    let malformed = [
        ("not JSON", "{"),
        ("unknown type", r#"{"type":"nope"}"#),
        (
            "unknown field",
            r#"{"type":"channelJoined","topic":"room:a","protocolVersion":1,"x":1}"#,
        ),
        (
            "missing field",
            r#"{"type":"channelJoined","topic":"room:a"}"#,
        ),
        (
            "wrong type",
            r#"{"type":"channelJoined","topic":"room:a","protocolVersion":"1"}"#,
        ),
        (
            "negative number",
            r#"{"type":"channelJoined","topic":"room:a","protocolVersion":-1}"#,
        ),
        (
            "unknown media event",
            r#"{"type":"mediaEvent","data":{"type":"nope"}}"#,
        ),
    ];
    for (what, text) in malformed {
        assert!(
            matches!(decode(text), Err(DecodeError::Malformed(_))),
            "{what}: {:?}",
            decode(text)
        );
        assert!(ServerMessage::decode(text).is_err(), "{what} (serde_json)");
    }
    // Well-formed but out of bounds: the protocol's own checks, as on the server.
    let long_name = "x".repeat(protocol::MAX_DISPLAY_NAME_CHARS + 1);
    let text = format!(
        r#"{{"type":"mediaEvent","data":{{"type":"peerJoined","peer":{{"id":"p","metadata":{{"displayName":"{long_name}"}},"trackIdToMetadata":{{}}}}}}}}"#
    );
    assert!(
        matches!(ServerMessage::decode(&text), Err(DecodeError::Invalid(_))),
        "{:?}",
        ServerMessage::decode(&text)
    );
    assert!(
        matches!(decode(&text), Err(DecodeError::Invalid(_))),
        "{:?}",
        decode(&text)
    );
    let huge = format!(
        r#"{{"type":"channelJoinError","reason":"{}"}}"#,
        "x".repeat(MAX_SERVER_FRAME_BYTES)
    );
    assert!(matches!(decode(&huge), Err(DecodeError::TooLarge { .. })));
    // Nested past the bound: refused before either parser recurses into it (this one
    // overflowed the browser's stack in serde-wasm-bindgen before the bound existed).
    let deep = format!(
        r#"{{"type":"channelJoinError","reason":{}1{}}}"#,
        "[".repeat(10_000),
        "]".repeat(10_000)
    );
    for result in [decode(&deep), ServerMessage::decode(&deep)] {
        assert!(
            matches!(&result, Err(DecodeError::Malformed(m)) if m.contains("nested deeper")),
            "{result:?}"
        );
    }
}

#[wasm_bindgen_test]
fn nasty_inputs_never_panic_and_agree_when_both_accept() {
    for (name, bytes) in NASTY {
        let text = String::from_utf8_lossy(bytes);
        // JSON.parse is laxer in places (a duplicate key keeps the last value, 1.0 is an
        // integer): only a message both accept must be the same message.
        if let (Ok(ours), Ok(theirs)) = (decode(&text), ServerMessage::decode(&text)) {
            assert_eq!(ours, theirs, "{name}");
        }
    }
}
