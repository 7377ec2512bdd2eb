//! Videoroom's browser client: the Membrane videoroom tutorial's `Room` in Rust, compiled to wasm.
//!
//! Codemap:
//! - [`app`] routes on `location.pathname`: the landing form (`/`) or the room page (`/room/<name>`);
//! - [`landing`] is the join form; [`form`] its validation (pure);
//! - [`room`] is the tutorial's `Room`: socket, channel join, local media, UI callbacks, leave;
//! - [`endpoint`] is the tutorial's `MembraneWebRTC`: the `RTCPeerConnection`, answering the
//!   server's offers, ICE both ways, and the media-event callbacks; [`negotiation`] its pure
//!   bookkeeping (which mid carries what);
//! - [`access`] keeps a shared link's join token for its room;
//! - [`socket`] owns the WebSocket and its handlers; [`media`] gets the camera and microphone;
//! - [`room_ui`] holds the DOM helpers; [`consts`] the tutorial's constants; [`routing`] parses URLs;
//! - [`controls`] the control bar and shortcuts; [`chat`] the chat panel; [`screen`] screen
//!   sharing; [`stats`] connection-quality arithmetic (pure), [`monitor`] samples it;
//!   [`devices`] lists, remembers and switches cameras and microphones; [`reconnect`] when to
//!   retry a lost socket; [`tile_sizes`] (pure) and `tile_observer` tell the server how big
//!   each remote video is shown; [`layer_encodings`] (pure) how our camera's simulcast layers
//!   are sized.
//!
//! Only the pure modules build on the host; everything touching the browser is wasm-only.

pub mod consts;
pub mod form;
pub mod layer_encodings;
pub mod negotiation;
pub mod reconnect;
pub mod routing;
pub mod small_map;
pub mod stats;
pub mod tile_sizes;

#[cfg(target_arch = "wasm32")]
pub mod access;
#[cfg(target_arch = "wasm32")]
pub mod app;
#[cfg(target_arch = "wasm32")]
pub mod chat;
#[cfg(target_arch = "wasm32")]
pub mod controls;
#[cfg(target_arch = "wasm32")]
pub mod devices;
#[cfg(target_arch = "wasm32")]
pub mod endpoint;
#[cfg(target_arch = "wasm32")]
pub mod landing;
#[cfg(target_arch = "wasm32")]
pub mod log;
#[cfg(target_arch = "wasm32")]
pub mod media;
#[cfg(target_arch = "wasm32")]
pub mod media_source;
#[cfg(target_arch = "wasm32")]
pub mod monitor;
#[cfg(target_arch = "wasm32")]
pub mod room;
#[cfg(target_arch = "wasm32")]
pub mod room_ui;
#[cfg(target_arch = "wasm32")]
pub mod screen;
#[cfg(target_arch = "wasm32")]
pub mod socket;
#[cfg(target_arch = "wasm32")]
pub mod tile_observer;
#[cfg(target_arch = "wasm32")]
pub mod timeout;

#[cfg(target_arch = "wasm32")]
pub use endpoint::{EndpointCallbacks, TrackContext, WebRtcEndpoint};
#[cfg(target_arch = "wasm32")]
pub use room::{Room, RoomError, RoomOptions};

/// Entry point of the page: `main` in the tutorial's `index.ts` (route, then `Room::new()` and
/// `join()` on a room page).
#[cfg(target_arch = "wasm32")]
#[wasm_bindgen::prelude::wasm_bindgen(start)]
pub fn start() {
    app::start();
}
