//! Room chat: the recent messages a room keeps for newcomers, and the per-peer chat rate.
//!
//! Messages are relayed by the room under its members lock, so a newcomer finds each message
//! either in its `peerAccepted.chatHistory` or as a `chatMessage` afterwards, never both or
//! neither.

use std::collections::VecDeque;
use std::time::{SystemTime, UNIX_EPOCH};

use protocol::{ChatMessage, PeerId, MAX_CHAT_HISTORY};

/// Sustained chat messages per second one peer may send (people type; bots should not flood).
pub const CHAT_PER_SECOND: f64 = 5.0;
/// Chat messages one peer may send in a burst (a pasted paragraph split into lines).
pub const CHAT_BURST: f64 = 10.0;

/// A room's chat: the last [`MAX_CHAT_HISTORY`] messages and the next sequence number.
#[derive(Debug, Default)]
pub struct ChatLog {
    next_seq: u64,
    recent: VecDeque<ChatMessage>,
}

impl ChatLog {
    /// Records a message and returns it as relayed; the oldest is forgotten beyond the bound.
    pub fn post(
        &mut self,
        peer_id: PeerId,
        display_name: String,
        text: String,
        sent_at_ms: u64,
    ) -> ChatMessage {
        // Starts at 1, so a client may use 0 as "nothing seen yet".
        self.next_seq += 1;
        let msg = ChatMessage {
            seq: self.next_seq,
            peer_id,
            display_name,
            text,
            sent_at_ms,
        };
        if self.recent.len() == MAX_CHAT_HISTORY {
            self.recent.pop_front();
        }
        self.recent.push_back(msg.clone());
        msg
    }

    /// The kept messages, oldest first.
    pub fn history(&self) -> Vec<ChatMessage> {
        self.recent.iter().cloned().collect()
    }
}

/// The server's wall clock in milliseconds since the Unix epoch (0 if it is before 1970).
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rate_limit::RateLimit;
    use std::time::Duration;
    use tokio::time::Instant;

    #[test]
    fn the_log_keeps_the_latest_messages_oldest_first_with_increasing_seq() {
        let mut log = ChatLog::default();
        for i in 0..MAX_CHAT_HISTORY + 7 {
            let m = log.post("p".into(), "P".into(), format!("m{i}"), 1000 + i as u64);
            assert_eq!(m.seq, i as u64 + 1);
        }
        let h = log.history();
        assert_eq!(h.len(), MAX_CHAT_HISTORY);
        assert_eq!(h[0].text, "m7");
        assert_eq!(h.last().map(|m| m.text.as_str()), Some("m56"));
        assert!(h.windows(2).all(|w| w[0].seq + 1 == w[1].seq));
    }

    #[tokio::test(start_paused = true)]
    async fn chat_rate_allows_a_burst_then_five_a_second() {
        let mut r = RateLimit::new(Instant::now(), CHAT_PER_SECOND, CHAT_BURST);
        let admitted = (0..30).filter(|_| r.admit(Instant::now())).count();
        assert_eq!(admitted, CHAT_BURST as usize);
        tokio::time::advance(Duration::from_secs(1)).await;
        let admitted = (0..30).filter(|_| r.admit(Instant::now())).count();
        assert_eq!(admitted, CHAT_PER_SECOND as usize);
    }
}
