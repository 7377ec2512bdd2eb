//! The WebRTC endpoint: the tutorial's `MembraneWebRTC`, speaking Videoroom's protocol.
//!
//! It owns the `RTCPeerConnection`, answers the server's offers (the server makes every offer;
//! the client never does), trickles ICE candidates both ways, keeps the list of the others and
//! their tracks, and reports everything through [`EndpointCallbacks`].
//!
//! Media events are handled one at a time, in order, by one task: an offer's
//! `setRemoteDescription` finishes before the next event (often its candidates) is looked at.

mod answer;
mod connection;
mod downlink;
mod encodings;
mod events;
mod ice;
mod peers;
mod uplink;

use connection::PeerConnection;

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::{Rc, Weak};

use futures_channel::mpsc::{unbounded, UnboundedReceiver, UnboundedSender};
use futures_util::StreamExt;
use protocol::{
    ChatMessage, ClientMediaEvent, PeerId, PeerInfo, PeerMetadata, ServerMediaEvent, TrackCounts,
    TrackId, TrackMetadata,
};
use wasm_bindgen::prelude::wasm_bindgen;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::spawn_local;
use web_sys::{MediaStream, MediaStreamTrack, RtcPeerConnection, RtcRtpTransceiver};

use crate::negotiation::Negotiation;
use crate::small_map::SmallMap;
use crate::timeout::Timeout;

// Members web-sys does not bind yet, on views of the web-sys types.
#[wasm_bindgen]
extern "C" {
    /// An `RTCIceCandidate`, seen for its `usernameFragment`.
    type CandidateExt;
    #[wasm_bindgen(method, getter, js_name = usernameFragment)]
    fn username_fragment(this: &CandidateExt) -> Option<String>;

    /// An `RTCRtpSender`, seen for its `setStreams`.
    type SenderExt;
    #[wasm_bindgen(method, catch, js_name = setStreams)]
    fn set_streams(this: &SenderExt, stream: &MediaStream) -> Result<(), JsValue>;
}

/// A track of another peer, as the callbacks see it.
#[derive(Debug, Clone)]
pub struct TrackContext {
    /// The publisher.
    pub peer_id: PeerId,
    /// The server's id of the track (`<peerId>:<uuid>`).
    pub track_id: TrackId,
    /// What the publisher says about the track.
    pub metadata: Option<TrackMetadata>,
    /// The media, once it arrives (`on_track_ready`).
    pub track: Option<MediaStreamTrack>,
    /// The publisher's stream (all its tracks in one), once media arrives.
    pub stream: Option<MediaStream>,
}

/// What the endpoint reports, as the tutorial's `callbacks` object.
pub trait EndpointCallbacks {
    /// A media event to send to the server.
    fn on_send_media_event(&self, event: ClientMediaEvent);
    /// Something went wrong with the connection (shown to the person).
    fn on_connection_error(&self, message: &str);
    /// The server accepted the join: our id and everyone already there.
    fn on_join_success(&self, peer_id: &str, peers_in_room: &[PeerInfo]);
    /// The server refused the join.
    fn on_join_error(&self, reason: &str);
    /// A remote track's media arrived.
    fn on_track_ready(&self, ctx: &TrackContext);
    /// A peer announced a track (its media may arrive later).
    fn on_track_added(&self, _ctx: &TrackContext) {}
    /// A peer stopped publishing a track.
    fn on_track_removed(&self, _ctx: &TrackContext) {}
    /// A track's metadata changed.
    fn on_track_updated(&self, _ctx: &TrackContext) {}
    /// Someone entered the room.
    fn on_peer_joined(&self, peer: &PeerInfo);
    /// Someone left the room.
    fn on_peer_left(&self, peer: &PeerInfo);
    /// Someone changed their metadata.
    fn on_peer_updated(&self, _peer: &PeerInfo) {}
    /// Chat: the room's recent history (on join, `history`), then each new message (ours
    /// included).
    fn on_chat_message(&self, _message: &ChatMessage, _history: bool) {}
    /// An audio track (ours included) started or stopped carrying speech.
    fn on_voice_activity(&self, _peer_id: &str, _track_id: &str, _speaking: bool) {}
    /// The media connection is restarting ICE (true) or is back (false).
    fn on_ice_restart(&self, _restarting: bool) {}
    /// The server's estimate of our downlink (`None`: nothing limits it) and the videos it
    /// paused for us because they do not fit.
    fn on_downlink(&self, _estimate: Option<u64>, _paused: &[TrackId]) {}
}

/// A STUN or TURN server (the protocol's: the server hands them out with `peerAccepted`).
pub use protocol::IceServer;

/// How the peer connection is set up.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EndpointConfig {
    /// ICE servers; none by default (the server is reachable directly).
    pub ice_servers: Vec<IceServer>,
}

/// The WebRTC endpoint (cheap to clone: a handle).
#[derive(Clone)]
pub struct WebRtcEndpoint {
    inner: Rc<Inner>,
}

struct Inner {
    callbacks: Box<dyn EndpointCallbacks>,
    config: EndpointConfig,
    state: RefCell<State>,
    /// Events tagged with the session (see `State::session`) they came in.
    events: RefCell<Option<UnboundedSender<(u32, ServerMediaEvent)>>>,
}

#[derive(Default)]
struct State {
    pc: Option<PeerConnection>,
    local_peer_id: Option<PeerId>,
    join_sent: bool,
    left: bool,
    peers: SmallMap<RemotePeer>,
    local_tracks: Vec<LocalTrack>,
    negotiation: Negotiation,
    ready_tracks: SmallMap<TrackContext>,
    /// STUN/TURN servers the server gave with `peerAccepted` (credentials for this peer).
    accepted_ice_servers: Vec<IceServer>,
    /// The token to join again with after losing the socket.
    reconnect_token: Option<String>,
    /// Bumped by each rejoin: events and answers of an older session are dropped.
    session: u32,
    /// ICE: whether a restart was asked for in this episode, and the pending check.
    ice: IceWatch,
}

/// The ICE-restart state of one trouble episode (from `disconnected`/`failed` to connected).
#[derive(Default)]
struct IceWatch {
    restart_sent: bool,
    timer: Option<Timeout>,
}

struct RemotePeer {
    info: PeerInfo,
    /// The peer's camera and microphone, in one stream.
    stream: Option<MediaStream>,
    /// Each screen track in a stream of its own (a second video in the camera's stream would
    /// not play), by track id.
    screens: Vec<(TrackId, MediaStream)>,
}

impl RemotePeer {
    fn new(info: PeerInfo) -> RemotePeer {
        RemotePeer {
            info,
            stream: None,
            screens: Vec::new(),
        }
    }
}

struct LocalTrack {
    /// The id the server knows the track by: the first `MediaStreamTrack`'s id, kept when a
    /// device switch replaces the track.
    id: String,
    track: MediaStreamTrack,
    stream: MediaStream,
    metadata: TrackMetadata,
    mid: Option<String>,
    /// Whether an answer has told the server about it (metadata updates may then be sent).
    announced: bool,
    /// The simulcast layers anyone receives, as the server last said (`None`: all).
    wanted_layers: Option<Vec<String>>,
}

impl WebRtcEndpoint {
    /// An endpoint reporting to `callbacks`. Nothing happens until [`join`](Self::join).
    pub fn new(config: EndpointConfig, callbacks: impl EndpointCallbacks + 'static) -> Self {
        let (tx, rx) = unbounded::<(u32, ServerMediaEvent)>();
        let inner = Rc::new(Inner {
            callbacks: Box::new(callbacks),
            config,
            state: RefCell::default(),
            events: RefCell::new(Some(tx)),
        });
        spawn_event_loop(Rc::downgrade(&inner), rx);
        WebRtcEndpoint { inner }
    }

    /// Asks the server to let us in with this metadata (`mediaEvent join`).
    pub fn join(&self, metadata: PeerMetadata) {
        {
            let mut s = self.inner.state.borrow_mut();
            if s.left || s.join_sent {
                return;
            }
            s.join_sent = true;
        }
        self.inner
            .callbacks
            .on_send_media_event(ClientMediaEvent::Join {
                metadata,
                reconnect_token: None,
            });
    }

    /// Hands a media event from the server to the endpoint (handled in order, asynchronously).
    pub fn receive_media_event(&self, event: ServerMediaEvent) {
        let session = self.inner.state.borrow().session;
        if let Some(events) = self.inner.events.borrow().as_ref() {
            let _ = events.unbounded_send((session, event));
        }
    }

    /// Joins again after the socket was lost (on a new socket, channel joined): drops the peer
    /// connection and what it received, and sends `join` with the reconnect token. Local tracks
    /// stay and are published again on the new connection, with their metadata (mute state).
    pub fn rejoin(&self, metadata: PeerMetadata) {
        let (token, pc) = {
            let mut s = self.inner.state.borrow_mut();
            if s.left {
                return;
            }
            s.session += 1;
            s.join_sent = true;
            s.local_peer_id = None;
            s.negotiation = Negotiation::default();
            s.ready_tracks.clear();
            s.ice = IceWatch::default();
            for t in &mut s.local_tracks {
                t.mid = None;
                t.announced = false;
            }
            (s.reconnect_token.clone(), s.pc.take())
        };
        // The peers stay until the new peerAccepted says who is still there.
        drop(pc);
        self.inner
            .callbacks
            .on_send_media_event(ClientMediaEvent::Join {
                metadata,
                reconnect_token: token,
            });
    }

    /// The server track received on `mid` (statistics name tracks by mid).
    pub fn remote_track_of_mid(&self, mid: &str) -> Option<TrackId> {
        self.inner
            .state
            .borrow()
            .negotiation
            .remote_track(mid)
            .cloned()
    }

    /// Asks the server for an ICE restart now (what ICE trouble does by itself; diagnostics and
    /// tests).
    pub fn restart_ice(&self) {
        self.inner.restart_ice();
    }

    /// The reconnect token from `peerAccepted`, if the server gave one.
    pub fn reconnect_token(&self) -> Option<String> {
        self.inner.state.borrow().reconnect_token.clone()
    }

    /// Leaves the room: tells the server (if we asked to join), closes the peer connection and
    /// drops its handlers, and stops handling events. Idempotent.
    pub fn leave(&self) {
        let (join_sent, pc) = {
            let mut s = self.inner.state.borrow_mut();
            if s.left {
                return;
            }
            s.left = true;
            s.ice = IceWatch::default();
            s.peers.clear();
            s.ready_tracks.clear();
            s.local_tracks.clear();
            (s.join_sent, s.pc.take())
        };
        self.inner.events.borrow_mut().take();
        if join_sent {
            self.inner
                .callbacks
                .on_send_media_event(ClientMediaEvent::Leave {});
        }
        drop(pc);
    }

    /// Whether [`leave`](Self::leave) ran.
    pub fn has_left(&self) -> bool {
        self.inner.state.borrow().left
    }

    /// Our peer id, once accepted.
    pub fn local_peer_id(&self) -> Option<PeerId> {
        self.inner.state.borrow().local_peer_id.clone()
    }

    /// The others in the room.
    pub fn peers(&self) -> Vec<PeerInfo> {
        let s = self.inner.state.borrow();
        s.peers.values().map(|p| p.info.clone()).collect()
    }

    /// The peer connection, while there is one (diagnostics and tests).
    pub fn peer_connection(&self) -> Option<RtcPeerConnection> {
        let s = self.inner.state.borrow();
        s.pc.as_ref().map(|p| p.pc.clone())
    }

    /// The mid → local track id map sent with answers (diagnostics and tests).
    pub fn uplink(&self) -> BTreeMap<String, String> {
        self.inner.state.borrow().negotiation.uplink().clone()
    }
}

fn spawn_event_loop(inner: Weak<Inner>, mut events: UnboundedReceiver<(u32, ServerMediaEvent)>) {
    spawn_local(async move {
        while let Some((session, event)) = events.next().await {
            let Some(inner) = inner.upgrade() else {
                break;
            };
            // An event from a socket given up on (queued before a rejoin) means nothing now.
            if session != inner.state.borrow().session {
                continue;
            }
            Inner::handle(&inner, event).await;
        }
    });
}

/// How many local tracks of each kind there are (the uplink m-lines wanted).
fn track_counts(tracks: &[LocalTrack]) -> TrackCounts {
    let audio = tracks.iter().filter(|t| t.track.kind() == "audio").count();
    let video = tracks.len() - audio;
    TrackCounts {
        audio: u8::try_from(audio).unwrap_or(u8::MAX),
        video: u8::try_from(video).unwrap_or(u8::MAX),
    }
}

fn transceiver_by_mid(pc: &RtcPeerConnection, mid: &str) -> Option<RtcRtpTransceiver> {
    pc.get_transceivers()
        .iter()
        .filter_map(|t| t.dyn_into::<RtcRtpTransceiver>().ok())
        .find(|t| t.mid().as_deref() == Some(mid))
}

impl Inner {
    fn has_left(&self) -> bool {
        self.state.borrow().left
    }
}

/// Track contexts for tracks announced by metadata (no media yet).
fn announced(peer_id: &str, tracks: &BTreeMap<TrackId, TrackMetadata>) -> Vec<TrackContext> {
    tracks
        .iter()
        .map(|(id, m)| TrackContext {
            peer_id: peer_id.to_owned(),
            track_id: id.clone(),
            metadata: Some(m.clone()),
            track: None,
            stream: None,
        })
        .collect()
}
