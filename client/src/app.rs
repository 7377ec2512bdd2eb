//! The page: routes on `location.pathname` to the landing form or the room, and keeps the
//! page's one object alive for the page's lifetime.

use std::cell::RefCell;

use web_sys::Element;

use crate::consts::DISPLAY_NAME_PARAM;
use crate::landing::{remembered_display_name, LandingPage, Prefill};
use crate::log;
use crate::room::Room;
use crate::room_ui::RoomUi;
use crate::routing::{room_from_path, route, Route};

/// What the page shows; it owns the handlers attached to the page.
enum Page {
    Landing(#[allow(dead_code)] LandingPage),
    Room(#[allow(dead_code)] Room),
}

thread_local! {
    static PAGE: RefCell<Option<Page>> = const { RefCell::new(None) };
}

/// Shows the page for the current location (the tutorial's `index.ts`).
pub fn start() {
    let Some(window) = web_sys::window() else {
        return;
    };
    let Some(document) = window.document() else {
        return;
    };
    // The page's one mount point; a page without it (a test page, an embedding) is left alone.
    let Some(root) = document.get_element_by_id("app") else {
        return;
    };
    let location = window.location();
    let pathname = location.pathname().unwrap_or_default();
    // A shared link's join token moves into session storage before anything else reads the URL.
    if let (Some(room), Ok(href)) = (room_from_path(&pathname), location.href()) {
        if let Ok(url) = web_sys::Url::new(&href) {
            if crate::access::stash_from_url(&url, &room) {
                if let Ok(history) = window.history() {
                    let _ = history.replace_state_with_url(
                        &wasm_bindgen::JsValue::NULL,
                        "",
                        Some(&url.href()),
                    );
                }
            }
        }
    }
    let display_name = location
        .search()
        .ok()
        .and_then(|s| web_sys::UrlSearchParams::new_with_str(&s).ok())
        .and_then(|p| p.get(DISPLAY_NAME_PARAM));

    match route(&pathname, display_name.as_deref()) {
        Route::Room(_) => match Room::new() {
            Ok(room) => {
                let joining = room.clone();
                PAGE.with(|p| *p.borrow_mut() = Some(Page::Room(room)));
                wasm_bindgen_futures::spawn_local(async move {
                    match joining.join().await {
                        Ok(peer_id) => log::info(&format!("joined as {peer_id}")),
                        Err(e) => log::error(&format!("Error while joining the room: {e}")),
                    }
                });
            }
            Err(e) => {
                log::error(&e.to_string());
                show_landing(&root, Prefill::default());
                RoomUi::new(&root).set_error_message(Some(&e.to_string()));
            }
        },
        Route::Landing {
            room_name,
            display_name,
            errors,
        } => {
            let display_name = if display_name.is_empty() {
                remembered_display_name().unwrap_or_default()
            } else {
                display_name
            };
            show_landing(
                &root,
                Prefill {
                    room_name,
                    display_name,
                    errors,
                },
            );
        }
    }
}

fn show_landing(root: &Element, prefill: Prefill) {
    let navigate = |url: &str| {
        if let Some(w) = web_sys::window() {
            if let Err(e) = w.location().assign(url) {
                log::error(&format!("cannot open {url}: {}", log::describe(&e)));
            }
        }
    };
    match LandingPage::render(root, &prefill, navigate) {
        Ok(page) => {
            page.start_preview();
            PAGE.with(|p| *p.borrow_mut() = Some(Page::Landing(page)))
        }
        Err(e) => log::error_failed("cannot show the form", &e),
    }
}
