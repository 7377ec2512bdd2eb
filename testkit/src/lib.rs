//! Headless WebRTC peers that speak Videoroom's protocol over a real WebSocket, with real ICE,
//! DTLS and SRTP: they publish synthetic audio and video RTP whose payloads can be checked
//! byte for byte, and count what they receive per track. The server's integration tests use
//! them; they are also the seed of the load generator.
//!
//! Modules only import downwards (`peer::added_tracks` is a child of `peer`, for its private
//! fields; `peer` imports nothing from it):
//!
//! ```text
//! peer ─┬─ signaling ─┬─ answer
//!       │             └─ state
//!       ├─ receive ───── state, audio_level, payload, media_source
//!       ├─ media_source ─ audio_level, payload
//!       └─ api ───────── audio_level, impair
//! ```
//!
//! Everything public is re-exported here, so callers name `testkit::Foo` wherever it lives.

mod answer;
mod api;
mod audio_level;
mod impair;
mod media_source;
mod payload;
mod peer;
mod receive;
mod signaling;
mod state;

pub use answer::{decline_simulcast, strip_sdp_lines};
pub use api::{api, api_over};
pub use audio_level::AUDIO_LEVEL_URI;
pub use impair::{ImpairedConn, Impairment, LinkCounters};
pub use payload::{check_payload, make_payload, make_vp8_payload, read_payload, Payload};
pub use peer::{PeerOptions, TestPeer, SIMULCAST_LAYERS};
pub use signaling::{candidate_message, JoinError};
pub use state::{LayerStats, PeerState, Received, TrackStats};
