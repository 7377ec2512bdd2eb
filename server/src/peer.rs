//! One participant's peer connection: the uplink it publishes, the downlink slots it subscribes
//! through, and negotiation. The server makes every offer, one at a time: while an offer awaits
//! its answer, further changes only mark the peer as needing another offer, which goes out as
//! soon as the answer arrives — so there is never glare and no change is lost.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use protocol::{
    ErrorCode, IceCandidate, PeerId, SdpType, ServerMediaEvent, ServerMessage, SessionDescription,
    TrackId, TrackMetadata, TrackSource, MAX_TRACKS_PER_PEER,
};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn, Instrument, Span};
use webrtc::ice_transport::ice_candidate::RTCIceCandidateInit;
use webrtc::peer_connection::configuration::RTCConfiguration;
use webrtc::peer_connection::peer_connection_state::RTCPeerConnectionState;
use webrtc::peer_connection::RTCPeerConnection;
use webrtc::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
use webrtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use webrtc::rtp_transceiver::rtp_codec::RTPCodecType;
use webrtc::rtp_transceiver::rtp_sender::RTCRtpSender;
use webrtc::rtp_transceiver::rtp_transceiver_direction::RTCRtpTransceiverDirection;
use webrtc::rtp_transceiver::{RTCRtpTransceiver, RTCRtpTransceiverInit};
use webrtc::track::track_local::TrackLocal;
use webrtc::track::track_remote::TrackRemote;

use crate::forwarder::{self, MediaStats, PublishedTrack};
use crate::room::Room;
use crate::sdp_answer::{self, AnswerError};
use crate::signaling::Outbox;
use crate::AppState;

/// How long the client may take to answer an offer.
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(15);

/// Something the `webrtc` callbacks report; they only ever send these, never touch the peer.
pub enum RtcEvent {
    /// A local ICE candidate to trickle to the client.
    LocalCandidate(RTCIceCandidateInit),
    /// The connection's state changed.
    State(RTCPeerConnectionState),
    /// The client started sending a track on this mid.
    RemoteTrack(Arc<TrackRemote>, Option<String>),
}

/// Why a peer must be removed.
#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    /// The `webrtc` stack refused something.
    #[error("WebRTC error: {0}")]
    Rtc(#[from] webrtc::Error),
    /// The client's answer could not be applied.
    #[error("the SDP answer was refused: {0}")]
    BadAnswer(webrtc::Error),
    /// The client did not answer in time.
    #[error("no answer to the offer within {}s", ANSWER_TIMEOUT.as_secs())]
    AnswerTimeout,
    /// ICE never connected.
    #[error("media connection not established in time")]
    ConnectTimeout,
    /// ICE failed or the connection was closed.
    #[error("media connection {0}")]
    Connection(RTCPeerConnectionState),
}

/// A problem with one client message that does not end the peer.
#[derive(Debug)]
pub struct Refusal {
    /// Class.
    pub code: ErrorCode,
    /// Text for the client.
    pub message: String,
}

/// A downlink transceiver and the track it currently carries (None: idle, reusable).
struct Slot {
    transceiver: Arc<RTCRtpTransceiver>,
    sender: Arc<RTCRtpSender>,
    kind: RTPCodecType,
    track: Arc<Mutex<Option<Arc<PublishedTrack>>>>,
}

impl Slot {
    fn current(&self) -> Option<Arc<PublishedTrack>> {
        self.track.lock().ok().and_then(|t| t.clone())
    }

    fn set(&self, track: Option<Arc<PublishedTrack>>) {
        if let Ok(mut t) = self.track.lock() {
            *t = track;
        }
    }
}

#[derive(Default)]
struct Negotiation {
    /// An offer is out, awaiting its answer.
    in_flight: bool,
    /// Something changed since that offer; offer again after the answer.
    pending: bool,
    answer_deadline: Option<Instant>,
}

/// One participant's media side.
pub struct Peer {
    /// The peer's id.
    pub id: PeerId,
    room: Arc<Room>,
    pc: Arc<RTCPeerConnection>,
    out: Outbox,
    stats: Arc<MediaStats>,
    span: Span,
    /// Cancels every task this peer started (forwarders, RTCP readers).
    tasks: CancellationToken,
    negotiation: Negotiation,
    slots: Vec<Slot>,
    /// Video tracks bound since the last answer: they get a keyframe request once it lands.
    fresh_video: Vec<Arc<PublishedTrack>>,
    uplink_metadata: HashMap<String, TrackMetadata>,
    published: Vec<Arc<PublishedTrack>>,
    connected: bool,
    connect_timeout: Duration,
    connect_deadline: Option<Instant>,
}

impl Peer {
    /// Creates the peer connection, ready to receive the client's audio and video.
    pub async fn new(
        app: &AppState,
        id: PeerId,
        room: Arc<Room>,
        out: Outbox,
        tasks: CancellationToken,
        span: Span,
    ) -> Result<(Self, mpsc::UnboundedReceiver<RtcEvent>), PeerError> {
        let pc = Arc::new(
            app.rtc
                .api
                .new_peer_connection(RTCConfiguration::default())
                .await?,
        );
        for kind in [RTPCodecType::Audio, RTPCodecType::Video] {
            pc.add_transceiver_from_kind(
                kind,
                Some(RTCRtpTransceiverInit {
                    direction: RTCRtpTransceiverDirection::Recvonly,
                    send_encodings: vec![],
                }),
            )
            .await?;
        }

        let (events, rx) = mpsc::unbounded_channel();
        // The callbacks hold only a sender: no reference to the connection, so no cycle.
        let tx = events.clone();
        pc.on_ice_candidate(Box::new(move |c| {
            if let Some(init) = c.and_then(|c| c.to_json().ok()) {
                let _ = tx.send(RtcEvent::LocalCandidate(init));
            }
            Box::pin(async {})
        }));
        let tx = events.clone();
        pc.on_peer_connection_state_change(Box::new(move |s| {
            let _ = tx.send(RtcEvent::State(s));
            Box::pin(async {})
        }));
        let tx = events;
        pc.on_track(Box::new(move |track, _receiver, transceiver| {
            let mid = transceiver.mid().map(|m| m.to_string());
            let _ = tx.send(RtcEvent::RemoteTrack(track, mid));
            Box::pin(async {})
        }));

        let peer = Peer {
            id,
            room,
            pc,
            out,
            stats: app.stats.clone(),
            span,
            tasks,
            negotiation: Negotiation::default(),
            slots: Vec::new(),
            fresh_video: Vec::new(),
            uplink_metadata: HashMap::new(),
            published: Vec::new(),
            connected: false,
            connect_timeout: app.config.ice_connect_timeout(),
            connect_deadline: None,
        };
        Ok((peer, rx))
    }

    /// Subscribes to what the room already has and makes the first offer.
    pub async fn start(&mut self, existing: Vec<Arc<PublishedTrack>>) -> Result<(), PeerError> {
        for track in existing {
            self.bind(track).await?;
        }
        self.connect_deadline = Some(Instant::now() + self.connect_timeout);
        self.negotiate().await
    }

    /// The earliest deadline this peer is waiting on.
    pub fn next_deadline(&self) -> Option<Instant> {
        [self.negotiation.answer_deadline, self.connect_deadline]
            .into_iter()
            .flatten()
            .min()
    }

    /// Checks the deadlines; an expired one removes the peer.
    pub fn check_deadlines(&self, now: Instant) -> Result<(), PeerError> {
        if self.negotiation.answer_deadline.is_some_and(|d| d <= now) {
            return Err(PeerError::AnswerTimeout);
        }
        if self.connect_deadline.is_some_and(|d| d <= now) {
            return Err(PeerError::ConnectTimeout);
        }
        Ok(())
    }

    /// Starts forwarding a track to this peer.
    pub async fn subscribe(&mut self, track: Arc<PublishedTrack>) -> Result<(), PeerError> {
        if self.bind(track).await? {
            self.negotiate().await?;
        }
        Ok(())
    }

    /// Binds a track to a slot (reusing an idle one of its kind); false if nothing changed.
    async fn bind(&mut self, track: Arc<PublishedTrack>) -> Result<bool, PeerError> {
        if track.publisher == self.id
            || self
                .slots
                .iter()
                .any(|s| s.current().is_some_and(|t| t.id == track.id))
        {
            return Ok(false);
        }
        let local: Arc<dyn TrackLocal + Send + Sync> = track.local.clone();
        let idle = self
            .slots
            .iter()
            .find(|s| s.kind == track.kind && s.current().is_none());
        if let Some(slot) = idle {
            // Reuse the m-line of a departed track, so churn does not grow the SDP forever.
            slot.sender.replace_track(Some(local)).await?;
            slot.transceiver
                .set_direction(RTCRtpTransceiverDirection::Sendonly)
                .await;
            slot.set(Some(track.clone()));
        } else {
            let transceiver = self
                .pc
                .add_transceiver_from_track(
                    local,
                    Some(RTCRtpTransceiverInit {
                        direction: RTCRtpTransceiverDirection::Sendonly,
                        send_encodings: vec![],
                    }),
                )
                .await?;
            // When the slot is later reused for another publisher's track, `nack` keeps its
            // sequence numbers continuing where the last track left off.
            let sender = transceiver.sender().await;
            let slot = Slot {
                transceiver,
                sender: sender.clone(),
                kind: track.kind,
                track: Arc::new(Mutex::new(Some(track.clone()))),
            };
            self.spawn_rtcp_reader(sender, slot.track.clone());
            self.slots.push(slot);
        }
        track
            .subscribers
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if track.kind == RTPCodecType::Video {
            self.fresh_video.push(track);
        }
        Ok(true)
    }

    /// Reads the subscriber's RTCP for one sender: keeps the NACK responder running and turns
    /// PLI/FIR into a keyframe request to the publisher of whatever the slot now carries.
    fn spawn_rtcp_reader(
        &self,
        sender: Arc<RTCRtpSender>,
        current: Arc<Mutex<Option<Arc<PublishedTrack>>>>,
    ) {
        let cancel = self.tasks.clone();
        tokio::spawn(
            async move {
                loop {
                    let packets = tokio::select! {
                        _ = cancel.cancelled() => break,
                        r = sender.read_rtcp() => match r {
                            Ok((packets, _)) => packets,
                            Err(_) => break,
                        },
                    };
                    let wants_keyframe = packets.iter().any(|p| {
                        let any = p.as_any();
                        any.is::<PictureLossIndication>() || any.is::<FullIntraRequest>()
                    });
                    if wants_keyframe {
                        let track = current.lock().ok().and_then(|t| t.clone());
                        if let Some(track) = track {
                            track.request_keyframe().await;
                        }
                    }
                }
            }
            .instrument(self.span.clone()),
        );
    }

    /// Stops forwarding a track to this peer; its slot becomes idle.
    pub async fn unsubscribe(&mut self, track_id: &str) -> Result<(), PeerError> {
        let Some(slot) = self
            .slots
            .iter()
            .find(|s| s.current().is_some_and(|t| t.id == track_id))
        else {
            return Ok(());
        };
        if let Some(t) = slot.current() {
            t.subscribers
                .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        }
        slot.set(None);
        slot.transceiver
            .set_direction(RTCRtpTransceiverDirection::Inactive)
            .await;
        self.fresh_video.retain(|t| t.id != track_id);
        self.negotiate().await
    }

    /// The client asked for a fresh offer.
    pub async fn renegotiate(&mut self) -> Result<(), PeerError> {
        self.negotiate().await
    }

    /// Offers now, or marks an offer as pending if one is already out.
    async fn negotiate(&mut self) -> Result<(), PeerError> {
        if self.negotiation.in_flight {
            self.negotiation.pending = true;
            return Ok(());
        }
        let offer = self.pc.create_offer(None).await?;
        self.pc.set_local_description(offer).await?;
        let sdp = match self.pc.local_description().await {
            Some(d) => as_dtls_client(&d.sdp),
            None => return Err(PeerError::Rtc(webrtc::Error::ErrNoRemoteDescription)),
        };
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
        for (mid, local_id) in mid_to_track_id {
            if let Some(meta) = track_metadata.get(&local_id) {
                self.uplink_metadata.insert(mid, meta.clone());
            }
        }
        self.pc
            .set_remote_description(desc)
            .await
            .map_err(PeerError::BadAnswer)?;
        self.negotiation.in_flight = false;
        self.negotiation.answer_deadline = None;
        if self.connected {
            self.request_fresh_keyframes().await;
        }
        if self.negotiation.pending {
            self.negotiate().await?;
        }
        Ok(Ok(()))
    }

    async fn request_fresh_keyframes(&mut self) {
        for track in std::mem::take(&mut self.fresh_video) {
            track.request_keyframe().await;
        }
    }

    /// Adds a candidate the client trickled.
    pub async fn on_remote_candidate(&mut self, c: IceCandidate) -> Result<(), Refusal> {
        if c.candidate.is_empty() {
            return Ok(()); // end of candidates
        }
        let init = RTCIceCandidateInit {
            candidate: c.candidate,
            sdp_mid: c.sdp_mid,
            sdp_mline_index: c.sdp_m_line_index,
            username_fragment: c.username_fragment,
        };
        self.pc.add_ice_candidate(init).await.map_err(|e| Refusal {
            code: ErrorCode::Negotiation,
            message: format!("candidate refused: {e}"),
        })
    }

    /// Handles a report from the `webrtc` callbacks.
    pub async fn on_rtc_event(&mut self, event: RtcEvent) -> Result<(), PeerError> {
        match event {
            RtcEvent::LocalCandidate(c) => {
                self.out.media(ServerMediaEvent::Candidate(IceCandidate {
                    candidate: c.candidate,
                    sdp_mid: c.sdp_mid,
                    sdp_m_line_index: c.sdp_mline_index,
                    username_fragment: c.username_fragment,
                }));
            }
            RtcEvent::State(state) => {
                debug!(parent: &self.span, %state, "connection state");
                match state {
                    RTCPeerConnectionState::Connected => {
                        if !self.connected {
                            info!(parent: &self.span, "media connected");
                        }
                        self.connected = true;
                        self.connect_deadline = None;
                        // A new subscriber can only decode from a keyframe.
                        self.request_fresh_keyframes().await;
                    }
                    RTCPeerConnectionState::Failed | RTCPeerConnectionState::Closed => {
                        return Err(PeerError::Connection(state));
                    }
                    _ => {}
                }
            }
            RtcEvent::RemoteTrack(remote, mid) => self.publish(remote, mid),
        }
        Ok(())
    }

    /// Turns a track the client sends into a published track the room forwards.
    fn publish(&mut self, remote: Arc<TrackRemote>, mid: Option<String>) {
        if self.published.len() >= MAX_TRACKS_PER_PEER {
            warn!(parent: &self.span, "track limit reached; ignoring another track");
            return;
        }
        let kind = remote.kind();
        let metadata = mid
            .as_ref()
            .and_then(|m| self.uplink_metadata.get(m).cloned())
            .unwrap_or(TrackMetadata {
                source: if kind == RTPCodecType::Audio {
                    TrackSource::Microphone
                } else {
                    TrackSource::Camera
                },
                muted: false,
            });
        let track_id: TrackId = format!("{}:{}", self.id, uuid::Uuid::new_v4());
        let track = Arc::new(PublishedTrack::new(
            track_id,
            self.id.clone(),
            metadata,
            &remote,
            Arc::downgrade(&self.pc),
            self.stats.clone(),
        ));
        info!(parent: &self.span, track = %track.id, %kind, "publishing");
        tokio::spawn(
            forwarder::forward(
                remote,
                track.clone(),
                self.stats.clone(),
                self.tasks.child_token(),
            )
            .instrument(self.span.clone()),
        );
        self.published.push(track.clone());
        self.room.publish(&self.id, vec![track]);
    }

    /// Tears the connection down; every task it started stops.
    pub async fn close(self) {
        self.tasks.cancel();
        for slot in &self.slots {
            if let Some(t) = slot.current() {
                t.subscribers
                    .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
            }
        }
        if let Err(e) = self.pc.close().await {
            debug!(parent: &self.span, error = %e, "closing peer connection");
        }
    }
}

impl Refusal {
    /// The error frame for the client.
    pub fn message(&self) -> ServerMessage {
        ServerMessage::error(self.code, self.message.clone())
    }
}

/// The offer as sent: `a=setup:active` for `actpass`, so the client answers `passive` and the
/// server is the DTLS client. The webrtc crate's DTLS server stops listening once it thinks the
/// handshake is done, so when its last flight is lost the browser waits forever (RFC 6347
/// §4.2.4; measured here: 5 of 40 joins stuck at 5% loss). As the DTLS client the server
/// retransmits until the browser's last flight arrives, and browsers' DTLS servers answer
/// retransmissions. The role then stays the same in every later offer.
fn as_dtls_client(sdp: &str) -> String {
    sdp.replace("a=setup:actpass", "a=setup:active")
}
