//! The client's trickled ICE candidates: added once there is a remote description, kept
//! (bounded) when they overtake the first answer, and capped for the connection's life — each
//! one makes the server send STUN checks to the address it names.

use protocol::{ErrorCode, IceCandidate};
use webrtc::ice_transport::ice_candidate::RTCIceCandidateInit;

use super::{Peer, Refusal};

/// Candidates kept for a peer whose first answer has not arrived yet (a client that trickles
/// from a callback can send them ahead of its answer); one more is refused.
pub const MAX_EARLY_CANDIDATES: usize = 64;

/// Candidates one peer connection takes in its whole life, ICE restarts included (a browser
/// gathers a handful per restart); one more is refused. Without a cap, 600 candidates made the
/// server send 4,800 STUN requests wherever the client said.
pub const MAX_CANDIDATES: usize = 128;

impl Peer {
    /// Adds a candidate the client trickled.
    pub async fn on_remote_candidate(&mut self, c: IceCandidate) -> Result<(), Refusal> {
        if c.candidate.is_empty() {
            return Ok(()); // end of candidates
        }
        if self.candidates_taken >= MAX_CANDIDATES {
            return Err(Refusal {
                code: ErrorCode::Negotiation,
                message: format!(
                    "candidate refused: this connection has taken {MAX_CANDIDATES} already"
                ),
            });
        }
        self.candidates_taken += 1;
        let init = RTCIceCandidateInit {
            candidate: c.candidate,
            sdp_mid: c.sdp_mid,
            sdp_mline_index: c.sdp_m_line_index,
            username_fragment: c.username_fragment,
        };
        if self.pc.remote_description().await.is_none() {
            if self.early_candidates.len() >= MAX_EARLY_CANDIDATES {
                return Err(Refusal {
                    code: ErrorCode::Negotiation,
                    message: format!(
                        "candidate refused: more than {MAX_EARLY_CANDIDATES} before the first answer"
                    ),
                });
            }
            self.early_candidates.push(init);
            return Ok(());
        }
        self.add_candidate(init).await
    }

    pub(super) async fn add_candidate(&self, init: RTCIceCandidateInit) -> Result<(), Refusal> {
        self.pc.add_ice_candidate(init).await.map_err(|e| Refusal {
            code: ErrorCode::Negotiation,
            message: format!("candidate refused: {e}"),
        })
    }
}
