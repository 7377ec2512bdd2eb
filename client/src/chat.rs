//! The chat panel: messages (author, local time, text), the input (Enter sends, Shift+Enter
//! is a new line), validation with the protocol's rules, and the unread count while closed.
//! Everything a person wrote reaches the DOM as text, never as HTML.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use protocol::{validate_chat_text, ChatMessage, MAX_CHAT_CHARS};
use wasm_bindgen::closure::Closure;
use wasm_bindgen::{JsCast, JsValue};
use web_sys::{Document, Element, HtmlElement, HtmlTextAreaElement, KeyboardEvent, MouseEvent};

use crate::form::message as explain;
use crate::log;
use crate::room_ui::RoomUi;

/// Shown when a message cannot go out because the connection is down.
pub const NOT_CONNECTED: &str = "Not connected: the message was not sent.";

/// What sends a message to the room; false if it could not be sent.
type Send = Rc<dyn Fn(&str) -> bool>;

/// The chat panel and its handlers; dropping it detaches them.
pub struct Chat {
    inner: Rc<Inner>,
    _send_click: Closure<dyn FnMut(MouseEvent)>,
    _input_key: Closure<dyn FnMut(KeyboardEvent)>,
}

struct Inner {
    ui: RoomUi,
    input: Option<HtmlTextAreaElement>,
    send: Send,
    open: Cell<bool>,
    unread: Cell<u32>,
    /// Sequence numbers shown: history after a rejoin repeats what is already there.
    seen: RefCell<Vec<u64>>,
}

impl Chat {
    /// Attaches to `ui`'s chat panel; `send` sends a (valid) message.
    pub fn attach(ui: &RoomUi, send: impl Fn(&str) -> bool + 'static) -> Chat {
        let input = ui
            .element("chat-input")
            .and_then(|e| e.dyn_into::<HtmlTextAreaElement>().ok());
        if let Some(input) = &input {
            let _ = input.set_attribute("maxlength", &MAX_CHAT_CHARS.to_string());
        }
        let inner = Rc::new(Inner {
            ui: ui.clone(),
            input,
            send: Rc::new(send),
            open: Cell::new(false),
            unread: Cell::new(0),
            seen: RefCell::default(),
        });
        let weak = Rc::downgrade(&inner);
        let send_click = Closure::<dyn FnMut(MouseEvent)>::new(move |_: MouseEvent| {
            if let Some(inner) = weak.upgrade() {
                inner.submit();
            }
        });
        let weak = Rc::downgrade(&inner);
        let input_key = Closure::<dyn FnMut(KeyboardEvent)>::new(move |e: KeyboardEvent| {
            // Enter sends; Shift+Enter (and Enter while composing with an IME) types on.
            if e.key() == "Enter" && !e.shift_key() && !e.is_composing() {
                e.prevent_default();
                if let Some(inner) = weak.upgrade() {
                    inner.submit();
                }
            }
        });
        if let Some(b) = ui.element("chat-send") {
            b.set_onclick(Some(send_click.as_ref().unchecked_ref()));
        }
        if let Some(i) = &inner.input {
            i.set_onkeydown(Some(input_key.as_ref().unchecked_ref()));
        }
        Chat {
            inner,
            _send_click: send_click,
            _input_key: input_key,
        }
    }

    /// Opens or closes the panel (opening clears the unread count and focuses the input).
    pub fn set_open(&self, open: bool) {
        let r = &self.inner;
        r.open.set(open);
        if let Some(panel) = r.ui.element("chat") {
            panel.set_hidden(!open);
        }
        r.ui.set_pressed("toggle-chat", open);
        if open {
            r.unread.set(0);
            r.show_unread();
            if let Some(i) = &r.input {
                let _ = i.focus();
            }
            r.scroll_to_end();
        }
    }

    /// Whether the panel is open.
    pub fn is_open(&self) -> bool {
        self.inner.open.get()
    }

    /// Shows a message (once per `seq`, in `seq` order). `own`: we wrote it; `live`: it is new
    /// (not history), so it counts as unread while the panel is closed.
    pub fn receive(&self, message: &ChatMessage, own: bool, live: bool) {
        let r = &self.inner;
        {
            let mut seen = r.seen.borrow_mut();
            if seen.contains(&message.seq) {
                return;
            }
            seen.push(message.seq);
        }
        let (Some(list), Some(doc)) = (r.ui.element("chat-messages"), r.ui.root().owner_document())
        else {
            return;
        };
        match render(&doc, message, own) {
            Ok(item) => {
                // Messages come in order; a late one goes before the first later one.
                let next = children(&list).find(|c| {
                    c.get_attribute("data-seq")
                        .and_then(|s| s.parse::<u64>().ok())
                        .is_some_and(|s| s > message.seq)
                });
                let _ = list.insert_before(&item, next.as_ref().map(|n| n.as_ref()));
            }
            Err(e) => log::warn(&format!(
                "cannot show a chat message: {}",
                log::describe(&e)
            )),
        }
        if live && !own && !r.open.get() {
            r.unread.set(r.unread.get() + 1);
            r.show_unread();
        }
        if r.open.get() {
            r.scroll_to_end();
        }
    }

    /// The unread count shown on `#chat-unread`.
    pub fn unread(&self) -> u32 {
        self.inner.unread.get()
    }
}

impl Drop for Chat {
    fn drop(&mut self) {
        if let Some(b) = self.inner.ui.element("chat-send") {
            b.set_onclick(None);
        }
        if let Some(i) = &self.inner.input {
            i.set_onkeydown(None);
        }
    }
}

impl Inner {
    fn submit(&self) {
        let Some(input) = &self.input else { return };
        let value = input.value();
        let text = value.trim();
        if let Err(e) = validate_chat_text(text) {
            self.show_error(Some(&explain(&e)));
            return;
        }
        if (self.send)(text) {
            input.set_value("");
            self.show_error(None);
        } else {
            self.show_error(Some(NOT_CONNECTED));
        }
    }

    fn show_error(&self, text: Option<&str>) {
        if let Some(e) = self.ui.element("chat-error") {
            e.set_text_content(text);
            e.set_hidden(text.is_none());
        }
        if let Some(i) = &self.input {
            let _ = match text {
                Some(_) => i.set_attribute("aria-invalid", "true"),
                None => i.remove_attribute("aria-invalid"),
            };
        }
    }

    fn show_unread(&self) {
        if let Some(badge) = self.ui.element("chat-unread") {
            let n = self.unread.get();
            badge.set_text_content(Some(&n.to_string()));
            badge.set_hidden(n == 0);
        }
    }

    fn scroll_to_end(&self) {
        if let Some(list) = self.ui.element("chat-messages") {
            list.set_scroll_top(list.scroll_height());
        }
    }
}

fn children(parent: &Element) -> impl Iterator<Item = Element> {
    let list = parent.children();
    (0..list.length()).filter_map(move |i| list.item(i))
}

/// One message as `<li class="chat-message">`: author, `<time>`, text (all as text).
fn render(doc: &Document, m: &ChatMessage, own: bool) -> Result<Element, JsValue> {
    let item = doc.create_element("li")?;
    item.set_class_name(if own {
        "chat-message chat-message-own"
    } else {
        "chat-message"
    });
    item.set_attribute("data-seq", &m.seq.to_string())?;
    item.set_attribute("data-peer-id", &m.peer_id)?;

    let head = doc.create_element("div")?;
    head.set_class_name("chat-message-head");
    let author = doc.create_element("span")?;
    author.set_class_name("chat-author");
    author.set_attribute("data-role", "chat-author")?;
    author.set_text_content(Some(&m.display_name));
    let time = doc.create_element("time")?;
    time.set_class_name("chat-time");
    time.set_attribute("data-role", "chat-time")?;
    let date = js_sys::Date::new(&JsValue::from_f64(m.sent_at_ms as f64));
    if let Some(iso) = date.to_iso_string().as_string() {
        time.set_attribute("datetime", &iso)?;
    }
    time.set_text_content(Some(&clock(date.get_hours(), date.get_minutes())));
    head.append_child(&author)?;
    head.append_child(&time)?;

    // `white-space: pre-wrap` keeps the line breaks of plain text.
    let text: HtmlElement = doc.create_element("p")?.dyn_into()?;
    text.set_class_name("chat-text");
    text.set_attribute("data-role", "chat-text")?;
    text.set_text_content(Some(&m.text));

    item.append_child(&head)?;
    item.append_child(&text)?;
    Ok(item)
}

/// `HH:MM`.
pub fn clock(hours: u32, minutes: u32) -> String {
    format!("{hours:02}:{minutes:02}")
}
