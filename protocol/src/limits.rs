//! Bounds on every string and list on the wire. Both sides enforce them.

/// Largest frame the server accepts from a client, in bytes (it closes with 1009 beyond it).
pub const MAX_FRAME_BYTES: usize = 64 * 1024;
/// Largest frame a client accepts from the server. Larger: a full room's join reply and offer
/// grow with the room (~1.8 KB per listed peer at the worst, ~0.6 KB of SDP per forwarded
/// track), and a client has less to fear from its server than the server from its clients.
pub const MAX_SERVER_FRAME_BYTES: usize = 1024 * 1024;
/// Longest SDP offer from the server, in bytes (one m-line per forwarded track).
pub const MAX_OFFER_SDP_BYTES: usize = MAX_SERVER_FRAME_BYTES - 64 * 1024;
/// Longest room name, in characters.
pub const MAX_ROOM_NAME_CHARS: usize = 64;
/// Longest display name, in characters.
pub const MAX_DISPLAY_NAME_CHARS: usize = 64;
/// Longest SDP, in bytes.
pub const MAX_SDP_BYTES: usize = 60 * 1024;
/// Longest ICE candidate line, in bytes.
pub const MAX_CANDIDATE_BYTES: usize = 1024;
/// Longest id (peer, track, mid, ufrag, topic, reason...), in bytes.
pub const MAX_ID_BYTES: usize = 128;
/// Longest free-text reason or error message, in bytes.
pub const MAX_TEXT_BYTES: usize = 1024;
/// Most tracks a single peer may publish.
pub const MAX_TRACKS_PER_PEER: usize = 8;
/// Most peers listed in one message (a room can never be larger).
pub const MAX_PEERS_LISTED: usize = 256;
/// Most entries in a mid → track map (every track of a full room).
pub const MAX_MIDS: usize = MAX_PEERS_LISTED * MAX_TRACKS_PER_PEER;
/// Most ICE servers in a join reply, and most URLs per server.
pub const MAX_ICE_SERVERS: usize = 8;
/// Longest chat message, in characters.
pub const MAX_CHAT_CHARS: usize = 1000;
/// Most combining marks on one character in a display name or chat message. Real text needs
/// few (Vietnamese, Arabic shadda + vowel, a keycap emoji: 2; Hebrew dagesh + shin dot + vowel:
/// 3); "zalgo" text stacks hundreds, spilling over the lines and panels around it.
pub const MAX_COMBINING_MARKS: usize = 4;
/// Largest tile side a client may report, in device pixels (an 8K screen is 7680 wide).
pub const MAX_TILE_PIXELS: u32 = 16_384;
/// Most chat messages a room keeps for late joiners (sent with `peerAccepted`).
pub const MAX_CHAT_HISTORY: usize = 50;

/// `text` cut to at most `limit` bytes on a character boundary, ending in "…" when cut.
///
/// For texts that may quote what a peer sent (a parser's error names the unknown type or the
/// offending SDP line), so that they still fit the bound of the field that carries them.
pub fn clip_text(text: impl Into<String>, limit: usize) -> String {
    const MARK: &str = "…";
    let mut text = text.into();
    if text.len() <= limit {
        return text;
    }
    // Below the mark's own size there is no room for it: plain cut.
    let mark = if limit >= MARK.len() { MARK } else { "" };
    let room = limit - mark.len();
    let cut = (0..=room)
        .rev()
        .find(|&i| text.is_char_boundary(i))
        .unwrap_or(0);
    text.truncate(cut);
    text.push_str(mark);
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clip_text_keeps_short_texts_and_cuts_long_ones_on_a_char_boundary() {
        assert_eq!(clip_text("short", 5), "short");
        assert_eq!(clip_text("abcdef", 5), "ab…");
        // 'é' is two bytes: the cut may not split it.
        assert_eq!(clip_text("éééé", 6), "é…");
        assert_eq!(clip_text("éééé", 7), "éé…");
        assert_eq!(clip_text("abc", 2), "ab");
        assert_eq!(clip_text("abc", 0), "");
        let long = "€".repeat(MAX_TEXT_BYTES);
        assert!(clip_text(long, MAX_TEXT_BYTES).len() <= MAX_TEXT_BYTES);
    }
}
