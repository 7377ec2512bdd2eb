//! The peer's WebSocket side of the protocol: the join exchange, the writer that owns the
//! socket's sink, and the loop that turns every server frame into [`PeerState`] changes and
//! answers offers.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use futures_util::{SinkExt, StreamExt};
use protocol::{
    topic_for_room, ClientMediaEvent, ClientMessage, IceCandidate, IceServer, PeerId, PeerMetadata,
    ServerMediaEvent, ServerMessage, PROTOCOL_VERSION,
};
use tokio::sync::{mpsc, watch};
use tokio_tungstenite::tungstenite::Message;
use webrtc::ice_transport::ice_candidate::{RTCIceCandidate, RTCIceCandidateInit};
use webrtc::peer_connection::RTCPeerConnection;

use crate::answer::{answer, strip_sdp_lines, without_candidates, LocalTracks, CANDIDATE_LINES};
use crate::media_source::SimulcastControl;
use crate::state::PeerState;

type WebSocket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;
/// The socket's sending half, owned by [`write_loop`].
pub(crate) type WsSink = futures_util::stream::SplitSink<WebSocket, Message>;
/// The socket's receiving half, read by the join exchange and then [`signal_loop`].
pub(crate) type WsStream = futures_util::stream::SplitStream<WebSocket>;

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

/// What the server's `peerAccepted` told a joining peer.
pub(crate) struct Accepted {
    /// Our peer id.
    pub(crate) id: PeerId,
    /// The state to start from: our id, the room's peers and tracks, chat, reconnect token.
    pub(crate) initial: PeerState,
    /// The STUN/TURN servers to use.
    pub(crate) ice_servers: Vec<IceServer>,
}

/// Joins the channel for `room`, then the room as `name`: `channelJoin`, then `join` (with
/// the reconnect token of an earlier `peerAccepted`, if any), each awaited.
pub(crate) async fn join_room(
    stream: &mut WsStream,
    out: &mpsc::UnboundedSender<Message>,
    room: &str,
    name: &str,
    reconnect_token: Option<String>,
) -> Result<Accepted, JoinError> {
    let send = |m: ClientMessage| out.send(Message::Text(m.encode().into()));
    send(ClientMessage::ChannelJoin {
        topic: topic_for_room(room),
        protocol_version: PROTOCOL_VERSION,
        token: None,
    })
    .map_err(|_| anyhow!("socket closed"))?;
    match next_server_message(stream).await? {
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
    let (id, peers, ice_servers, chat, reconnect_token) = match next_server_message(stream).await? {
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
        } => return Err(JoinError::Denied(reason)),
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
    Ok(Accepted {
        id,
        initial,
        ice_servers,
    })
}

/// The `candidate` media event that trickles a locally gathered ICE candidate.
pub fn candidate_message(c: &RTCIceCandidate) -> Option<ClientMessage> {
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

/// The next text frame, decoded; fails on a close frame or 10 s of silence.
async fn next_server_message(stream: &mut WsStream) -> anyhow::Result<ServerMessage> {
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

/// Sends what the peer queues on `rx`, in order, until a close frame or the socket fails.
pub(crate) async fn write_loop(mut sink: WsSink, mut rx: mpsc::UnboundedReceiver<Message>) {
    while let Some(m) = rx.recv().await {
        let close = matches!(m, Message::Close(_));
        if sink.send(m).await.is_err() || close {
            break;
        }
    }
}

/// Reads the server until the socket ends: answers offers, adds its candidates (unless
/// `ice` is off), turns the camera's `layers` on and off as the server wants (dynacast) and
/// records everything else in `state`.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn signal_loop(
    mut stream: WsStream,
    out: mpsc::UnboundedSender<Message>,
    pc: std::sync::Weak<RTCPeerConnection>,
    state: Arc<watch::Sender<PeerState>>,
    local: LocalTracks,
    ice: bool,
    simulcast: bool,
    layers: Option<Arc<SimulcastControl>>,
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
                    sdp_offer.sdp = strip_sdp_lines(&sdp_offer.sdp, CANDIDATE_LINES);
                }
                tracing::debug!(id = ?state.borrow().id, offer = %sdp_offer.sdp, "offer");
                let reply = answer(&pc, sdp_offer, &mid_to_track_id, &local, simulcast)
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
                        tracing::debug!(id = ?state.borrow().id, answer = ?reply, "answer");
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
            ServerMediaEvent::Downlink {
                estimate,
                paused_track_ids,
            } => state.send_modify(|s| s.downlink.push((estimate, paused_track_ids))),
            ServerMediaEvent::LayersWanted { track_id, rids } => {
                if let Some(layers) = &layers {
                    layers.set_wanted(&rids);
                }
                state.send_modify(|s| s.layers_wanted.push((track_id, rids)))
            }
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
