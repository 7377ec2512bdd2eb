//! [`TestPeer`]: a participant driven from Rust. Joining wires the layers below together —
//! the socket (`signaling`), the peer connection (`api`), what it sends (`media_source`) and
//! what it counts (`receive`) — around one [`PeerState`] that tests read and wait on.

mod added_tracks;

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use anyhow::{bail, Context};
use futures_util::StreamExt;
use protocol::{ClientMediaEvent, ClientMessage, PeerId, TrackMetadata, TrackSource};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;
use webrtc::ice_transport::ice_server::RTCIceServer;
use webrtc::peer_connection::configuration::RTCConfiguration;
use webrtc::peer_connection::policy::ice_transport_policy::RTCIceTransportPolicy;
use webrtc::peer_connection::RTCPeerConnection;
use webrtc::rtp_transceiver::rtp_codec::RTPCodecType;
use webrtc::rtp_transceiver::rtp_sender::RTCRtpSender;
use webrtc::track::track_local::track_local_static_rtp::TrackLocalStaticRTP;
use webrtc::track::track_local::TrackLocal;

use crate::answer::LocalTracks;
use crate::api::api_over;
use crate::audio_level::{LevelSource, NO_LEVEL};
use crate::impair::{ImpairedConn, Impairment, LinkCounters};
use crate::media_source::{
    opus_track, publish, vp8_layer, vp8_track, LayerShape, Numbering, SimulcastControl,
};
use crate::receive::{count_keyframe_requests, receive};
use crate::signaling::{
    candidate_message, join_room, signal_loop, write_loop, Accepted, JoinError,
};
use crate::state::PeerState;

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
    /// Send the camera as simulcast when the server asks for it: layers `q`, `h` and `f`
    /// (see [`SIMULCAST_LAYERS`]), each with its own SSRC, random sequence and timestamp
    /// starts, and its mark in the payload counters. Without it the peer sends one stream and
    /// its answers decline simulcast, as a browser without layers does.
    pub simulcast: bool,
    /// Keep a record of every packet received ([`TrackStats::log`]), for tests of what a
    /// layer switch looks like on the wire.
    pub record_packets: bool,
}

/// A simulcast camera's layers, lowest first: RID, payload bytes as a share of
/// [`PeerOptions::video_payload_bytes`], and the picture size its keyframes announce. Packets
/// of layer `i` carry mark `i + 1` in their counters' top byte; every packet is a VP8-shaped
/// frame (keyframes every 2 s and on request, at most one per 300 ms, on every layer at once).
pub const SIMULCAST_LAYERS: [(&str, usize, u16, u16); 3] =
    [("q", 4, 320, 180), ("h", 2, 640, 360), ("f", 1, 1280, 720)];

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
            simulcast: false,
            record_packets: false,
        }
    }
}

/// One stream the peer sends from joining on: its track, packets per second, payload size,
/// numbering, and its shape when it is a simulcast layer.
type LocalStream = (
    Arc<TrackLocalStaticRTP>,
    u32,
    usize,
    Numbering,
    Option<LayerShape>,
);

/// A video track added after joining (a screen share) and its sender.
struct ExtraTrack {
    sender: Arc<RTCRtpSender>,
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
    audio_level: Arc<AtomicU8>,
    /// For tasks started after joining (they must not keep the state alive).
    state_tx: Weak<watch::Sender<PeerState>>,
    extra: Mutex<Vec<ExtraTrack>>,
    audio: bool,
    video: bool,
    video_packets_per_second: u32,
    video_payload_bytes: usize,
    /// The camera's simulcast controls, when it sends layers.
    simulcast: Option<Arc<SimulcastControl>>,
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
        let Accepted {
            id,
            initial,
            ice_servers,
        } = match join_room(&mut stream, &out, room, name, reconnect_token).await {
            Ok(accepted) => accepted,
            Err(e) => {
                if matches!(e, JoinError::Denied(_)) {
                    writer.abort();
                }
                return Err(e);
            }
        };
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
        let mut local_tracks: Vec<LocalStream> = Vec::new();
        let mut layer_senders = Vec::new();
        let mut simulcast = None;
        let audio_level = Arc::new(AtomicU8::new(NO_LEVEL));
        let mut audio_sender = None;
        let mut video_sender = None;
        let mut track_meta = BTreeMap::new();
        if options.audio {
            let t = opus_track(&id);
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
            local_tracks.push((t, 50u32, 120usize, Numbering::default(), None));
        }
        if options.video && options.simulcast {
            let layers: Vec<_> = SIMULCAST_LAYERS
                .iter()
                .map(|(rid, ..)| vp8_layer(&id, rid))
                .collect();
            let control = Arc::new(SimulcastControl::new(
                SIMULCAST_LAYERS.iter().map(|(rid, ..)| *rid),
            ));
            simulcast = Some(control.clone());
            let sender = pc
                .add_track(layers[0].clone() as Arc<dyn TrackLocal + Send + Sync>)
                .await
                .context("adding video")?;
            for layer in &layers[1..] {
                sender
                    .add_encoding(layer.clone() as Arc<dyn TrackLocal + Send + Sync>)
                    .await
                    .context("adding a simulcast layer")?;
            }
            track_meta.insert(
                layers[0].id().to_owned(),
                TrackMetadata {
                    source: TrackSource::Camera,
                    muted: false,
                },
            );
            for (i, (t, (rid, share, width, height))) in
                layers.into_iter().zip(SIMULCAST_LAYERS).enumerate()
            {
                layer_senders.push((sender.clone(), rid.to_owned()));
                local_tracks.push((
                    t,
                    options.video_packets_per_second,
                    (options.video_payload_bytes / share).max(64),
                    Numbering::layer(i as u8 + 1),
                    Some(LayerShape {
                        control: control.clone(),
                        index: i,
                        width,
                        height,
                    }),
                ));
            }
        } else if options.video {
            let t = vp8_track(&id, "video");
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
                Numbering::default(),
                None,
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
        let record = options.record_packets;
        pc.on_track(Box::new(move |track, _, transceiver| {
            if let (Some(tx), Some(mid)) = (weak.upgrade(), transceiver.mid()) {
                tokio::spawn(receive(track, mid.to_string(), tx, record));
            }
            Box::pin(async {})
        }));

        let local: LocalTracks = Arc::new(Mutex::new(track_meta));
        let mut tasks = vec![writer];
        tasks.push(tokio::spawn(signal_loop(
            stream,
            out.clone(),
            Arc::downgrade(&pc),
            state_tx.clone(),
            local.clone(),
            options.ice,
            options.simulcast,
            simulcast.clone(),
        )));
        if let Some(sender) = video_sender {
            tasks.push(tokio::spawn(count_keyframe_requests(
                sender,
                None,
                Arc::downgrade(&state_tx),
            )));
        }
        for (sender, rid) in layer_senders {
            let control = simulcast.clone();
            tasks.push(tokio::spawn(count_keyframe_requests(
                sender,
                Some((rid, control)),
                Arc::downgrade(&state_tx),
            )));
        }
        for (track, pps, size, numbering, shape) in local_tracks {
            let level = (track.kind() == RTPCodecType::Audio)
                .then(|| audio_sender.clone())
                .flatten()
                .map(|sender| LevelSource {
                    sender,
                    level: audio_level.clone(),
                    ext_id: None,
                });
            tasks.push(tokio::spawn(publish(
                track, pps, size, numbering, level, shape,
            )));
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
            extra: Mutex::new(Vec::new()),
            audio: options.audio,
            video: options.video,
            video_packets_per_second: options.video_packets_per_second,
            video_payload_bytes: options.video_payload_bytes,
            simulcast,
        })
    }

    /// Starts or stops sending the camera's simulcast layer `rid`, as a browser does when its
    /// encoding is set inactive or its bandwidth drops; a layer started again begins with a
    /// keyframe. Fails if the peer sends no such layer.
    pub fn set_layer_active(&self, rid: &str, active: bool) -> anyhow::Result<()> {
        match &self.simulcast {
            Some(c) if c.set_active(rid, active) => Ok(()),
            _ => bail!("{} sends no simulcast layer {rid:?}", self.name),
        }
    }

    /// Puts this level (0 loudest ..= 127 silence, RFC 6464) in every audio packet from now
    /// on, as a browser does; `None` sends none (the default).
    pub fn set_audio_level(&self, level: Option<u8>) {
        self.audio_level
            .store(level.map_or(NO_LEVEL, |l| l.min(127)), Ordering::Relaxed);
    }

    fn extras(&self) -> MutexGuard<'_, Vec<ExtraTrack>> {
        self.extra.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn local_tracks(&self) -> MutexGuard<'_, BTreeMap<String, TrackMetadata>> {
        self.local.lock().unwrap_or_else(|p| p.into_inner())
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

    /// Tells the server how big this peer's page shows `track_id` (device pixels; 0×0:
    /// hidden), as a page does after a layout change.
    pub fn set_tile_size(&self, track_id: &str, width: u32, height: u32) {
        self.send(&ClientMessage::MediaEvent {
            data: ClientMediaEvent::SetTileSizes {
                sizes: [(track_id.to_owned(), protocol::TileSize { width, height })].into(),
            },
        });
    }

    /// What crossed this peer's impaired link, if it has one (and its downlink cap).
    pub fn link(&self) -> Option<&LinkCounters> {
        self.link.as_deref()
    }

    /// Caps this peer's downlink at `bps` bits per second, or lifts the cap (`None`); see
    /// [`LinkCounters::set_downlink_cap`]. Needs [`PeerOptions::impairment`] (a clean one
    /// will do).
    pub fn set_downlink_cap(&self, bps: Option<u64>) -> anyhow::Result<()> {
        let link = self
            .link
            .as_deref()
            .context("a downlink cap needs an impaired link (PeerOptions::impairment)")?;
        link.set_downlink_cap(bps);
        Ok(())
    }

    /// Asks, as a viewer's decoder does after a loss, for a keyframe (PLI) on every video
    /// track received. Returns how many requests were sent.
    pub async fn request_keyframes(&self) -> usize {
        use webrtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
        let mut sent = 0;
        for receiver in self.pc.get_receivers().await {
            for track in receiver.tracks().await {
                if track.kind() != RTPCodecType::Video {
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
