//! What a test peer has seen, kept in one snapshot that tests assert on: membership, tracks
//! announced, media received per track, and what the socket said.

use std::collections::BTreeMap;
use std::time::Duration;

use protocol::{ChatMessage, PeerId, TrackId, TrackMetadata};
use webrtc::peer_connection::peer_connection_state::RTCPeerConnectionState;

/// What one received track has delivered.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrackStats {
    /// The publisher (the stream id the server gave it).
    pub publisher: PeerId,
    /// `audio` or `video`.
    pub kind: String,
    /// Packets received.
    pub packets: u64,
    /// Payload bytes received.
    pub bytes: u64,
    /// Packets whose payload was not what the publisher wrote.
    pub corrupt: u64,
    /// Distinct publisher packets (by payload counter): retransmitted copies count once.
    pub distinct: u64,
    /// The lowest and highest payload counters received: with `distinct`, the delivery ratio.
    pub counters: Option<(u32, u32)>,
    /// The longest time between two packets of this track (the worst freeze a viewer saw).
    pub longest_gap: Duration,
    /// Consecutive packets (by sequence number) of VP8-shaped payloads whose PictureIDs do
    /// not follow by one (each testkit packet is a frame): what a receiver's decoder trips
    /// on after a switch of simulcast layer that is not renumbered.
    pub picture_id_jumps: u64,
    /// Packets that carried an audio level (the extension negotiated for this track).
    pub with_audio_level: u64,
    /// The SSRC it arrives with (the server's sender for it).
    pub ssrc: u32,
    /// Every packet, when the peer records them (`PeerOptions::record_packets`).
    pub log: Vec<Received>,
    /// What arrived by the publisher's layer mark (the payload counter's top byte: 0 for a
    /// track without simulcast, else the layer's place, 1 for the lowest).
    pub by_layer: BTreeMap<u8, LayerStats>,
}

/// One received packet, as recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Received {
    /// When it arrived.
    pub at: tokio::time::Instant,
    /// Its sequence number on the wire.
    pub sequence_number: u16,
    /// Its RTP timestamp on the wire.
    pub timestamp: u32,
    /// The publisher's layer mark (0 without simulcast).
    pub layer: u8,
    /// The publisher's packet counter within its layer.
    pub counter: u32,
    /// A VP8-shaped keyframe.
    pub keyframe: bool,
}

/// What one simulcast layer of a received track delivered.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LayerStats {
    /// Packets received.
    pub packets: u64,
    /// Distinct publisher packets.
    pub distinct: u64,
    /// The lowest and highest payload counters received.
    pub counters: Option<(u32, u32)>,
}

impl LayerStats {
    /// Distinct packets received ÷ packets the publisher sent in the counter range seen.
    pub fn delivery(&self) -> f64 {
        match self.counters {
            Some((lo, hi)) => self.distinct as f64 / (f64::from(hi - lo) + 1.0),
            None => 0.0,
        }
    }
}

impl TrackStats {
    /// Distinct packets received ÷ packets the publisher sent in the counter range seen.
    pub fn delivery(&self) -> f64 {
        match self.counters {
            Some((lo, hi)) => self.distinct as f64 / (f64::from(hi - lo) + 1.0),
            None => 0.0,
        }
    }
}

/// Everything a test peer has seen, for assertions.
#[derive(Debug, Clone, Default)]
pub struct PeerState {
    /// Our id once accepted.
    pub id: Option<PeerId>,
    /// The other peers in the room: id → display name.
    pub peers: BTreeMap<PeerId, String>,
    /// Tracks announced by tracksAdded/peerAccepted: id → (publisher, metadata).
    pub tracks: BTreeMap<TrackId, (PeerId, TrackMetadata)>,
    /// Each `layersWanted` the server sent: our track's local id and the RIDs to send.
    pub layers_wanted: Vec<(TrackId, Vec<String>)>,
    /// Tracks announced then removed.
    pub removed_tracks: Vec<TrackId>,
    /// Media received per track id (attributed through the latest offer's mid → track map,
    /// as a browser client does: a transceiver may carry another publisher's track later).
    pub received: BTreeMap<TrackId, TrackStats>,
    /// Packets that arrived on a mid the latest offer maps to no track.
    pub unmapped_packets: u64,
    /// The latest offer's mid → track id map.
    pub mid_to_track: BTreeMap<String, TrackId>,
    /// The peer connection's state.
    pub connection: Option<RTCPeerConnectionState>,
    /// Offers received.
    pub offers: u32,
    /// Keyframe requests (PLI/FIR) the server sent for our own video.
    pub keyframe_requests: u64,
    /// The same, by simulcast layer (RID) of our camera, when it sends layers.
    pub keyframe_requests_by_rid: BTreeMap<String, u64>,
    /// Error frames received (top-level and media-level).
    pub errors: Vec<String>,
    /// The refusal, if the join was denied.
    pub denied: Option<String>,
    /// The close frame (code, reason) or `Some((0, ..))` if the socket ended without one.
    pub closed: Option<(u16, String)>,
    /// Chat messages: the history from `peerAccepted`, then each `chatMessage`.
    pub chat: Vec<ChatMessage>,
    /// Voice activity reports, in order: (track id, speaking).
    pub voice_activity: Vec<(TrackId, bool)>,
    /// The reconnect token from `peerAccepted`.
    pub reconnect_token: Option<String>,
    /// The latest offer's SDP.
    pub offer_sdp: String,
    /// How many m-lines the latest answered offer had (set when the answer is sent).
    pub answered_m_lines: usize,
    /// Membership events in order: (`joined` | `left` | `updated`, peer id).
    pub peer_events: Vec<(&'static str, PeerId)>,
    /// What the server said of this peer's downlink, in order: (estimate, paused tracks).
    pub downlink: Vec<(Option<u64>, Vec<TrackId>)>,
}

impl PeerState {
    /// How many m-lines the latest offer has.
    pub fn offer_m_lines(&self) -> usize {
        self.offer_sdp
            .lines()
            .filter(|l| l.starts_with("m="))
            .count()
    }

    /// Packets received from `publisher` of `kind` (`audio`/`video`).
    pub fn packets_from(&self, publisher: &str, kind: &str) -> u64 {
        self.received
            .values()
            .filter(|t| t.publisher == publisher && t.kind == kind)
            .map(|t| t.packets)
            .sum()
    }

    /// Corrupt packets received over all tracks.
    pub fn corrupt(&self) -> u64 {
        self.received.values().map(|t| t.corrupt).sum()
    }
}
