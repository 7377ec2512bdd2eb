//! Life in the room: the peer's event loop — client frames, room commands, WebRTC callback
//! events and deadlines — until the peer leaves or is removed.

use std::sync::Arc;

use protocol::{ClientMediaEvent, ClientMessage, ErrorCode, ServerMediaEvent, ServerMessage};
use tokio::sync::mpsc;
use tokio::time::{sleep_until, Instant};
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use super::conversation::far_future;
use super::frames::{End, Inbound, Session};
use crate::chat::{CHAT_BURST, CHAT_PER_SECOND};
use crate::peer::{Peer, PeerError};
use crate::rate_limit::RateLimit;
use crate::room::{PeerCommand, Room};

/// Whether a chat line or a rename is within its rate; if not, the client is told to slow
/// down (not counted toward closing: a fast typist is not thrown out).
fn within(rate: &mut RateLimit, s: &Session, what: &str) -> bool {
    if rate.admit(Instant::now()) {
        return true;
    }
    debug!(what, "rate exceeded");
    s.out.send(ServerMessage::error(
        ErrorCode::RateLimited,
        format!("too many {what}: at most {CHAT_PER_SECOND} per second"),
    ));
    false
}

/// How a life in the room ended.
pub(super) struct InRoom {
    /// `None`: the peer left the room but keeps the channel.
    pub(super) end: Option<End>,
    /// Whether the peer's media connection ever came up.
    pub(super) media_connected: bool,
}

/// Life in the room.
#[allow(clippy::too_many_arguments)]
pub(super) async fn in_room(
    s: &mut Session,
    room: &Arc<Room>,
    id: String,
    session: u64,
    existing: Vec<Arc<crate::forwarder::PublishedTrack>>,
    mut commands: mpsc::Receiver<PeerCommand>,
    peer_kill: CancellationToken,
    mut connecting: Option<crate::http::Permit>,
) -> InRoom {
    let tasks = peer_kill.child_token();
    let created = Peer::new(
        &s.app,
        id,
        session,
        room.clone(),
        s.out.clone(),
        tasks,
        tracing::Span::current(),
    )
    .await;
    let (mut peer, mut rtc_events) = match created {
        Ok(p) => p,
        Err(e) => {
            warn!(error = %e, "could not create the peer connection");
            s.out.media(ServerMediaEvent::error(e.to_string()));
            return InRoom {
                end: Some(End::Peer(e)),
                media_connected: false,
            };
        }
    };
    // Stricter than the connection's limit, and refusals do not count towards closing it:
    // a fast typist is told to slow down, not thrown out.
    let mut chat_rate = RateLimit::new(Instant::now(), CHAT_PER_SECOND, CHAT_BURST);
    // A rename reaches every member as a chat line does: held to the same rate.
    let mut rename_rate = RateLimit::new(Instant::now(), CHAT_PER_SECOND, CHAT_BURST);
    let result: Result<Option<End>, PeerError> = async {
        peer.start(existing).await?;
        let downlink = peer.downlink();
        let simulcast = s.app.config.simulcast;
        loop {
            let deadline = peer.next_deadline();
            tokio::select! {
                _ = peer_kill.cancelled() => return Ok(Some(s.killed())),
                _ = sleep_until(deadline.unwrap_or_else(far_future)), if deadline.is_some() => {
                    peer.on_deadline(Instant::now()).await?;
                }
                // The subscriber's link got worse: fit its layers now, not at the next tick.
                _ = downlink.lowered.notified(), if simulcast => peer.allocate(Instant::now()).await,
                Some(cmd) = commands.recv() => match cmd {
                    PeerCommand::Send(event) => s.out.media(event),
                    PeerCommand::Subscribe(track) => peer.subscribe(track).await?,
                    PeerCommand::Unsubscribe(track_id) => peer.unsubscribe(&track_id).await?,
                },
                Some(event) = rtc_events.recv() => {
                    peer.on_rtc_event(event).await?;
                    if peer.media_connected() {
                        // Connected: no longer counts against its source's connecting cap.
                        connecting = None;
                    }
                }
                msg = s.recv() => {
                    let msg = match msg {
                        Inbound::Ended(end) => return Ok(Some(end)),
                        Inbound::Message(m) => m,
                    };
                    let refusal = match msg {
                        ClientMessage::ChannelLeave {} => return Ok(Some(End::ClientLeft)),
                        ClientMessage::ChannelJoin { .. } => Some((ErrorCode::UnexpectedMessage, "already joined a channel".to_owned())),
                        ClientMessage::MediaEvent { data } => match data {
                            ClientMediaEvent::Leave {} => return Ok(None),
                            ClientMediaEvent::Join { .. } => Some((ErrorCode::UnexpectedMessage, "already in the room".to_owned())),
                            ClientMediaEvent::SdpAnswer { sdp_answer, track_id_to_track_metadata, mid_to_track_id } => {
                                peer.on_answer(sdp_answer, track_id_to_track_metadata, mid_to_track_id).await?
                                    .err().map(|r| (r.code, r.message))
                            }
                            // A loopback-only server (tests) never checks other addresses.
                            ClientMediaEvent::Candidate(c) if !crate::rtc::candidate_reachable(&s.app.config, &c.candidate) => None,
                            ClientMediaEvent::Candidate(c) => peer.on_remote_candidate(c).await.err().map(|r| (r.code, r.message)),
                            ClientMediaEvent::SetTileSizes { sizes } => {
                                peer.set_tile_sizes(sizes).err().map(|r| (r.code, r.message))
                            }
                            ClientMediaEvent::SendChatMessage { text } => {
                                if within(&mut chat_rate, s, "chat messages") {
                                    room.chat(&peer.id, text);
                                }
                                None
                            }
                            ClientMediaEvent::RenegotiateTracks { tracks, ice_restart } => {
                                peer.renegotiate(tracks, ice_restart).await?;
                                None
                            }
                            ClientMediaEvent::UpdatePeerMetadata { metadata } => {
                                if within(&mut rename_rate, s, "renames") {
                                    room.update_peer(&peer.id, metadata);
                                }
                                None
                            }
                            ClientMediaEvent::UpdateTrackMetadata { track_id, track_metadata } => {
                                peer.update_track_metadata(&track_id, track_metadata)
                                    .err().map(|e| (ErrorCode::Forbidden, e.to_string()))
                            }
                        },
                    };
                    if let Some((code, message)) = refusal {
                        if let Some(end) = s.refuse(code, &message) {
                            return Ok(Some(end));
                        }
                    }
                }
            }
        }
    }
    .await;
    let end = match result {
        Ok(end) => end,
        Err(e) => {
            warn!(error = %e, "removing peer");
            s.out.media(ServerMediaEvent::error(e.to_string()));
            Some(End::Peer(e))
        }
    };
    let media_connected = peer.media_connected();
    peer.close().await;
    InRoom {
        end,
        media_connected,
    }
}
