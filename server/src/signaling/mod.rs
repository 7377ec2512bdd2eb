//! The WebSocket session at `/socket`: decodes frames, walks a client through channel join,
//! room join and its life in the room, and writes replies. `frames` reads and polices what the
//! client sends, `conversation` is the session's stages (channel join, room join), `in_room`
//! the peer's event loop; this module accepts the socket and writes to it.
//!
//! Invariant: this is the only module that touches WebSocket I/O. Everything else sends
//! through an [`Outbox`], which never blocks: a client that stops reading fills its queue and is
//! disconnected instead of stalling the room.

mod conversation;
mod frames;
mod in_room;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use futures_util::stream::SplitSink;
use futures_util::{SinkExt, StreamExt};
use protocol::MAX_FRAME_BYTES;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::{debug, info};

use crate::outbox::{Outbox, Outgoing};
use crate::rate_limit::RateLimit;
use crate::AppState;
use frames::Session;
pub use frames::{MAX_CONSECUTIVE_ERRORS, RATE_BURST, RATE_PER_SECOND};

/// Frames queued for one client before it counts as not reading.
const OUTBOX_CAPACITY: usize = 256;
/// How long a closing connection may take to finish the close handshake.
const CLOSE_GRACE: Duration = Duration::from_secs(2);
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

async fn run(socket: WebSocket, app: Arc<AppState>) {
    let (sink, stream) = socket.split();
    let kill = app.shutdown.child_token();
    let (out, rx) = Outbox::new(OUTBOX_CAPACITY, kill.clone());
    let writer = tokio::spawn(write_loop(sink, rx, app.config.ping_interval()));
    let mut session = Session {
        app,
        stream,
        out,
        kill,
        last_seen: Instant::now(),
        consecutive_errors: 0,
        police_idle: false,
        rate: RateLimit::new(Instant::now(), RATE_PER_SECOND, RATE_BURST),
    };
    let end = conversation::converse(&mut session).await;
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
}
