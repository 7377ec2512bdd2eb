//! Join tokens for servers that lock their rooms (`--join-token-secret`): a shared link
//! `/room/<name>?token=…` carries one. It is moved out of the address bar (like the display
//! name) into this tab's session storage, so the landing form, Disconnect and reload all keep
//! it for that room without it showing up in history or in links copied from the address bar.

use web_sys::Url;

use crate::consts::{TOKEN_PARAM, TOKEN_STORAGE_PREFIX};

fn storage() -> Option<web_sys::Storage> {
    web_sys::window()?.session_storage().ok().flatten()
}

/// Moves a `token` query parameter of `url` into session storage for `room`; returns whether
/// the URL changed (the caller rewrites the address bar).
pub fn stash_from_url(url: &Url, room: &str) -> bool {
    let Some(token) = url.search_params().get(TOKEN_PARAM) else {
        return false;
    };
    if let Some(s) = storage() {
        let _ = s.set_item(&format!("{TOKEN_STORAGE_PREFIX}{room}"), &token);
    }
    url.search_params().delete(TOKEN_PARAM);
    true
}

/// The token stashed for `room`, if any.
pub fn token_for(room: &str) -> Option<String> {
    storage()?
        .get_item(&format!("{TOKEN_STORAGE_PREFIX}{room}"))
        .ok()
        .flatten()
}
