//! Bounds on every string and list on the wire. Both sides enforce them.

/// Largest frame either side accepts, in bytes (the server closes with 1009 beyond it).
pub const MAX_FRAME_BYTES: usize = 64 * 1024;
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
