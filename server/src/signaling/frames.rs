//! Reading the client's frames: decoding, the rate limit (pings included), error replies to
//! bad or refused messages (every refusal spends from a small budget; an empty budget closes
//! the connection), keepalive policing, and why a session ended.

use std::sync::Arc;

use axum::extract::ws::{Message, WebSocket};
use futures_util::stream::SplitStream;
use futures_util::StreamExt;
use protocol::{ClientMessage, DecodeError, ErrorCode, ServerMessage, MAX_FRAME_BYTES};
use tokio::time::{sleep_until, Instant};
use tokio_util::sync::CancellationToken;
use tracing::debug;

use crate::outbox::Outbox;
use crate::peer::PeerError;
use crate::rate_limit::RateLimit;
use crate::AppState;

/// Refused messages a connection may have in a burst before it is closed: unparsable ones and
/// well-formed ones refused alike (a bad join token, a forbidden action), so guessing is bounded.
pub const MAX_REFUSALS: u32 = 10;
/// The refusal budget's refill: one every this many seconds (10 a minute sustained).
pub const REFUSAL_REFILL_SECS: f64 = 6.0;

const CLOSE_NORMAL: u16 = 1000;
const CLOSE_GOING_AWAY: u16 = 1001;
const CLOSE_POLICY: u16 = 1008;
const CLOSE_TOO_BIG: u16 = 1009;
const CLOSE_INTERNAL: u16 = 1011;

/// Sustained messages per second one connection may send.
pub const RATE_PER_SECOND: f64 = 50.0;
/// Messages one connection may send in a burst (a join trickles a few dozen candidates).
pub const RATE_BURST: f64 = 200.0;

/// Why a session ended.
#[derive(Debug)]
pub(super) enum End {
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
    pub(super) fn close_frame(&self) -> Option<(u16, String)> {
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
pub(super) enum Inbound {
    Message(ClientMessage),
    Ended(End),
}

/// The read half plus the bookkeeping every stage shares.
pub(super) struct Session {
    pub(super) app: Arc<AppState>,
    pub(super) stream: SplitStream<WebSocket>,
    pub(super) out: Outbox,
    pub(super) kill: CancellationToken,
    pub(super) last_seen: Instant,
    /// Refusals left before the connection is closed.
    pub(super) refusals: RateLimit,
    /// The client's address, for the per-source join limit.
    pub(super) source: Option<std::net::IpAddr>,
    /// Silence is only policed in a room; before that the join deadline bounds the wait.
    pub(super) police_idle: bool,
    pub(super) rate: RateLimit,
}

impl Session {
    /// The next valid message; bad frames are answered here and counted.
    pub(super) async fn recv(&mut self) -> Inbound {
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
                // Pings and pongs cost the rate limit as messages do (a ping flood is answered
                // by pongs we write); over the limit they are dropped and count as refusals.
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {
                    if !self.rate.admit(self.last_seen) {
                        if let Some(end) = self.note_error() {
                            return Inbound::Ended(end);
                        }
                    }
                    continue;
                }
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
                Ok(msg) => return Inbound::Message(msg),
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

    /// Replies with an error and spends from the refusal budget; ends the session when it is
    /// empty.
    pub(super) fn refuse(&mut self, code: ErrorCode, message: &str) -> Option<End> {
        debug!(?code, message, "refused a frame");
        self.out.send(ServerMessage::error(code, message));
        self.app
            .signaling_errors
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.note_error()
    }

    /// A valid message that does not fit the stage.
    pub(super) fn unexpected(&mut self, message: &str) -> Option<End> {
        self.refuse(ErrorCode::UnexpectedMessage, message)
    }
}

/// A full refusal budget: `MAX_REFUSALS - 1` refusals pass, the next one ends the session
/// (as "ten in a row" did before every refusal counted).
pub(super) fn refusal_budget() -> RateLimit {
    RateLimit::new(
        Instant::now(),
        1.0 / REFUSAL_REFILL_SECS,
        f64::from(MAX_REFUSALS - 1),
    )
}

impl Session {
    /// Why the kill token fired: server shutdown, or this client fell behind.
    pub(super) fn killed(&self) -> End {
        if self.app.shutdown.is_cancelled() {
            End::Shutdown
        } else {
            End::Killed
        }
    }

    /// Spends one refusal (the reply, if any, is already sent); `Some` when none is left.
    pub(super) fn note_error(&mut self) -> Option<End> {
        (!self.refusals.admit(Instant::now())).then_some(End::TooManyErrors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn the_refusal_budget_is_a_burst_then_one_every_six_seconds() {
        let mut r = refusal_budget();
        let allowed = (0..20).filter(|_| r.admit(Instant::now())).count();
        assert_eq!(
            allowed,
            MAX_REFUSALS as usize - 1,
            "the tenth refusal closes"
        );
        tokio::time::advance(Duration::from_secs(6)).await;
        let allowed = (0..20).filter(|_| r.admit(Instant::now())).count();
        assert_eq!(allowed, 1, "one back every 6 s");
        tokio::time::advance(Duration::from_secs(600)).await;
        let allowed = (0..20).filter(|_| r.admit(Instant::now())).count();
        assert_eq!(
            allowed,
            MAX_REFUSALS as usize - 1,
            "never more than the burst"
        );
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
