//! Closing the tab is leaving: a `pagehide` listener for the room's lifetime.

use wasm_bindgen::closure::Closure;
use wasm_bindgen::JsCast;

/// A `pagehide` listener on the window, removed on drop.
pub(super) struct PageHide {
    window: web_sys::Window,
    handler: Closure<dyn FnMut(web_sys::Event)>,
}

impl PageHide {
    pub(super) fn attach(on_hide: impl Fn() + 'static) -> Option<PageHide> {
        let window = web_sys::window()?;
        let handler = Closure::<dyn FnMut(web_sys::Event)>::new(move |_: web_sys::Event| on_hide());
        window
            .add_event_listener_with_callback("pagehide", handler.as_ref().unchecked_ref())
            .ok()?;
        Some(PageHide { window, handler })
    }
}

impl Drop for PageHide {
    fn drop(&mut self) {
        let _ = self
            .window
            .remove_event_listener_with_callback("pagehide", self.handler.as_ref().unchecked_ref());
    }
}
