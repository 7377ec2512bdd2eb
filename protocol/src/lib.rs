//! Every message exchanged between the Videoroom client and server, as serde types.
//!
//! The wire format is JSON text frames over one WebSocket (`/socket`). Each frame is one
//! [`ClientMessage`] or [`ServerMessage`], tagged by `"type"`. The shape follows the Membrane
//! RTC engine's media events (used by the original tutorial), with two changes: events are typed
//! JSON rather than JSON strings inside JSON, and the server makes every SDP offer (one
//! negotiation in flight per peer), so the client only ever answers.
//!
//! Conversation in brief:
//! 1. client `channelJoin {topic: "room:<name>", protocolVersion}` → server `channelJoined` or
//!    `channelJoinError`;
//! 2. client `mediaEvent {data: join {metadata: {displayName}}}` → server `peerAccepted` (or
//!    `peerDenied`), then `sdpOffer`; the client answers with `sdpAnswer`; candidates trickle both
//!    ways; `tracksAdded` / `peerJoined` / `peerLeft` / `tracksRemoved` follow as the room changes.
//! 3. in the room: `updateTrackMetadata` (mute) → the others' `trackUpdated`; `renegotiateTracks
//!    {tracks}` asks for uplink m-lines for more tracks (a screen share) or an ICE restart;
//!    `sendChatMessage` → everyone's `chatMessage`; the server reports `voiceActivity` per audio
//!    track; a client that lost its socket joins again with `reconnectToken` and keeps its peer id.
//!
//! Invariant: this crate knows neither side. It has no I/O and builds for `wasm32-unknown-unknown`.

pub mod json;
mod limits;
pub mod tree;
mod validate;

use std::collections::BTreeMap;

use protocol_derive::{FromTree, ToJson};
use serde::{Deserialize, Serialize};

pub use limits::*;
pub use validate::{
    validate_chat_text, validate_display_name, validate_room_name, ValidationError,
};

/// The protocol version this build speaks; sent in `channelJoin`.
pub const PROTOCOL_VERSION: u32 = 1;

/// The topic prefix of a room channel: `room:<name>`.
pub const ROOM_TOPIC_PREFIX: &str = "room:";

/// A peer id, assigned by the server (a UUID string).
pub type PeerId = String;
/// A track id, assigned by the server: `<peerId>:<uuid>`.
pub type TrackId = String;

/// A frame sent by the client.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, FromTree, ToJson)]
#[serde(tag = "type", rename_all = "camelCase", deny_unknown_fields)]
pub enum ClientMessage {
    /// Join the channel `room:<name>` (the tutorial's `channel.join()`).
    #[serde(rename_all = "camelCase")]
    ChannelJoin {
        /// `room:<name>`.
        topic: String,
        /// Must equal [`PROTOCOL_VERSION`].
        protocol_version: u32,
        /// A signed join token, when the server requires one (`--join-token-secret`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        token: Option<String>,
    },
    /// A media event for the room's engine.
    MediaEvent {
        /// The event.
        data: ClientMediaEvent,
    },
    /// Leave the channel (and the room, if joined).
    ChannelLeave {},
}

/// A frame sent by the server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, FromTree, ToJson)]
#[serde(tag = "type", rename_all = "camelCase", deny_unknown_fields)]
pub enum ServerMessage {
    /// The channel join succeeded.
    #[serde(rename_all = "camelCase")]
    ChannelJoined {
        /// The topic joined.
        topic: String,
        /// The version the server speaks.
        protocol_version: u32,
    },
    /// The channel join failed (bad topic, bad version, server full).
    ChannelJoinError {
        /// What went wrong, for a person.
        reason: String,
    },
    /// A media event from the room's engine.
    MediaEvent {
        /// The event.
        data: ServerMediaEvent,
    },
    /// A frame the server could not accept; the connection stays open.
    Error {
        /// Machine-readable class of the problem.
        code: ErrorCode,
        /// What was wrong, for a person.
        message: String,
    },
}

/// The class of a protocol [`ServerMessage::Error`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, FromTree, ToJson)]
#[serde(rename_all = "camelCase")]
pub enum ErrorCode {
    /// Not JSON, or not a known message shape.
    BadMessage,
    /// A field is too long, too many items, or has forbidden characters.
    InvalidField,
    /// A valid message that is not allowed now (e.g. media event before join).
    UnexpectedMessage,
    /// The peer names another peer's id or track.
    Forbidden,
    /// Negotiation failed (SDP refused, ICE candidate refused).
    Negotiation,
    /// Too many messages in a short time.
    RateLimited,
}

/// A peer's public metadata.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, FromTree, ToJson)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PeerMetadata {
    /// The name shown under the peer's tile.
    pub display_name: String,
}

/// What a track carries and how.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, FromTree, ToJson)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TrackMetadata {
    /// Where the media comes from.
    pub source: TrackSource,
    /// Whether the publisher has muted it (media may still flow as silence/black).
    #[serde(default)]
    pub muted: bool,
}

/// The source of a track.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, FromTree, ToJson)]
#[serde(rename_all = "camelCase")]
pub enum TrackSource {
    /// Microphone audio.
    Microphone,
    /// Camera video.
    Camera,
    /// Screen share video.
    Screen,
}

/// A peer as seen by the others.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, FromTree, ToJson)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PeerInfo {
    /// The peer's id.
    pub id: PeerId,
    /// Its metadata.
    pub metadata: PeerMetadata,
    /// The tracks it publishes.
    pub track_id_to_metadata: BTreeMap<TrackId, TrackMetadata>,
}

/// A STUN or TURN server for the client's `RTCPeerConnection`, as in `RTCIceServer`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, FromTree, ToJson)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IceServer {
    /// `stun:` / `turn:` / `turns:` URLs.
    pub urls: Vec<String>,
    /// TURN user name (short-lived: `<expiry>:<peer id>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// TURN credential.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
}

/// An SDP as in `RTCSessionDescriptionInit`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, FromTree, ToJson)]
#[serde(deny_unknown_fields)]
pub struct SessionDescription {
    /// `offer` or `answer`.
    #[serde(rename = "type")]
    pub kind: SdpType,
    /// The SDP text.
    pub sdp: String,
}

/// The type of a [`SessionDescription`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, FromTree, ToJson)]
#[serde(rename_all = "lowercase")]
pub enum SdpType {
    /// An offer.
    Offer,
    /// An answer.
    Answer,
}

/// An ICE candidate as in `RTCIceCandidateInit`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, FromTree, ToJson)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IceCandidate {
    /// The `candidate:` line (empty string = end of candidates).
    pub candidate: String,
    /// The media id it belongs to.
    #[serde(default)]
    pub sdp_mid: Option<String>,
    /// The m-line index it belongs to.
    #[serde(default, rename = "sdpMLineIndex")]
    pub sdp_m_line_index: Option<u16>,
    /// The ICE username fragment.
    #[serde(default)]
    pub username_fragment: Option<String>,
}

/// A media event sent by the client.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, FromTree, ToJson)]
#[serde(tag = "type", rename_all = "camelCase", deny_unknown_fields)]
pub enum ClientMediaEvent {
    /// Enter the room with this metadata.
    #[serde(rename_all = "camelCase")]
    Join {
        /// The peer's metadata.
        metadata: PeerMetadata,
        /// The token from an earlier `peerAccepted` in this room: the server gives the same peer
        /// id back (the others see the same person, not a leave and a join) when it still knows
        /// the token; otherwise this is an ordinary join.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reconnect_token: Option<String>,
    },
    /// The answer to the server's latest `sdpOffer`.
    #[serde(rename_all = "camelCase")]
    SdpAnswer {
        /// The answer.
        sdp_answer: SessionDescription,
        /// Metadata of the client's own tracks, keyed by their local track id.
        track_id_to_track_metadata: BTreeMap<String, TrackMetadata>,
        /// Which local track id the client sends on each mid.
        mid_to_track_id: BTreeMap<String, String>,
    },
    /// A trickled ICE candidate.
    Candidate(IceCandidate),
    /// Ask the server to offer again (e.g. after adding or removing a local track).
    #[serde(rename_all = "camelCase")]
    RenegotiateTracks {
        /// How many tracks of each kind the client wants to send: the offer then has at least
        /// that many uplink m-lines of each kind (they are never taken away, only reused).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tracks: Option<TrackCounts>,
        /// Restart ICE (new credentials): the client's network changed or the path failed.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        ice_restart: bool,
    },
    /// Change this peer's metadata.
    UpdatePeerMetadata {
        /// The new metadata.
        metadata: PeerMetadata,
    },
    /// Change the metadata of one of this peer's tracks (mute, unmute).
    #[serde(rename_all = "camelCase")]
    UpdateTrackMetadata {
        /// A track this peer publishes: the server's id, or the client's own id for it (the
        /// key it has in `sdpAnswer.trackIdToTrackMetadata`).
        track_id: TrackId,
        /// The new metadata.
        track_metadata: TrackMetadata,
    },
    /// How big the page shows each remote video, in device pixels (0×0: hidden or off
    /// screen), so the server sends no bigger a simulcast layer than the tile needs. Each
    /// message gives the tiles that changed; a track not named keeps its last size.
    SetTileSizes {
        /// Track id → its tile's size (at most [`MAX_MIDS`] entries).
        sizes: BTreeMap<TrackId, TileSize>,
    },
    /// Say something to everyone in the room (plain text, see [`validate_chat_text`]).
    SendChatMessage {
        /// The message.
        text: String,
    },
    /// Leave the room (the channel stays joined).
    Leave {},
}

/// The RIDs (RFC 8851) of a simulcast camera's layers as the server asks for them, smallest
/// first: quarter, half and full size. The names promise nothing the server trusts (it ranks
/// layers by what they carry); the client scales each to its name.
pub const SIMULCAST_RIDS: [&str; 3] = ["q", "h", "f"];

/// A tile's rendered size in device pixels; 0×0 for a hidden or off-screen tile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, FromTree, ToJson)]
#[serde(deny_unknown_fields)]
pub struct TileSize {
    /// Width (at most [`MAX_TILE_PIXELS`]).
    pub width: u32,
    /// Height (at most [`MAX_TILE_PIXELS`]).
    pub height: u32,
}

/// How many tracks of each kind a client wants to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, FromTree, ToJson)]
#[serde(deny_unknown_fields)]
pub struct TrackCounts {
    /// Audio tracks (microphone).
    pub audio: u8,
    /// Video tracks (camera, screen).
    pub video: u8,
}

/// A chat message as the room keeps and relays it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, FromTree, ToJson)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ChatMessage {
    /// Increasing within the room (order and de-duplication).
    pub seq: u64,
    /// Who said it.
    pub peer_id: PeerId,
    /// Their display name when they said it.
    pub display_name: String,
    /// What they said (plain text).
    pub text: String,
    /// When the server received it, in milliseconds since the Unix epoch.
    pub sent_at_ms: u64,
}

/// A media event sent by the server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, FromTree, ToJson)]
#[serde(tag = "type", rename_all = "camelCase", deny_unknown_fields)]
pub enum ServerMediaEvent {
    /// The join was accepted.
    #[serde(rename_all = "camelCase")]
    PeerAccepted {
        /// This peer's id.
        id: PeerId,
        /// Everyone else already in the room.
        peers_in_room: Vec<PeerInfo>,
        /// STUN/TURN servers to use, with credentials for this peer; none when the server is
        /// reachable directly.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        ice_servers: Vec<IceServer>,
        /// The room's recent chat, oldest first (at most [`MAX_CHAT_HISTORY`]).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        chat_history: Vec<ChatMessage>,
        /// A secret to send back in `join` after losing the connection, to come back as the same
        /// peer.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reconnect_token: Option<String>,
    },
    /// The join was refused.
    PeerDenied {
        /// Why, for a person.
        reason: String,
    },
    /// Someone entered the room.
    PeerJoined {
        /// Who.
        peer: PeerInfo,
    },
    /// Someone left the room.
    #[serde(rename_all = "camelCase")]
    PeerLeft {
        /// Who.
        peer_id: PeerId,
    },
    /// Someone changed their metadata.
    #[serde(rename_all = "camelCase")]
    PeerUpdated {
        /// Who.
        peer_id: PeerId,
        /// The new metadata.
        metadata: PeerMetadata,
    },
    /// A peer started publishing tracks.
    #[serde(rename_all = "camelCase")]
    TracksAdded {
        /// The publisher.
        peer_id: PeerId,
        /// The new tracks.
        track_id_to_metadata: BTreeMap<TrackId, TrackMetadata>,
    },
    /// A peer stopped publishing tracks.
    #[serde(rename_all = "camelCase")]
    TracksRemoved {
        /// The publisher.
        peer_id: PeerId,
        /// The tracks gone.
        track_ids: Vec<TrackId>,
    },
    /// A track's metadata changed.
    #[serde(rename_all = "camelCase")]
    TrackUpdated {
        /// The publisher.
        peer_id: PeerId,
        /// The track.
        track_id: TrackId,
        /// The new metadata.
        track_metadata: TrackMetadata,
    },
    /// A new offer; the client must answer with `sdpAnswer`.
    #[serde(rename_all = "camelCase")]
    SdpOffer {
        /// The offer.
        sdp_offer: SessionDescription,
        /// Which track id the server sends on each mid (the client's receivers map through it).
        mid_to_track_id: BTreeMap<String, TrackId>,
    },
    /// A trickled ICE candidate.
    Candidate(IceCandidate),
    /// Someone said something in the room (sent to everyone, the sender included).
    ChatMessage(ChatMessage),
    /// An audio track started or stopped carrying speech (sent to everyone, the publisher
    /// included), from the RTP audio-level header extension.
    #[serde(rename_all = "camelCase")]
    VoiceActivity {
        /// The publisher.
        peer_id: PeerId,
        /// Its audio track.
        track_id: TrackId,
        /// Speech (true) or silence (false).
        speaking: bool,
    },
    /// What the server makes of this peer's downlink (sent when it changes): its estimate,
    /// and the videos paused for it because even their lowest layer does not fit.
    #[serde(rename_all = "camelCase")]
    Downlink {
        /// Bits per second the peer's link is estimated to carry; `null` while nothing has
        /// limited it.
        estimate: Option<u64>,
        /// Tracks whose video is paused for this peer (at most [`MAX_MIDS`]).
        paused_track_ids: Vec<TrackId>,
    },
    /// Which layers of one of this peer's simulcast videos anyone receives (dynacast): the
    /// client encodes these and turns the others off, until told otherwise.
    #[serde(rename_all = "camelCase")]
    LayersWanted {
        /// The track: the client's own id for it (its `trackIdToTrackMetadata` key).
        track_id: TrackId,
        /// The RIDs to encode (each one of [`SIMULCAST_RIDS`]); empty: none.
        rids: Vec<String>,
    },
    /// The room engine hit an error concerning this peer.
    Error {
        /// What went wrong, for a person.
        message: String,
    },
}

/// Why an incoming frame was rejected.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    /// The frame exceeds [`MAX_FRAME_BYTES`] (from a client) or [`MAX_SERVER_FRAME_BYTES`].
    #[error("message of {size} bytes exceeds the limit of {limit} bytes")]
    TooLarge {
        /// The frame's size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// Not JSON, or not a known message.
    #[error("malformed message: {0}")]
    Malformed(String),
    /// Well-formed, but a field breaks a bound.
    #[error("invalid field: {0}")]
    Invalid(#[from] ValidationError),
}

impl DecodeError {
    /// The error code to report this with.
    pub fn code(&self) -> ErrorCode {
        match self {
            DecodeError::TooLarge { .. } | DecodeError::Malformed(_) => ErrorCode::BadMessage,
            DecodeError::Invalid(_) => ErrorCode::InvalidField,
        }
    }
}

/// Refuses a frame of `size` bytes over `limit`, before anything parses it.
fn check_frame_size(size: usize, limit: usize) -> Result<(), DecodeError> {
    match size > limit {
        true => Err(DecodeError::TooLarge { size, limit }),
        false => Ok(()),
    }
}

/// Most levels of nested arrays and objects a frame may have (ours have at most 7).
pub const MAX_NESTING: usize = 32;

/// Refuses JSON text whose arrays and objects nest deeper than [`MAX_NESTING`], before
/// anything parses it, so that every parser of server frames has the same bound (serde_json
/// stops at 128; the browser's `JSON.parse` builds whatever it is given, and serde-wasm-bindgen,
/// the client's decoder before `FromTree`, overflowed the stack on it).
fn check_nesting(text: &str) -> Result<(), DecodeError> {
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for b in text.bytes() {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > MAX_NESTING {
                    return Err(DecodeError::Malformed(format!(
                        "nested deeper than {MAX_NESTING} levels"
                    )));
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

fn decode<T: for<'de> Deserialize<'de>>(text: &str, limit: usize) -> Result<T, DecodeError> {
    check_frame_size(text.len(), limit)?;
    serde_json::from_str(text).map_err(|e| DecodeError::Malformed(e.to_string()))
}

impl ClientMessage {
    /// Parses and bounds-checks a frame from a client.
    pub fn decode(text: &str) -> Result<Self, DecodeError> {
        let msg: Self = decode(text, MAX_FRAME_BYTES)?;
        msg.validate()?;
        Ok(msg)
    }

    /// Serialises the message to its JSON frame (what serde_json writes, by [`json::ToJson`]).
    pub fn encode(&self) -> String {
        json::ToJson::to_json(self)
    }
}

impl ServerMessage {
    /// Parses and bounds-checks a frame from the server.
    pub fn decode(text: &str) -> Result<Self, DecodeError> {
        Self::decode_with(text, |t| serde_json::from_str(t).map_err(|e| e.to_string()))
    }

    /// [`Self::decode`] with another JSON parser (the wasm client's is the browser's), inside
    /// the same size, nesting and field bounds; `parse` says what was wrong when it fails.
    pub fn decode_with(
        text: &str,
        parse: impl FnOnce(&str) -> Result<Self, String>,
    ) -> Result<Self, DecodeError> {
        check_frame_size(text.len(), MAX_SERVER_FRAME_BYTES)?;
        check_nesting(text)?;
        let msg = parse(text).map_err(DecodeError::Malformed)?;
        msg.validate()?;
        Ok(msg)
    }

    /// Serialises the message to its JSON frame (what serde_json writes, by [`json::ToJson`]).
    pub fn encode(&self) -> String {
        json::ToJson::to_json(self)
    }

    /// Shorthand for a media event frame.
    pub fn media(data: ServerMediaEvent) -> Self {
        ServerMessage::MediaEvent { data }
    }

    /// Shorthand for an error frame; the message is clipped to [`MAX_TEXT_BYTES`] because it
    /// may quote what the client sent.
    pub fn error(code: ErrorCode, message: impl Into<String>) -> Self {
        ServerMessage::Error {
            code,
            message: clip_text(message, MAX_TEXT_BYTES),
        }
    }
}

impl ServerMediaEvent {
    /// Shorthand for an error event; the message is clipped to [`MAX_TEXT_BYTES`] because it
    /// may quote what the client sent.
    pub fn error(message: impl Into<String>) -> Self {
        ServerMediaEvent::Error {
            message: clip_text(message, MAX_TEXT_BYTES),
        }
    }
}

/// The room name in a `room:<name>` topic, if it is one.
pub fn room_from_topic(topic: &str) -> Option<&str> {
    topic.strip_prefix(ROOM_TOPIC_PREFIX)
}

/// The `room:<name>` topic of a room.
pub fn topic_for_room(room: &str) -> String {
    format!("{ROOM_TOPIC_PREFIX}{room}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nesting_is_bounded_outside_strings_only() {
        let nested = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
        assert!(check_nesting(&nested(MAX_NESTING)).is_ok());
        assert!(matches!(
            check_nesting(&nested(MAX_NESTING + 1)),
            Err(DecodeError::Malformed(m)) if m.contains("nested deeper")
        ));
        let deep_object = format!("{}{}", r#"{"a":"#.repeat(40), "}".repeat(40));
        assert!(check_nesting(&deep_object).is_err());
        // Brackets in strings, escaped quotes included, are text.
        let text = format!(
            r#"{{"reason":"{} \" {}"}}"#,
            "[".repeat(100),
            "{".repeat(100)
        );
        assert!(check_nesting(&text).is_ok());
        // Siblings do not add up.
        assert!(check_nesting(&"[[]]".repeat(1000)).is_ok());
        // Every golden frame is well within the bound.
        let peer_accepted = include_str!("../tests/golden/server_peer_accepted_with_turn.json");
        assert!(check_nesting(peer_accepted).is_ok());
    }
}
