//! The signaling WebSocket: one JSON text frame per protocol message.
//!
//! The socket owns the closures attached to it; [`Socket::unregister`] detaches and drops them
//! (the tutorial's `socket.off(refs)`), and dropping the socket does the same.

use std::cell::RefCell;
use std::rc::Rc;

use js_sys::Reflect;
use protocol::tree::{FromTree, Tree};
use protocol::{ClientMessage, DecodeError, ServerMessage};
use wasm_bindgen::closure::Closure;
use wasm_bindgen::{JsCast, JsValue};
use web_sys::{CloseEvent, Event, MessageEvent, WebSocket};

use crate::log;

/// Something that happened on the socket.
#[derive(Debug)]
pub enum SocketEvent {
    /// A text frame, decoded and bounds-checked.
    Message(Result<ServerMessage, DecodeError>),
    /// The connection failed (the browser gives no detail).
    Error,
    /// The connection closed.
    Closed {
        /// The close code (1000 normal, 1006 abnormal...).
        code: u16,
        /// The close reason sent by the server, if any.
        reason: String,
    },
}

struct Handlers {
    _open: Closure<dyn FnMut(Event)>,
    _message: Closure<dyn FnMut(MessageEvent)>,
    _error: Closure<dyn FnMut(Event)>,
    _close: Closure<dyn FnMut(CloseEvent)>,
}

/// A connected (or connecting) signaling socket.
pub struct Socket {
    ws: WebSocket,
    /// Frames sent before the socket opened; flushed on open.
    outbox: Rc<RefCell<Vec<String>>>,
    handlers: RefCell<Option<Handlers>>,
}

impl Socket {
    /// Takes over a new WebSocket and reports its every event to `on_event` until unregistered.
    pub fn new(ws: WebSocket, on_event: impl Fn(SocketEvent) + 'static) -> Socket {
        let on_event: Rc<dyn Fn(SocketEvent)> = Rc::new(on_event);
        let outbox: Rc<RefCell<Vec<String>>> = Rc::default();

        let open = {
            let ws = ws.clone();
            let outbox = outbox.clone();
            Closure::<dyn FnMut(Event)>::new(move |_: Event| {
                for frame in outbox.borrow_mut().drain(..) {
                    if let Err(e) = ws.send_with_str(&frame) {
                        log::warn_failed("socket send failed", &e);
                    }
                }
            })
        };
        let message = {
            let on_event = on_event.clone();
            Closure::<dyn FnMut(MessageEvent)>::new(move |e: MessageEvent| {
                match e.data().as_string() {
                    Some(text) => on_event(SocketEvent::Message(decode(&text))),
                    None => log::warn("ignoring a binary frame from the server"),
                }
            })
        };
        let error = {
            let on_event = on_event.clone();
            Closure::<dyn FnMut(Event)>::new(move |_: Event| on_event(SocketEvent::Error))
        };
        let close = Closure::<dyn FnMut(CloseEvent)>::new(move |e: CloseEvent| {
            on_event(SocketEvent::Closed {
                code: e.code(),
                reason: e.reason(),
            })
        });
        ws.set_onopen(Some(open.as_ref().unchecked_ref()));
        ws.set_onmessage(Some(message.as_ref().unchecked_ref()));
        ws.set_onerror(Some(error.as_ref().unchecked_ref()));
        ws.set_onclose(Some(close.as_ref().unchecked_ref()));
        expose_for_diagnostics(&ws);
        Socket {
            ws,
            outbox,
            handlers: RefCell::new(Some(Handlers {
                _open: open,
                _message: message,
                _error: error,
                _close: close,
            })),
        }
    }

    /// Sends a message now, or when the socket opens. Returns false if the socket is closing
    /// or closed (the message is dropped).
    pub fn send(&self, message: &ClientMessage) -> bool {
        let frame = message.encode();
        match self.ws.ready_state() {
            WebSocket::CONNECTING => {
                self.outbox.borrow_mut().push(frame);
                true
            }
            WebSocket::OPEN => match self.ws.send_with_str(&frame) {
                Ok(()) => true,
                Err(e) => {
                    log::warn_failed("socket send failed", &e);
                    false
                }
            },
            _ => false,
        }
    }

    /// Detaches and drops every handler: no event reaches the owner any more.
    pub fn unregister(&self) {
        withdraw_from_diagnostics(&self.ws);
        self.ws.set_onopen(None);
        self.ws.set_onmessage(None);
        self.ws.set_onerror(None);
        self.ws.set_onclose(None);
        self.handlers.borrow_mut().take();
        self.outbox.borrow_mut().clear();
    }

    /// Whether the handlers are still attached.
    pub fn has_handlers(&self) -> bool {
        self.handlers.borrow().is_some()
    }

    /// Starts closing the socket; frames already sent are still delivered first.
    pub fn close(&self) {
        if let Err(e) = self.ws.close() {
            log::warn_failed("socket close failed", &e);
        }
    }

    /// The underlying WebSocket (for diagnostics and tests).
    pub fn web_socket(&self) -> &WebSocket {
        &self.ws
    }
}

/// [`ServerMessage::decode`], but parsed by the browser's `JSON.parse` and read by the
/// protocol's [`FromTree`] decoder: the same types, bounds and unknown-field refusals, without
/// serde's parser or visitors in the bundle (issue 7).
pub fn decode(text: &str) -> Result<ServerMessage, DecodeError> {
    ServerMessage::decode_with(text, |text| {
        let value = js_sys::JSON::parse(text).map_err(|e| crate::log::describe(&e))?;
        ServerMessage::from_tree(&Js(value)).map_err(|e| e.to_string())
    })
}

/// A value from `JSON.parse`, as the protocol's decoders navigate it.
struct Js(JsValue);

impl Js {
    fn object(&self) -> Option<&js_sys::Object> {
        (self.0.is_object() && !js_sys::Array::is_array(&self.0)).then(|| self.0.unchecked_ref())
    }
}

impl Tree for Js {
    fn member(&self, key: &str) -> Option<Self> {
        let value = Reflect::get(self.object()?, &JsValue::from_str(key)).ok()?;
        (!value.is_undefined()).then_some(Js(value))
    }
    fn keys(&self) -> Option<Vec<String>> {
        let keys = js_sys::Object::keys(self.object()?);
        Some(keys.iter().filter_map(|k| k.as_string()).collect())
    }
    fn items(&self) -> Option<Vec<Self>> {
        js_sys::Array::is_array(&self.0)
            .then(|| js_sys::Array::from(&self.0).iter().map(Js).collect())
    }
    fn string(&self) -> Option<String> {
        self.0.as_string()
    }
    fn unsigned(&self) -> Option<u64> {
        // JSON numbers are doubles here: only exact integers in the safe range count.
        const MAX_SAFE: f64 = 9_007_199_254_740_991.0;
        let n = self.0.as_f64()?;
        ((0.0..=MAX_SAFE).contains(&n) && n.fract() == 0.0).then_some(n as u64)
    }
    fn boolean(&self) -> Option<bool> {
        self.0.as_bool()
    }
    fn is_null(&self) -> bool {
        self.0.is_null()
    }
}

/// The global through which the live socket can be reached (a test closes it to simulate a
/// network drop).
const DIAGNOSTICS_GLOBAL: &str = "videoroomSocket";

fn expose_for_diagnostics(ws: &WebSocket) {
    if let Some(w) = web_sys::window() {
        let _ = Reflect::set(&w, &JsValue::from_str(DIAGNOSTICS_GLOBAL), ws);
    }
}

fn withdraw_from_diagnostics(ws: &WebSocket) {
    let Some(w) = web_sys::window() else { return };
    let key = JsValue::from_str(DIAGNOSTICS_GLOBAL);
    // Only our own: another socket (a reconnect, another Room) may have replaced it.
    if Reflect::get(&w, &key).is_ok_and(|v| v == JsValue::from(ws.clone())) {
        let _ = Reflect::delete_property(&w, &key);
    }
}

impl Drop for Socket {
    fn drop(&mut self) {
        self.unregister();
        // Dropped without leave(): do not leave a connection behind.
        let _ = self.ws.close();
    }
}
