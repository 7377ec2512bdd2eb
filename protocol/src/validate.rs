//! Bounds and character checks applied to every decoded message.

use std::collections::BTreeMap;

use crate::limits::*;
use crate::{
    ChatMessage, ClientMediaEvent, ClientMessage, IceCandidate, PeerInfo, PeerMetadata,
    ServerMediaEvent, ServerMessage, SessionDescription, TrackCounts, SIMULCAST_RIDS,
};

/// A field that breaks a bound; the text names the field and the bound.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {problem}")]
pub struct ValidationError {
    /// The field, e.g. `metadata.displayName`.
    pub field: &'static str,
    /// What is wrong with it.
    pub problem: String,
}

fn err(field: &'static str, problem: impl Into<String>) -> ValidationError {
    ValidationError {
        field,
        problem: problem.into(),
    }
}

fn max_bytes(field: &'static str, value: &str, limit: usize) -> Result<(), ValidationError> {
    if value.len() > limit {
        return Err(err(
            field,
            format!("is {} bytes, the limit is {limit}", value.len()),
        ));
    }
    Ok(())
}

fn max_items(field: &'static str, len: usize, limit: usize) -> Result<(), ValidationError> {
    if len > limit {
        return Err(err(field, format!("has {len} items, the limit is {limit}")));
    }
    Ok(())
}

fn id(field: &'static str, value: &str) -> Result<(), ValidationError> {
    max_bytes(field, value, MAX_ID_BYTES)?;
    if value.chars().any(char::is_control) {
        return Err(err(field, "must not contain control characters"));
    }
    Ok(())
}

/// Bidirectional formatting controls (embeddings, overrides, isolates, marks). In a name or a
/// chat line they reorder the text shown after it: a right-to-left override reverses the rest
/// of the participants list.
fn is_bidi_control(c: char) -> bool {
    matches!(
        c,
        '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}' | '\u{061C}'
    )
}

/// Unicode's default-ignorable code points: drawn as nothing (zero-width spaces and joiners,
/// soft hyphen, Hangul fillers, variation selectors, tags, bidirectional controls...).
fn is_default_ignorable(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{034F}'
            | '\u{061C}'
            | '\u{115F}'..='\u{1160}'
            | '\u{17B4}'..='\u{17B5}'
            | '\u{180B}'..='\u{180F}'
            | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{206F}'
            | '\u{3164}'
            | '\u{FE00}'..='\u{FE0F}'
            | '\u{FEFF}'
            | '\u{FFA0}'
            | '\u{FFF0}'..='\u{FFF8}'
            | '\u{1BCA0}'..='\u{1BCA3}'
            | '\u{1D173}'..='\u{1D17A}'
            | '\u{E0000}'..='\u{E0FFF}'
    )
}

/// Combining marks (general category M) of the generic combining blocks and of the scripts
/// whose marks stack (Cyrillic, Hebrew, Arabic, Devanagari, Thai), plus variation selectors.
/// Ranges by hand, not a Unicode-tables crate: the protocol is in the size-budgeted wasm client,
/// and a script left out only escapes the stacking limit, it is never refused.
const COMBINING_MARKS: &[(char, char)] = &[
    ('\u{0300}', '\u{036F}'),
    ('\u{0483}', '\u{0489}'),
    ('\u{0591}', '\u{05BD}'),
    ('\u{05BF}', '\u{05BF}'),
    ('\u{05C1}', '\u{05C2}'),
    ('\u{05C4}', '\u{05C5}'),
    ('\u{05C7}', '\u{05C7}'),
    ('\u{0610}', '\u{061A}'),
    ('\u{064B}', '\u{065F}'),
    ('\u{0670}', '\u{0670}'),
    ('\u{06D6}', '\u{06DC}'),
    ('\u{06DF}', '\u{06E4}'),
    ('\u{06E7}', '\u{06E8}'),
    ('\u{06EA}', '\u{06ED}'),
    ('\u{0900}', '\u{0903}'),
    ('\u{093A}', '\u{093C}'),
    ('\u{093E}', '\u{094F}'),
    ('\u{0951}', '\u{0957}'),
    ('\u{0962}', '\u{0963}'),
    ('\u{0E31}', '\u{0E31}'),
    ('\u{0E34}', '\u{0E3A}'),
    ('\u{0E47}', '\u{0E4E}'),
    ('\u{1AB0}', '\u{1AFF}'),
    ('\u{1DC0}', '\u{1DFF}'),
    ('\u{20D0}', '\u{20FF}'),
    ('\u{FE00}', '\u{FE0F}'),
    ('\u{FE20}', '\u{FE2F}'),
    ('\u{E0100}', '\u{E01EF}'),
];

fn is_combining_mark(c: char) -> bool {
    c >= '\u{0300}'
        && COMBINING_MARKS
            .iter()
            .any(|&(lo, hi)| (lo..=hi).contains(&c))
}

/// Draws nothing on its own: white space, controls, default-ignorables, combining marks (they
/// only decorate a base) and the blank glyphs used for "invisible" names.
fn is_invisible(c: char) -> bool {
    c.is_whitespace()
        || c.is_control()
        || is_default_ignorable(c)
        || is_combining_mark(c)
        || matches!(c, '\u{2800}' | '\u{1D159}')
}

/// The most combining marks stacked on one base. Zero-width characters between marks do not
/// end a stack: the marks still pile onto the same base.
fn longest_mark_run(text: &str) -> usize {
    let (mut run, mut longest) = (0, 0);
    for c in text.chars() {
        if is_combining_mark(c) {
            run += 1;
            longest = longest.max(run);
        } else if !is_default_ignorable(c) {
            run = 0;
        }
    }
    longest
}

/// What display names and chat share: no bidirectional controls, something visible, no stacks
/// of combining marks. Each would let one peer's text disguise itself or break everyone's page.
fn readable(field: &'static str, text: &str) -> Result<(), ValidationError> {
    if let Some(c) = text.chars().find(|&c| is_bidi_control(c)) {
        return Err(err(
            field,
            format!(
                "must not contain bidirectional control characters (U+{:04X})",
                u32::from(c)
            ),
        ));
    }
    if text.chars().all(is_invisible) {
        return Err(err(
            field,
            "must contain a visible character, not only spaces, invisible characters or \
             combining marks",
        ));
    }
    if longest_mark_run(text) > MAX_COMBINING_MARKS {
        return Err(err(
            field,
            format!(
                "must not stack more than {MAX_COMBINING_MARKS} combining marks on one character"
            ),
        ));
    }
    Ok(())
}

/// Checks a room name: 1 to 64 characters, letters, digits, `-`, `_` or `.`.
///
/// Room names appear in URLs (`/room/<name>`) and logs, so the set is deliberately small.
pub fn validate_room_name(name: &str) -> Result<(), ValidationError> {
    const FIELD: &str = "room name";
    let chars = name.chars().count();
    if chars == 0 {
        return Err(err(FIELD, "must not be empty"));
    }
    if chars > MAX_ROOM_NAME_CHARS {
        return Err(err(
            FIELD,
            format!("is {chars} characters, the limit is {MAX_ROOM_NAME_CHARS}"),
        ));
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
    {
        return Err(err(
            FIELD,
            // A control character by its code point, anything else as itself: not `{bad:?}`,
            // which would print escapes and pull Debug text formatting into the wasm client.
            match bad.is_control() {
                true => format!(
                    "may only contain letters, digits, '-', '_' and '.', not U+{:04X}",
                    u32::from(bad)
                ),
                false => format!("may only contain letters, digits, '-', '_' and '.', not '{bad}'"),
            },
        ));
    }
    Ok(())
}

/// Checks a display name: 1 to 64 characters after trimming, no control characters, and
/// readable: no bidirectional controls, something visible, at most [`MAX_COMBINING_MARKS`]
/// stacked.
///
/// Any other Unicode is allowed: names are always shown as text, never as HTML.
pub fn validate_display_name(name: &str) -> Result<(), ValidationError> {
    const FIELD: &str = "display name";
    if name.trim() != name {
        return Err(err(FIELD, "must not start or end with white space"));
    }
    let chars = name.chars().count();
    if chars == 0 {
        return Err(err(FIELD, "must not be empty"));
    }
    if chars > MAX_DISPLAY_NAME_CHARS {
        return Err(err(
            FIELD,
            format!("is {chars} characters, the limit is {MAX_DISPLAY_NAME_CHARS}"),
        ));
    }
    if name.chars().any(char::is_control) {
        return Err(err(FIELD, "must not contain control characters"));
    }
    readable(FIELD, name)
}

/// Checks a chat message: 1 to 1000 characters, not only white space, no control characters
/// but line breaks and tabs, and readable as a display name is.
///
/// Shown as text, never as HTML, so any other Unicode is allowed.
pub fn validate_chat_text(text: &str) -> Result<(), ValidationError> {
    const FIELD: &str = "chat message";
    if text.trim().is_empty() {
        return Err(err(FIELD, "must not be empty"));
    }
    let chars = text.chars().count();
    if chars > MAX_CHAT_CHARS {
        return Err(err(
            FIELD,
            format!("is {chars} characters, the limit is {MAX_CHAT_CHARS}"),
        ));
    }
    if text
        .chars()
        .any(|c| c.is_control() && !matches!(c, '\n' | '\t'))
    {
        return Err(err(
            FIELD,
            "must not contain control characters (line breaks and tabs are fine)",
        ));
    }
    readable(FIELD, text)
}

fn chat_message(m: &ChatMessage) -> Result<(), ValidationError> {
    id("chatMessage.peerId", &m.peer_id)?;
    validate_display_name(&m.display_name)?;
    validate_chat_text(&m.text)
}

fn track_counts(c: &TrackCounts) -> Result<(), ValidationError> {
    let total = usize::from(c.audio) + usize::from(c.video);
    if total > MAX_TRACKS_PER_PEER {
        return Err(err(
            "tracks",
            format!("asks for {total} tracks, the limit is {MAX_TRACKS_PER_PEER}"),
        ));
    }
    Ok(())
}

fn peer_metadata(m: &PeerMetadata) -> Result<(), ValidationError> {
    validate_display_name(&m.display_name)
}

fn sdp(field: &'static str, d: &SessionDescription) -> Result<(), ValidationError> {
    max_bytes(field, &d.sdp, MAX_SDP_BYTES)
}

fn candidate(c: &IceCandidate) -> Result<(), ValidationError> {
    max_bytes("candidate", &c.candidate, MAX_CANDIDATE_BYTES)?;
    if let Some(mid) = &c.sdp_mid {
        id("sdpMid", mid)?;
    }
    if let Some(ufrag) = &c.username_fragment {
        id("usernameFragment", ufrag)?;
    }
    Ok(())
}

fn id_map<V>(
    field: &'static str,
    map: &BTreeMap<String, V>,
    limit: usize,
) -> Result<(), ValidationError> {
    max_items(field, map.len(), limit)?;
    map.keys().try_for_each(|k| id(field, k))
}

fn peer_info(p: &PeerInfo) -> Result<(), ValidationError> {
    id("peer.id", &p.id)?;
    peer_metadata(&p.metadata)?;
    id_map(
        "peer.trackIdToMetadata",
        &p.track_id_to_metadata,
        MAX_TRACKS_PER_PEER,
    )
}

impl ClientMessage {
    /// Checks every bound of this message.
    pub fn validate(&self) -> Result<(), ValidationError> {
        match self {
            ClientMessage::ChannelJoin { topic, token, .. } => {
                id("topic", topic)?;
                token
                    .as_deref()
                    .map_or(Ok(()), |t| max_bytes("token", t, MAX_TEXT_BYTES))
            }
            ClientMessage::MediaEvent { data } => data.validate(),
            ClientMessage::ChannelLeave {} => Ok(()),
        }
    }
}

impl ClientMediaEvent {
    /// Checks every bound of this event.
    pub fn validate(&self) -> Result<(), ValidationError> {
        match self {
            ClientMediaEvent::Join {
                metadata,
                reconnect_token,
            } => {
                peer_metadata(metadata)?;
                reconnect_token
                    .as_deref()
                    .map_or(Ok(()), |t| id("reconnectToken", t))
            }
            ClientMediaEvent::UpdatePeerMetadata { metadata } => peer_metadata(metadata),
            ClientMediaEvent::SdpAnswer {
                sdp_answer,
                track_id_to_track_metadata,
                mid_to_track_id,
            } => {
                sdp("sdpAnswer.sdp", sdp_answer)?;
                id_map(
                    "trackIdToTrackMetadata",
                    track_id_to_track_metadata,
                    MAX_TRACKS_PER_PEER,
                )?;
                id_map("midToTrackId", mid_to_track_id, MAX_MIDS)?;
                mid_to_track_id
                    .values()
                    .try_for_each(|v| id("midToTrackId", v))
            }
            ClientMediaEvent::Candidate(c) => candidate(c),
            ClientMediaEvent::UpdateTrackMetadata { track_id, .. } => id("trackId", track_id),
            ClientMediaEvent::RenegotiateTracks { tracks, .. } => {
                tracks.as_ref().map_or(Ok(()), track_counts)
            }
            ClientMediaEvent::SetTileSizes { sizes } => {
                max_items("sizes", sizes.len(), MAX_MIDS)?;
                sizes.iter().try_for_each(|(track, size)| {
                    id("sizes", track)?;
                    if size.width > MAX_TILE_PIXELS || size.height > MAX_TILE_PIXELS {
                        return Err(err(
                            "sizes",
                            format!("a tile over {MAX_TILE_PIXELS} pixels wide or high"),
                        ));
                    }
                    Ok(())
                })
            }
            ClientMediaEvent::SendChatMessage { text } => validate_chat_text(text),
            ClientMediaEvent::Leave {} => Ok(()),
        }
    }
}

impl ServerMessage {
    /// Checks every bound of this message.
    pub fn validate(&self) -> Result<(), ValidationError> {
        match self {
            ServerMessage::ChannelJoined { topic, .. } => id("topic", topic),
            ServerMessage::ChannelJoinError { reason } => {
                max_bytes("reason", reason, MAX_TEXT_BYTES)
            }
            ServerMessage::MediaEvent { data } => data.validate(),
            ServerMessage::Error { message, .. } => max_bytes("message", message, MAX_TEXT_BYTES),
        }
    }
}

impl ServerMediaEvent {
    /// Checks every bound of this event.
    pub fn validate(&self) -> Result<(), ValidationError> {
        match self {
            ServerMediaEvent::PeerAccepted {
                id: peer,
                peers_in_room,
                ice_servers,
                chat_history,
                reconnect_token,
            } => {
                max_items("chatHistory", chat_history.len(), MAX_CHAT_HISTORY)?;
                chat_history.iter().try_for_each(chat_message)?;
                if let Some(t) = reconnect_token {
                    id("reconnectToken", t)?;
                }
                id("id", peer)?;
                max_items("peersInRoom", peers_in_room.len(), MAX_PEERS_LISTED)?;
                peers_in_room.iter().try_for_each(peer_info)?;
                max_items("iceServers", ice_servers.len(), MAX_ICE_SERVERS)?;
                ice_servers.iter().try_for_each(|s| {
                    max_items("iceServers.urls", s.urls.len(), MAX_ICE_SERVERS)?;
                    s.urls
                        .iter()
                        .chain(&s.username)
                        .chain(&s.credential)
                        .try_for_each(|t| max_bytes("iceServers", t, MAX_TEXT_BYTES))
                })
            }
            ServerMediaEvent::PeerDenied { reason } => max_bytes("reason", reason, MAX_TEXT_BYTES),
            ServerMediaEvent::PeerJoined { peer } => peer_info(peer),
            ServerMediaEvent::PeerLeft { peer_id } => id("peerId", peer_id),
            ServerMediaEvent::PeerUpdated { peer_id, metadata } => {
                id("peerId", peer_id)?;
                peer_metadata(metadata)
            }
            ServerMediaEvent::TracksAdded {
                peer_id,
                track_id_to_metadata,
            } => {
                id("peerId", peer_id)?;
                id_map(
                    "trackIdToMetadata",
                    track_id_to_metadata,
                    MAX_TRACKS_PER_PEER,
                )
            }
            ServerMediaEvent::TracksRemoved { peer_id, track_ids } => {
                id("peerId", peer_id)?;
                max_items("trackIds", track_ids.len(), MAX_TRACKS_PER_PEER)?;
                track_ids.iter().try_for_each(|t| id("trackIds", t))
            }
            ServerMediaEvent::TrackUpdated {
                peer_id, track_id, ..
            } => {
                id("peerId", peer_id)?;
                id("trackId", track_id)
            }
            ServerMediaEvent::SdpOffer {
                sdp_offer,
                mid_to_track_id,
            } => {
                max_bytes("sdpOffer.sdp", &sdp_offer.sdp, MAX_OFFER_SDP_BYTES)?;
                id_map("midToTrackId", mid_to_track_id, MAX_MIDS)?;
                mid_to_track_id
                    .values()
                    .try_for_each(|v| id("midToTrackId", v))
            }
            ServerMediaEvent::Candidate(c) => candidate(c),
            ServerMediaEvent::ChatMessage(m) => chat_message(m),
            ServerMediaEvent::VoiceActivity {
                peer_id, track_id, ..
            } => {
                id("peerId", peer_id)?;
                id("trackId", track_id)
            }
            ServerMediaEvent::Downlink {
                paused_track_ids, ..
            } => {
                max_items("pausedTrackIds", paused_track_ids.len(), MAX_MIDS)?;
                paused_track_ids
                    .iter()
                    .try_for_each(|t| id("pausedTrackIds", t))
            }
            ServerMediaEvent::LayersWanted { track_id, rids } => {
                id("trackId", track_id)?;
                max_items("rids", rids.len(), SIMULCAST_RIDS.len())?;
                match rids.iter().find(|r| !SIMULCAST_RIDS.contains(&r.as_str())) {
                    Some(r) => Err(err(
                        "rids",
                        format!("unknown layer {r:?} (one of {SIMULCAST_RIDS:?})"),
                    )),
                    None => Ok(()),
                }
            }
            ServerMediaEvent::Error { message } => max_bytes("message", message, MAX_TEXT_BYTES),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tile_sizes_are_bounded() {
        let sizes = |n: usize, side: u32| ClientMediaEvent::SetTileSizes {
            sizes: (0..n)
                .map(|i| {
                    (
                        format!("p{i}:t1"),
                        crate::TileSize {
                            width: side,
                            height: side,
                        },
                    )
                })
                .collect(),
        };
        assert!(sizes(3, 0).validate().is_ok(), "0×0 is a hidden tile");
        assert!(sizes(MAX_MIDS, MAX_TILE_PIXELS).validate().is_ok());
        assert!(sizes(1, MAX_TILE_PIXELS + 1).validate().is_err());
        assert!(sizes(MAX_MIDS + 1, 10).validate().is_err());
        let bad_id = ClientMediaEvent::SetTileSizes {
            sizes: [("x".repeat(MAX_ID_BYTES + 1), crate::TileSize::default())].into(),
        };
        assert!(bad_id.validate().is_err());
    }

    #[test]
    fn wanted_layers_are_known_rids_at_most_three() {
        let wanted = |rids: &[&str]| ServerMediaEvent::LayersWanted {
            track_id: "{local-1}".into(),
            rids: rids.iter().map(|r| r.to_string()).collect(),
        };
        assert!(wanted(&[]).validate().is_ok(), "none wanted");
        assert!(wanted(&["q", "h", "f"]).validate().is_ok());
        let e = wanted(&["q", "x"]).validate().unwrap_err();
        assert_eq!(e.field, "rids");
        assert!(e.problem.contains("\"x\""), "{e}");
        assert!(wanted(&["q", "q", "h", "f"]).validate().is_err());
    }

    #[test]
    fn room_names() {
        assert!(validate_room_name("standup-2024_a.b").is_ok());
        assert!(validate_room_name("").is_err());
        assert!(validate_room_name("a b").is_err());
        assert!(validate_room_name("ü").is_err());
        assert!(validate_room_name(&"a".repeat(64)).is_ok());
        let e = validate_room_name(&"a".repeat(65)).unwrap_err();
        assert_eq!(
            e.to_string(),
            "room name: is 65 characters, the limit is 64"
        );
    }

    #[test]
    fn display_names() {
        assert!(validate_display_name("Zoë <b>").is_ok());
        assert!(validate_display_name(&"é".repeat(64)).is_ok());
        assert!(validate_display_name(&"é".repeat(65)).is_err());
        assert!(validate_display_name("").is_err());
        assert!(validate_display_name(" a").is_err());
        assert!(validate_display_name("a\u{7}b").is_err());
    }

    #[test]
    fn chat_texts() {
        assert!(validate_chat_text("hello <b>all</b>").is_ok());
        assert!(validate_chat_text("two\nlines\tand a tab").is_ok());
        assert!(validate_chat_text(&"é".repeat(MAX_CHAT_CHARS)).is_ok());
        let e = validate_chat_text(&"é".repeat(MAX_CHAT_CHARS + 1)).unwrap_err();
        assert_eq!(
            e.to_string(),
            "chat message: is 1001 characters, the limit is 1000"
        );
        assert!(validate_chat_text("").is_err());
        assert!(validate_chat_text(" \n\t ").is_err());
        assert!(validate_chat_text("bell\u{7}").is_err());
        assert!(validate_chat_text("escape \u{1b}[31m").is_err());
    }

    /// Real names and lines in scripts that use combining marks, and emoji sequences: all must
    /// pass both checks.
    const REAL_TEXTS: &[&str] = &[
        "Nguyễn Thị Ánh",                     // Vietnamese, precomposed
        "Nguye\u{0302}\u{0303}n Thi\u{0323}", // Vietnamese, decomposed: two marks
        "हिंदी श्रीमती अनुष्का",                  // Devanagari: vowel sign + anusvara
        "สวัสดีครับ กิ่ง น้ำ",                      // Thai: vowel + tone mark
        "بِسْمِ ٱللَّٰهِ ٱلرَّحْمَٰنِ ٱلرَّحِيمِ",             // Arabic with harakat: shadda + alef
        "مُحَمَّد",                               // Arabic name, shadda + fatha
        "שָׁלוֹם הַשָּׁמַיִם",                         // Hebrew niqqud: dagesh + shin dot + qamats
        "می\u{200C}خواهم",                    // Persian with a zero-width non-joiner
        "김민준 さくら Zoë",                  // Korean, Japanese, Latin
        "👨\u{200D}👩\u{200D}👧\u{200D}👦",   // family: ZWJ sequence
        "👍🏽 👩🏾\u{200D}💻",                    // skin tones
        "🇫🇷 🇯🇵",                              // flags: regional indicators
        "🏴\u{E0067}\u{E0062}\u{E0073}\u{E0063}\u{E0074}\u{E007F}", // Scotland: tag sequence
        "1\u{FE0F}\u{20E3} ❤\u{FE0F}\u{200D}🔥 🏳\u{FE0F}\u{200D}🌈", // keycap, VS16 + ZWJ
    ];

    #[test]
    fn real_scripts_and_emoji_pass() {
        for text in REAL_TEXTS {
            assert_eq!(validate_display_name(text), Ok(()), "{text}");
            assert_eq!(validate_chat_text(text), Ok(()), "{text}");
        }
    }

    #[test]
    fn bidi_controls_are_found() {
        for c in [
            '\u{202A}', '\u{202B}', '\u{202C}', '\u{202D}', '\u{202E}', '\u{2066}', '\u{2067}',
            '\u{2068}', '\u{2069}', '\u{200E}', '\u{200F}', '\u{061C}',
        ] {
            assert!(is_bidi_control(c), "U+{:04X}", u32::from(c));
        }
        for c in ['a', 'א', '\u{200D}', '\u{2065}', '\u{2029}'] {
            assert!(!is_bidi_control(c), "U+{:04X}", u32::from(c));
        }
    }

    #[test]
    fn a_right_to_left_override_name_is_refused() {
        // "Alice" followed by an RLO: every name listed after it would read reversed.
        let e = validate_display_name("Alice\u{202E}").unwrap_err();
        assert_eq!(
            e.to_string(),
            "display name: must not contain bidirectional control characters (U+202E)"
        );
        for c in [
            '\u{202A}', '\u{202D}', '\u{2066}', '\u{2069}', '\u{200E}', '\u{200F}', '\u{061C}',
        ] {
            let name = format!("Bob{c}");
            assert!(validate_display_name(&name).is_err(), "{name}");
            let line = format!("hi {c}there");
            let e = validate_chat_text(&line).unwrap_err();
            assert!(e
                .to_string()
                .starts_with("chat message: must not contain bidirectional"));
        }
    }

    #[test]
    fn invisible_characters_are_found() {
        for c in [
            ' ',
            '\u{3000}',
            '\u{200B}',
            '\u{200C}',
            '\u{200D}',
            '\u{2060}',
            '\u{2064}',
            '\u{FEFF}',
            '\u{00AD}',
            '\u{034F}',
            '\u{115F}',
            '\u{1160}',
            '\u{3164}',
            '\u{FFA0}',
            '\u{FE00}',
            '\u{FE0F}',
            '\u{E0000}',
            '\u{E0041}',
            '\u{E007F}',
            '\u{2800}',
            '\u{0301}',
        ] {
            assert!(is_invisible(c), "U+{:04X}", u32::from(c));
        }
        for c in ['a', '.', 'é', 'ก', 'ه', '😀', '\u{1F3FD}', '\u{0E33}'] {
            assert!(!is_invisible(c), "U+{:04X}", u32::from(c));
        }
    }

    #[test]
    fn a_name_of_only_zero_width_spaces_is_refused() {
        let e = validate_display_name("\u{200B}").unwrap_err();
        assert_eq!(
            e.to_string(),
            "display name: must contain a visible character, not only spaces, invisible \
             characters or combining marks"
        );
        for name in [
            "\u{200B}\u{200B}\u{200B}",
            "\u{3164}",
            "\u{FFA0}\u{115F}",
            "\u{2800}",
            "\u{FEFF}\u{00AD}",
            "\u{E0041}\u{E0042}",
            "\u{200B} \u{200C}",
        ] {
            assert!(validate_display_name(name).is_err(), "{name}");
            assert!(validate_chat_text(name).is_err(), "{name}");
        }
    }

    #[test]
    fn a_name_of_only_combining_marks_is_refused() {
        let e = validate_display_name("\u{0301}\u{0308}").unwrap_err();
        assert!(e.to_string().contains("must contain a visible character"));
        assert!(validate_chat_text("\u{20DD}").is_err());
        // 600 marks and nothing under them: nothing to see, refused before the stack check.
        let e = validate_chat_text(&"\u{0301}".repeat(600)).unwrap_err();
        assert!(e.to_string().contains("must contain a visible character"));
    }

    #[test]
    fn combining_marks_are_found() {
        for c in [
            '\u{0300}',
            '\u{036F}',
            '\u{0489}',
            '\u{05B8}',
            '\u{05C1}',
            '\u{0651}',
            '\u{0670}',
            '\u{093F}',
            '\u{094D}',
            '\u{0902}',
            '\u{0E34}',
            '\u{0E48}',
            '\u{1AB0}',
            '\u{1DC0}',
            '\u{20E3}',
            '\u{FE0F}',
            '\u{FE20}',
            '\u{E0100}',
        ] {
            assert!(is_combining_mark(c), "U+{:04X}", u32::from(c));
        }
        // Letters inside the same blocks, and emoji modifiers (symbols, not marks).
        for c in [
            'a',
            'ש',
            'ه',
            'क',
            'ऽ',
            'ก',
            '\u{0E33}',
            '\u{05C0}',
            '\u{1F3FD}',
            '\u{200D}',
        ] {
            assert!(!is_combining_mark(c), "U+{:04X}", u32::from(c));
        }
    }

    #[test]
    fn mark_runs_are_counted_per_base() {
        assert_eq!(longest_mark_run("abc"), 0);
        assert_eq!(longest_mark_run("e\u{0301}e\u{0302}\u{0303}"), 2);
        // A zero-width joiner between marks does not start a new stack; a letter or space does.
        assert_eq!(
            longest_mark_run("a\u{0301}\u{200D}\u{0302}\u{200B}\u{0303}"),
            3
        );
        assert_eq!(longest_mark_run("a\u{0301}\u{0302} \u{0303}"), 2);
        assert_eq!(longest_mark_run("שָּׁ"), 3);
    }

    #[test]
    fn a_chat_line_of_600_combining_marks_is_refused() {
        let zalgo = format!("x{}", "\u{0301}".repeat(600));
        let e = validate_chat_text(&zalgo).unwrap_err();
        assert_eq!(
            e.to_string(),
            "chat message: must not stack more than 4 combining marks on one character"
        );
        // The limit itself passes, one more does not; in names too.
        let at_limit = format!("x{}", "\u{0301}".repeat(MAX_COMBINING_MARKS));
        let over = format!("x{}", "\u{0301}".repeat(MAX_COMBINING_MARKS + 1));
        assert!(validate_chat_text(&at_limit).is_ok());
        assert!(validate_display_name(&at_limit).is_ok());
        assert!(validate_chat_text(&over).is_err());
        assert!(validate_display_name(&over).is_err());
        // Zalgo from other blocks, or spread out with zero-width joiners, is caught too.
        for zalgo in [
            format!("ok {}", "\u{1DC0}\u{20D0}\u{FE20}\u{1AB0}".repeat(3)),
            format!("ก{}", "\u{0E48}".repeat(10)),
            format!("a{}", "\u{0301}\u{200D}".repeat(5)),
        ] {
            assert!(validate_chat_text(&zalgo).is_err(), "{zalgo}");
        }
    }

    #[test]
    fn track_counts_are_bounded() {
        assert!(track_counts(&TrackCounts { audio: 1, video: 2 }).is_ok());
        let e = track_counts(&TrackCounts {
            audio: 1,
            video: MAX_TRACKS_PER_PEER as u8,
        })
        .unwrap_err();
        assert_eq!(e.to_string(), "tracks: asks for 9 tracks, the limit is 8");
    }
}
