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

/// `name: message` of a JS `Error` or `DOMException`, the string itself, or a debug dump.
pub fn describe(value: &JsValue) -> String {
    if let Some(e) = value.dyn_ref::<web_sys::DomException>() {
        return format!("{}: {}", e.name(), e.message());
    }
    if let Some(e) = value.dyn_ref::<js_sys::Error>() {
        return format!("{}: {}", String::from(e.name()), String::from(e.message()));
    }
    value.as_string().unwrap_or_else(|| format!("{value:?}"))
}
