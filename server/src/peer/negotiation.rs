//! Negotiation: the server makes every offer, one at a time; changes while one is out mark
//! another as pending. Applies the client's answers.

use std::time::Duration;

use protocol::{
    ErrorCode, SdpType, ServerMediaEvent, SessionDescription, TrackCounts, TrackMetadata,
    MAX_TRACKS_PER_PEER,
};
use tokio::time::Instant;
use tracing::{debug, info};
use webrtc::peer_connection::offer_answer_options::RTCOfferOptions;
use webrtc::rtp_transceiver::rtp_codec::RTPCodecType;

use super::simulcast_sdp;
use super::uplink::add_uplink;
use super::{Peer, PeerError, Refusal};
use crate::sdp_answer::{self, AnswerError};

/// How long the client may take to answer an offer.
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(15);

#[derive(Default)]
pub(super) struct Negotiation {
    /// An offer is out, awaiting its answer.
    pub(super) in_flight: bool,
    /// Something changed since that offer; offer again after the answer.
    pub(super) pending: bool,
    /// The next offer restarts ICE (asked for while an offer was out, or now).
    pub(super) ice_restart: bool,
    pub(super) answer_deadline: Option<Instant>,
    /// An answer has been applied: offers are no longer edited for simulcast.
    pub(super) answered: bool,
}

impl Peer {
    /// The client asked for a fresh offer: with at least `tracks` uplink m-lines of each kind
    /// (added, never removed; bounded by [`MAX_TRACKS_PER_PEER`] in all), and new ICE
    /// credentials when `ice_restart`.
    pub async fn renegotiate(
        &mut self,
        tracks: Option<TrackCounts>,
        ice_restart: bool,
    ) -> Result<(), PeerError> {
        if let Some(counts) = tracks {
            for (kind, want) in [
                (RTPCodecType::Audio, counts.audio),
                (RTPCodecType::Video, counts.video),
            ] {
                while self.uplinks.iter().filter(|u| u.kind == kind).count() < usize::from(want)
                    && self.uplinks.len() < MAX_TRACKS_PER_PEER
                {
                    let slot = add_uplink(&self.pc, kind).await?;
                    self.uplinks.push(slot);
                }
            }
            debug!(parent: &self.span, uplinks = self.uplinks.len(), "uplink m-lines");
        }
        if ice_restart {
            info!(parent: &self.span, "ICE restart requested");
            self.negotiation.ice_restart = true;
        }
        self.negotiate().await
    }

    /// Offers now, or marks an offer as pending if one is already out.
    pub(super) async fn negotiate(&mut self) -> Result<(), PeerError> {
        if self.negotiation.in_flight {
            self.negotiation.pending = true;
            return Ok(());
        }
        let options = std::mem::take(&mut self.negotiation.ice_restart).then(|| RTCOfferOptions {
            ice_restart: true,
            ..Default::default()
        });
        let offer = self.pc.create_offer(options).await?;
        self.pc.set_local_description(offer).await?;
        let mut sdp = match self.pc.local_description().await {
            Some(d) => as_dtls_client(&d.sdp),
            None => return Err(PeerError::Rtc(webrtc::Error::ErrNoRemoteDescription)),
        };
        if self.simulcast && !self.negotiation.answered {
            // The camera's m-line: the first video uplink, made with the connection.
            let camera = self
                .uplinks
                .iter()
                .find(|u| u.kind == RTPCodecType::Video)
                .and_then(|u| u.transceiver.mid());
            if let Some(mid) = camera {
                sdp = simulcast_sdp::offer_layers(&sdp, &mid);
            }
        }
        if self.simulcast {
            sdp = simulcast_sdp::dedupe_rids(&sdp);
        }
        let mid_to_track_id = self
            .slots
            .iter()
            .filter_map(|s| Some((s.transceiver.mid()?.to_string(), s.current()?.id.clone())))
            .collect();
        self.negotiation.in_flight = true;
        self.negotiation.pending = false;
        self.negotiation.answer_deadline = Some(Instant::now() + ANSWER_TIMEOUT);
        self.out.media(ServerMediaEvent::SdpOffer {
            sdp_offer: SessionDescription {
                kind: SdpType::Offer,
                sdp,
            },
            mid_to_track_id,
        });
        Ok(())
    }

    /// Applies the client's answer to the offer in flight.
    pub async fn on_answer(
        &mut self,
        answer: SessionDescription,
        track_metadata: std::collections::BTreeMap<String, TrackMetadata>,
        mid_to_track_id: std::collections::BTreeMap<String, String>,
    ) -> Result<Result<(), Refusal>, PeerError> {
        if !self.negotiation.in_flight {
            return Ok(Err(Refusal {
                code: ErrorCode::UnexpectedMessage,
                message: "sdpAnswer: no offer is awaiting an answer".into(),
            }));
        }
        let desc = match sdp_answer::check_answer(answer) {
            Ok(desc) => desc,
            Err(e @ AnswerError::NotAnAnswer) => {
                return Ok(Err(Refusal {
                    code: ErrorCode::InvalidField,
                    message: e.to_string(),
                }))
            }
            Err(AnswerError::Unparsable(e)) => return Err(PeerError::BadAnswer(e)),
        };
        self.pc
            .set_remote_description(desc)
            .await
            .map_err(PeerError::BadAnswer)?;
        self.negotiation.in_flight = false;
        self.negotiation.answer_deadline = None;
        self.negotiation.answered = true;
        // The first of the candidates that could not be added is the one reported.
        let mut refused = None;
        for init in std::mem::take(&mut self.early_candidates) {
            if let Err(r) = self.add_candidate(init).await {
                refused.get_or_insert(r);
            }
        }
        // The client's view of what it sends replaces the previous one.
        self.uses_mid_map |= !mid_to_track_id.is_empty();
        self.mid_to_local = mid_to_track_id;
        self.local_metadata = track_metadata.into_iter().collect();
        self.reconcile();
        if self.connected {
            self.request_fresh_keyframes().await;
        }
        if self.negotiation.pending {
            self.negotiate().await?;
        }
        Ok(refused.map_or(Ok(()), Err))
    }
}

/// The offer as sent: `a=setup:active` for `actpass`, so the client answers `passive` and the
/// server is the DTLS client. The webrtc crate's DTLS server stops listening once it thinks the
/// handshake is done, so when its last flight is lost the browser waits forever (RFC 6347
/// §4.2.4; measured here: 5 of 40 joins stuck at 5% loss). As the DTLS client the server
/// retransmits until the browser's last flight arrives, and browsers' DTLS servers answer
/// retransmissions. The role then stays the same in every later offer.
pub(super) fn as_dtls_client(sdp: &str) -> String {
    sdp.replace("a=setup:actpass", "a=setup:active")
}
