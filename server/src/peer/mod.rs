//! One participant's peer connection: the uplink it publishes, the downlink slots it subscribes
//! through, and negotiation. The server makes every offer, one at a time: while an offer awaits
//! its answer, further changes only mark the peer as needing another offer, which goes out as
//! soon as the answer arrives — so there is never glare and no change is lost.

mod allocation;
mod downlink;
mod dynacast;
mod ice;
mod negotiation;
mod simulcast_sdp;
mod uplink;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use protocol::{ErrorCode, IceCandidate, PeerId, ServerMediaEvent, ServerMessage, TrackMetadata};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn, Span};
use webrtc::ice_transport::ice_candidate::RTCIceCandidateInit;
use webrtc::peer_connection::configuration::RTCConfiguration;
use webrtc::peer_connection::peer_connection_state::RTCPeerConnectionState;
use webrtc::peer_connection::RTCPeerConnection;
use webrtc::rtp_transceiver::rtp_codec::RTPCodecType;
use webrtc::track::track_remote::TrackRemote;

use crate::forwarder::{MediaStats, PublishedTrack};
use crate::outbox::Outbox;
use crate::room::Room;
use crate::transport_cc::{with_downlink, Downlink};
use crate::AppState;
use downlink::Slot;
use negotiation::Negotiation;
use uplink::{add_uplink, UplinkSlot};

pub use ice::{MAX_CANDIDATES, MAX_EARLY_CANDIDATES};
pub use negotiation::ANSWER_TIMEOUT;

/// Something the `webrtc` callbacks report; they only ever send these, never touch the peer.
pub enum RtcEvent {
    /// A local ICE candidate to trickle to the client.
    LocalCandidate(RTCIceCandidateInit),
    /// The connection's state changed.
    State(RTCPeerConnectionState),
    /// The client started sending a stream on this mid (one per simulcast layer).
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
    /// Candidates taken from the client in this connection's life (capped).
    candidates_taken: usize,
    connect_timeout: Duration,
    connect_deadline: Option<Instant>,
    /// Fan-out shards for the tracks this peer publishes.
    fanout_shards: usize,
    /// Ask the client's camera for simulcast layers (`--simulcast`).
    simulcast: bool,
    /// What the subscriber's feedback says of its downlink.
    downlink: Arc<Downlink>,
    /// When layers are next fitted to the downlink (with simulcast).
    next_allocation: Option<Instant>,
    /// What the client was last told of its downlink.
    told_downlink: Option<allocation::Told>,
    /// Tracks lately unsubscribed, newest last (at most [`allocation::STALE_TRACKS`]): a tile
    /// size for one crossed their removal on the wire and is no error.
    unsubscribed: VecDeque<String>,
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
        let downlink = Downlink::new(app.rtc.bwe.clone());
        let pc = Arc::new(
            with_downlink(
                downlink.clone(),
                app.rtc.api.new_peer_connection(RTCConfiguration::default()),
            )
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
            candidates_taken: 0,
            early_candidates: Vec::new(),
            connect_timeout: app.config.ice_connect_timeout(),
            connect_deadline: None,
            fanout_shards: app.config.fanout_shards(),
            simulcast: app.config.simulcast,
            downlink,
            next_allocation: app
                .config
                .simulcast
                .then(|| Instant::now() + allocation::ALLOCATION_INTERVAL),
            told_downlink: None,
            unsubscribed: VecDeque::new(),
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
        [
            self.negotiation.answer_deadline,
            self.connect_deadline,
            self.next_allocation,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// What the subscriber's feedback says of its downlink (its `lowered` signal wakes the
    /// peer's loop to call [`Peer::allocate`] at once).
    pub fn downlink(&self) -> Arc<Downlink> {
        self.downlink.clone()
    }

    /// Does what is due at `now`: an expired deadline removes the peer; layers are fitted to
    /// the downlink when their time has come.
    pub async fn on_deadline(&mut self, now: Instant) -> Result<(), PeerError> {
        self.check_deadlines(now)?;
        if self.next_allocation.is_some_and(|t| t <= now) {
            self.allocate(now).await;
        }
        Ok(())
    }

    /// Whether the media connection has come up at least once.
    pub fn media_connected(&self) -> bool {
        self.connected
    }

    /// Checks the deadlines; an expired one removes the peer.
    fn check_deadlines(&self, now: Instant) -> Result<(), PeerError> {
        if self.negotiation.answer_deadline.is_some_and(|d| d <= now) {
            return Err(PeerError::AnswerTimeout);
        }
        if self.connect_deadline.is_some_and(|d| d <= now) {
            return Err(PeerError::ConnectTimeout);
        }
        Ok(())
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
                let slot = self.uplinks.iter().position(|u| {
                    mid.is_some() && u.transceiver.mid().as_deref() == mid.as_deref()
                });
                match slot {
                    Some(i) => self.add_remote(i, remote),
                    None => {
                        warn!(parent: &self.span, ?mid, "RTP on an m-line that is not an uplink")
                    }
                }
            }
        }
        Ok(())
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

impl Refusal {
    /// The error frame for the client.
    pub fn message(&self) -> ServerMessage {
        ServerMessage::error(self.code, self.message.clone())
    }
}
