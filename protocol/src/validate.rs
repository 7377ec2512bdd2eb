//! Bounds and character checks applied to every decoded message.

use std::collections::BTreeMap;

use crate::limits::*;
use crate::{
    ChatMessage, ClientMediaEvent, ClientMessage, IceCandidate, PeerInfo, PeerMetadata,
    ServerMediaEvent, ServerMessage, SessionDescription, TrackCounts,
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

/// Checks a display name: 1 to 64 characters after trimming, no control characters.
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
    Ok(())
}

/// Checks a chat message: 1 to 1000 characters, not only white space, no control characters
/// but line breaks and tabs.
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
    Ok(())
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
            ServerMediaEvent::Error { message } => max_bytes("message", message, MAX_TEXT_BYTES),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
