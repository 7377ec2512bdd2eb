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
  <p id="connection-status" class="connection-status" role="status" hidden>Reconnecting…</p>
  <div class="errors">
    <p id="videochat-error" class="error" role="alert" hidden></p>
    <p id="videochat-error-detail" class="error-detail" hidden></p>
  </div>
  <div class="room-body">
    <main class="videos">
      <div id="videos-grid" class="videos-grid" data-columns="1"></div>
    </main>
    <aside id="chat" class="side-panel chat" aria-label="Chat" hidden>
      <h2 class="side-panel-title">Chat</h2>
      <ol id="chat-messages" class="chat-messages" aria-live="polite"></ol>
      <div class="chat-compose">
        <textarea id="chat-input" class="chat-input" rows="2" placeholder="Message everyone (Enter sends, Shift+Enter: new line)" aria-describedby="chat-error"></textarea>
        <button id="chat-send" class="button button-primary" type="button">Send</button>
      </div>
      <p id="chat-error" class="field-error" role="alert" hidden></p>
    </aside>
    <aside id="stats-panel" class="side-panel stats" aria-label="Connection statistics" hidden>
      <h2 class="side-panel-title">Connection</h2>
      <p class="stats-outbound">Sending: <span id="stats-outbound" data-stat="outbound-bitrate">–</span> kbit/s</p>
      <p class="stats-outbound">Receiving up to: <span id="stats-downlink" data-stat="downlink-estimate">no limit</span></p>
      <table class="stats-table">
        <thead><tr><th>Track</th><th>Peer</th><th>Size</th><th>kbit/s</th><th>Loss %</th><th>Jitter ms</th><th>RTT ms</th></tr></thead>
        <tbody id="stats-rows"></tbody>
      </table>
    </aside>
  </div>
  <footer class="controls" role="toolbar" aria-label="Call controls">
    <button id="toggle-mic" class="control" type="button" aria-pressed="false" title="Mute the microphone (m)"><span data-role="control-label">Mic</span></button>
    <button id="toggle-camera" class="control" type="button" aria-pressed="false" title="Turn the camera off (v)"><span data-role="control-label">Camera</span></button>
    <button id="toggle-screen" class="control" type="button" aria-pressed="false" title="Share your screen"><span data-role="control-label">Share screen</span></button>
    <button id="toggle-chat" class="control" type="button" aria-pressed="false" title="Chat"><span data-role="control-label">Chat</span> <span id="chat-unread" class="badge" aria-label="unread messages" hidden>0</span></button>
    <button id="toggle-stats" class="control" type="button" aria-pressed="false" title="Connection statistics"><span data-role="control-label">Stats</span></button>
    <label class="device-select">Mic <select id="room-microphone-select" aria-label="Microphone"></select></label>
    <label class="device-select">Camera <select id="room-camera-select" aria-label="Camera"></select></label>
  </footer>
</div>"#;

/// The mic-off badge's icon (fixed markup).
const MIC_OFF_ICON: &str = r#"<svg viewBox="0 0 24 24" width="16" height="16" aria-hidden="true"><path fill="currentColor" d="M12 14a3 3 0 0 0 3-3V5a3 3 0 0 0-6 0v6a3 3 0 0 0 3 3zm5-3a5 5 0 0 1-10 0H5a7 7 0 0 0 6 6.9V21h2v-3.1A7 7 0 0 0 19 11h-2z"/><path stroke="currentColor" stroke-width="2" d="M4 4l16 16"/></svg>"#;

/// A tile's state shown by a `data-*` attribute (and styled by CSS).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TileFlag {
    /// `data-mic-muted`: the mic-off badge.
    MicMuted,
    /// `data-camera-muted`: the video hidden, the initial shown.
    CameraMuted,
    /// `data-speaking`: the highlight.
    Speaking,
    /// `data-video-paused`: the server paused this video for us (our link is too slow).
    VideoPaused,
}

impl TileFlag {
    fn attribute(self) -> &'static str {
        match self {
            TileFlag::MicMuted => "data-mic-muted",
            TileFlag::CameraMuted => "data-camera-muted",
            TileFlag::Speaking => "data-speaking",
            TileFlag::VideoPaused => "data-video-paused",
        }
    }
}

/// The id (peer part) of a peer's screen tile: `feed-screen-<peerId>`, `video-screen-<peerId>`.
pub fn screen_id(peer_id: &str) -> String {
    format!("screen-{peer_id}")
}

/// The letter shown for a person whose camera is off: the name's first character, upper case
/// (by the browser: Rust's Unicode case tables would add 16 KB to the bundle).
pub fn initial(name: &str) -> String {
    name.trim()
        .chars()
        .next()
        .map(|c| String::from(js_sys::JsString::from(c).to_upper_case()))
        .unwrap_or_default()
}

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
        self.add_tile(peer_id, label, label, is_local, Tile::Person);
    }

    /// Adds a peer's screen tile (`feed-screen-<peerId>`, spanning the grid's width, first in
    /// it), labelled "<name>'s screen"; or relabels it.
    pub fn add_screen_tile(&self, peer_id: &str, name: &str) {
        let label = format!("{name}'s screen");
        self.add_tile(&screen_id(peer_id), &label, name, false, Tile::Screen);
    }

    /// Removes a peer's screen tile, if any.
    pub fn remove_screen_tile(&self, peer_id: &str) {
        self.remove_video_element(&screen_id(peer_id));
    }

    /// Adds our own screen preview (`feed-screen-local-peer`).
    pub fn add_local_screen_tile(&self) {
        self.add_tile(
            &screen_id(crate::consts::LOCAL_PEER_ID),
            "Your screen",
            "",
            true,
            Tile::Screen,
        );
    }

    fn add_tile(&self, peer_id: &str, label: &str, name: &str, is_local: bool, tile: Tile) {
        if let Some(feed) = self.feed(peer_id) {
            if let Some(l) = child_with_role(&feed, "video-label") {
                l.set_text_content(Some(label));
            }
            if let Some(p) = child_with_role(&feed, "placeholder") {
                let _ = p.set_attribute("data-initial", &initial(name));
            }
            return;
        }
        let (Some(grid), Some(doc)) = (self.find("#videos-grid"), self.root.owner_document())
        else {
            log::warn("room page missing: cannot add a video tile");
            return;
        };
        match build_tile(&doc, peer_id, label, name, is_local, tile) {
            Ok(feed) => {
                // Screens come first: the big picture people look at.
                let _ = match tile {
                    Tile::Screen => grid.prepend_with_node_1(&feed),
                    Tile::Person => grid.append_child(&feed).map(|_| ()),
                };
                self.resize_videos_grid();
            }
            Err(e) => log::warn_failed("cannot add a video tile", &e),
        }
    }

    /// Removes a peer's tile, if any.
    pub fn remove_video_element(&self, peer_id: &str) {
        if let Some(feed) = self.feed(peer_id) {
            feed.remove();
            self.resize_videos_grid();
        }
    }

    /// Sets one of a tile's `data-*` states (no tile: nothing happens).
    pub fn set_tile_flag(&self, peer_id: &str, flag: TileFlag, on: bool) {
        if let Some(feed) = self.feed(peer_id) {
            let _ = feed.set_attribute(flag.attribute(), if on { "true" } else { "false" });
        }
    }

    /// A tile's `data-*` state.
    pub fn tile_flag(&self, peer_id: &str, flag: TileFlag) -> bool {
        self.feed(peer_id)
            .and_then(|f| f.get_attribute(flag.attribute()))
            .as_deref()
            == Some("true")
    }

    /// Sets a remote tile's connection-quality indicator (`data-quality`).
    pub fn set_quality(&self, peer_id: &str, quality: &str) {
        if let Some(q) = self
            .feed(peer_id)
            .and_then(|f| child_with_role(&f, "quality"))
        {
            let _ = q.set_attribute("data-quality", quality);
            let _ = q.set_attribute("title", &format!("Connection: {quality}"));
        }
    }

    /// The element with this (fixed) id in the room page.
    pub fn element(&self, id: &str) -> Option<HtmlElement> {
        self.find_html(&format!("#{id}"))
    }

    /// Sets a toggle button's `aria-pressed`.
    pub fn set_pressed(&self, id: &str, pressed: bool) {
        if let Some(b) = self.element(id) {
            let _ = b.set_attribute("aria-pressed", if pressed { "true" } else { "false" });
        }
    }

    /// Whether a toggle button is pressed.
    pub fn is_pressed(&self, id: &str) -> bool {
        self.element(id)
            .and_then(|b| b.get_attribute("aria-pressed"))
            .as_deref()
            == Some("true")
    }

    /// Shows or hides `#connection-status` ("Reconnecting…").
    pub fn show_reconnecting(&self, shown: bool) {
        if let Some(s) = self.element("connection-status") {
            s.set_hidden(!shown);
        }
    }

    /// Hides the error area (after recovering from a problem).
    pub fn clear_error_message(&self) {
        if let Some(area) = self.element("videochat-error") {
            area.set_hidden(true);
        }
        self.set_error_detail(None);
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

    /// Shows "Participants: a, b" (the label in bold, each name as text in its own `<bdi>`).
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
        let _ = list.append_child(&doc.create_text_node(": "));
        for (i, name) in names.iter().enumerate() {
            if i > 0 {
                let _ = list.append_child(&doc.create_text_node(", "));
            }
            // Isolated: a right-to-left name cannot reorder the commas and names around it.
            if let Ok(bdi) = doc.create_element("bdi") {
                bdi.set_text_content(Some(name));
                let _ = list.append_child(&bdi);
            }
        }
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
            // Screen tiles span the width on their own row; columns are for people.
            let people = children(&grid)
                .filter(|c| !c.class_list().contains("feed-screen"))
                .count();
            let columns = grid_columns(people);
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

/// What a tile shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tile {
    /// A person: camera, sound, state badges.
    Person,
    /// A shared screen: video only.
    Screen,
}

fn build_tile(
    doc: &Document,
    peer_id: &str,
    label: &str,
    name: &str,
    is_local: bool,
    tile: Tile,
) -> Result<Element, JsValue> {
    let feed = doc.create_element("div")?;
    feed.set_id(&element_id("feed", peer_id));
    let class = match (tile, is_local) {
        (Tile::Screen, _) => "feed feed-screen",
        (Tile::Person, true) => "feed feed-local",
        (Tile::Person, false) => "feed",
    };
    feed.set_class_name(class);

    let video: HtmlMediaElement = doc.create_element("video")?.dyn_into()?;
    video.set_id(&element_id("video", peer_id));
    // Our camera is mirrored (as in a mirror); a shared screen never is.
    video.set_class_name(if is_local && tile == Tile::Person {
        "feed-video flip-horizontally"
    } else {
        "feed-video"
    });
    video.set_autoplay(true);
    video.set_attribute("playsinline", "")?;
    // Sound plays through the audio element; the video element is always silent.
    video.set_default_muted(true);
    video.set_muted(true);
    feed.append_child(&video)?;

    if tile == Tile::Person {
        for flag in [
            TileFlag::MicMuted,
            TileFlag::CameraMuted,
            TileFlag::Speaking,
        ] {
            feed.set_attribute(flag.attribute(), "false")?;
        }
        let audio: HtmlMediaElement = doc.create_element("audio")?.dyn_into()?;
        audio.set_id(&element_id("audio", peer_id));
        audio.set_autoplay(true);
        if is_local {
            audio.set_default_muted(true);
            audio.set_muted(true);
        }
        feed.append_child(&audio)?;

        let placeholder = doc.create_element("div")?;
        placeholder.set_class_name("feed-placeholder");
        placeholder.set_attribute("data-role", "placeholder")?;
        placeholder.set_attribute("aria-hidden", "true")?;
        // Shown by CSS (`attr()`): the tile's text stays the name alone.
        placeholder.set_attribute("data-initial", &initial(name))?;
        feed.append_child(&placeholder)?;

        let mic_off = doc.create_element("span")?;
        mic_off.set_class_name("feed-mic-off");
        mic_off.set_attribute("data-role", "mic-off")?;
        mic_off.set_attribute("title", "Microphone muted")?;
        mic_off.set_inner_html(MIC_OFF_ICON);
        feed.append_child(&mic_off)?;

        if !is_local {
            let quality = doc.create_element("span")?;
            quality.set_class_name("feed-quality");
            quality.set_attribute("data-role", "quality")?;
            quality.set_attribute("data-quality", "unknown")?;
            quality.set_attribute("title", "Connection: unknown")?;
            for _ in 0..3 {
                let bar = doc.create_element("span")?;
                quality.append_child(&bar)?;
            }
            feed.append_child(&quality)?;
        }
    }

    let label_element = doc.create_element("div")?;
    label_element.set_class_name("feed-label");
    label_element.set_attribute("data-role", "video-label")?;
    label_element.set_text_content(Some(label));
    feed.append_child(&label_element)?;
    Ok(feed)
}
