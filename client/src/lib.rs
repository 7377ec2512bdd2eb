//! Videoroom's browser client (filled in by the client issue).

use wasm_bindgen::prelude::*;

/// Entry point: runs when the wasm module loads.
#[wasm_bindgen(start)]
pub fn start() {}
