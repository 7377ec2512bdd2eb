//! The WebSocket session at `/socket`: decodes frames, walks a client through channel join,
//! room join and its life in the room, and writes replies.
//!
//! Invariant: this is the only module that touches WebSocket I/O. Everything else sends
//! through an [`Outbox`], which never blocks: a client that stops reading fills its queue and is
//! disconnected instead of stalling the room.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use protocol::{
    room_from_topic, validate_room_name, ClientMediaEvent, ClientMessage, DecodeError, ErrorCode,
    ServerMediaEvent, ServerMessage, MAX_FRAME_BYTES, PROTOCOL_VERSION,
};
use tokio::sync::mpsc;
use tokio::time::{sleep_until, Instant};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, info_span, warn, Instrument};

use crate::chat::{CHAT_BURST, CHAT_PER_SECOND};
use crate::peer::{Peer, PeerError};
use crate::reconnect;
use crate::room::{Admission, MemberHandle, PeerCommand, Room};
use crate::AppState;

/// Frames queued for one client before it counts as not reading.
const OUTBOX_CAPACITY: usize = 256;
/// Room commands queued for one peer before it counts as too slow.
const COMMAND_CAPACITY: usize = 256;
/// How long a closing connection may take to finish the close handshake.
const CLOSE_GRACE: Duration = Duration::from_secs(2);
/// Consecutive refused frames before the connection is closed.
pub const MAX_CONSECUTIVE_ERRORS: u32 = 10;

const CLOSE_NORMAL: u16 = 1000;
const CLOSE_GOING_AWAY: u16 = 1001;
const CLOSE_POLICY: u16 = 1008;
const CLOSE_TOO_BIG: u16 = 1009;
const CLOSE_INTERNAL: u16 = 1011;
/// A close frame's payload is at most 125 bytes (RFC 6455 §5.5), two of them the code.
const MAX_CLOSE_REASON_BYTES: usize = 123;
/// A connection's WebSocket read buffer to start with (tungstenite's default is 128 KiB).
const READ_BUFFER_BYTES: usize = 8 * 1024;

/// `GET /socket`: upgrades to a signaling session (403 for a foreign browser origin).
pub async fn handler(
    ws: WebSocketUpgrade,
    headers: HeaderMap,
    State(app): State<Arc<AppState>>,
) -> Response {
    if let Err(origin) = check_origin(&headers, &app.config.allowed_origins) {
        info!(%origin, "WebSocket from a foreign origin refused");
        return (
            StatusCode::FORBIDDEN,
            format!("origin {origin} may not use this server\n"),
        )
            .into_response();
    }
    // tungstenite reserves a 128 KiB read buffer per connection by default: ~130 KB of the
    // ~460 KB a fan-out participant cost (issue 7). Signaling frames are small; the buffer still grows to
    // take a 64 KiB frame.
    ws.max_message_size(MAX_FRAME_BYTES)
        .max_frame_size(MAX_FRAME_BYTES)
        .read_buffer_size(READ_BUFFER_BYTES)
        .on_upgrade(move |socket| {
            let tracker = app.sessions.clone();
            tracker.track_future(run(socket, app))
        })
}

/// Browsers always send `Origin` on WebSocket upgrades; a page on another site must not be
/// able to join rooms on the visitor's behalf. Same origin means the Origin's host:port equals
/// the Host header (the scheme may differ behind a TLS-terminating proxy).
fn check_origin(headers: &HeaderMap, allowed: &[String]) -> Result<(), String> {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return Ok(());
    };
    let origin = origin.to_str().map_err(|_| "(not text)".to_owned())?;
    if allowed
        .iter()
        .any(|a| a == "*" || a.trim_end_matches('/') == origin)
    {
        return Ok(());
    }
    let authority = origin.split_once("://").map(|(_, rest)| rest);
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    match (authority, host) {
        (Some(a), Some(h)) if a.eq_ignore_ascii_case(h) => Ok(()),
        _ => Err(origin.to_owned()),
    }
}

/// A token bucket: a burst of `burst` messages, refilled at `per_second`.
pub(crate) struct RateLimit {
    tokens: f64,
    last: Instant,
    per_second: f64,
    burst: f64,
}

/// Sustained messages per second one connection may send.
pub const RATE_PER_SECOND: f64 = 50.0;
/// Messages one connection may send in a burst (a join trickles a few dozen candidates).
pub const RATE_BURST: f64 = 200.0;

impl RateLimit {
    pub(crate) fn new(now: Instant, per_second: f64, burst: f64) -> Self {
        RateLimit {
            tokens: burst,
            last: now,
            per_second,
            burst,
        }
    }

    pub(crate) fn admit(&mut self, now: Instant) -> bool {
        let refill = now.duration_since(self.last).as_secs_f64() * self.per_second;
        self.tokens = (self.tokens + refill).min(self.burst);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

enum Outgoing {
    Frame(ServerMessage),
    Close(u16, String),
}

/// The non-blocking way to send to one client.
#[derive(Clone)]
pub struct Outbox {
    tx: mpsc::Sender<Outgoing>,
    kill: CancellationToken,
}

impl Outbox {
    /// Queues a frame; a full queue disconnects the client.
    pub fn send(&self, msg: ServerMessage) {
        if self.tx.try_send(Outgoing::Frame(msg)).is_err() {
            self.kill.cancel();
        }
    }

    /// Queues a media event.
    pub fn media(&self, event: ServerMediaEvent) {
        self.send(ServerMessage::media(event));
    }

    fn close(&self, code: u16, reason: &str) {
        // Reasons can quote a peer's input (a refused SDP line); a longer one would make the
        // close frame invalid and the browser would see only a broken connection.
        let reason = protocol::clip_text(reason, MAX_CLOSE_REASON_BYTES);
        let _ = self.tx.try_send(Outgoing::Close(code, reason));
    }
}

/// Why a session ended.
#[derive(Debug)]
enum End {
    ClientClosed,
    /// The client's close frame said 1001, Going Away: its page was closed or left (browsers
    /// send it then, RFC 6455 §7.4.1). A leave, not a network drop.
    PageGone,
    ClientLeft,
    Idle,
    TooBig,
    TooManyErrors,
    JoinTimeout,
    Transport,
    Killed,
    /// A reconnect with this member's token took over.
    Replaced,
    Shutdown,
    Peer(PeerError),
}

impl End {
    fn close_frame(&self) -> Option<(u16, String)> {
        let (code, reason) = match self {
            End::ClientClosed | End::PageGone | End::Transport => return None,
            End::ClientLeft => (CLOSE_NORMAL, "bye".to_owned()),
            End::Idle => (CLOSE_POLICY, "keepalive timeout".to_owned()),
            End::TooBig => (
                CLOSE_TOO_BIG,
                format!("message exceeds {MAX_FRAME_BYTES} bytes"),
            ),
            End::TooManyErrors => (CLOSE_POLICY, "too many invalid messages".to_owned()),
            End::JoinTimeout => (CLOSE_POLICY, "no join in time".to_owned()),
            End::Killed => (CLOSE_POLICY, "too slow to keep up".to_owned()),
            End::Replaced => (CLOSE_NORMAL, "replaced by a newer connection".to_owned()),
            End::Shutdown => (CLOSE_GOING_AWAY, "server shutting down".to_owned()),
            End::Peer(e) => (CLOSE_INTERNAL, e.to_string()),
        };
        Some((code, reason))
    }
}

/// What reading the socket produced.
enum Inbound {
    Message(ClientMessage),
    Ended(End),
}

/// The read half plus the bookkeeping every stage shares.
struct Session {
    app: Arc<AppState>,
    stream: SplitStream<WebSocket>,
    out: Outbox,
    kill: CancellationToken,
    last_seen: Instant,
    consecutive_errors: u32,
    /// Silence is only policed in a room; before that the join deadline bounds the wait.
    police_idle: bool,
    rate: RateLimit,
}

impl Session {
    /// The next valid message; bad frames are answered here and counted.
    async fn recv(&mut self) -> Inbound {
        loop {
            let next = tokio::select! {
                _ = self.kill.cancelled() => return Inbound::Ended(self.killed()),
                _ = sleep_until(self.last_seen + self.app.config.keepalive()), if self.police_idle => return Inbound::Ended(End::Idle),
                next = self.stream.next() => next,
            };
            self.last_seen = Instant::now();
            let text = match next {
                None => return Inbound::Ended(End::ClientClosed),
                Some(Err(e)) => {
                    let text = e.to_string();
                    // tungstenite reports an oversized message as a capacity error.
                    if text.contains("Space limit exceeded") || text.contains("too long") {
                        return Inbound::Ended(End::TooBig);
                    }
                    debug!(error = %text, "WebSocket transport error");
                    return Inbound::Ended(End::Transport);
                }
                Some(Ok(Message::Text(text))) => text,
                Some(Ok(Message::Close(frame))) => {
                    let gone = frame.is_some_and(|f| f.code == CLOSE_GOING_AWAY);
                    return Inbound::Ended(if gone {
                        End::PageGone
                    } else {
                        End::ClientClosed
                    });
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                Some(Ok(Message::Binary(_))) => {
                    if let Some(end) = self.refuse(
                        ErrorCode::BadMessage,
                        "binary frames are not supported; send JSON text",
                    ) {
                        return Inbound::Ended(end);
                    }
                    continue;
                }
            };
            if !self.rate.admit(self.last_seen) {
                let text = format!("too many messages: at most {RATE_PER_SECOND} per second");
                if let Some(end) = self.refuse(ErrorCode::RateLimited, &text) {
                    return Inbound::Ended(end);
                }
                continue;
            }
            match ClientMessage::decode(text.as_str()) {
                Ok(msg) => {
                    self.consecutive_errors = 0;
                    return Inbound::Message(msg);
                }
                Err(e @ DecodeError::TooLarge { .. }) => {
                    debug!(error = %e, "oversized frame");
                    return Inbound::Ended(End::TooBig);
                }
                Err(e) => {
                    if let Some(end) = self.refuse(e.code(), &e.to_string()) {
                        return Inbound::Ended(end);
                    }
                }
            }
        }
    }

    /// Replies with an error; ends the session after too many in a row.
    fn refuse(&mut self, code: ErrorCode, message: &str) -> Option<End> {
        debug!(?code, message, "refused a frame");
        self.out.send(ServerMessage::error(code, message));
        self.app
            .signaling_errors
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.consecutive_errors += 1;
        (self.consecutive_errors >= MAX_CONSECUTIVE_ERRORS).then_some(End::TooManyErrors)
    }

    /// A valid message that does not fit the stage.
    fn unexpected(&mut self, message: &str) -> Option<End> {
        self.refuse(ErrorCode::UnexpectedMessage, message)
    }
}

async fn run(socket: WebSocket, app: Arc<AppState>) {
    let (sink, stream) = socket.split();
    let kill = app.shutdown.child_token();
    let (tx, rx) = mpsc::channel(OUTBOX_CAPACITY);
    let writer = tokio::spawn(write_loop(sink, rx, app.config.ping_interval()));
    let mut session = Session {
        app,
        stream,
        out: Outbox {
            tx,
            kill: kill.clone(),
        },
        kill,
        last_seen: Instant::now(),
        consecutive_errors: 0,
        police_idle: false,
        rate: RateLimit::new(Instant::now(), RATE_PER_SECOND, RATE_BURST),
    };
    let end = converse(&mut session).await;
    debug!(?end, "session ended");
    if let Some((code, reason)) = end.close_frame() {
        session.out.close(code, &reason);
    }
    // The closing handshake: keep reading until the client's close reply, so that nothing it
    // sent is left unread — closing a TCP socket with unread data resets the connection, and
    // the client would lose our close frame. Bounded, and the writer is gone after it.
    let Session {
        mut stream, out, ..
    } = session;
    drop(out);
    let mut writer = writer;
    let drain = async {
        while let Some(Ok(m)) = stream.next().await {
            if matches!(m, Message::Close(_)) {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(CLOSE_GRACE, async {
        let _ = tokio::join!(drain, &mut writer);
    })
    .await;
    writer.abort();
}

async fn write_loop(
    mut sink: SplitSink<WebSocket, Message>,
    mut rx: mpsc::Receiver<Outgoing>,
    ping_interval: Duration,
) {
    // Browsers answer pings on their own; the pongs keep `last_seen` fresh.
    let mut ping = tokio::time::interval(ping_interval);
    ping.tick().await;
    loop {
        let frame = tokio::select! {
            next = rx.recv() => match next {
                Some(Outgoing::Frame(msg)) => Message::Text(msg.encode().into()),
                Some(Outgoing::Close(code, reason)) => {
                    let _ = sink.send(Message::Close(Some(CloseFrame { code, reason: reason.into() }))).await;
                    break;
                }
                None => break,
            },
            _ = ping.tick() => Message::Ping(Default::default()),
        };
        if sink.send(frame).await.is_err() {
            break;
        }
    }
    let _ = sink.close().await;
}

/// The whole conversation: channel join, then (repeatedly) room join and life in the room.
async fn converse(s: &mut Session) -> End {
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
                match s
                    .app
                    .rooms
                    .join(&room_name, id, metadata, handle, reconnect_token.as_deref())
                {
                    Err(denied) => {
                        info!(room = %room_name, reason = %denied, "join denied");
                        s.out.media(ServerMediaEvent::PeerDenied {
                            reason: denied.to_string(),
                        });
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
                        )
                        .instrument(span)
                        .await;
                        s.police_idle = false;
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
                            // Lost without a word: keep the place for a reconnect.
                            Some(_) => reconnect::hold(&s.app, &room, &id, session),
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

fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(86400 * 365)
}

impl Session {
    /// Why the kill token fired: server shutdown, or this client fell behind.
    fn killed(&self) -> End {
        if self.app.shutdown.is_cancelled() {
            End::Shutdown
        } else {
            End::Killed
        }
    }

    fn note_error(&mut self) -> Option<End> {
        self.consecutive_errors += 1;
        (self.consecutive_errors >= MAX_CONSECUTIVE_ERRORS).then_some(End::TooManyErrors)
    }
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

fn event_name(e: &ClientMediaEvent) -> &'static str {
    match e {
        ClientMediaEvent::Join { .. } => "join",
        ClientMediaEvent::SdpAnswer { .. } => "sdpAnswer",
        ClientMediaEvent::Candidate(_) => "candidate",
        ClientMediaEvent::RenegotiateTracks { .. } => "renegotiateTracks",
        ClientMediaEvent::SendChatMessage { .. } => "sendChatMessage",
        ClientMediaEvent::UpdatePeerMetadata { .. } => "updatePeerMetadata",
        ClientMediaEvent::UpdateTrackMetadata { .. } => "updateTrackMetadata",
        ClientMediaEvent::Leave {} => "leave",
    }
}

/// Life in the room. `None`: the peer left the room but keeps the channel.
#[allow(clippy::too_many_arguments)]
async fn in_room(
    s: &mut Session,
    room: &Arc<Room>,
    id: String,
    session: u64,
    existing: Vec<Arc<crate::forwarder::PublishedTrack>>,
    mut commands: mpsc::Receiver<PeerCommand>,
    peer_kill: CancellationToken,
) -> Option<End> {
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
            return Some(End::Peer(e));
        }
    };
    // Stricter than the connection's limit, and refusals do not count towards closing it:
    // a fast typist is told to slow down, not thrown out.
    let mut chat_rate = RateLimit::new(Instant::now(), CHAT_PER_SECOND, CHAT_BURST);
    let result: Result<Option<End>, PeerError> = async {
        peer.start(existing).await?;
        loop {
            let deadline = peer.next_deadline();
            tokio::select! {
                _ = peer_kill.cancelled() => return Ok(Some(s.killed())),
                _ = sleep_until(deadline.unwrap_or_else(far_future)), if deadline.is_some() => {
                    peer.check_deadlines(Instant::now())?;
                }
                Some(cmd) = commands.recv() => match cmd {
                    PeerCommand::Send(event) => s.out.media(event),
                    PeerCommand::Subscribe(track) => peer.subscribe(track).await?,
                    PeerCommand::Unsubscribe(track_id) => peer.unsubscribe(&track_id).await?,
                },
                Some(event) = rtc_events.recv() => peer.on_rtc_event(event).await?,
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
                            ClientMediaEvent::SendChatMessage { text } => {
                                if chat_rate.admit(Instant::now()) {
                                    room.chat(&peer.id, text);
                                } else {
                                    debug!("chat rate exceeded");
                                    s.out.send(ServerMessage::error(
                                        ErrorCode::RateLimited,
                                        format!("too many chat messages: at most {CHAT_PER_SECOND} per second"),
                                    ));
                                }
                                None
                            }
                            ClientMediaEvent::RenegotiateTracks { tracks, ice_restart } => {
                                peer.renegotiate(tracks, ice_restart).await?;
                                None
                            }
                            ClientMediaEvent::UpdatePeerMetadata { metadata } => {
                                room.update_peer(&peer.id, metadata);
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
    peer.close().await;
    end
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(origin: Option<&str>, host: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, host.parse().unwrap());
        if let Some(o) = origin {
            h.insert(header::ORIGIN, o.parse().unwrap());
        }
        h
    }

    #[test]
    fn origins() {
        let none: Vec<String> = vec![];
        assert!(check_origin(&headers(None, "a:4000"), &none).is_ok());
        assert!(check_origin(&headers(Some("http://a:4000"), "a:4000"), &none).is_ok());
        assert!(check_origin(&headers(Some("https://A:4000"), "a:4000"), &none).is_ok());
        assert_eq!(
            check_origin(&headers(Some("http://evil.example"), "a:4000"), &none),
            Err("http://evil.example".to_owned())
        );
        assert!(check_origin(&headers(Some("http://a:4001"), "a:4000"), &none).is_err());
        let dev = vec!["http://localhost:8080/".to_owned()];
        assert!(check_origin(&headers(Some("http://localhost:8080"), "a:4000"), &dev).is_ok());
        let any = vec!["*".to_owned()];
        assert!(check_origin(&headers(Some("http://x"), "a:4000"), &any).is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn rate_limit_allows_a_burst_then_the_sustained_rate() {
        let mut r = RateLimit::new(Instant::now(), RATE_PER_SECOND, RATE_BURST);
        let admitted = (0..300).filter(|_| r.admit(Instant::now())).count();
        assert_eq!(admitted, RATE_BURST as usize);
        tokio::time::advance(Duration::from_secs(1)).await;
        let admitted = (0..300).filter(|_| r.admit(Instant::now())).count();
        assert_eq!(admitted, RATE_PER_SECOND as usize);
    }
}
