//! Console logging, and turning JS errors into text a person can read.

use wasm_bindgen::{JsCast, JsValue};

/// Logs progress to the browser console.
pub fn info(message: &str) {
    web_sys::console::info_1(&JsValue::from_str(message));
}

/// Logs a recoverable problem to the browser console.
pub fn warn(message: &str) {
    web_sys::console::warn_1(&JsValue::from_str(message));
}

/// Logs a failure to the browser console.
pub fn error(message: &str) {
    web_sys::console::error_1(&JsValue::from_str(message));
}

/// Logs `what: <the JS error, described>` as a problem ([`warn`]).
pub fn warn_failed(what: &str, e: &JsValue) {
    warn(&format!("{what}: {}", describe(e)));
}

/// Logs `what: <the JS error, described>` as a failure ([`error`]).
pub fn error_failed(what: &str, e: &JsValue) {
    error(&format!("{what}: {}", describe(e)));
}

/// Logs `what: <the JS error, described>` as progress ([`info`]).
pub fn info_failed(what: &str, e: &JsValue) {
    info(&format!("{what}: {}", describe(e)));
}

/// `name: message` of a JS `Error` or `DOMException`, the string itself, or its JSON.
pub fn describe(value: &JsValue) -> String {
    if let Some(e) = value.dyn_ref::<web_sys::DomException>() {
        return format!("{}: {}", e.name(), e.message());
    }
    if let Some(e) = value.dyn_ref::<js_sys::Error>() {
        return format!("{}: {}", String::from(e.name()), String::from(e.message()));
    }
    // JSON rather than `{:?}`: JsValue's Debug brings a 2 KB dumper into the JS glue.
    value
        .as_string()
        .or_else(|| js_sys::JSON::stringify(value).ok()?.as_string())
        .unwrap_or_else(|| "an error without a description".into())
}
