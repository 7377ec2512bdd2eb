//! The checks a client's `sdpAnswer` passes before it reaches the peer connection. Pure (no
//! connection, no I/O), so the `sdp_answer` fuzz target (`fuzz/`) runs exactly what the server
//! runs on whatever text a client sends.

use protocol::{SdpType, SessionDescription};
use webrtc::peer_connection::sdp::session_description::RTCSessionDescription;

/// Why an answer was refused before reaching the peer connection.
#[derive(Debug, thiserror::Error)]
pub enum AnswerError {
    /// An offer where the answer belongs: the client can fix that, so the peer stays.
    #[error("sdpAnswer.type must be \"answer\"")]
    NotAnAnswer,
    /// The SDP text does not parse.
    #[error("{0}")]
    Unparsable(webrtc::Error),
}

/// Checks the type and parses the SDP, giving the description `set_remote_description` takes.
pub fn check_answer(answer: SessionDescription) -> Result<RTCSessionDescription, AnswerError> {
    if answer.kind != SdpType::Answer {
        return Err(AnswerError::NotAnAnswer);
    }
    // Parsing here, not inside `set_remote_description`, refuses text that does not parse
    // before the connection's signalling state is touched.
    RTCSessionDescription::answer(answer.sdp).map_err(AnswerError::Unparsable)
}
