//! The room page's DOM helpers (the tutorial's `room_ui.ts`), scoped to one root element so
//! that two rooms can live in one page (the tests do that).
//!
//! Element ids follow the original page: `#room` (with `data-room-id`), `#participants-list`,
//! `#videochat-error`, `#videos-grid`, `#disconnect`, and per tile `feed-<peerId>` holding
//! `video-<peerId>` and `audio-<peerId>`. Names are always set as text, never as HTML.

use wasm_bindgen::{JsCast, JsValue};
use web_sys::{Document, Element, HtmlElement, HtmlMediaElement, MediaStream};

use crate::log;

/// The room page's fixed markup; it holds no user data (that is filled in as text).
const ROOM_PAGE: &str = r#"<div id="room" class="room">
  <header class="room-header">
    <div class="room-heading">
      <span class="brand">Videoroom</span>
      <h1 class="room-name" data-role="room-name"></h1>
    </div>
    <div id="participants-list" class="participants" aria-live="polite"></div>
    <button id="enable-audio" class="button button-primary" type="button" hidden>Enable sound</button>
    <button id="disconnect" class="button button-danger" type="button">Disconnect</button>
  </header>
  <div class="errors">
    <p id="videochat-error" class="error" role="alert" hidden></p>
    <p id="videochat-error-detail" class="error-detail" hidden></p>
  </div>
  <main class="videos">
    <div id="videos-grid" class="videos-grid" data-columns="1"></div>
  </main>
</div>"#;

/// The tutorial's breakpoints: columns for a number of tiles (1, 2, 3, 4 as the room grows).
pub fn grid_columns(tiles: usize) -> u32 {
    match tiles {
        0..=1 => 1,
        2..=4 => 2,
        5..=6 => 3,
        _ => 4,
    }
}

/// The id of a tile's element: `feed-<peerId>`, `video-<peerId>`, `audio-<peerId>`.
pub fn element_id(kind: &str, peer_id: &str) -> String {
    format!("{kind}-{peer_id}")
}

/// The DOM of one room page.
#[derive(Clone)]
pub struct RoomUi {
    root: Element,
}

impl RoomUi {
    /// Renders the room page for `room_id` into `root` (replacing its content).
    pub fn render(root: &Element, room_id: &str) -> RoomUi {
        root.set_inner_html(ROOM_PAGE);
        let ui = RoomUi { root: root.clone() };
        if let Some(room) = ui.find("#room") {
            let _ = room.set_attribute("data-room-id", room_id);
        }
        if let Some(title) = ui.find("[data-role=room-name]") {
            title.set_text_content(Some(room_id));
        }
        ui
    }

    /// Wraps a root that already holds a rendered room page.
    pub fn new(root: &Element) -> RoomUi {
        RoomUi { root: root.clone() }
    }

    /// The root element.
    pub fn root(&self) -> &Element {
        &self.root
    }

    /// The room id from `#room`'s `data-room-id` (the tutorial's `getRoomId`).
    pub fn get_room_id(&self) -> Option<String> {
        self.find("#room")?.get_attribute("data-room-id")
    }

    /// Adds a tile for a peer (or relabels an existing one). The local tile is mirrored and
    /// fully muted; remote tiles play sound through their audio element.
    pub fn add_video_element(&self, peer_id: &str, label: &str, is_local: bool) {
        if let Some(feed) = self.feed(peer_id) {
            if let Some(l) = child_with_role(&feed, "video-label") {
                l.set_text_content(Some(label));
            }
            return;
        }
        let (Some(grid), Some(doc)) = (self.find("#videos-grid"), self.root.owner_document())
        else {
            log::warn("room page missing: cannot add a video tile");
            return;
        };
        match build_tile(&doc, peer_id, label, is_local) {
            Ok(feed) => {
                let _ = grid.append_child(&feed);
                self.resize_videos_grid();
            }
            Err(e) => log::warn(&format!("cannot add a video tile: {}", log::describe(&e))),
        }
    }

    /// Removes a peer's tile, if any.
    pub fn remove_video_element(&self, peer_id: &str) {
        if let Some(feed) = self.feed(peer_id) {
            feed.remove();
            self.resize_videos_grid();
        }
    }

    /// Whether a peer has a tile.
    pub fn has_video_element(&self, peer_id: &str) -> bool {
        self.feed(peer_id).is_some()
    }

    /// The peer's `<video>` element.
    pub fn video_element(&self, peer_id: &str) -> Option<HtmlMediaElement> {
        self.media(peer_id, "video")
    }

    /// The peer's `<audio>` element.
    pub fn audio_element(&self, peer_id: &str) -> Option<HtmlMediaElement> {
        self.media(peer_id, "audio")
    }

    /// Plays `stream` in the peer's tile. The stream carries the peer's audio and video;
    /// attaching the stream already shown is a no-op, so a second track never blanks the video.
    pub fn attach_stream(&self, stream: &MediaStream, peer_id: &str) {
        for element in [self.video_element(peer_id), self.audio_element(peer_id)]
            .into_iter()
            .flatten()
        {
            let same = element
                .src_object()
                .is_some_and(|current| js_sys::Object::is(&current, stream));
            if !same {
                // `autoplay` starts it; an explicit play() here would run the load twice.
                element.set_src_object(Some(stream));
            }
        }
        // Sound is what autoplay policies block: find out, and offer a button if so.
        if let Some(audio) = self.audio_element(peer_id).filter(|a| !a.muted()) {
            self.play_or_offer_button(audio);
        }
    }

    /// Plays every remote audio element (from a click: autoplay policies then allow it).
    pub fn play_all_audio(&self) {
        let Some(grid) = self.find("#videos-grid") else {
            return;
        };
        let Ok(list) = grid.query_selector_all("audio") else {
            return;
        };
        self.show_sound_button(false);
        for i in 0..list.length() {
            if let Some(audio) = list
                .item(i)
                .and_then(|n| n.dyn_into::<HtmlMediaElement>().ok())
            {
                if !audio.muted() && audio.paused() {
                    self.play_or_offer_button(audio);
                }
            }
        }
    }

    /// Shows or hides `#enable-audio` (shown when the browser refused to play sound).
    pub fn show_sound_button(&self, shown: bool) {
        if let Some(button) = self.find_html("#enable-audio") {
            button.set_hidden(!shown);
        }
    }

    /// Makes `#enable-audio` call `handler` (owned by the caller); `None` detaches it.
    pub fn setup_sound_button(&self, handler: Option<&js_sys::Function>) {
        if let Some(button) = self.find_html("#enable-audio") {
            button.set_onclick(handler);
        }
    }

    fn play_or_offer_button(&self, audio: HtmlMediaElement) {
        let Ok(playing) = audio.play() else {
            return;
        };
        let ui = self.clone();
        wasm_bindgen_futures::spawn_local(async move {
            if let Err(e) = wasm_bindgen_futures::JsFuture::from(playing).await {
                let blocked = e
                    .dyn_ref::<web_sys::DomException>()
                    .is_some_and(|e| e.name() == "NotAllowedError");
                if blocked {
                    log::warn("the browser blocked sound until the page is clicked");
                    ui.show_sound_button(true);
                }
            }
        });
    }

    /// Shows `message` in the error area (`None`: the tutorial's default connection error).
    pub fn set_error_message(&self, message: Option<&str>) {
        if let Some(area) = self.find_html("#videochat-error") {
            area.set_text_content(Some(message.unwrap_or(crate::consts::CONNECTION_ERROR)));
            area.set_hidden(false);
        }
    }

    /// Shows (or hides, with `None`) a detail line under the error, e.g. the server's reason.
    pub fn set_error_detail(&self, detail: Option<&str>) {
        if let Some(area) = self.find_html("#videochat-error-detail") {
            area.set_text_content(detail);
            area.set_hidden(detail.is_none());
        }
    }

    /// The error area's text, if shown.
    pub fn error_message(&self) -> Option<String> {
        let area = self.find_html("#videochat-error")?;
        if area.hidden() {
            return None;
        }
        area.text_content()
    }

    /// Shows "Participants: a, b" (the label in bold, the names as text).
    pub fn set_participants_list(&self, names: &[String]) {
        let (Some(list), Some(doc)) = (self.find("#participants-list"), self.root.owner_document())
        else {
            return;
        };
        list.set_text_content(None);
        if let Ok(label) = doc.create_element("b") {
            label.set_text_content(Some("Participants"));
            let _ = list.append_child(&label);
        }
        let names = doc.create_text_node(&format!(": {}", names.join(", ")));
        let _ = list.append_child(&names);
    }

    /// Makes `#disconnect` call `handler` (which the caller owns); `None` detaches it.
    pub fn setup_disconnect_button(&self, handler: Option<&js_sys::Function>) {
        if let Some(button) = self.find_html("#disconnect") {
            button.set_onclick(handler);
        }
    }

    /// Sets the grid's column count from its number of tiles (`data-columns`; CSS lays it out).
    pub fn resize_videos_grid(&self) {
        if let Some(grid) = self.find("#videos-grid") {
            let columns = grid_columns(grid.child_element_count() as usize);
            let _ = grid.set_attribute("data-columns", &columns.to_string());
        }
    }

    fn find(&self, selector: &str) -> Option<Element> {
        self.root.query_selector(selector).ok().flatten()
    }

    fn find_html(&self, selector: &str) -> Option<HtmlElement> {
        self.find(selector)?.dyn_into().ok()
    }

    /// Tiles are looked up by walking the grid, not by selector: peer ids come from the server
    /// and need not be valid CSS identifiers.
    fn feed(&self, peer_id: &str) -> Option<Element> {
        let grid = self.find("#videos-grid")?;
        let id = element_id("feed", peer_id);
        children(&grid).find(|c| c.id() == id)
    }

    fn media(&self, peer_id: &str, kind: &str) -> Option<HtmlMediaElement> {
        let id = element_id(kind, peer_id);
        children(&self.feed(peer_id)?)
            .find(|c| c.id() == id)?
            .dyn_into()
            .ok()
    }
}

fn children(parent: &Element) -> impl Iterator<Item = Element> {
    let list = parent.children();
    (0..list.length()).filter_map(move |i| list.item(i))
}

fn child_with_role(parent: &Element, role: &str) -> Option<Element> {
    children(parent).find(|c| c.get_attribute("data-role").as_deref() == Some(role))
}

fn build_tile(
    doc: &Document,
    peer_id: &str,
    label: &str,
    is_local: bool,
) -> Result<Element, JsValue> {
    let feed = doc.create_element("div")?;
    feed.set_id(&element_id("feed", peer_id));
    feed.set_class_name(if is_local { "feed feed-local" } else { "feed" });

    let video: HtmlMediaElement = doc.create_element("video")?.dyn_into()?;
    video.set_id(&element_id("video", peer_id));
    video.set_class_name(if is_local {
        "feed-video flip-horizontally"
    } else {
        "feed-video"
    });
    video.set_autoplay(true);
    video.set_attribute("playsinline", "")?;
    // Sound plays through the audio element; the video element is always silent.
    video.set_default_muted(true);
    video.set_muted(true);

    let audio: HtmlMediaElement = doc.create_element("audio")?.dyn_into()?;
    audio.set_id(&element_id("audio", peer_id));
    audio.set_autoplay(true);
    if is_local {
        audio.set_default_muted(true);
        audio.set_muted(true);
    }

    let name = doc.create_element("div")?;
    name.set_class_name("feed-label");
    name.set_attribute("data-role", "video-label")?;
    name.set_text_content(Some(label));

    feed.append_child(&video)?;
    feed.append_child(&audio)?;
    feed.append_child(&name)?;
    Ok(feed)
}
