//! Tells the server how big the page shows each remote video (`setTileSizes`), so that it
//! sends no bigger a simulcast layer than a tile needs and nothing to a tile nobody sees.
//!
//! Three things can change what a tile shows, and each only schedules a look: a
//! `ResizeObserver` (the grid's layout — someone joins or leaves, a screen tile, the window
//! resized), an `IntersectionObserver` (a tile scrolled out of view) and the document's
//! visibility (another tab in front). The look comes [`DEBOUNCE_MS`] after the last of them
//! (a window dragged to a new size is one message, not fifty), measures every watched video
//! and sends the sizes that changed ([`crate::tile_sizes`]); coming back to the tab looks at
//! once, so the pictures resume without waiting.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::{Rc, Weak};

use protocol::{TileSize, TrackId};
use wasm_bindgen::closure::Closure;
use wasm_bindgen::JsCast;
use web_sys::{
    Document, Element, IntersectionObserver, IntersectionObserverEntry, ResizeObserver,
    VisibilityState,
};

use crate::room_ui::RoomUi;
use crate::tile_sizes::{changes, device_size};
use crate::timeout::Timeout;

/// How long the layout must stay still before the sizes are measured and sent.
pub const DEBOUNCE_MS: i32 = 250;

/// Sends one `setTileSizes`; false when it could not go (not joined, socket down).
type Send = Box<dyn Fn(BTreeMap<TrackId, TileSize>) -> bool>;

/// Watches the remote videos' tiles while it lives; dropping it disconnects its observers.
pub struct TileObserver {
    inner: Rc<Inner>,
}

/// One remote video being watched.
struct Watched {
    track_id: TrackId,
    /// The tile showing it (`room_ui` id: a peer id, or a screen tile's).
    tile: String,
    /// The element observed for it (tiles can be rebuilt: looked up again at each look).
    element: Option<Element>,
}

struct Inner {
    ui: RoomUi,
    document: Document,
    send: Send,
    watched: RefCell<Vec<Watched>>,
    /// Observed elements the intersection observer last reported out of view.
    off_screen: RefCell<Vec<Element>>,
    /// What the server was last told, by track.
    told: RefCell<BTreeMap<TrackId, TileSize>>,
    pending: RefCell<Option<Timeout>>,
    /// The two observers (`None` in a browser without them: then nothing is sent).
    observers: Option<(ResizeObserver, IntersectionObserver)>,
    _on_resize: Closure<dyn FnMut()>,
    _on_intersection: Closure<dyn FnMut(js_sys::Array)>,
    on_visibility: Closure<dyn FnMut()>,
}

impl TileObserver {
    /// Starts watching `ui`'s tiles; `send` delivers each message.
    pub fn start(
        ui: &RoomUi,
        send: impl Fn(BTreeMap<TrackId, TileSize>) -> bool + 'static,
    ) -> Option<TileObserver> {
        let document = web_sys::window()?.document()?;
        let inner = Rc::new_cyclic(|weak: &Weak<Inner>| {
            let w = weak.clone();
            let on_resize = Closure::<dyn FnMut()>::new(move || {
                if let Some(inner) = w.upgrade() {
                    inner.schedule();
                }
            });
            let w = weak.clone();
            let on_intersection =
                Closure::<dyn FnMut(js_sys::Array)>::new(move |entries: js_sys::Array| {
                    if let Some(inner) = w.upgrade() {
                        inner.on_intersection(&entries);
                    }
                });
            let w = weak.clone();
            let on_visibility = Closure::<dyn FnMut()>::new(move || {
                if let Some(inner) = w.upgrade() {
                    if inner.document.visibility_state() == VisibilityState::Visible {
                        inner.look();
                    } else {
                        inner.schedule();
                    }
                }
            });
            let resize = ResizeObserver::new(on_resize.as_ref().unchecked_ref()).ok();
            let intersection =
                IntersectionObserver::new(on_intersection.as_ref().unchecked_ref()).ok();
            Inner {
                ui: ui.clone(),
                document: document.clone(),
                send: Box::new(send),
                watched: RefCell::default(),
                off_screen: RefCell::default(),
                told: RefCell::default(),
                pending: RefCell::default(),
                observers: resize.zip(intersection),
                _on_resize: on_resize,
                _on_intersection: on_intersection,
                on_visibility,
            }
        });
        if inner.observers.is_none() {
            crate::log::warn("no ResizeObserver/IntersectionObserver: tile sizes are not sent");
            return None;
        }
        let _ = document.add_event_listener_with_callback(
            "visibilitychange",
            inner.on_visibility.as_ref().unchecked_ref(),
        );
        Some(TileObserver { inner })
    }

    /// Watches the video `track_id` shown in tile `tile` (again, if it moved).
    pub fn watch(&self, track_id: &str, tile: &str) {
        let mut watched = self.inner.watched.borrow_mut();
        match watched.iter_mut().find(|w| w.track_id == track_id) {
            Some(w) => w.tile = tile.to_owned(),
            None => watched.push(Watched {
                track_id: track_id.to_owned(),
                tile: tile.to_owned(),
                element: None,
            }),
        }
        drop(watched);
        self.inner.schedule();
    }

    /// Stops watching a video (its track is gone).
    pub fn unwatch(&self, track_id: &str) {
        let gone: Vec<Watched> = {
            let mut watched = self.inner.watched.borrow_mut();
            let (gone, kept) = std::mem::take(&mut *watched)
                .into_iter()
                .partition(|w| w.track_id == track_id);
            *watched = kept;
            gone
        };
        for w in gone {
            if let Some(element) = &w.element {
                self.inner.stop_observing(element);
            }
            self.inner.told.borrow_mut().remove(&w.track_id);
        }
    }

    /// A new session at the server (after a reconnect): watches only the tracks `still` says
    /// exist, and tells it every size again.
    pub fn tell_again(&self, still: impl Fn(&str) -> bool) {
        let gone: Vec<TrackId> = self
            .inner
            .watched
            .borrow()
            .iter()
            .filter(|w| !still(&w.track_id))
            .map(|w| w.track_id.clone())
            .collect();
        for track_id in gone {
            self.unwatch(&track_id);
        }
        self.inner.told.borrow_mut().clear();
        self.inner.schedule();
    }

    /// What the server was last told, by track (diagnostics and tests).
    pub fn told(&self) -> BTreeMap<TrackId, TileSize> {
        self.inner.told.borrow().clone()
    }
}

impl Inner {
    /// A look after [`DEBOUNCE_MS`] without another change.
    fn schedule(self: &Rc<Self>) {
        let weak = Rc::downgrade(self);
        // Replacing the timer cancels the one before: the look waits for the layout to settle.
        *self.pending.borrow_mut() = Timeout::new(DEBOUNCE_MS, move || {
            if let Some(inner) = weak.upgrade() {
                inner.look();
            }
        });
    }

    fn on_intersection(self: &Rc<Self>, entries: &js_sys::Array) {
        let mut off = self.off_screen.borrow_mut();
        for entry in entries.iter() {
            let Ok(entry) = entry.dyn_into::<IntersectionObserverEntry>() else {
                continue;
            };
            let target = entry.target();
            off.retain(|e| !js_sys::Object::is(e, &target));
            if !entry.is_intersecting() {
                off.push(target);
            }
        }
        drop(off);
        self.schedule();
    }

    /// Measures every watched video and sends the sizes that changed.
    fn look(self: &Rc<Self>) {
        self.pending.borrow_mut().take();
        let ratio = web_sys::window().map_or(1.0, |w| w.device_pixel_ratio());
        let visible = self.document.visibility_state() == VisibilityState::Visible;
        let mut now = BTreeMap::new();
        let mut watched = self.watched.borrow_mut();
        for w in watched.iter_mut() {
            let element: Option<Element> = self.ui.video_element(&w.tile).map(Into::into);
            let same = match (&element, &w.element) {
                (Some(a), Some(b)) => js_sys::Object::is(a, b),
                (None, None) => true,
                _ => false,
            };
            if !same {
                if let Some(old) = w.element.take() {
                    self.stop_observing(&old);
                }
                if let (Some(new), Some((resize, intersection))) = (&element, &self.observers) {
                    resize.observe(new);
                    intersection.observe(new);
                }
                w.element = element.clone();
            }
            let size = match &element {
                Some(e) => {
                    let rect = e.get_bounding_client_rect();
                    let in_view = !self
                        .off_screen
                        .borrow()
                        .iter()
                        .any(|o| js_sys::Object::is(o, e));
                    device_size(rect.width(), rect.height(), ratio, visible && in_view)
                }
                None => TileSize::default(),
            };
            now.insert(w.track_id.clone(), size);
        }
        drop(watched);
        let changed = changes(&self.told.borrow(), &now);
        if changed.is_empty() || !(self.send)(changed.clone()) {
            return;
        }
        self.told.borrow_mut().extend(changed);
    }

    fn stop_observing(&self, element: &Element) {
        if let Some((resize, intersection)) = &self.observers {
            resize.unobserve(element);
            intersection.unobserve(element);
        }
        self.off_screen
            .borrow_mut()
            .retain(|e| !js_sys::Object::is(e, element));
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some((resize, intersection)) = &self.observers {
            resize.disconnect();
            intersection.disconnect();
        }
        let _ = self.document.remove_event_listener_with_callback(
            "visibilitychange",
            self.on_visibility.as_ref().unchecked_ref(),
        );
    }
}
