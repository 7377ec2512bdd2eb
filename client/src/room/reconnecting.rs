//! Getting back in after the socket is lost: backoff, one attempt at a time (each with a
//! deadline), the channel join and `join` with the reconnect token; or giving up and leaving.

use std::rc::Rc;

use futures_channel::oneshot;
use protocol::{topic_for_room, ClientMessage, PeerMetadata, PROTOCOL_VERSION};

use super::{attach_socket, open_socket, RoomError, RoomInner};
use crate::consts::CONNECTION_ERROR;
use crate::log;
use crate::reconnect;
use crate::timeout::Timeout;

/// A reconnection in progress.
pub(super) struct Reconnect {
    /// When the socket was lost (`Date.now()`).
    since_ms: f64,
    /// Attempts started so far.
    attempts: u32,
    /// The next attempt's start, or the running attempt's deadline.
    timer: Option<Timeout>,
}

impl RoomInner {
    /// The socket failed or closed under us. Before the channel join (the person is still
    /// answering the camera prompt) it is reopened when needed; after, the room leaves.
    pub(super) fn socket_lost(self: &Rc<Self>, close_code: Option<u16>) {
        if self.left.get() || self.socket_lost_early.get() {
            return;
        }
        if !self.channel_join_sent.get() {
            log::warn("socket lost before joining; reconnecting once media is ready");
            self.socket.borrow().unregister();
            self.socket_lost_early.set(true);
            return;
        }
        // In the room (or trying to get back): keep the tiles and media, and try again.
        let in_room = self.join_reply.borrow().is_none() && self.endpoint.local_peer_id().is_some();
        if (in_room || self.reconnect.borrow().is_some()) && reconnect::worth_retrying(close_code) {
            self.socket.borrow().unregister();
            self.schedule_reconnect();
            return;
        }
        self.give_up();
    }

    /// Waits the next backoff step, then tries to get back into the room; gives up after
    /// about a minute.
    pub(super) fn schedule_reconnect(self: &Rc<Self>) {
        let now = js_sys::Date::now();
        let mut state = self.reconnect.borrow_mut();
        let r = state.get_or_insert_with(|| Reconnect {
            since_ms: now,
            attempts: 0,
            timer: None,
        });
        if !reconnect::may_retry(r.attempts, now - r.since_ms) {
            drop(state);
            log::error("could not reconnect: giving up");
            self.give_up();
            return;
        }
        let delay = reconnect::delay_ms(r.attempts);
        r.attempts += 1;
        log::warn(&format!(
            "reconnecting in {delay} ms (attempt {})",
            r.attempts
        ));
        let weak = Rc::downgrade(self);
        r.timer = Timeout::new(i32::try_from(delay).unwrap_or(i32::MAX), move || {
            if let Some(room) = weak.upgrade() {
                room.try_reconnect();
            }
        });
        drop(state);
        self.ui.show_reconnecting(true);
    }

    /// One attempt: a new socket, the channel join, then `join` with the reconnect token.
    pub(super) fn try_reconnect(self: &Rc<Self>) {
        if self.left.get() {
            return;
        }
        let ws = match open_socket(&self.socket_url) {
            Ok(ws) => ws,
            Err(e) => {
                log::warn(&e.to_string());
                self.schedule_reconnect();
                return;
            }
        };
        *self.socket.borrow_mut() = attach_socket(ws, Rc::downgrade(self));
        // A socket that neither opens nor fails (a black hole) counts as failed in time.
        let weak = Rc::downgrade(self);
        if let Some(r) = self.reconnect.borrow_mut().as_mut() {
            r.timer = Timeout::new(reconnect::ATTEMPT_TIMEOUT_MS, move || {
                if let Some(room) = weak.upgrade() {
                    log::warn("reconnect attempt timed out");
                    room.socket.borrow().unregister();
                    room.socket.borrow().close();
                    room.schedule_reconnect();
                }
            });
        }
        let (tx, rx) = oneshot::channel();
        *self.channel_reply.borrow_mut() = Some(tx);
        self.socket.borrow().send(&ClientMessage::ChannelJoin {
            topic: topic_for_room(&self.room_name),
            protocol_version: PROTOCOL_VERSION,
            token: self.join_token.clone(),
        });
        let weak = Rc::downgrade(self);
        wasm_bindgen_futures::spawn_local(async move {
            let reply = rx.await;
            let Some(room) = weak.upgrade() else { return };
            match reply {
                Ok(Ok(())) => room.endpoint.rejoin(PeerMetadata {
                    display_name: room.display_name.clone(),
                }),
                Ok(Err(RoomError::ChannelJoin(reason))) => {
                    room.ui
                        .set_error_message(Some(&format!("Cannot open the room: {reason}")));
                    room.finish_reconnect();
                    room.leave();
                }
                // The socket went again (handled by socket_lost), or the room was left.
                _ => {}
            }
        });
    }

    /// Back in the room: the banner goes.
    pub(super) fn finish_reconnect(&self) {
        if self.reconnect.borrow_mut().take().is_some() {
            log::info("reconnected");
            self.ui.show_reconnecting(false);
        }
    }

    pub(super) fn give_up(&self) {
        self.finish_reconnect();
        self.ui.set_error_message(Some(CONNECTION_ERROR));
        self.reply_channel(Err(RoomError::Disconnected));
        self.reply_join(Err(RoomError::Disconnected));
        self.leave();
    }
}
