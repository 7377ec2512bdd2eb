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

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use futures_util::stream::SplitSink;
use futures_util::{SinkExt, StreamExt};
use protocol::MAX_FRAME_BYTES;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::{debug, info};

use crate::http::ClientAddr;
use crate::outbox::{Outbox, Outgoing};
use crate::rate_limit::RateLimit;
use crate::AppState;
use frames::Session;
pub use frames::{MAX_REFUSALS, RATE_BURST, RATE_PER_SECOND, REFUSAL_REFILL_SECS};

/// Frames queued for one client before it counts as not reading.
const OUTBOX_CAPACITY: usize = 256;
/// How long a closing connection may take to finish the close handshake.
const CLOSE_GRACE: Duration = Duration::from_secs(2);
/// A connection's WebSocket read buffer to start with (tungstenite's default is 128 KiB).
const READ_BUFFER_BYTES: usize = 8 * 1024;

/// Header values quoted in logs and replies are cut to this many characters: a client chooses
/// them, and a 300 KiB Origin must not become 300 KiB of log per request.
const QUOTED_HEADER_CHARS: usize = 100;

/// `GET /socket`: upgrades to a signaling session (403 for a foreign browser origin or a host
/// name the server does not go by).
pub async fn handler(
    ws: WebSocketUpgrade,
    headers: HeaderMap,
    client: Option<Extension<ClientAddr>>,
    State(app): State<Arc<AppState>>,
) -> Response {
    if let Err(host) = check_host(&headers, &app.config.public_host) {
        let host = quoted(&host);
        info!(%host, "WebSocket for a host name not served refused");
        return (
            StatusCode::FORBIDDEN,
            format!("host {host} is not served here (see --public-host)\n"),
        )
            .into_response();
    }
    if let Err(origin) = check_origin(&headers, &app.config.allowed_origins) {
        let origin = quoted(&origin);
        info!(%origin, "WebSocket from a foreign origin refused");
        return (
            StatusCode::FORBIDDEN,
            format!("origin {origin} may not use this server\n"),
        )
            .into_response();
    }
    let source = client.map(|Extension(ClientAddr(addr))| addr.ip());
    // tungstenite reserves a 128 KiB read buffer per connection by default: ~130 KB of the
    // ~460 KB a fan-out participant cost (issue 7). Signaling frames are small; the buffer still grows to
    // take a 64 KiB frame.
    ws.max_message_size(MAX_FRAME_BYTES)
        .max_frame_size(MAX_FRAME_BYTES)
        .read_buffer_size(READ_BUFFER_BYTES)
        .on_upgrade(move |socket| {
            let tracker = app.sessions.clone();
            tracker.track_future(run(socket, app, source))
        })
}

/// A client-chosen header value, cut for a log line or a reply.
fn quoted(value: &str) -> String {
    match value.char_indices().nth(QUOTED_HEADER_CHARS) {
        Some((cut, _)) => format!("{}… ({} bytes)", &value[..cut], value.len()),
        None => value.to_owned(),
    }
}

/// DNS rebinding: a hostile page whose own name is made to resolve to this server would be
/// same-origin with it, Host and Origin agreeing. Its Host header still carries the hostile
/// name, so only names the server goes by pass: `localhost` (and `*.localhost`, which browsers
/// resolve to loopback themselves), any IP address (a page cannot rebind a literal address),
/// and `--public-host`. Requests without a Host (HTTP/1.0 tools) pass, as there is no page.
fn check_host(headers: &HeaderMap, public: &[String]) -> Result<(), String> {
    let Some(host) = headers.get(header::HOST) else {
        return Ok(());
    };
    let host = host.to_str().map_err(|_| "(not text)".to_owned())?;
    // Strip the port: `[::1]:4000`, `127.0.0.1:4000`, `name:4000`.
    let name = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => host.rsplit_once(':').map_or(host, |(name, _)| name),
    };
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    let ok = name.parse::<IpAddr>().is_ok()
        || name == "localhost"
        || name.ends_with(".localhost")
        || public
            .iter()
            .any(|p| p.trim_end_matches('.').eq_ignore_ascii_case(&name));
    if ok {
        Ok(())
    } else {
        Err(host.to_owned())
    }
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

async fn run(socket: WebSocket, app: Arc<AppState>, source: Option<IpAddr>) {
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
        refusals: frames::refusal_budget(),
        source,
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
    fn host_names_not_served_are_refused() {
        let public = vec!["meet.example.com".to_owned()];
        for ok in [
            "127.0.0.1:4000",
            "[::1]:4000",
            "10.0.0.5",
            "localhost:4000",
            "LOCALHOST",
            "app.localhost:4000",
            "meet.example.com",
            "Meet.Example.com.:443",
        ] {
            assert!(check_host(&headers(None, ok), &public).is_ok(), "{ok}");
        }
        for bad in [
            "evil.example:4000",
            "127.0.0.1.evil.example",
            "localhost.evil.example",
        ] {
            assert_eq!(
                check_host(&headers(None, bad), &public),
                Err(bad.to_owned()),
                "{bad}"
            );
        }
    }

    #[test]
    fn quoted_header_values_are_cut() {
        assert_eq!(quoted("http://a"), "http://a");
        let long = "é".repeat(300_000);
        let q = quoted(&long);
        assert!(q.chars().count() < 130, "{}", q.len());
        assert!(q.ends_with("(600000 bytes)"), "{q}");
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
