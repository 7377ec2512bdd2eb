//! The WebSocket writer both signaling adapters use: one task owns the sink, so any task may
//! send through a channel, and cancelling sends a close frame.

use futures_util::{Sink, SinkExt};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

/// Spawns the writer for `sink`; it ends when the channel closes, a send fails, or on cancel.
pub fn spawn_writer<S>(mut sink: S, cancel: CancellationToken) -> mpsc::UnboundedSender<Message>
where
    S: Sink<Message> + Unpin + Send + 'static,
{
    let (out, mut out_rx) = mpsc::unbounded_channel::<Message>();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                m = out_rx.recv() => match m {
                    Some(m) => if sink.send(m).await.is_err() { return },
                    None => return,
                },
                _ = cancel.cancelled() => {
                    let _ = sink.send(Message::Close(None)).await;
                    return;
                }
            }
        }
    });
    out
}
