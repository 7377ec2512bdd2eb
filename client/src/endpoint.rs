//! The WebRTC endpoint: the tutorial's `MembraneWebRTC`, speaking Videoroom's protocol.
//!
//! It owns the `RTCPeerConnection`, answers the server's offers (the server makes every offer;
//! the client never does), trickles ICE candidates both ways, keeps the list of the others and
//! their tracks, and reports everything through [`EndpointCallbacks`].
//!
//! Media events are handled one at a time, in order, by one task: an offer's
//! `setRemoteDescription` finishes before the next event (often its candidates) is looked at.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::{Rc, Weak};

use futures_channel::mpsc::{unbounded, UnboundedReceiver, UnboundedSender};
use futures_util::StreamExt;
use js_sys::{Array, Reflect};
use protocol::{
    ChatMessage, ClientMediaEvent, IceCandidate, PeerId, PeerInfo, PeerMetadata, ServerMediaEvent,
    SessionDescription, TrackCounts, TrackId, TrackMetadata, TrackSource,
};
use wasm_bindgen::closure::Closure;
use wasm_bindgen::prelude::wasm_bindgen;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::{spawn_local, JsFuture};
use web_sys::{
    Event, MediaStream, MediaStreamTrack, RtcConfiguration, RtcIceCandidateInit,
    RtcIceConnectionState, RtcIceServer, RtcIceTransportPolicy, RtcPeerConnection,
    RtcPeerConnectionIceEvent, RtcRtpTransceiver, RtcRtpTransceiverDirection, RtcSdpType,
    RtcSessionDescriptionInit, RtcTrackEvent,
};

use crate::log;
use crate::negotiation::{publisher_of, CandidateFate, Negotiation};
use crate::small_map::SmallMap;

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

/// A `setTimeout` whose closure it owns; dropping it cancels the timer.
pub struct Timeout {
    handle: i32,
    _callback: Closure<dyn FnMut()>,
}

impl Timeout {
    /// Runs `f` once after `ms` milliseconds, unless dropped first.
    pub fn new(ms: i32, f: impl FnOnce() + 'static) -> Option<Timeout> {
        let mut f = Some(f);
        let callback = Closure::<dyn FnMut()>::new(move || {
            if let Some(f) = f.take() {
                f();
            }
        });
        let handle = web_sys::window()?
            .set_timeout_with_callback_and_timeout_and_arguments_0(
                callback.as_ref().unchecked_ref(),
                ms,
            )
            .ok()?;
        Some(Timeout {
            handle,
            _callback: callback,
        })
    }
}

impl Drop for Timeout {
    fn drop(&mut self) {
        if let Some(w) = web_sys::window() {
            w.clear_timeout_with_handle(self.handle);
        }
    }
}

/// How long ICE may stay `disconnected` before a restart is asked for.
const ICE_DISCONNECTED_GRACE_MS: i32 = 2_000;

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
}

/// The peer connection and the handlers attached to it; dropping it detaches them and closes
/// the connection.
struct PeerConnection {
    pc: RtcPeerConnection,
    _on_ice_candidate: Closure<dyn FnMut(RtcPeerConnectionIceEvent)>,
    _on_track: Closure<dyn FnMut(RtcTrackEvent)>,
    _on_ice_state: Closure<dyn FnMut(Event)>,
}

/// The global through which the live connection can be inspected (`getStats()` from the
/// browser console, the end-to-end suite's media checks).
const DIAGNOSTICS_GLOBAL: &str = "videoroomPeerConnection";

fn expose_for_diagnostics(pc: &RtcPeerConnection) {
    if let Some(w) = web_sys::window() {
        let _ = Reflect::set(&w, &JsValue::from_str(DIAGNOSTICS_GLOBAL), pc);
    }
}

fn withdraw_from_diagnostics(pc: &RtcPeerConnection) {
    let Some(w) = web_sys::window() else { return };
    let key = JsValue::from_str(DIAGNOSTICS_GLOBAL);
    // Only our own: another Room in the same page may have replaced it.
    if Reflect::get(&w, &key).is_ok_and(|v| v == JsValue::from(pc.clone())) {
        let _ = Reflect::delete_property(&w, &key);
    }
}

impl Drop for PeerConnection {
    fn drop(&mut self) {
        withdraw_from_diagnostics(&self.pc);
        self.pc.set_onicecandidate(None);
        self.pc.set_ontrack(None);
        self.pc.set_oniceconnectionstatechange(None);
        self.pc.close();
    }
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

    /// Sets a local track's `muted` (by its id, see [`local_track_id`](Self::local_track_id))
    /// and tells the server once it knows the track (until then the next answer carries it).
    pub fn set_track_muted(&self, local_id: &str, muted: bool) {
        let update = {
            let mut s = self.inner.state.borrow_mut();
            let Some(t) = s.local_tracks.iter_mut().find(|t| t.id == local_id) else {
                return;
            };
            t.metadata.muted = muted;
            t.announced.then(|| t.metadata.clone())
        };
        if let Some(track_metadata) = update {
            self.inner
                .callbacks
                .on_send_media_event(ClientMediaEvent::UpdateTrackMetadata {
                    track_id: local_id.to_owned(),
                    track_metadata,
                });
        }
    }

    /// The id of our published track from `source`, if any.
    pub fn local_track_id(&self, source: TrackSource) -> Option<String> {
        let s = self.inner.state.borrow();
        s.local_tracks
            .iter()
            .find(|t| t.metadata.source == source)
            .map(|t| t.id.clone())
    }

    /// The metadata of our published track `local_id`.
    pub fn local_track_metadata(&self, local_id: &str) -> Option<TrackMetadata> {
        let s = self.inner.state.borrow();
        s.local_tracks
            .iter()
            .find(|t| t.id == local_id)
            .map(|t| t.metadata.clone())
    }

    /// Publishes a screen track: asks the server for one more video m-line
    /// (`renegotiateTracks {tracks}`); the next offer's free one carries it. Returns its id.
    pub fn add_screen_track(&self, track: &MediaStreamTrack, stream: &MediaStream) -> String {
        let counts = {
            let mut s = self.inner.state.borrow_mut();
            s.local_tracks.push(LocalTrack {
                id: track.id(),
                track: Clone::clone(track),
                stream: Clone::clone(stream),
                metadata: TrackMetadata {
                    source: TrackSource::Screen,
                    muted: false,
                },
                mid: None,
                announced: false,
            });
            track_counts(&s.local_tracks)
        };
        self.inner
            .callbacks
            .on_send_media_event(ClientMediaEvent::RenegotiateTracks {
                tracks: Some(counts),
                ice_restart: false,
            });
        track.id()
    }

    /// Stops publishing a local track (a screen share): its sender sends nothing, its m-line
    /// is free again, and the next answer no longer maps it, so the server unpublishes it.
    pub fn remove_track(&self, local_id: &str) {
        let (mid, pc) = {
            let mut s = self.inner.state.borrow_mut();
            let Some(i) = s.local_tracks.iter().position(|t| t.id == local_id) else {
                return;
            };
            let removed = s.local_tracks.remove(i);
            if let Some(mid) = &removed.mid {
                s.negotiation.release_uplink(mid);
            }
            (removed.mid, s.pc.as_ref().map(|p| p.pc.clone()))
        };
        if let (Some(mid), Some(pc)) = (&mid, &pc) {
            if let Some(t) = transceiver_by_mid(pc, mid) {
                // Resolves at once for a null track; nothing to wait for.
                let _ = t.sender().replace_track(None);
            }
        }
        if mid.is_some() {
            self.inner
                .callbacks
                .on_send_media_event(ClientMediaEvent::RenegotiateTracks {
                    tracks: None,
                    ice_restart: false,
                });
        }
    }

    /// Sends `track` instead of the local track `local_id` (another camera or microphone),
    /// without renegotiating: the server keeps seeing the same track.
    pub async fn replace_track(
        &self,
        local_id: &str,
        track: &MediaStreamTrack,
        stream: &MediaStream,
    ) -> Result<(), JsValue> {
        let (mid, pc) = {
            let mut s = self.inner.state.borrow_mut();
            let Some(t) = s.local_tracks.iter_mut().find(|t| t.id == local_id) else {
                return Err(JsValue::from_str("no such local track"));
            };
            t.track = Clone::clone(track);
            t.stream = Clone::clone(stream);
            (t.mid.clone(), s.pc.as_ref().map(|p| p.pc.clone()))
        };
        if let (Some(mid), Some(pc)) = (mid, pc) {
            if let Some(t) = transceiver_by_mid(&pc, &mid) {
                JsFuture::from(t.sender().replace_track(Some(track))).await?;
            }
        }
        Ok(())
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

    /// Publishes a local track. Tracks added before the server's first offer ride on it;
    /// a later one asks the server for a new offer.
    pub fn add_track(
        &self,
        track: &MediaStreamTrack,
        stream: &MediaStream,
        metadata: TrackMetadata,
    ) {
        let renegotiate = {
            let mut s = self.inner.state.borrow_mut();
            if s.left || s.local_tracks.iter().any(|t| t.track.id() == track.id()) {
                return;
            }
            s.local_tracks.push(LocalTrack {
                id: track.id(),
                // `Clone::clone`: web-sys's inherent `clone()` would make a new MediaStream(Track).
                track: Clone::clone(track),
                stream: Clone::clone(stream),
                metadata,
                mid: None,
                announced: false,
            });
            s.negotiation.offers_received() > 0
        };
        if renegotiate {
            self.inner
                .callbacks
                .on_send_media_event(ClientMediaEvent::RenegotiateTracks {
                    tracks: None,
                    ice_restart: false,
                });
        }
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

    /// Handles one event. No `RefCell` borrow is held across an await or a callback.
    async fn handle(this: &Rc<Inner>, event: ServerMediaEvent) {
        if this.has_left() {
            return;
        }
        match event {
            ServerMediaEvent::PeerAccepted {
                id,
                peers_in_room,
                ice_servers,
                chat_history,
                reconnect_token,
            } => {
                this.state.borrow_mut().reconnect_token = reconnect_token;
                Inner::accepted(this, id, peers_in_room, ice_servers);
                for m in &chat_history {
                    this.callbacks.on_chat_message(m, true);
                }
            }
            ServerMediaEvent::PeerDenied { reason } => this.callbacks.on_join_error(&reason),
            ServerMediaEvent::PeerJoined { peer } => this.peer_joined(peer),
            ServerMediaEvent::PeerLeft { peer_id } => this.peer_left(&peer_id),
            ServerMediaEvent::PeerUpdated { peer_id, metadata } => {
                let info = {
                    let mut s = this.state.borrow_mut();
                    s.peers.get_mut(&peer_id).map(|p| {
                        p.info.metadata = metadata;
                        p.info.clone()
                    })
                };
                if let Some(info) = info {
                    this.callbacks.on_peer_updated(&info);
                }
            }
            ServerMediaEvent::TracksAdded {
                peer_id,
                track_id_to_metadata,
            } => {
                let contexts = {
                    let mut s = this.state.borrow_mut();
                    let Some(peer) = s.peers.get_mut(&peer_id) else {
                        log::warn(&format!("tracksAdded for unknown peer {peer_id}"));
                        return;
                    };
                    peer.info
                        .track_id_to_metadata
                        .extend(track_id_to_metadata.clone());
                    announced(&peer_id, &track_id_to_metadata)
                };
                for ctx in contexts {
                    this.callbacks.on_track_added(&ctx);
                }
            }
            ServerMediaEvent::TracksRemoved { peer_id, track_ids } => {
                let contexts: Vec<TrackContext> = {
                    let mut s = this.state.borrow_mut();
                    let s = &mut *s;
                    let mut metadata = BTreeMap::new();
                    if let Some(peer) = s.peers.get_mut(&peer_id) {
                        for id in &track_ids {
                            peer.screens.retain(|(t, _)| t != id);
                            if let Some(m) = peer.info.track_id_to_metadata.remove(id) {
                                metadata.insert(id.clone(), m);
                            }
                        }
                    }
                    track_ids
                        .iter()
                        .map(|id| {
                            s.ready_tracks.remove(id).unwrap_or_else(|| TrackContext {
                                peer_id: peer_id.clone(),
                                track_id: id.clone(),
                                metadata: metadata.get(id).cloned(),
                                track: None,
                                stream: None,
                            })
                        })
                        .collect()
                };
                for ctx in contexts {
                    this.callbacks.on_track_removed(&ctx);
                }
            }
            ServerMediaEvent::TrackUpdated {
                peer_id,
                track_id,
                track_metadata,
            } => {
                let ctx = {
                    let mut s = this.state.borrow_mut();
                    let s = &mut *s;
                    if let Some(peer) = s.peers.get_mut(&peer_id) {
                        peer.info
                            .track_id_to_metadata
                            .insert(track_id.clone(), track_metadata.clone());
                    }
                    let ctx = s.ready_tracks.get_mut(&track_id).map(|ctx| {
                        ctx.metadata = Some(track_metadata.clone());
                        ctx.clone()
                    });
                    ctx.unwrap_or(TrackContext {
                        peer_id,
                        track_id,
                        metadata: Some(track_metadata),
                        track: None,
                        stream: None,
                    })
                };
                this.callbacks.on_track_updated(&ctx);
            }
            ServerMediaEvent::ChatMessage(m) => this.callbacks.on_chat_message(&m, false),
            ServerMediaEvent::VoiceActivity {
                peer_id,
                track_id,
                speaking,
            } => this
                .callbacks
                .on_voice_activity(&peer_id, &track_id, speaking),
            ServerMediaEvent::SdpOffer {
                sdp_offer,
                mid_to_track_id,
            } => {
                if let Err(e) = this.answer(sdp_offer, mid_to_track_id).await {
                    if !this.has_left() {
                        this.callbacks.on_connection_error(&format!(
                            "Negotiation with the server failed: {}",
                            log::describe(&e)
                        ));
                    }
                }
            }
            ServerMediaEvent::Candidate(candidate) => {
                let (fate, pc) = {
                    let mut s = this.state.borrow_mut();
                    let pc = s.pc.as_ref().map(|p| p.pc.clone());
                    (s.negotiation.candidate(candidate), pc)
                };
                match (fate, pc) {
                    (CandidateFate::AddNow(c), Some(pc)) => add_candidate(&pc, &c).await,
                    (CandidateFate::Dropped, _) => {
                        log::warn("too many ICE candidates before the first offer; dropped one")
                    }
                    _ => {}
                }
            }
            ServerMediaEvent::Error { message } => this.callbacks.on_connection_error(&message),
        }
    }

    fn accepted(
        this: &Rc<Inner>,
        id: PeerId,
        peers_in_room: Vec<PeerInfo>,
        ice_servers: Vec<IceServer>,
    ) {
        if this.state.borrow().local_peer_id.is_some() {
            log::warn("ignoring a second peerAccepted");
            return;
        }
        this.state.borrow_mut().accepted_ice_servers = ice_servers;
        let pc = match PeerConnection::new(this) {
            Ok(pc) => pc,
            Err(e) => {
                this.callbacks.on_connection_error(&format!(
                    "Cannot create the peer connection: {}",
                    log::describe(&e)
                ));
                return;
            }
        };
        let gone: Vec<PeerInfo> = {
            let mut s = this.state.borrow_mut();
            s.pc = Some(pc);
            s.local_peer_id = Some(id.clone());
            // After a rejoin: those no longer there left meanwhile; everyone's media comes anew.
            let old = std::mem::take(&mut s.peers);
            for p in &peers_in_room {
                s.peers.insert(p.id.clone(), RemotePeer::new(p.clone()));
            }
            old.into_values()
                .filter(|p| !s.peers.contains_key(&p.info.id))
                .map(|p| p.info)
                .collect()
        };
        for p in &gone {
            this.callbacks.on_peer_left(p);
        }
        this.callbacks.on_join_success(&id, &peers_in_room);
        // Back after a reconnect while sharing a screen: the first offer has m-lines for a
        // microphone and a camera only; ask for the rest.
        let counts = track_counts(&this.state.borrow().local_tracks);
        if counts.audio > 1 || counts.video > 1 {
            this.callbacks
                .on_send_media_event(ClientMediaEvent::RenegotiateTracks {
                    tracks: Some(counts),
                    ice_restart: false,
                });
        }
        for p in &peers_in_room {
            for ctx in announced(&p.id, &p.track_id_to_metadata) {
                this.callbacks.on_track_added(&ctx);
            }
        }
    }

    fn peer_joined(&self, peer: PeerInfo) {
        {
            let mut s = self.state.borrow_mut();
            if s.local_peer_id.as_deref() == Some(peer.id.as_str()) {
                return;
            }
            if let Some(known) = s.peers.get_mut(&peer.id) {
                // Announced twice: keep its stream (re-attaching would blank its video).
                log::warn(&format!("peerJoined again for {}", peer.id));
                known.info = peer.clone();
            } else {
                s.peers
                    .insert(peer.id.clone(), RemotePeer::new(peer.clone()));
            }
        }
        self.callbacks.on_peer_joined(&peer);
        for ctx in announced(&peer.id, &peer.track_id_to_metadata) {
            self.callbacks.on_track_added(&ctx);
        }
    }

    fn peer_left(&self, peer_id: &str) {
        let (info, removed) = {
            let mut s = self.state.borrow_mut();
            let Some(peer) = s.peers.remove(peer_id) else {
                return;
            };
            let gone: Vec<TrackId> = s
                .ready_tracks
                .iter()
                .filter(|(_, ctx)| ctx.peer_id == peer_id)
                .map(|(id, _)| id.clone())
                .collect();
            let removed: Vec<TrackContext> = gone
                .iter()
                .filter_map(|id| s.ready_tracks.remove(id))
                .collect();
            (peer.info, removed)
        };
        for ctx in &removed {
            self.callbacks.on_track_removed(ctx);
        }
        self.callbacks.on_peer_left(&info);
    }

    /// Answers an offer: apply it, put the local tracks on the uplink m-lines the first time,
    /// answer, and send the answer with the uplink's mid → track map.
    async fn answer(
        &self,
        offer: SessionDescription,
        mid_to_track_id: BTreeMap<String, TrackId>,
    ) -> Result<(), JsValue> {
        let (pc, session) = {
            let mut s = self.state.borrow_mut();
            let Some(pc) = s.pc.as_ref().map(|p| p.pc.clone()) else {
                return Err(JsValue::from_str("an offer arrived before peerAccepted"));
            };
            s.negotiation.offer_sdp(&offer.sdp);
            log::info(&format!(
                "offer {} ({} remote tracks)",
                s.negotiation.offers_received() + 1,
                mid_to_track_id.len()
            ));
            // Recorded before applying: ontrack fires during setRemoteDescription.
            s.negotiation.offer_received(mid_to_track_id);
            (pc, s.session)
        };
        let remote = RtcSessionDescriptionInit::new(RtcSdpType::Offer);
        remote.set_sdp(&offer.sdp);
        JsFuture::from(pc.set_remote_description(&remote)).await?;

        let waiting = self
            .state
            .borrow_mut()
            .negotiation
            .remote_description_applied();
        for c in &waiting {
            add_candidate(&pc, c).await;
        }

        self.attach_uplink(&pc).await?;

        let answer = JsFuture::from(pc.create_answer()).await?;
        let sdp = Reflect::get(&answer, &JsValue::from_str("sdp"))?
            .as_string()
            .ok_or_else(|| JsValue::from_str("createAnswer gave no SDP"))?;
        let local = RtcSessionDescriptionInit::new(RtcSdpType::Answer);
        local.set_sdp(&sdp);
        JsFuture::from(pc.set_local_description(&local)).await?;
        if self.has_left() || self.state.borrow().session != session {
            // Left, or rejoined meanwhile: this answer belongs to a connection that is gone.
            return Ok(());
        }
        let sdp = pc.local_description().map(|d| d.sdp()).unwrap_or(sdp);

        let (track_id_to_track_metadata, mid_to_track_id) = {
            let mut s = self.state.borrow_mut();
            let maps = s.negotiation.answer_maps(|id| {
                s.local_tracks
                    .iter()
                    .find(|t| t.id == id)
                    .map(|t| t.metadata.clone())
            });
            for t in s.local_tracks.iter_mut().filter(|t| t.mid.is_some()) {
                t.announced = true;
            }
            maps
        };
        self.callbacks
            .on_send_media_event(ClientMediaEvent::SdpAnswer {
                sdp_answer: SessionDescription {
                    kind: protocol::SdpType::Answer,
                    sdp,
                },
                track_id_to_track_metadata,
                mid_to_track_id,
            });
        Ok(())
    }

    /// Puts every local track not yet sent on a free uplink transceiver of its kind (one the
    /// server receives on: its mid is not in the offer's `midToTrackId`).
    async fn attach_uplink(&self, pc: &RtcPeerConnection) -> Result<(), JsValue> {
        let plan: Vec<(RtcRtpTransceiver, MediaStreamTrack, MediaStream)> = {
            let mut s = self.state.borrow_mut();
            let State {
                local_tracks,
                negotiation,
                ..
            } = &mut *s;
            let transceivers: Vec<RtcRtpTransceiver> = pc
                .get_transceivers()
                .iter()
                .filter_map(|t| t.dyn_into().ok())
                .collect();
            let mut plan = Vec::new();
            for local in local_tracks.iter_mut().filter(|t| t.mid.is_none()) {
                let kind = local.track.kind();
                let slot = transceivers.iter().find_map(|t| {
                    let mid = t.mid()?;
                    let usable = t.direction() != RtcRtpTransceiverDirection::Stopped
                        && negotiation.is_free_uplink(&mid)
                        && t.receiver().track().kind() == kind;
                    usable.then(|| (t.clone(), mid))
                });
                match slot {
                    Some((t, mid)) => {
                        negotiation.assign_uplink(&mid, &local.id);
                        local.mid = Some(mid);
                        plan.push((t, Clone::clone(&local.track), Clone::clone(&local.stream)));
                    }
                    None => log::warn(&format!(
                        "the server offered no m-line for the local {kind} track"
                    )),
                }
            }
            plan
        };
        for (transceiver, track, stream) in plan {
            let sender = transceiver.sender();
            JsFuture::from(sender.replace_track(Some(&track))).await?;
            transceiver.set_direction(RtcRtpTransceiverDirection::Sendonly);
            // One msid for our audio and video; missing in older browsers, and only cosmetic.
            if let Err(e) = sender.unchecked_ref::<SenderExt>().set_streams(&stream) {
                log::info_failed("setStreams unavailable", &e);
            }
        }
        Ok(())
    }

    fn on_track(&self, event: RtcTrackEvent) {
        let ctx = {
            let mut s = self.state.borrow_mut();
            let s = &mut *s;
            let mid = event.transceiver().mid();
            let Some(track_id) = mid
                .as_deref()
                .and_then(|m| s.negotiation.remote_track(m))
                .cloned()
            else {
                log::warn(&format!(
                    "media on unknown mid {}",
                    mid.as_deref().unwrap_or("(none)")
                ));
                return;
            };
            let Some(peer_id) = publisher_of(&track_id).map(str::to_owned) else {
                log::warn(&format!("malformed track id {track_id}"));
                return;
            };
            let track = event.track();
            let metadata = s
                .peers
                .get(&peer_id)
                .and_then(|p| p.info.track_id_to_metadata.get(&track_id).cloned());
            let is_screen = metadata
                .as_ref()
                .is_some_and(|m| m.source == TrackSource::Screen);
            // The browser's stream is the publisher's when the offer's msid says so; a reused
            // transceiver may still carry an older publisher's msid, so then (or with no msid)
            // the peer's tracks are gathered in a stream of our own.
            let given = event
                .streams()
                .get(0)
                .dyn_into::<MediaStream>()
                .ok()
                .filter(|s| s.id() == peer_id);
            let peer = s.peers.get(&peer_id);
            // Once a peer has a stream it keeps it: re-attaching would blank its video. A
            // screen gets a stream of its own, never the camera's.
            let existing = peer.and_then(|p| {
                if is_screen {
                    p.screens
                        .iter()
                        .find(|(t, _)| *t == track_id)
                        .map(|(_, s)| Clone::clone(s))
                } else {
                    p.stream.clone()
                }
            });
            let stream = match (existing, given) {
                (Some(existing), _) => existing,
                (None, Some(given)) if !is_screen => given,
                _ => match MediaStream::new() {
                    Ok(s) => s,
                    Err(_) => return,
                },
            };
            // A reused receiver track leaves the stream it was in before.
            for other in s.peers.values() {
                for old in other
                    .stream
                    .iter()
                    .chain(other.screens.iter().map(|(_, s)| s))
                {
                    if !js_sys::Object::is(old, &stream) {
                        old.remove_track(&track);
                    }
                }
            }
            if stream.get_track_by_id(&track.id()).is_none() {
                stream.add_track(&track);
            }
            if let Some(p) = s.peers.get_mut(&peer_id) {
                if is_screen {
                    p.screens.retain(|(t, _)| *t != track_id);
                    p.screens.push((track_id.clone(), Clone::clone(&stream)));
                } else {
                    p.stream = Some(Clone::clone(&stream));
                }
            }
            log::info(&format!(
                "media of {track_id} ({}) on mid {}, stream {}",
                track.kind(),
                mid.as_deref().unwrap_or("?"),
                stream.id()
            ));
            let ctx = TrackContext {
                peer_id,
                track_id: track_id.clone(),
                metadata,
                track: Some(track),
                stream: Some(stream),
            };
            s.ready_tracks.insert(track_id, ctx.clone());
            ctx
        };
        self.callbacks.on_track_ready(&ctx);
    }

    fn on_ice_candidate(&self, event: RtcPeerConnectionIceEvent) {
        // null = end of candidates; "" = end of a generation. The server needs neither.
        let Some(c) = event.candidate() else {
            return;
        };
        let line = c.candidate();
        if line.is_empty() || self.has_left() {
            return;
        }
        self.callbacks
            .on_send_media_event(ClientMediaEvent::Candidate(IceCandidate {
                candidate: line,
                sdp_mid: c.sdp_mid(),
                sdp_m_line_index: c.sdp_m_line_index(),
                username_fragment: c.unchecked_ref::<CandidateExt>().username_fragment(),
            }));
    }

    /// ICE trouble: `disconnected` for more than 2 s, or `failed`, asks the server for an ICE
    /// restart (once per episode); `failed` after that is reported.
    fn on_ice_state(self: &Rc<Self>) {
        let state = {
            let s = self.state.borrow();
            s.pc.as_ref().map(|p| p.pc.ice_connection_state())
        };
        let Some(state) = state else { return };
        log::info(&format!("ICE connection state: {state:?}"));
        match state {
            RtcIceConnectionState::Connected | RtcIceConnectionState::Completed => {
                let was_restarting = {
                    let mut s = self.state.borrow_mut();
                    std::mem::take(&mut s.ice).restart_sent
                };
                if was_restarting {
                    self.callbacks.on_ice_restart(false);
                }
            }
            RtcIceConnectionState::Disconnected => {
                let weak = Rc::downgrade(self);
                let timer = Timeout::new(ICE_DISCONNECTED_GRACE_MS, move || {
                    if let Some(inner) = weak.upgrade() {
                        inner.state.borrow_mut().ice.timer = None;
                        let still = inner.state.borrow().pc.as_ref().map(|p| {
                            p.pc.ice_connection_state() == RtcIceConnectionState::Disconnected
                        });
                        if still == Some(true) {
                            inner.restart_ice();
                        }
                    }
                });
                let mut s = self.state.borrow_mut();
                if s.ice.timer.is_none() && !s.ice.restart_sent {
                    s.ice.timer = timer;
                }
            }
            RtcIceConnectionState::Failed => {
                if self.state.borrow().ice.restart_sent {
                    self.callbacks.on_connection_error(
                        "The media connection to the server failed (ICE); check your network",
                    );
                } else {
                    self.restart_ice();
                }
            }
            _ => {}
        }
    }

    /// Asks the server for an offer with new ICE credentials (once per episode).
    fn restart_ice(&self) {
        {
            let mut s = self.state.borrow_mut();
            if s.left || s.ice.restart_sent {
                return;
            }
            s.ice.restart_sent = true;
            s.ice.timer = None;
        }
        log::warn("ICE is in trouble: asking the server for an ICE restart");
        self.callbacks.on_ice_restart(true);
        self.callbacks
            .on_send_media_event(ClientMediaEvent::RenegotiateTracks {
                tracks: None,
                ice_restart: true,
            });
    }
}

impl PeerConnection {
    fn new(inner: &Rc<Inner>) -> Result<PeerConnection, JsValue> {
        let config = RtcConfiguration::new();
        let servers = Array::new();
        let accepted = inner.state.borrow().accepted_ice_servers.clone();
        for server in inner.config.ice_servers.iter().chain(&accepted) {
            let s = RtcIceServer::new();
            let urls: Array = server.urls.iter().map(|u| JsValue::from_str(u)).collect();
            s.set_urls(&urls);
            if let Some(u) = &server.username {
                s.set_username(u);
            }
            if let Some(c) = &server.credential {
                s.set_credential(c);
            }
            servers.push(&s);
        }
        config.set_ice_servers(&servers);
        config.set_ice_transport_policy(RtcIceTransportPolicy::All);
        let pc = RtcPeerConnection::new_with_configuration(&config)?;
        expose_for_diagnostics(&pc);

        let weak = Rc::downgrade(inner);
        let on_ice_candidate = Closure::<dyn FnMut(RtcPeerConnectionIceEvent)>::new(
            move |e: RtcPeerConnectionIceEvent| {
                if let Some(inner) = weak.upgrade() {
                    inner.on_ice_candidate(e);
                }
            },
        );
        let weak = Rc::downgrade(inner);
        let on_track = Closure::<dyn FnMut(RtcTrackEvent)>::new(move |e: RtcTrackEvent| {
            if let Some(inner) = weak.upgrade() {
                inner.on_track(e);
            }
        });
        let weak = Rc::downgrade(inner);
        let on_ice_state = Closure::<dyn FnMut(Event)>::new(move |_: Event| {
            if let Some(inner) = weak.upgrade() {
                inner.on_ice_state();
            }
        });
        pc.set_onicecandidate(Some(on_ice_candidate.as_ref().unchecked_ref()));
        pc.set_ontrack(Some(on_track.as_ref().unchecked_ref()));
        pc.set_oniceconnectionstatechange(Some(on_ice_state.as_ref().unchecked_ref()));
        Ok(PeerConnection {
            pc,
            _on_ice_candidate: on_ice_candidate,
            _on_track: on_track,
            _on_ice_state: on_ice_state,
        })
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

async fn add_candidate(pc: &RtcPeerConnection, c: &IceCandidate) {
    let init = RtcIceCandidateInit::new(&c.candidate);
    init.set_sdp_mid(c.sdp_mid.as_deref());
    init.set_sdp_m_line_index(c.sdp_m_line_index);
    if let Some(ufrag) = &c.username_fragment {
        let _ = Reflect::set(&init, &"usernameFragment".into(), &ufrag.into());
    }
    let added = JsFuture::from(pc.add_ice_candidate_with_opt_rtc_ice_candidate_init(Some(&init)));
    if let Err(e) = added.await {
        // One bad candidate must not stop negotiation; the others may well work.
        log::warn(&format!(
            "ICE candidate \"{}\" refused: {}",
            c.candidate,
            log::describe(&e)
        ));
    }
}
