//! The DOM helpers and the landing form against a real DOM, in a real browser (no server).
#![cfg(target_arch = "wasm32")]

mod common;

use std::cell::RefCell;
use std::rc::Rc;

use client::consts::{CONNECTION_ERROR, LOCAL_LABEL, LOCAL_PEER_ID};
use client::form::FormErrors;
use client::landing::{LandingPage, Prefill};
use client::room_ui::{grid_columns, RoomUi};
use common::{fresh_root, install_styles, sleep};
use wasm_bindgen::closure::Closure;
use wasm_bindgen::JsCast;
use wasm_bindgen_test::{wasm_bindgen_test, wasm_bindgen_test_configure};
use web_sys::{Element, Event, HtmlElement, HtmlInputElement, MediaStream};

wasm_bindgen_test_configure!(run_in_browser);

fn by_id(root: &Element, id: &str) -> Element {
    root.query_selector(&format!("#{id}"))
        .unwrap()
        .unwrap_or_else(|| panic!("no #{id}"))
}

fn text(root: &Element, id: &str) -> String {
    by_id(root, id).text_content().unwrap_or_default()
}

#[wasm_bindgen_test]
fn room_page_keeps_the_original_ids() {
    let root = fresh_root();
    let ui = RoomUi::render(&root, "standup");
    for id in [
        "room",
        "participants-list",
        "videochat-error",
        "videos-grid",
        "disconnect",
    ] {
        by_id(&root, id);
    }
    assert_eq!(ui.get_room_id().as_deref(), Some("standup"));
    assert_eq!(
        by_id(&root, "room")
            .get_attribute("data-room-id")
            .as_deref(),
        Some("standup")
    );
    let error: HtmlElement = by_id(&root, "videochat-error").dyn_into().unwrap();
    assert!(error.hidden(), "the error area starts hidden");
}

#[wasm_bindgen_test]
fn tiles_are_added_and_removed() {
    let root = fresh_root();
    let ui = RoomUi::render(&root, "r");
    ui.add_video_element(LOCAL_PEER_ID, LOCAL_LABEL, true);
    ui.add_video_element("p1", "Alice", false);

    let feed = by_id(&root, "feed-local-peer");
    assert_eq!(
        feed.children().length(),
        5,
        "video, audio, placeholder, mic-off badge, label"
    );
    let video = ui.video_element(LOCAL_PEER_ID).unwrap();
    assert_eq!(video.id(), "video-local-peer");
    assert!(video.muted() && video.autoplay());
    assert!(video.has_attribute("playsinline"));
    assert!(
        video.class_list().contains("flip-horizontally"),
        "the local video is mirrored"
    );
    let audio = ui.audio_element(LOCAL_PEER_ID).unwrap();
    assert_eq!(audio.id(), "audio-local-peer");
    assert!(audio.muted(), "we never hear ourselves");
    assert!(feed.text_content().unwrap().contains("Me"));

    let remote_video = ui.video_element("p1").unwrap();
    assert!(!remote_video.class_list().contains("flip-horizontally"));
    assert!(
        remote_video.muted(),
        "sound plays through the audio element"
    );
    let remote_audio = ui.audio_element("p1").unwrap();
    assert_eq!(remote_audio.id(), "audio-p1");
    assert!(!remote_audio.muted() && remote_audio.autoplay());
    assert_eq!(by_id(&root, "feed-p1").text_content().unwrap(), "Alice");

    // Adding again relabels instead of duplicating.
    ui.add_video_element("p1", "Alice B.", false);
    assert_eq!(by_id(&root, "videos-grid").children().length(), 2);
    assert_eq!(by_id(&root, "feed-p1").text_content().unwrap(), "Alice B.");

    ui.remove_video_element("p1");
    assert!(root.query_selector("#feed-p1").unwrap().is_none());
    assert!(!ui.has_video_element("p1"));
    ui.remove_video_element("never-there");
    assert_eq!(by_id(&root, "videos-grid").children().length(), 1);
}

#[wasm_bindgen_test]
fn odd_peer_ids_are_found() {
    let root = fresh_root();
    let ui = RoomUi::render(&root, "r");
    let odd = "1 \"weird\" #id]";
    ui.add_video_element(odd, "X", false);
    assert!(ui.has_video_element(odd));
    assert!(ui.video_element(odd).is_some());
    ui.remove_video_element(odd);
    assert!(!ui.has_video_element(odd));
}

#[wasm_bindgen_test]
fn names_are_text_never_html() {
    let root = fresh_root();
    let ui = RoomUi::render(&root, "<i>room</i>");
    let evil = "<img src=x onerror=\"document.title='pwned'\"><b>Bob</b>";
    ui.add_video_element("p1", evil, false);
    let label = by_id(&root, "feed-p1").last_element_child().unwrap();
    assert_eq!(label.text_content().unwrap(), evil);
    assert_eq!(label.child_element_count(), 0, "no element was parsed");
    assert!(root.query_selector("img").unwrap().is_none());
    assert!(root.query_selector("i").unwrap().is_none());

    ui.set_participants_list(&[evil.to_owned(), "Me & you".to_owned()]);
    let list = by_id(&root, "participants-list");
    assert_eq!(
        list.text_content().unwrap(),
        format!("Participants: {evil}, Me & you")
    );
    // The bold label, then each name isolated in a <bdi> holding only text.
    let children = list.children();
    assert_eq!(children.length(), 3, "the label and one <bdi> per name");
    assert_eq!(children.item(0).unwrap().tag_name(), "B");
    for i in 1..3 {
        let bdi = children.item(i).unwrap();
        assert_eq!(bdi.tag_name(), "BDI");
        assert_eq!(bdi.child_element_count(), 0, "no element was parsed");
    }

    ui.set_error_message(Some("<b>bad</b>"));
    assert_eq!(text(&root, "videochat-error"), "<b>bad</b>");
    assert_eq!(by_id(&root, "videochat-error").child_element_count(), 0);
}

#[wasm_bindgen_test]
fn participants_list_reads_like_the_original() {
    let root = fresh_root();
    let ui = RoomUi::render(&root, "r");
    ui.set_participants_list(&["a".to_owned(), "b".to_owned()]);
    assert_eq!(text(&root, "participants-list"), "Participants: a, b");
    ui.set_participants_list(&["only".to_owned()]);
    assert_eq!(text(&root, "participants-list"), "Participants: only");
}

#[wasm_bindgen_test]
fn error_area_shows_messages() {
    let root = fresh_root();
    let ui = RoomUi::render(&root, "r");
    assert_eq!(ui.error_message(), None);
    ui.set_error_message(Some("Peer denied."));
    let area: HtmlElement = by_id(&root, "videochat-error").dyn_into().unwrap();
    assert!(!area.hidden());
    assert_eq!(ui.error_message().as_deref(), Some("Peer denied."));
    ui.set_error_message(None);
    assert_eq!(ui.error_message().as_deref(), Some(CONNECTION_ERROR));
    ui.set_error_detail(Some("room is full"));
    assert_eq!(text(&root, "videochat-error-detail"), "room is full");
    ui.set_error_detail(None);
    let detail: HtmlElement = by_id(&root, "videochat-error-detail").dyn_into().unwrap();
    assert!(detail.hidden());
}

#[wasm_bindgen_test]
fn grid_columns_follow_the_tutorial() {
    let expected = [1, 1, 2, 2, 2, 3, 3, 4, 4, 4];
    for (tiles, columns) in expected.iter().enumerate() {
        assert_eq!(grid_columns(tiles), *columns, "{tiles} tiles");
    }
}

/// Number of columns the browser actually lays out.
fn laid_out_columns(grid: &Element) -> usize {
    let style = web_sys::window()
        .unwrap()
        .get_computed_style(grid)
        .unwrap()
        .unwrap();
    let columns = style.get_property_value("grid-template-columns").unwrap();
    columns.split_whitespace().count()
}

#[wasm_bindgen_test]
async fn grid_reflows_with_the_number_of_tiles_and_the_width() {
    install_styles();
    let root = fresh_root();
    let page: HtmlElement = root.clone().dyn_into().unwrap();
    page.style().set_property("width", "1200px").unwrap();
    let ui = RoomUi::render(&root, "r");
    let grid = by_id(&root, "videos-grid");
    let mut seen = Vec::new();
    for i in 0..8 {
        ui.add_video_element(&format!("p{i}"), &format!("P{i}"), i == 0);
        sleep(0).await;
        assert_eq!(
            grid.get_attribute("data-columns").unwrap(),
            grid_columns(i + 1).to_string()
        );
        seen.push(laid_out_columns(&grid));
    }
    assert_eq!(seen, vec![1, 2, 2, 2, 3, 3, 4, 4], "on a wide screen");

    // A phone-sized room: one column whatever the count.
    page.style().set_property("width", "360px").unwrap();
    sleep(0).await;
    assert_eq!(laid_out_columns(&grid), 1);

    page.style().set_property("width", "1200px").unwrap();
    for i in 0..6 {
        ui.remove_video_element(&format!("p{i}"));
    }
    sleep(0).await;
    assert_eq!(grid.get_attribute("data-columns").as_deref(), Some("2"));
    assert_eq!(laid_out_columns(&grid), 2);
}

/// A stream from the (fake) camera and microphone.
async fn camera() -> MediaStream {
    client::media_source::MediaSource::default()
        .get()
        .await
        .expect("fake camera and microphone")
}

#[wasm_bindgen_test]
async fn attaching_the_same_stream_again_does_not_reload_the_video() {
    let root = fresh_root();
    let ui = RoomUi::render(&root, "r");
    ui.add_video_element("p1", "P", false);
    let video = ui.video_element("p1").unwrap();
    let loads = Rc::new(RefCell::new(0));
    let counter = loads.clone();
    let on_load_start =
        Closure::<dyn FnMut(Event)>::new(move |_: Event| *counter.borrow_mut() += 1);
    video
        .add_event_listener_with_callback("loadstart", on_load_start.as_ref().unchecked_ref())
        .unwrap();

    let stream = camera().await;
    ui.attach_stream(&stream, "p1");
    sleep(300).await;
    let first = *loads.borrow();
    assert!(first >= 1, "attaching loads the stream");
    // The second track of the same peer arrives: same stream, no new load (no blank frame).
    ui.attach_stream(&stream, "p1");
    sleep(300).await;
    assert_eq!(*loads.borrow(), first);
    let shown = video.src_object().unwrap();
    assert_eq!(shown.id(), stream.id());
    assert_eq!(
        ui.audio_element("p1").unwrap().src_object().unwrap().id(),
        stream.id()
    );

    // Another publisher's stream on a reused tile does load.
    let other = MediaStream::new_with_tracks(&stream.get_tracks()).unwrap();
    ui.attach_stream(&other, "p1");
    sleep(300).await;
    assert!(*loads.borrow() > first);
    assert_eq!(video.src_object().unwrap().id(), other.id());
    client::media::stop_tracks(&stream);
    video
        .remove_event_listener_with_callback("loadstart", on_load_start.as_ref().unchecked_ref())
        .unwrap();
}

#[wasm_bindgen_test]
fn disconnect_button_calls_its_handler() {
    let root = fresh_root();
    let ui = RoomUi::render(&root, "r");
    let clicks = Rc::new(RefCell::new(0));
    let counter = clicks.clone();
    let handler = Closure::<dyn FnMut(Event)>::new(move |_: Event| *counter.borrow_mut() += 1);
    ui.setup_disconnect_button(Some(handler.as_ref().unchecked_ref()));
    let button: HtmlElement = by_id(&root, "disconnect").dyn_into().unwrap();
    button.click();
    assert_eq!(*clicks.borrow(), 1);
    ui.setup_disconnect_button(None);
    button.click();
    assert_eq!(*clicks.borrow(), 1);
}

fn input(root: &Element, id: &str) -> HtmlInputElement {
    by_id(root, id).dyn_into().unwrap()
}

fn landing(prefill: Prefill) -> (Element, LandingPage, Rc<RefCell<Vec<String>>>) {
    let root = fresh_root();
    let visited: Rc<RefCell<Vec<String>>> = Rc::default();
    let sink = visited.clone();
    let page = LandingPage::render(&root, &prefill, move |url: &str| {
        sink.borrow_mut().push(url.to_owned())
    })
    .unwrap();
    (root, page, visited)
}

#[wasm_bindgen_test]
fn landing_form_explains_bad_input() {
    let (root, page, visited) = landing(Prefill::default());
    input(&root, "room_name").set_value("a b");
    input(&root, "display_name").set_value("   ");
    page.form().request_submit().unwrap();
    assert!(visited.borrow().is_empty(), "bad input never navigates");
    assert_eq!(
        text(&root, "room_name-error"),
        "Room name may only contain letters, digits, '-', '_' and '.', not ' '."
    );
    assert_eq!(
        text(&root, "display_name-error"),
        "Display name must not be empty."
    );
    assert_eq!(
        input(&root, "room_name")
            .get_attribute("aria-invalid")
            .as_deref(),
        Some("true")
    );

    input(&root, "room_name").set_value(&"r".repeat(65));
    input(&root, "display_name").set_value(&"é".repeat(65));
    page.form().request_submit().unwrap();
    assert_eq!(
        text(&root, "room_name-error"),
        "Room name is 65 characters, the limit is 64."
    );
    assert_eq!(
        text(&root, "display_name-error"),
        "Display name is 65 characters, the limit is 64."
    );
    assert!(visited.borrow().is_empty());
}

#[wasm_bindgen_test]
fn landing_form_trims_and_navigates() {
    let (root, page, visited) = landing(Prefill::default());
    input(&root, "room_name").set_value("  standup ");
    input(&root, "display_name").set_value(" Zoë & co ");
    page.form().request_submit().unwrap();
    assert_eq!(
        visited.borrow().as_slice(),
        ["/room/standup?display_name=Zo%C3%AB%20%26%20co"]
    );
    let error: HtmlElement = by_id(&root, "room_name-error").dyn_into().unwrap();
    assert!(error.hidden());
    assert_eq!(
        client::landing::remembered_display_name().as_deref(),
        Some("Zoë & co")
    );
}

#[wasm_bindgen_test]
fn landing_form_is_prefilled_from_a_room_link() {
    let (root, _page, _) = landing(Prefill {
        room_name: "standup".into(),
        display_name: "Ann".into(),
        errors: Some(FormErrors {
            room_name: None,
            display_name: Some("Display name must not be empty.".into()),
        }),
    });
    assert_eq!(input(&root, "room_name").value(), "standup");
    assert_eq!(input(&root, "display_name").value(), "Ann");
    assert_eq!(
        text(&root, "display_name-error"),
        "Display name must not be empty."
    );
}

#[wasm_bindgen_test]
async fn sound_button_plays_remote_audio() {
    let root = fresh_root();
    let ui = RoomUi::render(&root, "r");
    let button: HtmlElement = by_id(&root, "enable-audio").dyn_into().unwrap();
    assert!(button.hidden(), "no button while sound plays");
    ui.add_video_element("p1", "P", false);
    let stream = camera().await;
    ui.attach_stream(&stream, "p1");
    ui.show_sound_button(true);
    assert!(!button.hidden());
    let clicks = Rc::new(RefCell::new(0));
    let counter = clicks.clone();
    let handler = Closure::<dyn FnMut(Event)>::new(move |_: Event| *counter.borrow_mut() += 1);
    ui.setup_sound_button(Some(handler.as_ref().unchecked_ref()));
    button.click();
    assert_eq!(*clicks.borrow(), 1);
    ui.play_all_audio();
    assert!(button.hidden(), "the button goes once sound is started");
    common::wait_for("remote audio to play", 5_000.0, || {
        !ui.audio_element("p1").unwrap().paused()
    })
    .await;
    client::media::stop_tracks(&stream);
}

fn key(target: &web_sys::EventTarget, key: &str, shift: bool) -> bool {
    let init = web_sys::KeyboardEventInit::new();
    init.set_key(key);
    init.set_shift_key(shift);
    init.set_bubbles(true);
    init.set_cancelable(true);
    let e = web_sys::KeyboardEvent::new_with_keyboard_event_init_dict("keydown", &init).unwrap();
    target.dispatch_event(&e).unwrap()
}

#[wasm_bindgen_test]
fn tile_states_are_data_attributes() {
    use client::room_ui::TileFlag;
    let root = fresh_root();
    let ui = RoomUi::render(&root, "r");
    ui.add_video_element(LOCAL_PEER_ID, LOCAL_LABEL, true);
    ui.add_video_element("p1", "émile", false);
    let feed = by_id(&root, "feed-p1");
    for attr in ["data-mic-muted", "data-camera-muted", "data-speaking"] {
        assert_eq!(feed.get_attribute(attr).as_deref(), Some("false"), "{attr}");
    }
    ui.set_tile_flag("p1", TileFlag::CameraMuted, true);
    ui.set_tile_flag("p1", TileFlag::MicMuted, true);
    assert_eq!(
        feed.get_attribute("data-camera-muted").as_deref(),
        Some("true")
    );
    assert!(ui.tile_flag("p1", TileFlag::MicMuted));
    let placeholder = feed
        .query_selector("[data-role=placeholder]")
        .unwrap()
        .unwrap();
    assert_eq!(
        placeholder.get_attribute("data-initial").as_deref(),
        Some("É")
    );
    assert_eq!(
        feed.text_content().unwrap(),
        "émile",
        "the tile's text is the name"
    );

    let quality = feed.query_selector("[data-role=quality]").unwrap().unwrap();
    assert_eq!(
        quality.get_attribute("data-quality").as_deref(),
        Some("unknown")
    );
    ui.set_quality("p1", "poor");
    assert_eq!(
        quality.get_attribute("data-quality").as_deref(),
        Some("poor")
    );
    let me = by_id(&root, "feed-local-peer");
    assert!(me.query_selector("[data-role=quality]").unwrap().is_none());

    ui.add_screen_tile("p1", "<b>émile</b>");
    let screen = by_id(&root, "feed-screen-p1");
    assert!(screen.class_list().contains("feed-screen"));
    assert_eq!(
        by_id(&root, "videos-grid")
            .first_element_child()
            .unwrap()
            .id(),
        "feed-screen-p1"
    );
    by_id(&root, "video-screen-p1");
    let label = screen
        .query_selector("[data-role=video-label]")
        .unwrap()
        .unwrap();
    assert_eq!(label.text_content().unwrap(), "<b>émile</b>'s screen");
    assert!(root.query_selector("b").unwrap().is_none());
    assert_eq!(
        by_id(&root, "videos-grid")
            .get_attribute("data-columns")
            .as_deref(),
        Some("2"),
        "a screen tile is not a column"
    );
    ui.remove_screen_tile("p1");
    assert!(root.query_selector("#feed-screen-p1").unwrap().is_none());
    assert!(ui.has_video_element("p1"), "the camera tile stays");
}

fn chat_message(seq: u64, peer: &str, name: &str, text: &str) -> protocol::ChatMessage {
    protocol::ChatMessage {
        seq,
        peer_id: peer.to_owned(),
        display_name: name.to_owned(),
        text: text.to_owned(),
        sent_at_ms: 1_764_000_000_000 + seq * 60_000,
    }
}

#[wasm_bindgen_test]
fn chat_shows_text_as_text_and_counts_unread() {
    use client::chat::Chat;
    let root = fresh_root();
    let ui = RoomUi::render(&root, "r");
    let chat = Chat::attach(&ui, |_| true);
    let panel: HtmlElement = by_id(&root, "chat").dyn_into().unwrap();
    assert!(panel.hidden(), "the chat starts closed");

    chat.receive(&chat_message(1, "p0", "Old", "from before"), false, false);
    let evil = "<img src=x onerror=alert(1)> <b>hi</b>\nsecond line";
    chat.receive(&chat_message(3, "p1", "<i>Zoë</i>", evil), false, true);
    chat.receive(&chat_message(3, "p1", "<i>Zoë</i>", evil), false, true);
    chat.receive(&chat_message(2, "me", "Me", "mine"), true, true);
    let items = root
        .query_selector_all("#chat-messages .chat-message")
        .unwrap();
    assert_eq!(items.length(), 3, "a repeated seq is shown once");
    let last: Element = items.item(2).unwrap().dyn_into().unwrap();
    let part = |role: &str| {
        last.query_selector(&format!("[data-role={role}]"))
            .unwrap()
            .unwrap()
    };
    assert_eq!(part("chat-text").text_content().unwrap(), evil);
    assert_eq!(part("chat-text").child_element_count(), 0);
    assert_eq!(part("chat-author").text_content().unwrap(), "<i>Zoë</i>");
    assert!(root
        .query_selector("#chat img, #chat b, #chat i")
        .unwrap()
        .is_none());
    let time = part("chat-time");
    assert_eq!(time.tag_name(), "TIME");
    let date = js_sys::Date::new(&1_764_000_180_000_f64.into());
    assert_eq!(
        time.get_attribute("datetime"),
        date.to_iso_string().as_string()
    );
    assert_eq!(
        time.text_content().unwrap(),
        format!("{:02}:{:02}", date.get_hours(), date.get_minutes())
    );
    // In order of seq, whatever the arrival.
    let first: Element = items.item(1).unwrap().dyn_into().unwrap();
    assert!(first.class_list().contains("chat-message-own"));

    assert_eq!(chat.unread(), 1, "neither history nor our own count");
    let badge: HtmlElement = by_id(&root, "chat-unread").dyn_into().unwrap();
    assert!(!badge.hidden());
    assert_eq!(badge.text_content().unwrap(), "1");
    chat.set_open(true);
    assert!(!panel.hidden());
    assert!(badge.hidden());
    assert_eq!(
        by_id(&root, "toggle-chat")
            .get_attribute("aria-pressed")
            .as_deref(),
        Some("true")
    );
    chat.receive(&chat_message(4, "p1", "Zoë", "seen"), false, true);
    assert_eq!(
        chat.unread(),
        0,
        "nothing is unread while the panel is open"
    );
}

#[wasm_bindgen_test]
fn chat_input_validates_and_sends_on_enter() {
    use client::chat::{Chat, NOT_CONNECTED};
    let root = fresh_root();
    let ui = RoomUi::render(&root, "r");
    let sent: Rc<RefCell<Vec<String>>> = Rc::default();
    let connected = Rc::new(std::cell::Cell::new(true));
    let (sink, up) = (sent.clone(), connected.clone());
    let _chat = Chat::attach(&ui, move |t| {
        sink.borrow_mut().push(t.to_owned());
        up.get()
    });
    let input: web_sys::HtmlTextAreaElement = by_id(&root, "chat-input").dyn_into().unwrap();
    assert_eq!(
        input.get_attribute("maxlength").as_deref(),
        Some(protocol::MAX_CHAT_CHARS.to_string().as_str())
    );
    let error: HtmlElement = by_id(&root, "chat-error").dyn_into().unwrap();

    input.set_value("   ");
    assert!(!key(&input, "Enter", false), "Enter is taken");
    assert!(!error.hidden());
    assert_eq!(
        error.text_content().unwrap(),
        "Chat message must not be empty."
    );
    assert!(sent.borrow().is_empty());

    input.set_value("line one\nline two");
    assert!(key(&input, "Enter", true), "Shift+Enter types a new line");
    assert!(sent.borrow().is_empty());
    assert!(!key(&input, "Enter", false));
    assert_eq!(sent.borrow().as_slice(), ["line one\nline two"]);
    assert_eq!(input.value(), "");
    assert!(error.hidden());

    input.set_value("x".repeat(protocol::MAX_CHAT_CHARS + 1).as_str());
    by_id(&root, "chat-send")
        .dyn_into::<HtmlElement>()
        .unwrap()
        .click();
    assert_eq!(
        error.text_content().unwrap(),
        "Chat message is 1001 characters, the limit is 1000."
    );

    connected.set(false);
    input.set_value("hello");
    by_id(&root, "chat-send")
        .dyn_into::<HtmlElement>()
        .unwrap()
        .click();
    assert_eq!(error.text_content().unwrap(), NOT_CONNECTED);
    assert_eq!(input.value(), "hello", "kept to send again");
}

#[wasm_bindgen_test]
fn shortcuts_toggle_but_not_while_typing() {
    use client::controls::{Control, Controls};
    let root = fresh_root();
    let ui = RoomUi::render(&root, "r");
    let used: Rc<RefCell<Vec<Control>>> = Rc::default();
    let sink = used.clone();
    let controls = Controls::attach(&ui, move |c| sink.borrow_mut().push(c));
    let doc = web_sys::window().unwrap().document().unwrap();
    key(&doc, "m", false);
    key(&doc, "v", false);
    key(&doc, "x", false);
    let input = by_id(&root, "chat-input");
    key(&input, "m", false);
    key(&input, "v", false);
    for id in [
        "toggle-mic",
        "toggle-camera",
        "toggle-screen",
        "toggle-chat",
        "toggle-stats",
    ] {
        by_id(&root, id).dyn_into::<HtmlElement>().unwrap().click();
    }
    assert_eq!(
        used.borrow().as_slice(),
        [
            Control::Mic,
            Control::Camera,
            Control::Mic,
            Control::Camera,
            Control::Screen,
            Control::Chat,
            Control::Stats
        ]
    );
    drop(controls);
    key(&doc, "m", false);
    by_id(&root, "toggle-mic")
        .dyn_into::<HtmlElement>()
        .unwrap()
        .click();
    assert_eq!(used.borrow().len(), 7, "detached with the controls");
}

#[wasm_bindgen_test]
async fn landing_preview_lists_the_devices() {
    use client::devices::{self, DeviceKind};
    let root = fresh_root();
    let page = LandingPage::render(&root, &Prefill::default(), |_| {}).unwrap();
    let select = |id: &str| -> web_sys::HtmlSelectElement { by_id(&root, id).dyn_into().unwrap() };
    page.start_preview();
    let video: web_sys::HtmlMediaElement = by_id(&root, "preview").dyn_into().unwrap();
    let start = common::now_ms();
    while select("camera-select").length() == 0 || select("microphone-select").length() == 0 {
        assert!(common::now_ms() - start < 10_000.0, "no devices listed");
        sleep(50).await;
    }
    assert!(video.src_object().is_some(), "the camera is previewed");
    let camera = select("camera-select").value();
    assert!(!camera.is_empty(), "the camera in use is selected");

    // A choice is remembered, and asked for exactly.
    devices::remember(DeviceKind::Camera, &camera);
    assert_eq!(
        devices::remembered(DeviceKind::Camera).as_deref(),
        Some(camera.as_str())
    );
    let c = devices::constraints(
        &client::consts::MEDIA_CONSTRAINTS,
        Some("cam-1"),
        Some("mic-1"),
    );
    let json = js_sys::JSON::stringify(&c).unwrap().as_string().unwrap();
    assert!(json.contains(r#""deviceId":{"exact":"cam-1"}"#), "{json}");
    assert!(
        json.contains(r#""audio":{"deviceId":{"exact":"mic-1"}}"#),
        "{json}"
    );
    assert!(json.contains(r#""width":640"#), "{json}");
    web_sys::window()
        .unwrap()
        .local_storage()
        .unwrap()
        .unwrap()
        .remove_item("videoroom.cameraId")
        .unwrap();

    drop(page);
    let stream = video.src_object();
    assert!(stream.is_none(), "the preview stops with the page");
}
