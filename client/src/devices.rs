//! Cameras and microphones: the choice remembered in local storage, the `<select>`s that list
//! them (landing page and room), and the landing page's camera preview.

use std::cell::RefCell;
use std::rc::Rc;

use js_sys::{Object, Reflect};
use wasm_bindgen::closure::Closure;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{
    Event, HtmlMediaElement, HtmlOptionElement, HtmlSelectElement, MediaDeviceInfo,
    MediaDeviceKind, MediaStream, MediaStreamConstraints, MediaStreamTrack,
};

use crate::consts::{MediaConstraints, CAMERA_STORAGE_KEY, MICROPHONE_STORAGE_KEY};
use crate::log;
use crate::media;

/// A kind of capture device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceKind {
    /// A camera (`videoinput`).
    Camera,
    /// A microphone (`audioinput`).
    Microphone,
}

impl DeviceKind {
    fn storage_key(self) -> &'static str {
        match self {
            DeviceKind::Camera => CAMERA_STORAGE_KEY,
            DeviceKind::Microphone => MICROPHONE_STORAGE_KEY,
        }
    }

    fn media_kind(self) -> MediaDeviceKind {
        match self {
            DeviceKind::Camera => MediaDeviceKind::Videoinput,
            DeviceKind::Microphone => MediaDeviceKind::Audioinput,
        }
    }

    /// The track kind: `video` or `audio`.
    pub fn track_kind(self) -> &'static str {
        match self {
            DeviceKind::Camera => "video",
            DeviceKind::Microphone => "audio",
        }
    }
}

/// The device chosen last in this browser, if any.
pub fn remembered(kind: DeviceKind) -> Option<String> {
    let storage = web_sys::window()?.local_storage().ok()??;
    storage
        .get_item(kind.storage_key())
        .ok()?
        .filter(|id| !id.is_empty())
}

/// Remembers the device chosen (storage may be off: remembering is a convenience only).
pub fn remember(kind: DeviceKind, device_id: &str) {
    if let Some(Ok(Some(storage))) = web_sys::window().map(|w| w.local_storage()) {
        let _ = storage.set_item(kind.storage_key(), device_id);
    }
}

/// `getUserMedia` constraints with these devices required exactly (`None`: any).
pub fn constraints(
    base: &MediaConstraints,
    camera: Option<&str>,
    microphone: Option<&str>,
) -> MediaStreamConstraints {
    let js = media::to_js(base);
    let exact = |id: &str| {
        let device = Object::new();
        let exact = Object::new();
        let _ = Reflect::set(&exact, &"exact".into(), &id.into());
        let _ = Reflect::set(&device, &"deviceId".into(), &exact);
        device
    };
    if let (Some(id), true) = (microphone, base.audio) {
        js.set_audio(&exact(id));
    }
    if let Some(id) = camera {
        let video = js.get_video();
        if video.is_object() {
            let exact_id = exact(id);
            let _ = Reflect::set(
                &video,
                &"deviceId".into(),
                &Reflect::get(&exact_id, &"deviceId".into()).unwrap_or_default(),
            );
        }
    }
    js
}

/// Gets the camera and microphone, the remembered ones if they are still there (else the
/// browser's default).
pub async fn get_preferred(base: &MediaConstraints) -> Result<MediaStream, JsValue> {
    let camera = remembered(DeviceKind::Camera).filter(|_| base.video.is_some());
    let microphone = remembered(DeviceKind::Microphone).filter(|_| base.audio);
    if camera.is_some() || microphone.is_some() {
        let wanted = constraints(base, camera.as_deref(), microphone.as_deref());
        match media::user_media(&wanted).await {
            Ok(stream) => return Ok(stream),
            // Gone (unplugged, another browser profile): the default will do.
            Err(e) if is_missing_device(&e) => log::warn(&format!(
                "remembered device unavailable: {}",
                log::describe(&e)
            )),
            Err(e) => return Err(e),
        }
    }
    media::user_media(&media::to_js(base)).await
}

fn is_missing_device(e: &JsValue) -> bool {
    let name = e
        .dyn_ref::<web_sys::DomException>()
        .map(|d| d.name())
        .or_else(|| {
            Reflect::get(e, &"name".into())
                .ok()
                .and_then(|n| n.as_string())
        });
    matches!(
        name.as_deref(),
        Some("OverconstrainedError" | "NotFoundError" | "NotReadableError")
    )
}

/// The devices of a kind: (id, label). Labels are empty until a permission was granted.
pub async fn list(kind: DeviceKind) -> Vec<(String, String)> {
    let Some(devices) = web_sys::window().and_then(|w| w.navigator().media_devices().ok()) else {
        return Vec::new();
    };
    let Ok(promise) = devices.enumerate_devices() else {
        return Vec::new();
    };
    let Ok(all) = JsFuture::from(promise).await else {
        return Vec::new();
    };
    let all: js_sys::Array = all.unchecked_into();
    let mut out = Vec::new();
    for d in all.iter() {
        let Ok(d) = d.dyn_into::<MediaDeviceInfo>() else {
            continue;
        };
        if d.kind() == kind.media_kind() && !d.device_id().is_empty() {
            let n = out.len() + 1;
            let label = d.label();
            let label = if label.is_empty() {
                match kind {
                    DeviceKind::Camera => format!("Camera {n}"),
                    DeviceKind::Microphone => format!("Microphone {n}"),
                }
            } else {
                label
            };
            out.push((d.device_id(), label));
        }
    }
    out
}

/// The device a live track captures from.
pub fn device_of(track: &MediaStreamTrack) -> Option<String> {
    let settings = track.get_settings();
    Reflect::get(&settings, &"deviceId".into())
        .ok()?
        .as_string()
}

/// Fills a `<select>` with devices (labels as text), `selected` chosen.
pub fn fill(select: &HtmlSelectElement, devices: &[(String, String)], selected: Option<&str>) {
    select.set_text_content(None);
    let Some(doc) = select.owner_document() else {
        return;
    };
    for (id, label) in devices {
        let Ok(option) = doc
            .create_element("option")
            .and_then(|o| o.dyn_into::<HtmlOptionElement>().map_err(Into::into))
        else {
            continue;
        };
        option.set_value(id);
        option.set_text_content(Some(label));
        option.set_selected(selected == Some(id.as_str()));
        let _ = select.append_child(&option);
    }
}

/// A `<select>` and its `change` handler (owned: dropping detaches it).
pub struct DeviceSelect {
    select: HtmlSelectElement,
    _on_change: Closure<dyn FnMut(Event)>,
}

impl DeviceSelect {
    /// Calls `on_change` with the chosen device id whenever the choice changes.
    pub fn attach(select: HtmlSelectElement, on_change: impl Fn(String) + 'static) -> DeviceSelect {
        let s = select.clone();
        let on_change = Closure::<dyn FnMut(Event)>::new(move |_: Event| on_change(s.value()));
        select.set_onchange(Some(on_change.as_ref().unchecked_ref()));
        DeviceSelect {
            select,
            _on_change: on_change,
        }
    }

    /// The select element.
    pub fn select(&self) -> &HtmlSelectElement {
        &self.select
    }
}

impl Drop for DeviceSelect {
    fn drop(&mut self) {
        self.select.set_onchange(None);
    }
}

/// The landing page's camera preview and device choice. Failing to get a preview only hides
/// it: the room asks again (and shows the standard error if that fails too).
pub struct Preview {
    inner: Rc<PreviewInner>,
    _selects: Vec<DeviceSelect>,
}

struct PreviewInner {
    /// Set when the preview is given up: a camera granted later is let go at once.
    ended: std::cell::Cell<bool>,
    video: HtmlMediaElement,
    stream: RefCell<Option<MediaStream>>,
    camera: HtmlSelectElement,
    microphone: HtmlSelectElement,
}

impl Preview {
    /// Starts the preview in `video` and fills the selects once permission is granted.
    pub fn start(
        video: HtmlMediaElement,
        camera: HtmlSelectElement,
        microphone: HtmlSelectElement,
        base: MediaConstraints,
    ) -> Preview {
        let inner = Rc::new(PreviewInner {
            ended: std::cell::Cell::new(false),
            video,
            stream: RefCell::default(),
            camera: camera.clone(),
            microphone: microphone.clone(),
        });
        let selects = [
            (camera, DeviceKind::Camera),
            (microphone, DeviceKind::Microphone),
        ]
        .into_iter()
        .map(|(select, kind)| {
            let weak = Rc::downgrade(&inner);
            DeviceSelect::attach(select, move |id| {
                remember(kind, &id);
                if let Some(inner) = weak.upgrade() {
                    wasm_bindgen_futures::spawn_local(async move {
                        inner.restart(base).await;
                    });
                }
            })
        })
        .collect();
        let first = inner.clone();
        wasm_bindgen_futures::spawn_local(async move {
            first.restart(base).await;
        });
        Preview {
            inner,
            _selects: selects,
        }
    }

    /// Stops the camera and microphone of the preview, for good.
    pub fn stop(&self) {
        self.inner.ended.set(true);
        self.inner.stop();
    }
}

impl Drop for Preview {
    fn drop(&mut self) {
        self.stop();
    }
}

impl PreviewInner {
    fn stop(&self) {
        if let Some(stream) = self.stream.borrow_mut().take() {
            media::stop_tracks(&stream);
        }
        self.video.set_src_object(None);
    }

    async fn restart(&self, base: MediaConstraints) {
        self.stop();
        match get_preferred(&base).await {
            Ok(stream) => {
                // The page may have moved on (navigation) meanwhile; then nobody watches.
                if self.ended.get() || !self.video.is_connected() {
                    media::stop_tracks(&stream);
                    return;
                }
                self.video.set_src_object(Some(&stream));
                let track = |kind: &str| {
                    media::tracks(&stream)
                        .into_iter()
                        .find(|t| t.kind() == kind)
                        .and_then(|t| device_of(&t))
                };
                let (cam, mic) = (track("video"), track("audio"));
                *self.stream.borrow_mut() = Some(stream);
                fill(
                    &self.camera,
                    &list(DeviceKind::Camera).await,
                    cam.as_deref(),
                );
                fill(
                    &self.microphone,
                    &list(DeviceKind::Microphone).await,
                    mic.as_deref(),
                );
            }
            Err(e) => {
                log::warn_failed("no camera preview", &e);
                self.video.set_hidden(true);
            }
        }
    }
}
