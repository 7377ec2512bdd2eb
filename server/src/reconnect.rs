//! Reconnecting without ghosts: a session that ends without a clean leave keeps its member in
//! the room for a grace period (tracks withdrawn at once, `peerLeft` only at the end), and a
//! `join` with the member's reconnect token within it gets the same peer id back.
//!
//! Tokens (`reconnect_token`) are one per admission and valid for the next one only; the room
//! keeps the member's latest.

use std::sync::Arc;

use tracing::{info, Instrument};

use crate::room::Room;
use crate::AppState;

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
