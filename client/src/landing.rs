//! The landing page: a form with the room name and display name and a Join button. It checks
//! both with the protocol's rules and navigates to `/room/<name>?display_name=<name>`.

use std::cell::RefCell;
use std::rc::Rc;

use wasm_bindgen::closure::Closure;
use wasm_bindgen::{JsCast, JsValue};
use web_sys::{
    Element, HtmlElement, HtmlFormElement, HtmlInputElement, HtmlMediaElement, HtmlSelectElement,
    SubmitEvent,
};

use crate::consts::{DISPLAY_NAME_STORAGE_KEY, MEDIA_CONSTRAINTS};
use crate::devices::Preview;
use crate::form::{validate_form, FormErrors};
use crate::log;
use crate::routing::room_url;

/// The form's fixed markup; values and messages are filled in as text.
const LANDING_PAGE: &str = r#"<main class="landing">
  <section class="card">
    <div class="card-heading">
      <span class="brand">Videoroom</span>
      <h1>Join a room</h1>
      <p class="lead">Everyone in the room sees and hears you. Your camera and microphone are needed.</p>
    </div>
    <form id="form" novalidate>
      <div class="field">
        <label for="room_name">Room name</label>
        <input id="room_name" name="room_name" type="text" required autocomplete="off"
          autocapitalize="off" spellcheck="false" placeholder="e.g. standup" aria-describedby="room_name-error">
        <p id="room_name-error" class="field-error" hidden></p>
      </div>
      <div class="field">
        <label for="display_name">Display name</label>
        <input id="display_name" name="display_name" type="text" required autocomplete="nickname"
          placeholder="Your name" aria-describedby="display_name-error">
        <p id="display_name-error" class="field-error" hidden></p>
      </div>
      <video id="preview" class="landing-preview" autoplay muted playsinline></video>
      <div class="field">
        <label for="camera-select">Camera</label>
        <select id="camera-select" name="camera"></select>
      </div>
      <div class="field">
        <label for="microphone-select">Microphone</label>
        <select id="microphone-select" name="microphone"></select>
      </div>
      <button id="join" class="button button-primary" type="submit">Join</button>
    </form>
    <p class="hint">Letters, digits, '-', '_' and '.' in room names; share the room's address to invite others.</p>
  </section>
</main>"#;

/// What the form starts with.
#[derive(Debug, Clone, Default)]
pub struct Prefill {
    /// The room name.
    pub room_name: String,
    /// The display name.
    pub display_name: String,
    /// Problems to show right away (a rejected room link).
    pub errors: Option<FormErrors>,
}

/// The rendered landing page; owns its submit handler.
pub struct LandingPage {
    form: HtmlFormElement,
    root: Element,
    preview: Rc<RefCell<Option<Preview>>>,
    _on_submit: Closure<dyn FnMut(SubmitEvent)>,
}

impl LandingPage {
    /// Renders the form into `root`. A valid submission calls `navigate` with the room's URL.
    pub fn render(
        root: &Element,
        prefill: &Prefill,
        navigate: impl Fn(&str) + 'static,
    ) -> Result<LandingPage, JsValue> {
        root.set_inner_html(LANDING_PAGE);
        let form: HtmlFormElement = find(root, "#form")?;
        let room: HtmlInputElement = find(root, "#room_name")?;
        let name: HtmlInputElement = find(root, "#display_name")?;
        room.set_value(&prefill.room_name);
        name.set_value(&prefill.display_name);
        if let Some(errors) = &prefill.errors {
            show_errors(root, errors);
        }
        // Focus where typing is needed next.
        let _ = if prefill.room_name.is_empty() {
            room.focus()
        } else {
            name.focus()
        };

        let page = root.clone();
        let preview: Rc<RefCell<Option<Preview>>> = Rc::default();
        let previewing = preview.clone();
        let on_submit = Closure::<dyn FnMut(SubmitEvent)>::new(move |e: SubmitEvent| {
            e.prevent_default();
            match validate_form(&room.value(), &name.value()) {
                Ok(request) => {
                    show_errors(&page, &FormErrors::default());
                    remember_display_name(&request.display_name);
                    // The room opens the camera again: let go of the preview's first.
                    if let Some(p) = previewing.borrow_mut().take() {
                        p.stop();
                    }
                    navigate(&room_url(&request));
                }
                Err(errors) => show_errors(&page, &errors),
            }
        });
        form.set_onsubmit(Some(on_submit.as_ref().unchecked_ref()));
        Ok(LandingPage {
            form,
            root: root.clone(),
            preview,
            _on_submit: on_submit,
        })
    }

    /// Shows the camera preview and fills the device lists (after the permission prompt).
    pub fn start_preview(&self) {
        let (Ok(video), Ok(camera), Ok(microphone)) = (
            find::<HtmlMediaElement>(&self.root, "#preview"),
            find::<HtmlSelectElement>(&self.root, "#camera-select"),
            find::<HtmlSelectElement>(&self.root, "#microphone-select"),
        ) else {
            return;
        };
        *self.preview.borrow_mut() =
            Some(Preview::start(video, camera, microphone, MEDIA_CONSTRAINTS));
    }

    /// The form element.
    pub fn form(&self) -> &HtmlFormElement {
        &self.form
    }
}

impl Drop for LandingPage {
    fn drop(&mut self) {
        self.form.set_onsubmit(None);
    }
}

/// The display name used last in this browser, if any.
pub fn remembered_display_name() -> Option<String> {
    let storage = web_sys::window()?.local_storage().ok()??;
    storage.get_item(DISPLAY_NAME_STORAGE_KEY).ok()?
}

fn remember_display_name(name: &str) {
    // Storage may be off (private mode); remembering is a convenience only.
    if let Some(Ok(Some(storage))) = web_sys::window().map(|w| w.local_storage()) {
        let _ = storage.set_item(DISPLAY_NAME_STORAGE_KEY, name);
    }
}

fn find<T: JsCast>(root: &Element, selector: &str) -> Result<T, JsValue> {
    root.query_selector(selector)?
        .ok_or_else(|| JsValue::from_str(&format!("landing page has no {selector}")))?
        .dyn_into::<T>()
        .map_err(|_| JsValue::from_str(&format!("{selector} has the wrong type")))
}

fn show_errors(root: &Element, errors: &FormErrors) {
    let mut first_invalid = None;
    for (field, error) in [
        ("room_name", &errors.room_name),
        ("display_name", &errors.display_name),
    ] {
        if let Ok(message) = find::<HtmlElement>(root, &format!("#{field}-error")) {
            message.set_text_content(error.as_deref());
            message.set_hidden(error.is_none());
        }
        if let Ok(input) = find::<HtmlInputElement>(root, &format!("#{field}")) {
            let _ = if error.is_some() {
                input.set_attribute("aria-invalid", "true")
            } else {
                input.remove_attribute("aria-invalid")
            };
            if error.is_some() && first_invalid.is_none() {
                first_invalid = Some(input);
            }
        }
    }
    if let Some(input) = first_invalid {
        if let Err(e) = input.focus() {
            log::warn_failed("cannot focus", &e);
        }
    }
}
