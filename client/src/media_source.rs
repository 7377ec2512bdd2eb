//! Where the local media comes from: the default constraints, the remembered devices, or a
//! caller's own capture function.

use js_sys::Promise;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::MediaStream;

use crate::consts::{MediaConstraints, MEDIA_CONSTRAINTS};
use crate::{devices, media};

/// Where the local media comes from.
pub enum MediaSource {
    /// `navigator.mediaDevices.getUserMedia` with these constraints.
    UserMedia(MediaConstraints),
    /// Any function returning a `Promise<MediaStream>` (another capture API, or a test's
    /// injected failure).
    Custom(Box<dyn Fn() -> Promise>),
    /// `getUserMedia` with these constraints and the camera and microphone chosen last, if
    /// they are still there (the room page's).
    Preferred(MediaConstraints),
}

impl Default for MediaSource {
    fn default() -> Self {
        MediaSource::UserMedia(MEDIA_CONSTRAINTS)
    }
}

impl MediaSource {
    /// Asks for the stream; the error is whatever the browser rejected with.
    pub async fn get(&self) -> Result<MediaStream, JsValue> {
        match self {
            MediaSource::UserMedia(constraints) => {
                media::user_media(&media::to_js(constraints)).await
            }
            MediaSource::Custom(get) => JsFuture::from(get()).await?.dyn_into::<MediaStream>(),
            MediaSource::Preferred(constraints) => devices::get_preferred(constraints).await,
        }
    }
}
