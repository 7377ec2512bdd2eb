// The `protocol_decode` fuzz target's body. It is `include!`d both by the fuzz target and by
// `protocol/tests/fuzz_regressions.rs`, so `cargo test` replays saved inputs through exactly the
// code the fuzzer ran. (Plain comments: an included file cannot open with inner doc comments.)

/// Feeds `data` to both decoders as one WebSocket text frame and panics if a property breaks:
/// decoding never panics; a decoded message encodes to a frame that decodes to an equal value;
/// the client's tree decoder accepts nothing serde refuses and reads what it accepts alike;
/// and the error frame the server would send back for a refused client frame is itself a valid
/// server message (the client decodes it with the same bounds).
pub fn protocol_decode(data: &[u8]) {
    // Text frames are UTF-8 (tungstenite refuses other bytes before the decoder sees them);
    // a lossy conversion keeps every mutated input useful instead of discarding most of them.
    let text = String::from_utf8_lossy(data);
    match protocol::ClientMessage::decode(&text) {
        Ok(msg) => {
            let frame = msg.encode();
            match protocol::ClientMessage::decode(&frame) {
                Ok(again) => assert_eq!(again, msg, "client message changed in a round trip"),
                Err(e) => fits_or_too_large(&frame, &e),
            }
        }
        // The server closes the socket for these (1009) instead of replying.
        Err(protocol::DecodeError::TooLarge { .. }) => {}
        // What `signaling::Session::recv` sends back for a refused frame.
        Err(e) => {
            let reply = protocol::ServerMessage::error(e.code(), e.to_string());
            match protocol::ServerMessage::decode(&reply.encode()) {
                Ok(again) => assert_eq!(again, reply, "error reply changed in a round trip"),
                Err(bad) => panic!("the server's reply to a refused frame is invalid: {bad}"),
            }
        }
    }
    // The client's decoder (`FromTree`, over the browser's JSON.parse tree there): what it
    // accepts, serde accepts too and reads as the same message.
    if let Ok(tree) = serde_json::from_str::<serde_json::Value>(&text) {
        if let Ok(msg) = <protocol::ServerMessage as protocol::tree::FromTree>::from_tree(&tree) {
            match serde_json::from_str::<protocol::ServerMessage>(&msg.encode()) {
                Ok(again) => assert_eq!(again, msg, "the tree decoder and serde disagree"),
                Err(e) => panic!("the tree decoder accepted what serde refuses: {e}"),
            }
            if let Ok(direct) = serde_json::from_str::<protocol::ServerMessage>(&text) {
                assert_eq!(direct, msg, "the tree decoder and serde read different messages");
            }
        }
    }
    if let Ok(msg) = protocol::ServerMessage::decode(&text) {
        let frame = msg.encode();
        match protocol::ServerMessage::decode(&frame) {
            Ok(again) => assert_eq!(again, msg, "server message changed in a round trip"),
            Err(e) => fits_or_too_large(&frame, &e),
        }
    }
}

/// Re-encoding may legitimately outgrow the frame limit: omitted defaults (`"muted":false`,
/// `"sdpMid":null`) are written out. Then, and only then, the decoder must say so.
fn fits_or_too_large(frame: &str, e: &protocol::DecodeError) {
    assert!(
        frame.len() > protocol::MAX_FRAME_BYTES,
        "a decoded message re-encodes to a frame that does not decode: {e}"
    );
    assert!(
        matches!(e, protocol::DecodeError::TooLarge { .. }),
        "an oversized re-encoding must be refused as too large, not with: {e}"
    );
}
