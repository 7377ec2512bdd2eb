//! Headless WebRTC peers that speak Videoroom's protocol over a real WebSocket, with real ICE,
//! DTLS and SRTP: they publish synthetic audio and video RTP whose payloads can be checked
//! byte for byte, and count what they receive per track. The server's integration tests use
//! them; they are also the seed of the load generator.

mod impair;
mod payload;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use futures_util::{SinkExt, StreamExt};
use protocol::{
    topic_for_room, ChatMessage, ClientMediaEvent, ClientMessage, IceCandidate, PeerId,
    PeerMetadata, SdpType, ServerMediaEvent, ServerMessage, SessionDescription, TrackId,
    TrackMetadata, TrackSource, PROTOCOL_VERSION,
};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;
use webrtc::api::interceptor_registry::register_default_interceptors;
use webrtc::api::media_engine::{MediaEngine, MIME_TYPE_OPUS, MIME_TYPE_VP8};
use webrtc::api::setting_engine::SettingEngine;
use webrtc::api::{APIBuilder, API};
use webrtc::dtls_transport::dtls_role::DTLSRole;
use webrtc::ice::mdns::MulticastDnsMode;
use webrtc::ice::network_type::NetworkType;
use webrtc::ice::udp_mux::{UDPMuxDefault, UDPMuxParams};
use webrtc::ice::udp_network::UDPNetwork;
use webrtc::ice_transport::ice_candidate::RTCIceCandidateInit;
use webrtc::ice_transport::ice_server::RTCIceServer;
use webrtc::interceptor::registry::Registry;
use webrtc::peer_connection::configuration::RTCConfiguration;
use webrtc::peer_connection::peer_connection_state::RTCPeerConnectionState;
use webrtc::peer_connection::policy::ice_transport_policy::RTCIceTransportPolicy;
use webrtc::peer_connection::sdp::session_description::RTCSessionDescription;
use webrtc::peer_connection::RTCPeerConnection;
use webrtc::rtp_transceiver::rtp_codec::RTCRtpCodecCapability;
use webrtc::track::track_local::track_local_static_rtp::TrackLocalStaticRTP;
use webrtc::track::track_local::{TrackLocal, TrackLocalWriter};
use webrtc::track::track_remote::TrackRemote;

pub use impair::{ImpairedConn, Impairment, LinkCounters};
pub use payload::{check_payload, make_payload};

/// The RTP header extension with each audio packet's level (RFC 6464).
pub const AUDIO_LEVEL_URI: &str = "urn:ietf:params:rtp-hdrext:ssrc-audio-level";
/// [`TestPeer::set_audio_level`]'s "no extension".
const NO_LEVEL: u8 = u8::MAX;

/// What a test peer publishes.
#[derive(Debug, Clone)]
pub struct PeerOptions {
    /// Publish an Opus-labelled audio track (50 packets/s).
    pub audio: bool,
    /// Publish a VP8-labelled video track.
    pub video: bool,
    /// Video packets per second.
    pub video_packets_per_second: u32,
    /// Video payload size in bytes.
    pub video_payload_bytes: usize,
    /// Address the peer gathers ICE candidates on.
    pub ice_ip: IpAddr,
    /// Exchange ICE candidates. `false` makes a peer whose media can never connect (for
    /// tests of the server's connect timeout): no candidates sent, received or in the answer.
    pub ice: bool,
    /// Put a lossy, slow link between this peer and everyone else (all its UDP).
    pub impairment: Option<Impairment>,
    /// Use only relayed (TURN) candidates, from the ICE servers the server hands out.
    pub relay_only: bool,
}

impl Default for PeerOptions {
    fn default() -> Self {
        PeerOptions {
            audio: true,
            video: true,
            video_packets_per_second: 100,
            video_payload_bytes: 1000,
            ice_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            ice: true,
            impairment: None,
            relay_only: false,
        }
    }
}

/// What one received track has delivered.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrackStats {
    /// The publisher (the stream id the server gave it).
    pub publisher: PeerId,
    /// `audio` or `video`.
    pub kind: String,
    /// Packets received.
    pub packets: u64,
    /// Payload bytes received.
    pub bytes: u64,
    /// Packets whose payload was not what the publisher wrote.
    pub corrupt: u64,
    /// Distinct publisher packets (by payload counter): retransmitted copies count once.
    pub distinct: u64,
    /// The lowest and highest payload counters received: with `distinct`, the delivery ratio.
    pub counters: Option<(u32, u32)>,
    /// The longest time between two packets of this track (the worst freeze a viewer saw).
    pub longest_gap: Duration,
    /// Packets that carried an audio level (the extension negotiated for this track).
    pub with_audio_level: u64,
}

impl TrackStats {
    /// Distinct packets received ÷ packets the publisher sent in the counter range seen.
    pub fn delivery(&self) -> f64 {
        match self.counters {
            Some((lo, hi)) => self.distinct as f64 / (f64::from(hi - lo) + 1.0),
            None => 0.0,
        }
    }
}

/// Everything a test peer has seen, for assertions.
#[derive(Debug, Clone, Default)]
pub struct PeerState {
    /// Our id once accepted.
    pub id: Option<PeerId>,
    /// The other peers in the room: id → display name.
    pub peers: BTreeMap<PeerId, String>,
    /// Tracks announced by tracksAdded/peerAccepted: id → (publisher, metadata).
    pub tracks: BTreeMap<TrackId, (PeerId, TrackMetadata)>,
    /// Tracks announced then removed.
    pub removed_tracks: Vec<TrackId>,
    /// Media received per track id (attributed through the latest offer's mid → track map,
    /// as a browser client does: a transceiver may carry another publisher's track later).
    pub received: BTreeMap<TrackId, TrackStats>,
    /// Packets that arrived on a mid the latest offer maps to no track.
    pub unmapped_packets: u64,
    /// The latest offer's mid → track id map.
    pub mid_to_track: BTreeMap<String, TrackId>,
    /// The peer connection's state.
    pub connection: Option<RTCPeerConnectionState>,
    /// Offers received.
    pub offers: u32,
    /// Keyframe requests (PLI/FIR) the server sent for our own video.
    pub keyframe_requests: u64,
    /// Error frames received (top-level and media-level).
    pub errors: Vec<String>,
    /// The refusal, if the join was denied.
    pub denied: Option<String>,
    /// The close frame (code, reason) or `Some((0, ..))` if the socket ended without one.
    pub closed: Option<(u16, String)>,
    /// Chat messages: the history from `peerAccepted`, then each `chatMessage`.
    pub chat: Vec<ChatMessage>,
    /// Voice activity reports, in order: (track id, speaking).
    pub voice_activity: Vec<(TrackId, bool)>,
    /// The reconnect token from `peerAccepted`.
    pub reconnect_token: Option<String>,
    /// The latest offer's SDP.
    pub offer_sdp: String,
    /// How many m-lines the latest answered offer had (set when the answer is sent).
    pub answered_m_lines: usize,
    /// Membership events in order: (`joined` | `left` | `updated`, peer id).
    pub peer_events: Vec<(&'static str, PeerId)>,
}

impl PeerState {
    /// How many m-lines the latest offer has.
    pub fn offer_m_lines(&self) -> usize {
        self.offer_sdp
            .lines()
            .filter(|l| l.starts_with("m="))
            .count()
    }
}

impl PeerState {
    /// Packets received from `publisher` of `kind` (`audio`/`video`).
    pub fn packets_from(&self, publisher: &str, kind: &str) -> u64 {
        self.received
            .values()
            .filter(|t| t.publisher == publisher && t.kind == kind)
            .map(|t| t.packets)
            .sum()
    }

    /// Corrupt packets received over all tracks.
    pub fn corrupt(&self) -> u64 {
        self.received.values().map(|t| t.corrupt).sum()
    }
}

/// Why a join did not succeed.
#[derive(Debug)]
pub enum JoinError {
    /// The server answered peerDenied.
    Denied(String),
    /// Anything else.
    Other(anyhow::Error),
}

impl std::fmt::Display for JoinError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            JoinError::Denied(r) => write!(f, "peer denied: {r}"),
            JoinError::Other(e) => write!(f, "{e:#}"),
        }
    }
}

impl std::error::Error for JoinError {}

impl From<anyhow::Error> for JoinError {
    fn from(e: anyhow::Error) -> Self {
        JoinError::Other(e)
    }
}

/// Builds the WebRTC API a test peer uses: Opus + VP8, loopback ICE only.
pub fn api(ice_ip: IpAddr) -> anyhow::Result<API> {
    api_over(ice_ip, None)
}

/// [`api`], with all of the peer's UDP over `conn` when given (e.g. an [`ImpairedConn`]).
pub fn api_over(ice_ip: IpAddr, conn: Option<ImpairedConn>) -> anyhow::Result<API> {
    let mut m = MediaEngine::default();
    m.register_default_codecs()?;
    // As browsers do: the server then reads voice activity from our audio.
    m.register_header_extension(
        webrtc::rtp_transceiver::rtp_codec::RTCRtpHeaderExtensionCapability {
            uri: AUDIO_LEVEL_URI.to_owned(),
        },
        webrtc::rtp_transceiver::rtp_codec::RTPCodecType::Audio,
        None,
    )?;
    let registry = register_default_interceptors(Registry::new(), &mut m)?;
    let mut s = SettingEngine::default();
    s.set_ice_multicast_dns_mode(MulticastDnsMode::Disabled);
    s.set_network_types(vec![NetworkType::Udp4]);
    s.set_include_loopback_candidate(ice_ip.is_loopback());
    s.set_ip_filter(Box::new(move |ip| ip == ice_ip));
    // The server offers `a=setup:active` (it is the DTLS client); a browser answers `passive`
    // by itself, this crate's answerer only when told.
    s.set_answering_dtls_role(DTLSRole::Server)?;
    if let Some(conn) = conn {
        s.set_udp_network(UDPNetwork::Muxed(UDPMuxDefault::new(UDPMuxParams::new(
            conn,
        ))));
    }
    Ok(APIBuilder::new()
        .with_media_engine(m)
        .with_interceptor_registry(registry)
        .with_setting_engine(s)
        .build())
}

type WsSink = futures_util::stream::SplitSink<
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
    Message,
>;

/// The client's own tracks by local id, with their metadata: what the answers announce and
/// map. A stopped track is not in it, so the next answer leaves its m-line unmapped.
type LocalTracks = Arc<std::sync::Mutex<BTreeMap<String, TrackMetadata>>>;

/// A video track added after joining (a screen share) and its sender.
struct ExtraTrack {
    sender: Arc<webrtc::rtp_transceiver::rtp_sender::RTCRtpSender>,
    track: Arc<TrackLocalStaticRTP>,
    local_id: String,
    publishing: Option<JoinHandle<()>>,
}

/// A participant driven from Rust.
pub struct TestPeer {
    /// Our peer id.
    pub id: PeerId,
    /// Our display name.
    pub name: String,
    pc: Arc<RTCPeerConnection>,
    out: mpsc::UnboundedSender<Message>,
    state: watch::Receiver<PeerState>,
    tasks: Vec<JoinHandle<()>>,
    link: Option<Arc<LinkCounters>>,
    local: LocalTracks,
    audio_level: Arc<std::sync::atomic::AtomicU8>,
    /// For tasks started after joining (they must not keep the state alive).
    state_tx: std::sync::Weak<watch::Sender<PeerState>>,
    extra: std::sync::Mutex<Vec<ExtraTrack>>,
    audio: bool,
    video: bool,
    video_packets_per_second: u32,
    video_payload_bytes: usize,
}

impl TestPeer {
    /// Connects to `url` (`ws://host:port/socket`), joins `room` as `name`, and starts
    /// negotiating and publishing. Returns once the server accepted the peer.
    pub async fn join(
        url: &str,
        room: &str,
        name: &str,
        options: PeerOptions,
    ) -> Result<TestPeer, JoinError> {
        Self::join_with_token(url, room, name, options, None).await
    }

    /// [`TestPeer::join`] with the reconnect token of an earlier `peerAccepted`, as a client
    /// that lost its connection does.
    pub async fn join_with_token(
        url: &str,
        room: &str,
        name: &str,
        options: PeerOptions,
        reconnect_token: Option<String>,
    ) -> Result<TestPeer, JoinError> {
        // Browsers disable Nagle on their sockets; so do we, or small frames wait ~40 ms.
        let (ws, _) = tokio_tungstenite::connect_async_with_config(url, None, true)
            .await
            .with_context(|| format!("connecting to {url}"))?;
        let (sink, mut stream) = ws.split();
        let (out, out_rx) = mpsc::unbounded_channel::<Message>();
        let writer = tokio::spawn(write_loop(sink, out_rx));
        let send = |m: ClientMessage| out.send(Message::Text(m.encode().into()));
        send(ClientMessage::ChannelJoin {
            topic: topic_for_room(room),
            protocol_version: PROTOCOL_VERSION,
            token: None,
        })
        .map_err(|_| anyhow!("socket closed"))?;
        match next_server_message(&mut stream).await? {
            ServerMessage::ChannelJoined { .. } => {}
            ServerMessage::ChannelJoinError { reason } => {
                return Err(anyhow!("channel join refused: {reason}").into())
            }
            other => return Err(anyhow!("unexpected reply to channelJoin: {other:?}").into()),
        }
        send(ClientMessage::MediaEvent {
            data: ClientMediaEvent::Join {
                metadata: PeerMetadata {
                    display_name: name.to_owned(),
                },
                reconnect_token,
            },
        })
        .map_err(|_| anyhow!("socket closed"))?;
        let (id, peers, ice_servers, chat, reconnect_token) =
            match next_server_message(&mut stream).await? {
                ServerMessage::MediaEvent {
                    data:
                        ServerMediaEvent::PeerAccepted {
                            id,
                            peers_in_room,
                            ice_servers,
                            chat_history,
                            reconnect_token,
                        },
                } => (
                    id,
                    peers_in_room,
                    ice_servers,
                    chat_history,
                    reconnect_token,
                ),
                ServerMessage::MediaEvent {
                    data: ServerMediaEvent::PeerDenied { reason },
                } => {
                    writer.abort();
                    return Err(JoinError::Denied(reason));
                }
                other => return Err(anyhow!("unexpected reply to join: {other:?}").into()),
            };

        let mut initial = PeerState {
            id: Some(id.clone()),
            chat,
            reconnect_token,
            ..Default::default()
        };
        for p in peers {
            for (t, meta) in p.track_id_to_metadata {
                initial.tracks.insert(t, (p.id.clone(), meta));
            }
            initial.peers.insert(p.id, p.metadata.display_name);
        }
        let (state_tx, state) = watch::channel(initial);
        let state_tx = Arc::new(state_tx);

        let (conn, link) = match options.impairment {
            Some(impairment) => {
                let counters = Arc::new(LinkCounters::default());
                let conn = ImpairedConn::bind(
                    SocketAddr::new(options.ice_ip, 0),
                    impairment,
                    counters.clone(),
                )
                .await
                .context("binding the impaired link")?;
                (Some(conn), Some(counters))
            }
            None => (None, None),
        };
        let api = api_over(options.ice_ip, conn)?;
        let config = RTCConfiguration {
            ice_servers: ice_servers
                .into_iter()
                .map(|s| RTCIceServer {
                    urls: s.urls,
                    username: s.username.unwrap_or_default(),
                    credential: s.credential.unwrap_or_default(),
                })
                .collect(),
            ice_transport_policy: if options.relay_only {
                RTCIceTransportPolicy::Relay
            } else {
                RTCIceTransportPolicy::All
            },
            ..Default::default()
        };
        let pc = Arc::new(
            api.new_peer_connection(config)
                .await
                .context("creating peer connection")?,
        );
        // Tracks added before the first offer is applied take the server's recvonly m-lines.
        let mut local_tracks = Vec::new();
        let audio_level = Arc::new(std::sync::atomic::AtomicU8::new(NO_LEVEL));
        let mut audio_sender = None;
        let mut video_sender = None;
        let mut track_meta = BTreeMap::new();
        let stream_id = format!("testkit-{id}");
        if options.audio {
            let t = Arc::new(TrackLocalStaticRTP::new(
                RTCRtpCodecCapability {
                    mime_type: MIME_TYPE_OPUS.into(),
                    clock_rate: 48000,
                    channels: 2,
                    ..Default::default()
                },
                format!("{id}-audio"),
                stream_id.clone(),
            ));
            audio_sender = Some(
                pc.add_track(t.clone() as Arc<dyn TrackLocal + Send + Sync>)
                    .await
                    .context("adding audio")?,
            );
            track_meta.insert(
                t.id().to_owned(),
                TrackMetadata {
                    source: TrackSource::Microphone,
                    muted: false,
                },
            );
            local_tracks.push((t, 50u32, 120usize));
        }
        if options.video {
            let t = Arc::new(TrackLocalStaticRTP::new(
                RTCRtpCodecCapability {
                    mime_type: MIME_TYPE_VP8.into(),
                    clock_rate: 90000,
                    ..Default::default()
                },
                format!("{id}-video"),
                stream_id.clone(),
            ));
            let sender = pc
                .add_track(t.clone() as Arc<dyn TrackLocal + Send + Sync>)
                .await
                .context("adding video")?;
            video_sender = Some(sender);
            track_meta.insert(
                t.id().to_owned(),
                TrackMetadata {
                    source: TrackSource::Camera,
                    muted: false,
                },
            );
            local_tracks.push((
                t,
                options.video_packets_per_second,
                options.video_payload_bytes,
            ));
        }

        let weak = Arc::downgrade(&state_tx);
        pc.on_peer_connection_state_change(Box::new(move |s| {
            if let Some(tx) = weak.upgrade() {
                tx.send_modify(|st| st.connection = Some(s));
            }
            Box::pin(async {})
        }));
        let cand_out = out.clone();
        let trickle = options.ice;
        pc.on_ice_candidate(Box::new(move |c| {
            if !trickle {
                return Box::pin(async {});
            }
            if let Some(msg) = c.as_ref().and_then(candidate_message) {
                let _ = cand_out.send(Message::Text(msg.encode().into()));
            }
            Box::pin(async {})
        }));
        let weak = Arc::downgrade(&state_tx);
        pc.on_track(Box::new(move |track, _, transceiver| {
            if let (Some(tx), Some(mid)) = (weak.upgrade(), transceiver.mid()) {
                tokio::spawn(receive(track, mid.to_string(), tx));
            }
            Box::pin(async {})
        }));

        let local: LocalTracks = Arc::new(std::sync::Mutex::new(track_meta));
        let mut tasks = vec![writer];
        tasks.push(tokio::spawn(signal_loop(
            stream,
            out.clone(),
            Arc::downgrade(&pc),
            state_tx.clone(),
            local.clone(),
            options.ice,
        )));
        if let Some(sender) = video_sender {
            tasks.push(tokio::spawn(count_keyframe_requests(
                sender,
                Arc::downgrade(&state_tx),
            )));
        }
        for (track, pps, size) in local_tracks {
            let level = (track.kind() == webrtc::rtp_transceiver::rtp_codec::RTPCodecType::Audio)
                .then(|| audio_sender.clone())
                .flatten()
                .map(|sender| LevelSource {
                    sender,
                    level: audio_level.clone(),
                    ext_id: None,
                });
            tasks.push(tokio::spawn(publish(track, pps, size, level)));
        }
        // Keep the state sender alive as long as the tasks are.
        let state_weak = Arc::downgrade(&state_tx);
        let keep = state_tx;
        tasks.push(tokio::spawn(async move {
            std::future::pending::<()>().await;
            drop(keep);
        }));
        Ok(TestPeer {
            id,
            name: name.to_owned(),
            pc,
            out,
            state,
            tasks,
            link,
            local,
            audio_level,
            state_tx: state_weak,
            extra: std::sync::Mutex::new(Vec::new()),
            audio: options.audio,
            video: options.video,
            video_packets_per_second: options.video_packets_per_second,
            video_payload_bytes: options.video_payload_bytes,
        })
    }

    /// Puts this level (0 loudest ..= 127 silence, RFC 6464) in every audio packet from now
    /// on, as a browser does; `None` sends none (the default).
    pub fn set_audio_level(&self, level: Option<u8>) {
        self.audio_level.store(
            level.map_or(NO_LEVEL, |l| l.min(127)),
            std::sync::atomic::Ordering::Relaxed,
        );
    }

    fn extras(&self) -> std::sync::MutexGuard<'_, Vec<ExtraTrack>> {
        self.extra.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn local_tracks(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, TrackMetadata>> {
        self.local.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Asks for enough uplink m-lines for every track we have, as a browser does after adding
    /// one (`renegotiateTracks {tracks}`).
    fn ask_for_m_lines(&self) {
        let video = u8::from(self.video) + self.extras().len() as u8;
        self.send(&ClientMessage::MediaEvent {
            data: ClientMediaEvent::RenegotiateTracks {
                tracks: Some(protocol::TrackCounts {
                    audio: u8::from(self.audio),
                    video,
                }),
                ice_restart: false,
            },
        });
    }

    /// Adds a video track after joining (a screen share), as a browser does: a new sender
    /// whose m-line comes with the next offer, asked for with `renegotiateTracks {tracks}`.
    /// Sends media when `sending`, else once [`TestPeer::resume_track`] is called. Returns
    /// its local id.
    pub async fn add_video_track(
        &self,
        name: &str,
        metadata: TrackMetadata,
        sending: bool,
    ) -> anyhow::Result<String> {
        let track = self.video_track(name);
        let local_id = track.id().to_owned();
        let sender = self
            .pc
            .add_track(track.clone() as Arc<dyn TrackLocal + Send + Sync>)
            .await
            .context("adding a video track")?;
        self.local_tracks().insert(local_id.clone(), metadata);
        // Counted with the camera's in `keyframe_requests`; ends with the connection.
        tokio::spawn(count_keyframe_requests(
            sender.clone(),
            self.state_tx.clone(),
        ));
        let publishing = sending.then(|| self.start_publishing(track.clone()));
        self.extras().push(ExtraTrack {
            sender,
            track,
            local_id: local_id.clone(),
            publishing,
        });
        self.ask_for_m_lines();
        Ok(local_id)
    }

    fn video_track(&self, name: &str) -> Arc<TrackLocalStaticRTP> {
        Arc::new(TrackLocalStaticRTP::new(
            RTCRtpCodecCapability {
                mime_type: MIME_TYPE_VP8.into(),
                clock_rate: 90000,
                ..Default::default()
            },
            format!("{}-{name}", self.id),
            format!("testkit-{}", self.id),
        ))
    }

    fn start_publishing(&self, track: Arc<TrackLocalStaticRTP>) -> JoinHandle<()> {
        tokio::spawn(publish(
            track,
            self.video_packets_per_second,
            self.video_payload_bytes,
            None,
        ))
    }

    /// Starts sending on an added track created with `sending: false`.
    pub async fn resume_track(&self, local_id: &str) -> anyhow::Result<()> {
        let track = self
            .extras()
            .iter()
            .find(|e| e.local_id == local_id)
            .map(|e| e.track.clone())
            .ok_or_else(|| anyhow!("no added track {local_id}"))?;
        let handle = self.start_publishing(track);
        if let Some(e) = self.extras().iter_mut().find(|e| e.local_id == local_id) {
            if let Some(old) = e.publishing.replace(handle) {
                old.abort();
            }
        }
        Ok(())
    }

    /// Stops an added track as a browser stops a screen share: nothing more is sent on it
    /// (`replaceTrack(null)`), the next answer no longer maps its m-line, and a renegotiation
    /// is asked for. The sender and its m-line stay for the next share.
    pub fn stop_track(&self, local_id: &str) {
        if let Some(e) = self.extras().iter_mut().find(|e| e.local_id == local_id) {
            if let Some(p) = e.publishing.take() {
                p.abort();
            }
        }
        self.local_tracks().remove(local_id);
        self.send(&ClientMessage::MediaEvent {
            data: ClientMediaEvent::RenegotiateTracks {
                tracks: None,
                ice_restart: false,
            },
        });
    }

    /// Shares again on a stopped track's sender, as a browser does with
    /// `replaceTrack(newTrack)`: a new local track (id `<peer>-<name>`) on the same m-line and
    /// SSRC, so the server sees no new track arrive, only the answer mapping the m-line again.
    /// Returns the new local id.
    pub async fn restart_track(
        &self,
        stopped: &str,
        name: &str,
        metadata: TrackMetadata,
    ) -> anyhow::Result<String> {
        let sender = self
            .extras()
            .iter()
            .find(|e| e.local_id == stopped)
            .map(|e| e.sender.clone())
            .ok_or_else(|| anyhow!("no added track {stopped}"))?;
        let track = self.video_track(name);
        let local_id = track.id().to_owned();
        // (This crate cannot replace a null track, so stopping only stopped the writes.)
        sender
            .replace_track(Some(track.clone() as Arc<dyn TrackLocal + Send + Sync>))
            .await
            .context("replacing the track")?;
        self.local_tracks().insert(local_id.clone(), metadata);
        let handle = self.start_publishing(track.clone());
        if let Some(e) = self.extras().iter_mut().find(|e| e.local_id == stopped) {
            e.local_id = local_id.clone();
            e.track = track;
            e.publishing = Some(handle);
        }
        self.ask_for_m_lines();
        Ok(local_id)
    }

    /// Changes one of our tracks' metadata by its local id (as a browser's mute does), and
    /// keeps it for the next answers.
    pub fn set_track_metadata(&self, local_id: &str, metadata: TrackMetadata) {
        if let Some(m) = self.local_tracks().get_mut(local_id) {
            *m = metadata.clone();
        }
        self.send(&ClientMessage::MediaEvent {
            data: ClientMediaEvent::UpdateTrackMetadata {
                track_id: local_id.to_owned(),
                track_metadata: metadata,
            },
        });
    }

    /// What crossed this peer's impaired link, if it has one.
    pub fn link(&self) -> Option<&LinkCounters> {
        self.link.as_deref()
    }

    /// Asks, as a viewer's decoder does after a loss, for a keyframe (PLI) on every video
    /// track received. Returns how many requests were sent.
    pub async fn request_keyframes(&self) -> usize {
        use webrtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
        let mut sent = 0;
        for receiver in self.pc.get_receivers().await {
            for track in receiver.tracks().await {
                if track.kind() != webrtc::rtp_transceiver::rtp_codec::RTPCodecType::Video {
                    continue;
                }
                let pli = PictureLossIndication {
                    sender_ssrc: 0,
                    media_ssrc: track.ssrc(),
                };
                if self.pc.write_rtcp(&[Box::new(pli)]).await.is_ok() {
                    sent += 1;
                }
            }
        }
        sent
    }

    /// A snapshot of what the peer has seen.
    pub fn state(&self) -> PeerState {
        self.state.borrow().clone()
    }

    /// Waits until `pred` holds, or fails after `timeout` naming `what` and the last state.
    pub async fn wait_for(
        &self,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&PeerState) -> bool,
    ) -> anyhow::Result<PeerState> {
        let mut rx = self.state.clone();
        let waited = tokio::time::timeout(timeout, async {
            rx.wait_for(|s| pred(s)).await.map(|s| s.clone())
        })
        .await;
        match waited {
            Ok(Ok(s)) => Ok(s),
            Ok(Err(_)) => bail!("{}: peer stopped while waiting for {what}", self.name),
            Err(_) => bail!(
                "{}: timed out after {timeout:?} waiting for {what}; state: {:#?}",
                self.name,
                self.state()
            ),
        }
    }

    /// Sends a raw text frame (for malformed-input tests).
    pub fn send_raw(&self, text: impl Into<String>) {
        let _ = self.out.send(Message::Text(text.into().into()));
    }

    /// Sends a protocol message.
    pub fn send(&self, msg: &ClientMessage) {
        self.send_raw(msg.encode());
    }

    /// Asks the server for an offer with new ICE credentials (`renegotiateTracks
    /// {iceRestart}`), as a browser does when its network changed.
    pub fn restart_ice(&self) {
        self.send(&ClientMessage::MediaEvent {
            data: ClientMediaEvent::RenegotiateTracks {
                tracks: None,
                ice_restart: true,
            },
        });
    }

    /// Says something in the room's chat (`sendChatMessage`).
    pub fn send_chat(&self, text: &str) {
        self.send(&ClientMessage::MediaEvent {
            data: ClientMediaEvent::SendChatMessage {
                text: text.to_owned(),
            },
        });
    }

    /// Leaves politely: `leave`, `channelLeave`, close frame, peer connection closed.
    pub async fn leave(self) {
        self.send(&ClientMessage::MediaEvent {
            data: ClientMediaEvent::Leave {},
        });
        self.send(&ClientMessage::ChannelLeave {});
        let _ = self.out.send(Message::Close(None));
        // Let the writer flush before the tasks go.
        tokio::time::sleep(Duration::from_millis(50)).await;
        self.shutdown().await;
    }

    /// Closes the socket with this close code and nothing else said first: 1001 (Going Away)
    /// is what a browser sends when its page is closed.
    pub async fn close_with(self, code: u16) {
        use tokio_tungstenite::tungstenite::protocol::{frame::coding::CloseCode, CloseFrame};
        let _ = self.out.send(Message::Close(Some(CloseFrame {
            code: CloseCode::from(code),
            reason: "".into(),
        })));
        // Let the writer flush before the tasks go.
        tokio::time::sleep(Duration::from_millis(50)).await;
        self.shutdown().await;
    }

    /// Vanishes: the TCP connection is dropped without a close frame, as when a tab is killed.
    pub async fn vanish(self) {
        self.shutdown().await;
    }

    async fn shutdown(self) {
        for t in &self.tasks {
            t.abort();
        }
        for e in self.extras().iter() {
            if let Some(p) = &e.publishing {
                p.abort();
            }
        }
        let _ = self.pc.close().await;
    }
}

async fn next_server_message(
    stream: &mut (impl futures_util::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>>
              + Unpin),
) -> anyhow::Result<ServerMessage> {
    loop {
        let frame = tokio::time::timeout(Duration::from_secs(10), stream.next())
            .await
            .context("no reply from the server within 10s")?
            .context("socket closed")??;
        match frame {
            Message::Text(t) => return Ok(ServerMessage::decode(t.as_str())?),
            Message::Close(c) => bail!("socket closed: {c:?}"),
            _ => continue,
        }
    }
}

async fn write_loop(mut sink: WsSink, mut rx: mpsc::UnboundedReceiver<Message>) {
    while let Some(m) = rx.recv().await {
        let close = matches!(m, Message::Close(_));
        if sink.send(m).await.is_err() || close {
            break;
        }
    }
}

async fn signal_loop(
    mut stream: futures_util::stream::SplitStream<
        tokio_tungstenite::WebSocketStream<
            tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
        >,
    >,
    out: mpsc::UnboundedSender<Message>,
    pc: std::sync::Weak<RTCPeerConnection>,
    state: Arc<watch::Sender<PeerState>>,
    local: LocalTracks,
    ice: bool,
) {
    while let Some(frame) = stream.next().await {
        let text = match frame {
            Ok(Message::Text(t)) => t,
            Ok(Message::Close(c)) => {
                let c = c.map(|c| (u16::from(c.code), c.reason.to_string()));
                state.send_modify(|s| s.closed = Some(c.unwrap_or((1005, String::new()))));
                return;
            }
            Ok(_) => continue,
            Err(_) => break,
        };
        let msg = match ServerMessage::decode(text.as_str()) {
            Ok(m) => m,
            Err(e) => {
                state.send_modify(|s| s.errors.push(format!("undecodable frame: {e}")));
                continue;
            }
        };
        let Some(pc) = pc.upgrade() else { return };
        let event = match msg {
            ServerMessage::MediaEvent { data } => data,
            ServerMessage::Error { code, message } => {
                state.send_modify(|s| s.errors.push(format!("{code:?}: {message}")));
                continue;
            }
            other => {
                state.send_modify(|s| s.errors.push(format!("unexpected: {other:?}")));
                continue;
            }
        };
        match event {
            ServerMediaEvent::SdpOffer {
                sdp_offer,
                mid_to_track_id,
            } => {
                let m_lines = sdp_offer
                    .sdp
                    .lines()
                    .filter(|l| l.starts_with("m="))
                    .count();
                state.send_modify(|s| {
                    s.mid_to_track = mid_to_track_id.clone();
                    s.offer_sdp = sdp_offer.sdp.clone();
                });
                let mut sdp_offer = sdp_offer;
                if !ice {
                    // The offer may carry the server's candidates already; ignore them too.
                    sdp_offer.sdp =
                        strip_sdp_lines(&sdp_offer.sdp, &["a=candidate", "a=end-of-candidates"]);
                }
                let reply = answer(&pc, sdp_offer, &mid_to_track_id, &local)
                    .await
                    .map(|reply| {
                        if ice {
                            reply
                        } else {
                            without_candidates(reply)
                        }
                    });
                match reply {
                    Ok(reply) => {
                        // Queued first: whatever a test sends once it sees the count follows it.
                        let _ = out.send(Message::Text(reply.encode().into()));
                        state.send_modify(|s| {
                            s.offers += 1;
                            s.answered_m_lines = m_lines;
                        });
                    }
                    Err(e) => state.send_modify(|s| s.errors.push(format!("answering: {e:#}"))),
                }
            }
            ServerMediaEvent::Candidate(_) if !ice => {}
            ServerMediaEvent::Candidate(c) => {
                let init = RTCIceCandidateInit {
                    candidate: c.candidate,
                    sdp_mid: c.sdp_mid,
                    sdp_mline_index: c.sdp_m_line_index,
                    username_fragment: c.username_fragment,
                };
                if let Err(e) = pc.add_ice_candidate(init).await {
                    state.send_modify(|s| s.errors.push(format!("candidate: {e}")));
                }
            }
            ServerMediaEvent::PeerJoined { peer } => state.send_modify(|s| {
                s.peer_events.push(("joined", peer.id.clone()));
                for (t, m) in &peer.track_id_to_metadata {
                    s.tracks.insert(t.clone(), (peer.id.clone(), m.clone()));
                }
                s.peers.insert(peer.id, peer.metadata.display_name);
            }),
            ServerMediaEvent::PeerLeft { peer_id } => state.send_modify(|s| {
                s.peer_events.push(("left", peer_id.clone()));
                s.peers.remove(&peer_id);
            }),
            ServerMediaEvent::PeerUpdated { peer_id, metadata } => state.send_modify(|s| {
                s.peer_events.push(("updated", peer_id.clone()));
                s.peers.insert(peer_id, metadata.display_name);
            }),
            ServerMediaEvent::TracksAdded {
                peer_id,
                track_id_to_metadata,
            } => state.send_modify(|s| {
                for (t, m) in track_id_to_metadata {
                    s.tracks.insert(t, (peer_id.clone(), m));
                }
            }),
            ServerMediaEvent::TracksRemoved { track_ids, .. } => state.send_modify(|s| {
                for t in track_ids {
                    s.tracks.remove(&t);
                    s.removed_tracks.push(t);
                }
            }),
            ServerMediaEvent::TrackUpdated {
                peer_id,
                track_id,
                track_metadata,
            } => state.send_modify(|s| {
                s.tracks.insert(track_id, (peer_id, track_metadata));
            }),
            ServerMediaEvent::ChatMessage(m) => state.send_modify(|s| s.chat.push(m)),
            ServerMediaEvent::VoiceActivity {
                track_id, speaking, ..
            } => state.send_modify(|s| s.voice_activity.push((track_id, speaking))),
            ServerMediaEvent::Error { message } => state.send_modify(|s| s.errors.push(message)),
            ServerMediaEvent::PeerAccepted { .. } | ServerMediaEvent::PeerDenied { .. } => {
                state.send_modify(|s| s.errors.push("unexpected second join reply".into()))
            }
        }
    }
    state.send_modify(|s| {
        if s.closed.is_none() {
            s.closed = Some((0, "socket ended".into()));
        }
    });
}

/// The answer with every ICE candidate line removed.
fn without_candidates(msg: ClientMessage) -> ClientMessage {
    match msg {
        ClientMessage::MediaEvent {
            data:
                ClientMediaEvent::SdpAnswer {
                    mut sdp_answer,
                    track_id_to_track_metadata,
                    mid_to_track_id,
                },
        } => {
            sdp_answer.sdp =
                strip_sdp_lines(&sdp_answer.sdp, &["a=candidate", "a=end-of-candidates"]);
            ClientMessage::MediaEvent {
                data: ClientMediaEvent::SdpAnswer {
                    sdp_answer,
                    track_id_to_track_metadata,
                    mid_to_track_id,
                },
            }
        }
        other => other,
    }
}

/// The `candidate` media event that trickles a locally gathered ICE candidate.
pub fn candidate_message(
    c: &webrtc::ice_transport::ice_candidate::RTCIceCandidate,
) -> Option<ClientMessage> {
    let init = c.to_json().ok()?;
    Some(ClientMessage::MediaEvent {
        data: ClientMediaEvent::Candidate(IceCandidate {
            candidate: init.candidate,
            sdp_mid: init.sdp_mid,
            sdp_m_line_index: init.sdp_mline_index,
            username_fragment: init.username_fragment,
        }),
    })
}

/// `sdp` without the lines starting with any of `prefixes` (for malformed-SDP tests too).
pub fn strip_sdp_lines(sdp: &str, prefixes: &[&str]) -> String {
    sdp.split_inclusive("\r\n")
        .filter(|l| !prefixes.iter().any(|p| l.starts_with(p)))
        .collect()
}

async fn answer(
    pc: &RTCPeerConnection,
    offer: SessionDescription,
    mid_to_track_id: &BTreeMap<String, TrackId>,
    local: &LocalTracks,
) -> anyhow::Result<ClientMessage> {
    if offer.kind != SdpType::Offer {
        bail!("sdpOffer carried an {:?}", offer.kind);
    }
    pc.set_remote_description(RTCSessionDescription::offer(offer.sdp)?)
        .await?;
    let answer = pc.create_answer(None).await?;
    pc.set_local_description(answer).await?;
    let sdp = pc
        .local_description()
        .await
        .ok_or_else(|| anyhow!("no local description"))?
        .sdp;
    let mut sending = Vec::new();
    for t in pc.get_transceivers().await {
        let (Some(mid), Some(track)) = (t.mid(), t.sender().await.track().await) else {
            continue;
        };
        if !mid_to_track_id.contains_key(mid.as_str()) {
            sending.push((mid.to_string(), track.id().to_owned()));
        }
    }
    // Only tracks we still have: a stopped one's m-line goes unmapped, as a browser's does.
    let track_meta = local.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let uplink_mids: BTreeMap<String, String> = sending
        .into_iter()
        .filter(|(_, id)| track_meta.contains_key(id))
        .collect();
    Ok(ClientMessage::MediaEvent {
        data: ClientMediaEvent::SdpAnswer {
            sdp_answer: SessionDescription {
                kind: SdpType::Answer,
                sdp,
            },
            track_id_to_track_metadata: track_meta,
            mid_to_track_id: uplink_mids,
        },
    })
}

async fn receive(track: Arc<TrackRemote>, mid: String, state: Arc<watch::Sender<PeerState>>) {
    /// What one track has delivered on this transceiver: for distinct counts and freezes.
    #[derive(Default)]
    struct Seen {
        counters: HashSet<u32>,
        last: Option<tokio::time::Instant>,
    }
    let kind = track.kind().to_string();
    let level_id = track
        .params()
        .header_extensions
        .iter()
        .find(|e| e.uri == AUDIO_LEVEL_URI)
        .and_then(|e| u8::try_from(e.id).ok());
    let mut seen: HashMap<TrackId, Seen> = HashMap::new();
    while let Ok((packet, _)) = track.read_rtp().await {
        let now = tokio::time::Instant::now();
        let ok = check_payload(&packet.payload);
        let counter = packet
            .payload
            .get(..4)
            .map(|h| u32::from_be_bytes([h[0], h[1], h[2], h[3]]));
        let len = packet.payload.len() as u64;
        let has_level = level_id.is_some_and(|id| packet.header.get_extension(id).is_some());
        state.send_modify(|s| {
            let Some(id) = s.mid_to_track.get(&mid).cloned() else {
                s.unmapped_packets += 1;
                return;
            };
            let seen = seen.entry(id.clone()).or_default();
            let t = s.received.entry(id.clone()).or_insert_with(|| TrackStats {
                publisher: id.split(':').next().unwrap_or_default().to_owned(),
                kind: kind.clone(),
                ..Default::default()
            });
            t.packets += 1;
            t.bytes += len;
            t.with_audio_level += u64::from(has_level);
            if !ok {
                t.corrupt += 1;
            }
            if let (true, Some(c)) = (ok, counter) {
                if seen.counters.insert(c) {
                    t.distinct += 1;
                }
                t.counters = Some(match t.counters {
                    Some((lo, hi)) => (lo.min(c), hi.max(c)),
                    None => (c, c),
                });
            }
            if let Some(last) = seen.last {
                t.longest_gap = t.longest_gap.max(now - last);
            }
            seen.last = Some(now);
        });
    }
}

async fn count_keyframe_requests(
    sender: Arc<webrtc::rtp_transceiver::rtp_sender::RTCRtpSender>,
    state: std::sync::Weak<watch::Sender<PeerState>>,
) {
    use webrtc::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
    use webrtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
    while let Ok((packets, _)) = sender.read_rtcp().await {
        let n = packets
            .iter()
            .filter(|p| {
                let any = p.as_any();
                any.is::<PictureLossIndication>() || any.is::<FullIntraRequest>()
            })
            .count() as u64;
        if n > 0 {
            let Some(state) = state.upgrade() else { return };
            state.send_modify(|s| s.keyframe_requests += n);
        }
    }
}

/// Where an audio publisher gets the level to put in its packets, and the extension's id.
struct LevelSource {
    sender: Arc<webrtc::rtp_transceiver::rtp_sender::RTCRtpSender>,
    level: Arc<std::sync::atomic::AtomicU8>,
    /// Known once negotiated.
    ext_id: Option<u8>,
}

impl LevelSource {
    /// The extension to put in the next packet, if any.
    async fn next(&mut self) -> Option<(u8, u8)> {
        let level = self.level.load(std::sync::atomic::Ordering::Relaxed);
        if level == NO_LEVEL {
            return None;
        }
        if self.ext_id.is_none() {
            self.ext_id = self
                .sender
                .get_parameters()
                .await
                .rtp_parameters
                .header_extensions
                .iter()
                .find(|e| e.uri == AUDIO_LEVEL_URI)
                .and_then(|e| u8::try_from(e.id).ok());
        }
        self.ext_id.map(|id| (id, level))
    }
}

async fn publish(
    track: Arc<TrackLocalStaticRTP>,
    packets_per_second: u32,
    size: usize,
    mut level: Option<LevelSource>,
) {
    let clock = track.codec().clock_rate;
    let mut tick = tokio::time::interval(Duration::from_secs(1) / packets_per_second.max(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut seq: u16 = 0;
    let mut counter: u32 = 0;
    loop {
        tick.tick().await;
        let packet = webrtc::rtp::packet::Packet {
            header: webrtc::rtp::header::Header {
                version: 2,
                marker: true,
                sequence_number: seq,
                timestamp: counter.wrapping_mul(clock / packets_per_second.max(1)),
                ..Default::default()
            },
            payload: make_payload(counter, size),
        };
        let mut packet = packet;
        if let Some(source) = level.as_mut() {
            if let Some((id, l)) = source.next().await {
                let _ = packet
                    .header
                    .set_extension(id, bytes::Bytes::copy_from_slice(&[l]));
            }
        }
        // Before negotiation binds the track there is nowhere to send: not an error.
        let _ = track.write_rtp(&packet).await;
        seq = seq.wrapping_add(1);
        counter = counter.wrapping_add(1);
    }
}
