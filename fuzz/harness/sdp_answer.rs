// The `sdp_answer` fuzz target's body. It is `include!`d both by the fuzz target and by
// `server/tests/fuzz_regressions.rs`, so `cargo test` replays saved inputs through exactly the
// code the fuzzer ran. (Plain comments: an included file cannot open with inner doc comments.)

/// Runs `data` as the SDP of a client's `sdpAnswer` through the server's own checks
/// ([`server::sdp_answer::check_answer`], which parses it with the `webrtc` crate's SDP parser)
/// and panics if a property breaks: nothing panics, and when the answer is refused the error
/// event the server sends the client is itself a valid server message.
pub fn sdp_answer(data: &[u8]) {
    // The SDP arrives inside a JSON string, so it is always UTF-8; see `protocol_decode`.
    let sdp = String::from_utf8_lossy(data).into_owned();
    let answer = protocol::SessionDescription {
        kind: protocol::SdpType::Answer,
        sdp,
    };
    // The protocol bound: a longer SDP never gets past the decoder.
    if answer.sdp.len() > protocol::MAX_SDP_BYTES {
        return;
    }
    match server::sdp_answer::check_answer(answer) {
        // Applying it to a real connection is the slower `sdp_answer_apply` target's job.
        Ok(_) => {}
        // `signaling::in_room` removes the peer and tells the client why in this event.
        Err(server::sdp_answer::AnswerError::Unparsable(e)) => {
            let reason = server::peer::PeerError::BadAnswer(e).to_string();
            let event = protocol::ServerMessage::media(protocol::ServerMediaEvent::error(reason));
            match protocol::ServerMessage::decode(&event.encode()) {
                Ok(again) => assert_eq!(again, event, "error event changed in a round trip"),
                Err(bad) => {
                    panic!("the server's error event for a refused answer is invalid: {bad}")
                }
            }
        }
        Err(e @ server::sdp_answer::AnswerError::NotAnAnswer) => {
            panic!("an answer was refused as not an answer: {e}")
        }
    }
}
