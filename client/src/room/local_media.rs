//! Our camera and microphone in the room: muting (track, server, button, tile) and switching
//! to another device without rejoining.

use std::rc::Rc;

use protocol::TrackSource;
use wasm_bindgen::JsCast;

use super::RoomInner;
use crate::consts::LOCAL_PEER_ID;
use crate::devices::{self, DeviceKind, DeviceSelect};
use crate::log;
use crate::media;
use crate::room_ui::TileFlag;

impl RoomInner {
    /// Mutes or unmutes our microphone or camera: the track is disabled (silence, black
    /// frames), the others are told, the button and our tile show it.
    pub(super) fn set_muted(&self, source: TrackSource, muted: bool) {
        let (cell, kind, button, flag) = match source {
            TrackSource::Microphone => (&self.mic_muted, "audio", "toggle-mic", TileFlag::MicMuted),
            TrackSource::Camera => (
                &self.camera_muted,
                "video",
                "toggle-camera",
                TileFlag::CameraMuted,
            ),
            TrackSource::Screen => return,
        };
        if self.left.get() {
            return;
        }
        cell.set(muted);
        if let Some(stream) = self.local_stream.borrow().as_ref() {
            for track in media::tracks(stream).iter().filter(|t| t.kind() == kind) {
                track.set_enabled(!muted);
            }
        }
        if let Some(id) = self.endpoint.local_track_id(source) {
            self.endpoint.set_track_muted(&id, muted);
        }
        self.ui.set_pressed(button, muted);
        self.ui.set_tile_flag(LOCAL_PEER_ID, flag, muted);
        if muted && source == TrackSource::Microphone {
            self.ui
                .set_tile_flag(LOCAL_PEER_ID, TileFlag::Speaking, false);
        }
    }

    /// Fills `#room-camera-select` / `#room-microphone-select` and switches on a change.
    pub(super) fn setup_device_selects(self: &Rc<Self>) {
        let mut selects = Vec::new();
        for (id, kind) in [
            ("room-camera-select", DeviceKind::Camera),
            ("room-microphone-select", DeviceKind::Microphone),
        ] {
            let Some(select) = self
                .ui
                .element(id)
                .and_then(|e| e.dyn_into::<web_sys::HtmlSelectElement>().ok())
            else {
                continue;
            };
            let weak = Rc::downgrade(self);
            selects.push(DeviceSelect::attach(select.clone(), move |device| {
                if let Some(room) = weak.upgrade() {
                    wasm_bindgen_futures::spawn_local(async move {
                        room.switch_device(kind, device).await;
                    });
                }
            }));
            let current = self
                .local_track(kind.track_kind())
                .and_then(|t| devices::device_of(&t));
            wasm_bindgen_futures::spawn_local(async move {
                devices::fill(&select, &devices::list(kind).await, current.as_deref());
            });
        }
        *self.device_selects.borrow_mut() = selects;
    }

    pub(super) fn local_track(&self, kind: &str) -> Option<web_sys::MediaStreamTrack> {
        let stream = self.local_stream.borrow();
        media::tracks(stream.as_ref()?)
            .into_iter()
            .find(|t| t.kind() == kind)
    }

    /// Switches to another camera or microphone without rejoining: a new track from it goes
    /// on the same sender and into the local tile; the old one stops; mute state stays.
    pub(super) async fn switch_device(self: Rc<Self>, kind: DeviceKind, device_id: String) {
        devices::remember(kind, &device_id);
        let (base, camera, microphone) = match kind {
            DeviceKind::Camera => (
                crate::consts::MediaConstraints {
                    audio: false,
                    ..crate::consts::MEDIA_CONSTRAINTS
                },
                Some(device_id.as_str()),
                None,
            ),
            DeviceKind::Microphone => (
                crate::consts::MediaConstraints {
                    audio: true,
                    video: None,
                },
                None,
                Some(device_id.as_str()),
            ),
        };
        let wanted = devices::constraints(&base, camera, microphone);
        let stream = match media::user_media(&wanted).await {
            Ok(s) => s,
            Err(e) => {
                log::warn_failed("cannot switch device", &e);
                return;
            }
        };
        let Some(track) = media::tracks(&stream)
            .into_iter()
            .find(|t| t.kind() == kind.track_kind())
        else {
            return;
        };
        if self.left.get() {
            track.stop();
            return;
        }
        let (source, muted) = match kind {
            DeviceKind::Camera => (TrackSource::Camera, self.camera_muted.get()),
            DeviceKind::Microphone => (TrackSource::Microphone, self.mic_muted.get()),
        };
        track.set_enabled(!muted);
        let Some(local) = self.local_stream.borrow().clone() else {
            track.stop();
            return;
        };
        let old = self.local_track(kind.track_kind());
        if let Some(id) = self.endpoint.local_track_id(source) {
            if let Err(e) = self.endpoint.replace_track(&id, &track, &local).await {
                log::warn(&format!(
                    "cannot send the new device: {}",
                    log::describe(&e)
                ));
            }
        }
        if let Some(old) = old {
            local.remove_track(&old);
            old.stop();
        }
        local.add_track(&track);
        // Some browsers keep showing the ended track until the element is given the stream anew.
        if let Some(video) = self.ui.video_element(LOCAL_PEER_ID) {
            video.set_src_object(None);
        }
        self.ui.attach_stream(&local, LOCAL_PEER_ID);
    }
}
