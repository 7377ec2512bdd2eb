//! The non-blocking way to send to one client: a bounded queue drained by the session's
//! WebSocket writer. A client that stops reading fills it and is disconnected instead of
//! stalling the room.

use protocol::{ServerMediaEvent, ServerMessage};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// A close frame's payload is at most 125 bytes (RFC 6455 §5.5), two of them the code.
const MAX_CLOSE_REASON_BYTES: usize = 123;

/// What the writer is asked to put on the socket.
pub(crate) enum Outgoing {
    /// A frame.
    Frame(ServerMessage),
    /// A close frame with its code and reason; the writer stops after it.
    Close(u16, String),
}

/// The non-blocking way to send to one client.
#[derive(Clone)]
pub struct Outbox {
    tx: mpsc::Sender<Outgoing>,
    kill: CancellationToken,
}

impl Outbox {
    /// An outbox of `capacity` frames; overflowing it cancels `kill`. The receiver is the
    /// writer's.
    pub(crate) fn new(
        capacity: usize,
        kill: CancellationToken,
    ) -> (Outbox, mpsc::Receiver<Outgoing>) {
        let (tx, rx) = mpsc::channel(capacity);
        (Outbox { tx, kill }, rx)
    }

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

    /// Queues a close frame.
    pub(crate) fn close(&self, code: u16, reason: &str) {
        // Reasons can quote a peer's input (a refused SDP line); a longer one would make the
        // close frame invalid and the browser would see only a broken connection.
        let reason = protocol::clip_text(reason, MAX_CLOSE_REASON_BYTES);
        let _ = self.tx.try_send(Outgoing::Close(code, reason));
    }
}
