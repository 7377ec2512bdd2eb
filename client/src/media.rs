//! Local media primitives: `getUserMedia`, constraints as JS, a stream's tracks.

use js_sys::{Object, Reflect};
use protocol::{TrackMetadata, TrackSource};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{MediaStream, MediaStreamConstraints, MediaStreamTrack};

use crate::consts::MediaConstraints;

/// The constraints as a `MediaStreamConstraints` dictionary.
pub fn to_js(constraints: &MediaConstraints) -> MediaStreamConstraints {
    let js = MediaStreamConstraints::new();
    js.set_audio_bool(constraints.audio);
    match constraints.video {
        None => js.set_video_bool(false),
        Some(v) => {
            let video = Object::new();
            // Bare numbers are "ideal" values, as in the tutorial; Reflect::set on a fresh
            // plain object cannot fail.
            let _ = Reflect::set(&video, &"width".into(), &v.width.into());
            let _ = Reflect::set(&video, &"height".into(), &v.height.into());
            let _ = Reflect::set(&video, &"frameRate".into(), &v.frame_rate.into());
            if let Some(id) = v.device_id {
                let exact = Object::new();
                let _ = Reflect::set(&exact, &"exact".into(), &id.into());
                let _ = Reflect::set(&video, &"deviceId".into(), &exact);
            }
            js.set_video(&video);
        }
    }
    js
}

/// The stream's tracks.
pub fn tracks(stream: &MediaStream) -> Vec<MediaStreamTrack> {
    stream
        .get_tracks()
        .iter()
        .filter_map(|t| t.dyn_into::<MediaStreamTrack>().ok())
        .collect()
}

/// Stops every track of the stream (the camera light goes off).
pub fn stop_tracks(stream: &MediaStream) {
    for track in tracks(stream) {
        track.stop();
    }
}

/// The metadata announced for a local track: its source by kind, not muted.
pub fn metadata_for(track: &MediaStreamTrack) -> TrackMetadata {
    let source = if track.kind() == "audio" {
        TrackSource::Microphone
    } else {
        TrackSource::Camera
    };
    TrackMetadata {
        source,
        muted: false,
    }
}

/// `getUserMedia` with these constraints.
pub async fn user_media(constraints: &MediaStreamConstraints) -> Result<MediaStream, JsValue> {
    let devices = web_sys::window()
        .ok_or_else(|| JsValue::from_str("no window"))?
        .navigator()
        .media_devices()?;
    JsFuture::from(devices.get_user_media_with_constraints(constraints)?)
        .await?
        .dyn_into()
}
