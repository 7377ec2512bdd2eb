//! Helpers shared by the browser tests: timers, waiting, fresh DOM roots, the test server.
#![allow(dead_code)]

use std::cell::RefCell;
use std::rc::Rc;

use js_sys::Promise;
use protocol::{ClientMessage, ServerMessage};
use wasm_bindgen::closure::Closure;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{Element, Event, MessageEvent, WebSocket};

/// The address of the server the test command started, e.g. `127.0.0.1:41234`.
pub fn server_addr() -> &'static str {
    match option_env!("VIDEOROOM_TEST_SERVER") {
        Some(addr) if !addr.is_empty() => addr,
        _ => panic!(
            "VIDEOROOM_TEST_SERVER is not set: these tests need a running videoroom-server. Start \
             one (videoroom-server --bind 127.0.0.1:<port> --ice-ips 127.0.0.1) and build the \
             tests with VIDEOROOM_TEST_SERVER=127.0.0.1:<port>"
        ),
    }
}

/// The server's `--max-peers-per-room` (the server's default, 16, unless the test command
/// says otherwise through `VIDEOROOM_TEST_MAX_PEERS_PER_ROOM`).
pub fn max_peers_per_room() -> usize {
    option_env!("VIDEOROOM_TEST_MAX_PEERS_PER_ROOM")
        .and_then(|v| v.parse().ok())
        .unwrap_or(16)
}

/// `ws://<server>/socket`.
pub fn socket_url() -> String {
    format!("ws://{}/socket", server_addr())
}

/// A room name no other test (or earlier run) uses.
pub fn unique_room(prefix: &str) -> String {
    let n = (js_sys::Math::random() * 1e9) as u64;
    format!("{prefix}-{}-{n}", js_sys::Date::now() as u64)
}

/// Milliseconds since the page loaded.
pub fn now_ms() -> f64 {
    web_sys::window()
        .and_then(|w| w.performance())
        .map(|p| p.now())
        .unwrap_or_else(js_sys::Date::now)
}

/// Waits `ms` milliseconds.
pub async fn sleep(ms: i32) {
    let promise = Promise::new(&mut |resolve, _| {
        web_sys::window()
            .expect("window")
            .set_timeout_with_callback_and_timeout_and_arguments_0(&resolve, ms)
            .expect("setTimeout");
    });
    JsFuture::from(promise).await.expect("timer");
}

/// Waits until `condition` holds, polling every 50 ms; panics with `what` after `timeout_ms`.
pub async fn wait_for(what: &str, timeout_ms: f64, mut condition: impl FnMut() -> bool) {
    let start = now_ms();
    while !condition() {
        if now_ms() - start > timeout_ms {
            panic!("timed out after {timeout_ms} ms waiting for {what}");
        }
        sleep(50).await;
    }
}

/// A new empty `<div>` in the page, for one test's DOM.
pub fn fresh_root() -> Element {
    let document = web_sys::window().unwrap().document().unwrap();
    let root = document.create_element("div").unwrap();
    document.body().unwrap().append_child(&root).unwrap();
    root
}

/// The client's stylesheet, so that layout can be checked for real.
pub fn install_styles() {
    const CSS: &str = include_str!("../../styles/main.css");
    let document = web_sys::window().unwrap().document().unwrap();
    if document.get_element_by_id("videoroom-test-css").is_some() {
        return;
    }
    let style = document.create_element("style").unwrap();
    style.set_id("videoroom-test-css");
    style.set_text_content(Some(CSS));
    document.head().unwrap().append_child(&style).unwrap();
}

/// A bare protocol client without media: fills rooms and pokes the server cheaply.
pub struct RawPeer {
    pub ws: WebSocket,
    inbox: Rc<RefCell<Vec<ServerMessage>>>,
    _on_message: Closure<dyn FnMut(MessageEvent)>,
    _on_open: Closure<dyn FnMut(Event)>,
}

impl RawPeer {
    /// Connects and waits for the socket to open.
    pub async fn connect() -> RawPeer {
        let ws = WebSocket::new(&socket_url()).expect("WebSocket");
        let inbox: Rc<RefCell<Vec<ServerMessage>>> = Rc::default();
        let sink = inbox.clone();
        let on_message = Closure::<dyn FnMut(MessageEvent)>::new(move |e: MessageEvent| {
            if let Some(text) = e.data().as_string() {
                match ServerMessage::decode(&text) {
                    Ok(m) => sink.borrow_mut().push(m),
                    Err(err) => panic!("server sent a frame the protocol rejects: {err}: {text}"),
                }
            }
        });
        let opened = Rc::new(RefCell::new(false));
        let flag = opened.clone();
        let on_open = Closure::<dyn FnMut(Event)>::new(move |_: Event| *flag.borrow_mut() = true);
        ws.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
        ws.set_onopen(Some(on_open.as_ref().unchecked_ref()));
        let peer = RawPeer {
            ws,
            inbox,
            _on_message: on_message,
            _on_open: on_open,
        };
        wait_for("a raw socket to open", 5_000.0, || *opened.borrow()).await;
        peer
    }

    /// Sends one message.
    pub fn send(&self, message: &ClientMessage) {
        self.ws
            .send_with_str(&message.encode())
            .expect("send on an open socket");
    }

    /// Sends raw text (to provoke the server).
    pub fn send_raw(&self, text: &str) -> Result<(), JsValue> {
        self.ws.send_with_str(text)
    }

    /// Waits for (and removes) the first received message that `pick` accepts.
    pub async fn expect<T>(
        &self,
        what: &str,
        mut pick: impl FnMut(&ServerMessage) -> Option<T>,
    ) -> T {
        let start = now_ms();
        loop {
            {
                let mut inbox = self.inbox.borrow_mut();
                if let Some(i) = inbox.iter().position(|m| pick(m).is_some()) {
                    let m = inbox.remove(i);
                    return pick(&m).unwrap();
                }
            }
            if now_ms() - start > 10_000.0 {
                panic!(
                    "timed out waiting for {what}; got {:?}",
                    self.inbox.borrow()
                );
            }
            sleep(20).await;
        }
    }
}

impl Drop for RawPeer {
    fn drop(&mut self) {
        self.ws.set_onmessage(None);
        self.ws.set_onopen(None);
        let _ = self.ws.close();
    }
}
