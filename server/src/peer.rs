//! One participant's peer connection: the uplink it publishes, the downlink slots it subscribes
//! through, and negotiation. The server makes every offer, one at a time: while an offer awaits
//! its answer, further changes only mark the peer as needing another offer, which goes out as
//! soon as the answer arrives — so there is never glare and no change is lost.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use protocol::{
    ErrorCode, IceCandidate, PeerId, SdpType, ServerMediaEvent, ServerMessage, SessionDescription,
    TrackCounts, TrackId, TrackMetadata, TrackSource, MAX_TRACKS_PER_PEER,
};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn, Instrument, Span};
use webrtc::ice_transport::ice_candidate::RTCIceCandidateInit;
use webrtc::peer_connection::configuration::RTCConfiguration;
use webrtc::peer_connection::offer_answer_options::RTCOfferOptions;
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

use crate::forwarder::{self, MediaStats, PublishedTrack, ShardLease};
use crate::room::{NotYours, Room};
use crate::sdp_answer::{self, AnswerError};
use crate::signaling::Outbox;
use crate::uplink::{self, Plan};
use crate::voice::{self, VoiceDetector, VoiceWatch};
use crate::AppState;

/// How long the client may take to answer an offer.
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(15);

/// Candidates kept for a peer whose first answer has not arrived yet (a client that trickles
/// from a callback can send them ahead of its answer); one more is refused.
pub const MAX_EARLY_CANDIDATES: usize = 64;

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
    /// The sender's place in one of the track's fan-out shards (none while idle).
    lease: Option<ShardLease>,
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
    /// The next offer restarts ICE (asked for while an offer was out, or now).
    ice_restart: bool,
    answer_deadline: Option<Instant>,
}

/// A recvonly transceiver for what the client sends, and what became of it.
struct UplinkSlot {
    transceiver: Arc<RTCRtpTransceiver>,
    kind: RTPCodecType,
    /// Set by the first RTP (`on_track`); kept for publishing again after a stop.
    remote: Option<Arc<TrackRemote>>,
    published: Option<Published>,
}

/// A published uplink track and its forwarder.
struct Published {
    track: Arc<PublishedTrack>,
    /// The client's own id for it, when the client named it in an answer.
    local_id: Option<String>,
    /// Stops this track's forwarder only (a stop and restart gets a fresh one).
    forwarder: CancellationToken,
}

/// One participant's media side.
pub struct Peer {
    /// The peer's id.
    pub id: PeerId,
    /// The room session holding this member (a reconnect makes a new one).
    session: u64,
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
    uplinks: Vec<UplinkSlot>,
    /// The client has sent a non-empty mid map: answers decide what is published.
    uses_mid_map: bool,
    /// The latest answer's mid → the client's local track id.
    mid_to_local: BTreeMap<String, String>,
    /// The client's metadata for its tracks by local id: the latest answer's, plus updates.
    local_metadata: HashMap<String, TrackMetadata>,
    connected: bool,
    /// Candidates that arrived before any answer: added once the first one is applied.
    early_candidates: Vec<RTCIceCandidateInit>,
    connect_timeout: Duration,
    connect_deadline: Option<Instant>,
    /// Fan-out shards for the tracks this peer publishes.
    fanout_shards: usize,
}

impl Peer {
    /// Creates the peer connection, ready to receive the client's audio and video.
    #[allow(clippy::too_many_arguments)]
    pub async fn new(
        app: &AppState,
        id: PeerId,
        session: u64,
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
        let mut uplinks = Vec::new();
        for kind in [RTPCodecType::Audio, RTPCodecType::Video] {
            uplinks.push(add_uplink(&pc, kind).await?);
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
            session,
            room,
            pc,
            out,
            stats: app.stats.clone(),
            span,
            tasks,
            negotiation: Negotiation::default(),
            slots: Vec::new(),
            fresh_video: Vec::new(),
            uplinks,
            uses_mid_map: false,
            mid_to_local: BTreeMap::new(),
            local_metadata: HashMap::new(),
            connected: false,
            early_candidates: Vec::new(),
            connect_timeout: app.config.ice_connect_timeout(),
            connect_deadline: None,
            fanout_shards: app.config.fanout_shards(),
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
        let lease = track.lease();
        let local: Arc<dyn TrackLocal + Send + Sync> = lease.local();
        let idle = self
            .slots
            .iter_mut()
            .find(|s| s.kind == track.kind && s.current().is_none());
        if let Some(slot) = idle {
            // Reuse the m-line of a departed track, so churn does not grow the SDP forever.
            slot.sender.replace_track(Some(local)).await?;
            slot.transceiver
                .set_direction(RTCRtpTransceiverDirection::Sendonly)
                .await;
            slot.set(Some(track.clone()));
            slot.lease = Some(lease);
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
                lease: Some(lease),
            };
            self.spawn_rtcp_reader(sender, slot.track.clone());
            self.slots.push(slot);
        }
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
            .iter_mut()
            .find(|s| s.current().is_some_and(|t| t.id == track_id))
        else {
            return Ok(());
        };
        slot.lease = None;
        slot.set(None);
        slot.transceiver
            .set_direction(RTCRtpTransceiverDirection::Inactive)
            .await;
        self.fresh_video.retain(|t| t.id != track_id);
        self.negotiate().await
    }

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
    async fn negotiate(&mut self) -> Result<(), PeerError> {
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
        self.pc
            .set_remote_description(desc)
            .await
            .map_err(PeerError::BadAnswer)?;
        self.negotiation.in_flight = false;
        self.negotiation.answer_deadline = None;
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

    async fn add_candidate(&self, init: RTCIceCandidateInit) -> Result<(), Refusal> {
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
            RtcEvent::RemoteTrack(remote, mid) => {
                let slot = self
                    .uplinks
                    .iter_mut()
                    .find(|u| mid.is_some() && u.transceiver.mid().as_deref() == mid.as_deref());
                match slot {
                    Some(slot) => {
                        slot.remote = Some(remote);
                        self.reconcile();
                    }
                    None => {
                        warn!(parent: &self.span, ?mid, "RTP on an m-line that is not an uplink")
                    }
                }
            }
        }
        Ok(())
    }

    /// Brings what is published in line with the uplinks' RTP and the latest answer.
    fn reconcile(&mut self) {
        for i in 0..self.uplinks.len() {
            let slot = &mut self.uplinks[i];
            let Some(mid) = slot.transceiver.mid() else {
                continue;
            };
            let mapped = self.mid_to_local.get(mid.as_str()).cloned();
            let published = slot.published.as_ref().map(|p| p.local_id.as_deref());
            match uplink::plan(
                slot.remote.is_some(),
                self.uses_mid_map,
                mapped.as_deref(),
                published,
            ) {
                Plan::Keep => {
                    if let Some(p) = &mut slot.published {
                        if p.local_id.is_none() {
                            p.local_id = mapped;
                        }
                    }
                }
                Plan::Publish => self.publish(i, mapped),
                Plan::Unpublish => self.unpublish(i),
                Plan::Republish => {
                    self.unpublish(i);
                    self.publish(i, mapped);
                }
            }
        }
    }

    /// Changes the metadata of one of this peer's tracks, named by the server's id or by the
    /// client's own (its key in `sdpAnswer.trackIdToTrackMetadata`). A track not published
    /// yet keeps it for when it is; the others hear of a published one.
    pub fn update_track_metadata(
        &mut self,
        track_id: &str,
        metadata: TrackMetadata,
    ) -> Result<(), NotYours> {
        let by_server_id = self
            .uplinks
            .iter()
            .filter_map(|u| u.published.as_ref())
            .find(|p| p.track.id == track_id);
        let server_id = if let Some(p) = by_server_id {
            if let Some(local) = &p.local_id {
                self.local_metadata.insert(local.clone(), metadata.clone());
            }
            track_id.to_owned()
        } else if self.local_metadata.contains_key(track_id)
            || self.mid_to_local.values().any(|l| l == track_id)
        {
            self.local_metadata
                .insert(track_id.to_owned(), metadata.clone());
            let published = self
                .uplinks
                .iter()
                .filter_map(|u| u.published.as_ref())
                .find(|p| p.local_id.as_deref() == Some(track_id));
            match published {
                Some(p) => p.track.id.clone(),
                None => return Ok(()),
            }
        } else {
            // Someone else's track, or nothing at all: the room refuses it.
            track_id.to_owned()
        };
        self.room.update_track(&self.id, &server_id, metadata)
    }

    /// Publishes what uplink `i` receives under a new track id, with a fresh forwarder.
    fn publish(&mut self, i: usize, local_id: Option<String>) {
        let Some(remote) = self.uplinks[i].remote.clone() else {
            return;
        };
        let kind = remote.kind();
        let metadata = local_id
            .as_ref()
            .and_then(|l| self.local_metadata.get(l).cloned())
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
            self.fanout_shards,
        ));
        info!(parent: &self.span, track = %track.id, %kind, ?local_id, "publishing");
        let cancel = self.tasks.child_token();
        let voice = self.voice_watch(&remote, &track);
        tokio::spawn(
            forwarder::forward(
                remote,
                track.clone(),
                self.stats.clone(),
                cancel.clone(),
                voice,
            )
            .instrument(self.span.clone()),
        );
        self.uplinks[i].published = Some(Published {
            track: track.clone(),
            local_id,
            forwarder: cancel,
        });
        self.room.publish(&self.id, self.session, vec![track]);
    }

    /// Voice activity for an audio track whose connection negotiated the audio level.
    fn voice_watch(&self, remote: &TrackRemote, track: &PublishedTrack) -> Option<VoiceWatch> {
        if remote.kind() != RTPCodecType::Audio {
            return None;
        }
        let ext_id = remote
            .params()
            .header_extensions
            .iter()
            .find(|e| e.uri == voice::AUDIO_LEVEL_URI)
            .and_then(|e| u8::try_from(e.id).ok())?;
        // Weak: the room outlives no forwarder on its account.
        let room = Arc::downgrade(&self.room);
        let (publisher, track_id) = (self.id.clone(), track.id.clone());
        Some(VoiceWatch {
            ext_id,
            detector: VoiceDetector::default(),
            report: Box::new(move |speaking| {
                debug!(track = %track_id, speaking, "voice activity");
                if let Some(room) = room.upgrade() {
                    room.voice_activity(&publisher, &track_id, speaking);
                }
            }),
        })
    }

    /// Withdraws uplink `i`'s track: its forwarder stops, subscribers drop it.
    fn unpublish(&mut self, i: usize) {
        let Some(p) = self.uplinks[i].published.take() else {
            return;
        };
        info!(parent: &self.span, track = %p.track.id, "unpublishing");
        p.forwarder.cancel();
        self.room
            .unpublish(&self.id, std::slice::from_ref(&p.track.id));
    }

    /// Tears the connection down; every task it started stops.
    pub async fn close(mut self) {
        self.tasks.cancel();
        // Off every shard before the connection's bindings go, so fan-out stops counting us.
        for slot in &mut self.slots {
            slot.lease = None;
        }
        if let Err(e) = self.pc.close().await {
            debug!(parent: &self.span, error = %e, "closing peer connection");
        }
    }
}

/// A recvonly transceiver for one more track from the client.
async fn add_uplink(pc: &RTCPeerConnection, kind: RTPCodecType) -> Result<UplinkSlot, PeerError> {
    let transceiver = pc
        .add_transceiver_from_kind(
            kind,
            Some(RTCRtpTransceiverInit {
                direction: RTCRtpTransceiverDirection::Recvonly,
                send_encodings: vec![],
            }),
        )
        .await?;
    Ok(UplinkSlot {
        transceiver,
        kind,
        remote: None,
        published: None,
    })
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
