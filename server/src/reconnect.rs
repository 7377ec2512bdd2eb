//! Reconnecting without ghosts: a session that ends without a clean leave keeps its member in
//! the room for a grace period (tracks withdrawn at once, `peerLeft` only at the end), and a
//! `join` with the member's reconnect token within it gets the same peer id back.
//!
//! Tokens are 128 random bits in hex, one per admission and valid for the next one only; the
//! room keeps the member's latest.

use std::sync::Arc;

use tracing::{info, Instrument};

use crate::room::Room;
use crate::AppState;

/// A fresh reconnect token: 128 random bits from the system's secure generator, in hex.
pub fn new_token() -> String {
    let mut bytes = [0u8; 16];
    // The TLS stack's generator (ring): already built in, no other dependency. It only fails
    // when the OS has no randomness at all; a UUID v4 (also OS randomness) is the fallback.
    let provider = rustls::crypto::ring::default_provider();
    if provider.secure_random.fill(&mut bytes).is_err() {
        bytes = uuid::Uuid::new_v4().into_bytes();
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether a presented token is this one, in time independent of where they differ.
pub fn tokens_match(ours: &str, presented: &str) -> bool {
    ours.len() == presented.len()
        && ours
            .bytes()
            .zip(presented.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

/// The session of member `id` ended without a clean leave: keep its place for the grace
/// period, then remove it unless it came back (or at once when the grace is zero or the
/// server is stopping).
pub fn hold(app: &Arc<AppState>, room: &Arc<Room>, id: &str, session: u64) {
    let grace = app.config.reconnect_grace();
    if grace.is_zero() || app.shutdown.is_cancelled() {
        app.rooms.leave(room, id, session);
        return;
    }
    if !room.detach(id, session) {
        return;
    }
    let (app, room, id) = (app.clone(), room.clone(), id.to_owned());
    let span = tracing::info_span!(parent: &room.span, "away", peer = %id);
    tokio::spawn(
        async move {
            tokio::select! {
                _ = tokio::time::sleep(grace) => info!(?grace, "no reconnect in time"),
                // Shutdown clears the away members with everyone else.
                _ = app.shutdown.cancelled() => {}
            }
            // A no-op if it came back: the new session holds the member.
            app.rooms.leave(&room, &id, session);
        }
        .instrument(span),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_128_random_bits_in_hex_and_compared_exactly() {
        let a = new_token();
        let b = new_token();
        assert_eq!(a.len(), 32);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
        assert!(tokens_match(&a, &a.clone()));
        assert!(!tokens_match(&a, &b));
        assert!(!tokens_match(&a, &a[..31]));
        assert!(!tokens_match(&a, ""));
    }
}
