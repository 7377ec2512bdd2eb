//! Sharing our screen: the picker (asked for inside the click), publishing the track, the
//! local screen tile, and stopping (our button or the browser's own).

use std::rc::Rc;

use web_sys::MediaStream;

use super::RoomInner;
use crate::consts::LOCAL_PEER_ID;
use crate::log;
use crate::media;
use crate::room_ui::screen_id;
use crate::screen::{self, ScreenShare};

impl RoomInner {
    pub(super) fn toggle_screen(self: &Rc<Self>) {
        if self.screen.borrow().is_some() {
            self.stop_screen();
            return;
        }
        if self.screen_pending.get() || self.left.get() {
            return;
        }
        // Asked for right here, in the click's handler: browsers want the gesture.
        let request = match screen::request() {
            Ok(p) => p,
            Err(e) => {
                log::warn_failed("cannot share the screen", &e);
                return;
            }
        };
        self.screen_pending.set(true);
        let weak = Rc::downgrade(self);
        wasm_bindgen_futures::spawn_local(async move {
            let result = screen::captured(request).await;
            let Some(room) = weak.upgrade() else {
                if let Ok((stream, _)) = result {
                    media::stop_tracks(&stream);
                }
                return;
            };
            room.screen_pending.set(false);
            match result {
                Ok((stream, track)) if !room.left.get() => room.publish_screen(stream, track),
                Ok((stream, _)) => media::stop_tracks(&stream),
                // Cancelling the picker is a NotAllowedError too: nothing to show.
                Err(e) => log::warn_failed("no screen to share", &e),
            }
        });
    }

    pub(super) fn publish_screen(
        self: &Rc<Self>,
        stream: MediaStream,
        track: web_sys::MediaStreamTrack,
    ) {
        if self.screen.borrow().is_some() || self.left.get() {
            media::stop_tracks(&stream);
            return;
        }
        let local_id = self.endpoint.add_screen_track(&track, &stream);
        let weak = Rc::downgrade(self);
        let share = ScreenShare::new(local_id, stream, track, move || {
            // The browser's own "Stop sharing": from a fresh task, the handler is dropped.
            let weak = weak.clone();
            wasm_bindgen_futures::spawn_local(async move {
                if let Some(room) = weak.upgrade() {
                    room.stop_screen();
                }
            });
        });
        self.ui.add_local_screen_tile();
        self.ui
            .attach_stream(share.stream(), &screen_id(LOCAL_PEER_ID));
        *self.screen.borrow_mut() = Some(share);
        self.ui.set_pressed("toggle-screen", true);
    }

    pub(super) fn stop_screen(&self) {
        let Some(share) = self.screen.borrow_mut().take() else {
            return;
        };
        share.stop();
        self.endpoint.remove_track(&share.local_id);
        self.ui.remove_screen_tile(LOCAL_PEER_ID);
        self.ui.set_pressed("toggle-screen", false);
    }
}
