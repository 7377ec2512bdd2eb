//! The control bar: the mic, camera, screen, chat and statistics toggles, and the keyboard
//! shortcuts (`m` mic, `v` camera). It only reports which control was used; the room acts.

use std::rc::Rc;

use wasm_bindgen::closure::Closure;
use wasm_bindgen::JsCast;
use web_sys::{Element, EventTarget, HtmlElement, KeyboardEvent, MouseEvent};

use crate::room_ui::RoomUi;

/// A control the person used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    /// Mute or unmute the microphone (`#toggle-mic`, `m`).
    Mic,
    /// Turn the camera off or on (`#toggle-camera`, `v`).
    Camera,
    /// Start or stop sharing the screen (`#toggle-screen`).
    Screen,
    /// Open or close the chat (`#toggle-chat`).
    Chat,
    /// Open or close the statistics (`#toggle-stats`).
    Stats,
}

impl Control {
    /// The button's id.
    pub fn button_id(self) -> &'static str {
        match self {
            Control::Mic => "toggle-mic",
            Control::Camera => "toggle-camera",
            Control::Screen => "toggle-screen",
            Control::Chat => "toggle-chat",
            Control::Stats => "toggle-stats",
        }
    }

    const ALL: [Control; 5] = [
        Control::Mic,
        Control::Camera,
        Control::Screen,
        Control::Chat,
        Control::Stats,
    ];
}

type ClickHandler = Closure<dyn FnMut(MouseEvent)>;
type KeyHandler = Closure<dyn FnMut(KeyboardEvent)>;

/// The control bar's handlers; dropping it detaches them.
pub struct Controls {
    buttons: Vec<(HtmlElement, ClickHandler)>,
    keys: Option<(EventTarget, KeyHandler)>,
}

impl Controls {
    /// Attaches the buttons of `ui`'s page and the shortcuts (on its document) to `on_control`.
    pub fn attach(ui: &RoomUi, on_control: impl Fn(Control) + 'static) -> Controls {
        let on_control: Rc<dyn Fn(Control)> = Rc::new(on_control);
        let mut buttons = Vec::new();
        for control in Control::ALL {
            let Some(button) = ui.element(control.button_id()) else {
                continue;
            };
            let f = on_control.clone();
            let click = Closure::<dyn FnMut(MouseEvent)>::new(move |_: MouseEvent| f(control));
            button.set_onclick(Some(click.as_ref().unchecked_ref()));
            buttons.push((button, click));
        }
        let keys = ui.root().owner_document().map(|doc| {
            let f = on_control.clone();
            let key = Closure::<dyn FnMut(KeyboardEvent)>::new(move |e: KeyboardEvent| {
                if let Some(control) = shortcut(&e) {
                    e.prevent_default();
                    f(control);
                }
            });
            let target: EventTarget = doc.into();
            let _ =
                target.add_event_listener_with_callback("keydown", key.as_ref().unchecked_ref());
            (target, key)
        });
        Controls { buttons, keys }
    }
}

impl Drop for Controls {
    fn drop(&mut self) {
        for (button, _) in &self.buttons {
            button.set_onclick(None);
        }
        if let Some((target, key)) = &self.keys {
            let _ =
                target.remove_event_listener_with_callback("keydown", key.as_ref().unchecked_ref());
        }
    }
}

/// The control a key press means: `m` or `v` alone, not while typing and not held down.
fn shortcut(e: &KeyboardEvent) -> Option<Control> {
    if e.repeat() || e.ctrl_key() || e.meta_key() || e.alt_key() || e.is_composing() {
        return None;
    }
    if e.target()
        .and_then(|t| t.dyn_into::<Element>().ok())
        .is_some_and(|t| is_typing_in(&t))
    {
        return None;
    }
    match e.key().as_str() {
        "m" | "M" => Some(Control::Mic),
        "v" | "V" => Some(Control::Camera),
        _ => None,
    }
}

/// Whether key presses on `element` are text being typed.
fn is_typing_in(element: &Element) -> bool {
    let tag = element.tag_name().to_ascii_lowercase();
    matches!(tag.as_str(), "input" | "textarea" | "select")
        || element
            .dyn_ref::<HtmlElement>()
            .is_some_and(|e| e.is_content_editable())
}
