//! Screen sharing: `getDisplayMedia` (video only) and the shared track, whose end (our button,
//! or the browser's own "Stop sharing") is reported once.

use js_sys::Promise;
use wasm_bindgen::closure::Closure;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{DisplayMediaStreamConstraints, Event, MediaStream, MediaStreamTrack};

/// Whether this browser can share a screen at all (phones cannot).
pub fn supported() -> bool {
    web_sys::window()
        .and_then(|w| w.navigator().media_devices().ok())
        .and_then(|d| js_sys::Reflect::get(&d, &JsValue::from_str("getDisplayMedia")).ok())
        .is_some_and(|f| f.is_function())
}

/// Asks the browser for a screen, window or tab to share. Call it from the click handler itself
/// (browsers want a user gesture); await the promise with [`captured`].
pub fn request() -> Result<Promise, JsValue> {
    let devices = web_sys::window()
        .ok_or_else(|| JsValue::from_str("no window"))?
        .navigator()
        .media_devices()?;
    let constraints = DisplayMediaStreamConstraints::new();
    constraints.set_video(&JsValue::TRUE);
    constraints.set_audio(&JsValue::FALSE);
    devices.get_display_media_with_constraints(&constraints)
}

/// The stream and its video track, once the person picked what to share.
pub async fn captured(request: Promise) -> Result<(MediaStream, MediaStreamTrack), JsValue> {
    let stream: MediaStream = JsFuture::from(request).await?.dyn_into()?;
    let track = stream
        .get_video_tracks()
        .get(0)
        .dyn_into::<MediaStreamTrack>()
        .map_err(|_| JsValue::from_str("the shared screen has no video"))?;
    Ok((stream, track))
}

/// A screen being shared; dropping it detaches the `ended` handler (it does not stop the track:
/// [`ScreenShare::stop`] does).
pub struct ScreenShare {
    /// The id the endpoint publishes it under.
    pub local_id: String,
    track: MediaStreamTrack,
    stream: MediaStream,
    _on_ended: Closure<dyn FnMut(Event)>,
}

impl ScreenShare {
    /// Watches `track`: `on_ended` runs when the browser ends the share.
    pub fn new(
        local_id: String,
        stream: MediaStream,
        track: MediaStreamTrack,
        on_ended: impl Fn() + 'static,
    ) -> ScreenShare {
        let on_ended = Closure::<dyn FnMut(Event)>::new(move |_: Event| on_ended());
        track.set_onended(Some(on_ended.as_ref().unchecked_ref()));
        ScreenShare {
            local_id,
            track,
            stream,
            _on_ended: on_ended,
        }
    }

    /// The shared stream (for the local preview).
    pub fn stream(&self) -> &MediaStream {
        &self.stream
    }

    /// Stops capturing (`stop()` fires no `ended`, so nothing is reported twice).
    pub fn stop(&self) {
        self.track.set_onended(None);
        self.track.stop();
    }
}

impl Drop for ScreenShare {
    fn drop(&mut self) {
        self.track.set_onended(None);
    }
}
