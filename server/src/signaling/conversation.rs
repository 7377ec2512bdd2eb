//! The session's stages: channel join (topic, protocol version, join token), then — as often
//! as the client leaves and joins again — room join (admission, reconnect tokens) and life in
//! the room, and what becomes of the member when that life ends (leave, or held for a reconnect).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use protocol::{
    room_from_topic, validate_room_name, ClientMediaEvent, ClientMessage, ServerMediaEvent,
    ServerMessage, PROTOCOL_VERSION,
};
use tokio::sync::mpsc;
use tokio::time::{sleep_until, Instant};
use tracing::{debug, info, info_span, Instrument};

use super::frames::{End, Inbound, Session};
use super::in_room::{in_room, InRoom};
use crate::cluster::Owner;
use crate::reconnect;
use crate::room::{Admission, JoinDenied, MemberHandle};
use crate::AppState;

/// Room commands queued for one peer before it counts as too slow.
const COMMAND_CAPACITY: usize = 256;

/// The whole conversation: channel join, then (repeatedly) room join and life in the room.
pub(super) async fn converse(s: &mut Session) -> End {
    let join_deadline = Instant::now() + s.app.config.join_timeout();
    let room_name = loop {
        let msg = tokio::select! {
            m = s.recv() => m,
            _ = sleep_until(join_deadline) => return End::JoinTimeout,
        };
        match msg {
            Inbound::Ended(end) => return end,
            Inbound::Message(ClientMessage::ChannelJoin {
                topic,
                protocol_version,
                token,
            }) => match channel_join(&topic, protocol_version, token.as_deref(), &s.app) {
                Ok(room) => {
                    if let Err(reason) = owned_here(&room, &s.app).await {
                        info!(room = %room, %reason, "channel join refused");
                        s.out.send(ServerMessage::ChannelJoinError { reason });
                        if let Some(end) = s.note_error() {
                            return end;
                        }
                        continue;
                    }
                    s.out.send(ServerMessage::ChannelJoined {
                        topic,
                        protocol_version: PROTOCOL_VERSION,
                    });
                    break room;
                }
                Err(reason) => {
                    s.out.send(ServerMessage::ChannelJoinError { reason });
                    if let Some(end) = s.note_error() {
                        return end;
                    }
                }
            },
            Inbound::Message(ClientMessage::ChannelLeave {}) => return End::ClientLeft,
            Inbound::Message(ClientMessage::MediaEvent { .. }) => {
                if let Some(end) = s.unexpected("join a channel (channelJoin room:<name>) first") {
                    return end;
                }
            }
        }
    };

    let mut deadline = Some(join_deadline);
    loop {
        let msg = tokio::select! {
            m = s.recv() => m,
            _ = sleep_until(deadline.unwrap_or_else(far_future)), if deadline.is_some() => return End::JoinTimeout,
        };
        match msg {
            Inbound::Ended(end) => return end,
            Inbound::Message(ClientMessage::MediaEvent {
                data:
                    ClientMediaEvent::Join {
                        metadata,
                        reconnect_token,
                    },
            }) => {
                let id = uuid::Uuid::new_v4().to_string();
                let (tx, commands) = mpsc::channel(COMMAND_CAPACITY);
                let peer_kill = s.kill.child_token();
                let replaced = Arc::new(AtomicBool::new(false));
                let handle = MemberHandle {
                    commands: tx,
                    kill: peer_kill.clone(),
                    replaced: replaced.clone(),
                };
                let display_name = metadata.display_name.clone();
                // One source cannot fill rooms (or the server) with joins faster than people do.
                let too_fast = s
                    .source
                    .is_some_and(|ip| !s.app.joins.admit(ip, Instant::now()));
                // Held until the media is up: one source cannot fill a room with joins that
                // never answer.
                let connecting = s.source.map(|ip| s.app.connecting.admit(ip)).transpose();
                let joined = if too_fast {
                    Err(JoinDenied::TooManyJoins(
                        s.app.config.joins_per_minute_per_ip,
                    ))
                } else if connecting.is_err() {
                    Err(JoinDenied::TooManyConnecting(
                        s.app.config.max_connecting_per_ip,
                    ))
                } else {
                    s.app
                        .rooms
                        .join(&room_name, id, metadata, handle, reconnect_token.as_deref())
                };
                match joined {
                    Err(denied) => {
                        info!(room = %room_name, reason = %denied, "join denied");
                        s.out.media(ServerMediaEvent::PeerDenied {
                            reason: denied.to_string(),
                        });
                        if let Some(end) = s.note_error() {
                            return end;
                        }
                    }
                    Ok((room, admission)) => {
                        let Admission {
                            id,
                            session,
                            token,
                            reconnected,
                            snapshot,
                        } = admission;
                        if reconnect_token.is_some() && !reconnected {
                            debug!("unknown or expired reconnect token: an ordinary join");
                        }
                        s.out.media(ServerMediaEvent::PeerAccepted {
                            id: id.clone(),
                            peers_in_room: snapshot.peers,
                            ice_servers: crate::turn::ice_servers(
                                &s.app.config,
                                &id,
                                crate::access::now_unix(),
                            ),
                            chat_history: snapshot.chat,
                            reconnect_token: Some(token),
                        });
                        for event in snapshot.speaking {
                            s.out.media(event);
                        }
                        let span = info_span!(parent: &room.span, "peer", peer = %id, name = %display_name, reconnected);
                        s.police_idle = true;
                        s.last_seen = Instant::now();
                        let end = in_room(
                            s,
                            &room,
                            id.clone(),
                            session,
                            snapshot.tracks,
                            commands,
                            peer_kill,
                            connecting.ok().flatten(),
                        )
                        .instrument(span)
                        .await;
                        s.police_idle = false;
                        let InRoom {
                            end,
                            media_connected,
                        } = end;
                        let end = match end {
                            Some(End::Killed) if replaced.load(Ordering::SeqCst) => {
                                Some(End::Replaced)
                            }
                            end => end,
                        };
                        match &end {
                            // A clean leave, or the server stopping: gone at once.
                            None | Some(End::ClientLeft | End::PageGone | End::Shutdown) => {
                                s.app.rooms.leave(&room, &id, session)
                            }
                            // The member now belongs to the reconnected session.
                            Some(End::Replaced) => {}
                            // Lost without a word: keep the place for a reconnect — if
                            // there was one: a member whose media never came up (or a flood of
                            // joins that close at once) holds no place for the grace period.
                            Some(_) if media_connected || reconnected => {
                                reconnect::hold(&s.app, &room, &id, session)
                            }
                            Some(_) => s.app.rooms.leave(&room, &id, session),
                        }
                        match end {
                            // Left the room but kept the channel: rejoin in time or go.
                            None => deadline = Some(Instant::now() + s.app.config.join_timeout()),
                            Some(end) => return end,
                        }
                    }
                }
            }
            Inbound::Message(ClientMessage::ChannelLeave {}) => return End::ClientLeft,
            Inbound::Message(ClientMessage::ChannelJoin { .. }) => {
                if let Some(end) = s.unexpected("already joined a channel") {
                    return end;
                }
            }
            Inbound::Message(ClientMessage::MediaEvent { data }) => {
                let text = format!("{} before join: send join first", event_name(&data));
                if let Some(end) = s.unexpected(&text) {
                    return end;
                }
            }
        }
    }
}

pub(super) fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(86400 * 365)
}

fn channel_join(
    topic: &str,
    version: u32,
    token: Option<&str>,
    app: &AppState,
) -> Result<String, String> {
    if version != PROTOCOL_VERSION {
        return Err(format!(
            "protocol version {version} is not supported; this server speaks version {PROTOCOL_VERSION}"
        ));
    }
    let room = room_from_topic(topic)
        .ok_or_else(|| format!("unknown topic {topic:?}: expected \"room:<name>\""))?;
    validate_room_name(room).map_err(|e| e.to_string())?;
    if let Some(key) = &app.tokens {
        key.verify(token, room, crate::access::now_unix())
            .map_err(|e| e.to_string())?;
    }
    Ok(room.to_owned())
}

/// Whether this node may serve `room`: alone, always; in a cluster, once it holds the room's
/// lease. Until the signaling is proxied to the owner (issue 40, step 2), a room held by
/// another node is refused with a reason that names where it is served.
async fn owned_here(room: &str, app: &AppState) -> Result<(), String> {
    let Some(cluster) = &app.cluster else {
        return Ok(());
    };
    match cluster.claim(room).await {
        Owner::Me => Ok(()),
        Owner::Other { node, url } => Err(match url {
            Some(url) => format!(
                "room {room} is served by another node ({node}): open it at {url}/room/{room}"
            ),
            None => format!(
                "room {room} is held by node {node}, which is not answering: try again in a few seconds"
            ),
        }),
    }
}

fn event_name(e: &ClientMediaEvent) -> &'static str {
    match e {
        ClientMediaEvent::Join { .. } => "join",
        ClientMediaEvent::SdpAnswer { .. } => "sdpAnswer",
        ClientMediaEvent::Candidate(_) => "candidate",
        ClientMediaEvent::RenegotiateTracks { .. } => "renegotiateTracks",
        ClientMediaEvent::SendChatMessage { .. } => "sendChatMessage",
        ClientMediaEvent::UpdatePeerMetadata { .. } => "updatePeerMetadata",
        ClientMediaEvent::UpdateTrackMetadata { .. } => "updateTrackMetadata",
        ClientMediaEvent::SetTileSizes { .. } => "setTileSizes",
        ClientMediaEvent::Leave {} => "leave",
    }
}
