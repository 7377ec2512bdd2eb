//! The Room against a real server (started by the test command; its address comes in
//! `VIDEOROOM_TEST_SERVER` at compile time), in a real browser with a fake camera/microphone.
#![cfg(target_arch = "wasm32")]

mod common;

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use client::consts::{
    MediaConstraints, VideoConstraints, CONNECTION_ERROR, LOCAL_PEER_ID, MEDIA_CONSTRAINTS,
    MEDIA_ERROR, PEER_DENIED,
};
use client::media_source::MediaSource;
use client::{Room, RoomError, RoomOptions};
use common::{fresh_root, max_peers_per_room, now_ms, socket_url, unique_room, wait_for, RawPeer};
use js_sys::Promise;
use protocol::{
    topic_for_room, ClientMediaEvent, ClientMessage, PeerId, PeerMetadata, ServerMediaEvent,
    ServerMessage, TileSize, TrackSource, PROTOCOL_VERSION,
};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_test::{console_log, wasm_bindgen_test, wasm_bindgen_test_configure};
use web_sys::{
    HtmlElement, HtmlVideoElement, MediaStreamTrackState, RtcIceConnectionState, RtcSignalingState,
};

wasm_bindgen_test_configure!(run_in_browser);

/// A room's root, in view: the page tells the server how big each remote video is shown and
/// that one scrolled out of view needs none (`tile_observer`), so a room rendered below the
/// earlier tests' rooms would get no video. Tiles are small (no stylesheet here), all at the
/// top left; a test may size one itself.
fn room_root() -> web_sys::Element {
    let root = fresh_root();
    root.set_attribute(
        "style",
        "position: fixed; top: 0; left: 0; width: 400px; max-height: 100vh",
    )
    .unwrap();
    let document = web_sys::window().unwrap().document().unwrap();
    if document.get_element_by_id("room-test-css").is_none() {
        let style = document.create_element("style").unwrap();
        style.set_id("room-test-css");
        style.set_text_content(Some("video { width: 96px; height: 54px; }"));
        document.head().unwrap().append_child(&style).unwrap();
    }
    root
}

fn options(room: &str, name: &str) -> RoomOptions {
    RoomOptions {
        socket_url: socket_url(),
        room_name: room.to_owned(),
        display_name: name.to_owned(),
        root: room_root(),
        media: MediaSource::default(),
        ice_servers: Vec::new(),
        on_disconnect: None,
        join_token: None,
    }
}

fn room(room: &str, name: &str) -> Room {
    Room::with_options(options(room, name)).expect("room")
}

fn ice_connected(room: &Room) -> bool {
    room.peer_connection().is_some_and(|pc| {
        matches!(
            pc.ice_connection_state(),
            RtcIceConnectionState::Connected | RtcIceConnectionState::Completed
        )
    })
}

fn participants(room: &Room) -> String {
    room.ui()
        .root()
        .query_selector("#participants-list")
        .unwrap()
        .unwrap()
        .text_content()
        .unwrap()
}

/// Whether `viewer` plays `peer_id`'s audio and video, frames included.
fn receives_media_of(viewer: &Room, peer_id: &str) -> bool {
    let Some(video) = viewer.ui().video_element(peer_id) else {
        return false;
    };
    let Some(stream) = video.src_object() else {
        return false;
    };
    let video: HtmlVideoElement = video.dyn_into().unwrap();
    stream.get_audio_tracks().length() == 1
        && stream.get_video_tracks().length() == 1
        && video.video_width() > 0
}

/// What `viewer` shows of `peer_id`, for failure messages.
fn media_report(viewer: &Room, peer_id: &str) -> String {
    let mut out = format!("tile: {}", viewer.ui().has_video_element(peer_id));
    if let Some(video) = viewer.ui().video_element(peer_id) {
        let video: HtmlVideoElement = video.dyn_into().unwrap();
        out += &format!(
            ", video {}x{} readyState {} paused {}",
            video.video_width(),
            video.video_height(),
            video.ready_state(),
            video.paused()
        );
        if let Some(stream) = video.src_object() {
            out += &format!(", stream {}:", stream.id());
            for t in client::media::tracks(&stream) {
                out += &format!(
                    " [{} {} {:?} muted={}]",
                    t.kind(),
                    t.id(),
                    t.ready_state(),
                    t.muted()
                );
            }
        }
    }
    if let Some(pc) = viewer.peer_connection() {
        if let Some(remote) = pc.remote_description() {
            let sdp = remote.sdp();
            let lines: Vec<&str> = sdp
                .lines()
                .filter(|l| {
                    l.starts_with("a=mid")
                        || l.starts_with("a=msid")
                        || l.contains("msid:")
                        || l.starts_with("a=send")
                        || l.starts_with("a=recv")
                        || l.starts_with("a=inactive")
                })
                .map(|l| &l[..l.len().min(80)])
                .collect::<Vec<_>>();
            out += &format!(", remote sdp: {}", lines.join(" | "));
        }
        out += &format!(", ice {:?}, transceivers:", pc.ice_connection_state());
        for t in pc.get_transceivers().iter() {
            let t: web_sys::RtcRtpTransceiver = t.dyn_into().unwrap();
            let track = t.receiver().track();
            out += &format!(
                " [mid {:?} {:?}/{:?} rx {} muted={}]",
                t.mid(),
                t.direction(),
                t.current_direction(),
                track.id(),
                track.muted()
            );
        }
    }
    out
}

/// The inbound RTP statistics of `room`'s peer connection, for failure messages.
async fn inbound_rtp(room: &Room) -> String {
    let Some(pc) = room.peer_connection() else {
        return "no peer connection".into();
    };
    let Ok(report) = wasm_bindgen_futures::JsFuture::from(pc.get_stats()).await else {
        return "no stats".into();
    };
    let mut out = String::from("inbound-rtp:");
    let values = js_sys::Reflect::get(&report, &"values".into())
        .ok()
        .and_then(|f| f.dyn_into::<js_sys::Function>().ok())
        .and_then(|f| f.call0(&report).ok());
    if let Some(iter) = values.and_then(|v| js_sys::try_iter(&v).ok().flatten()) {
        for stat in iter.flatten() {
            let get = |k: &str| js_sys::Reflect::get(&stat, &k.into()).unwrap_or_default();
            if get("type").as_string().as_deref() == Some("inbound-rtp") {
                out += &format!(
                    " [mid {:?} ssrc {:?} {:?} packets {:?}]",
                    get("mid").as_string(),
                    get("ssrc").as_f64(),
                    get("kind").as_string(),
                    get("packetsReceived").as_f64()
                );
            }
        }
    }
    out
}

/// Waits until `viewer` plays `peer_id`'s audio and video.
async fn wait_for_media(viewer: &Room, peer_id: &str, what: &str) -> f64 {
    let start = now_ms();
    while !receives_media_of(viewer, peer_id) {
        if now_ms() - start > 20_000.0 {
            panic!(
                "timed out waiting for {what}: {}; {}",
                media_report(viewer, peer_id),
                inbound_rtp(viewer).await
            );
        }
        common::sleep(50).await;
    }
    now_ms()
}

/// Leaves, and checks everything leave promises.
fn assert_left(room: &Room) {
    assert!(room.has_left());
    assert!(room.endpoint().has_left());
    assert!(
        room.peer_connection().is_none(),
        "the peer connection is gone"
    );
    assert!(
        !room.socket_handlers_registered(),
        "socket handlers unregistered"
    );
    let ws = room.web_socket();
    assert!(ws.onmessage().is_none() && ws.onclose().is_none() && ws.onerror().is_none());
    assert!(ws.onopen().is_none());
    if let Some(stream) = room.local_stream() {
        for track in client::media::tracks(&stream) {
            assert_eq!(
                track.ready_state(),
                MediaStreamTrackState::Ended,
                "local {} stopped",
                track.kind()
            );
        }
    }
}

/// Alice and Bob in the room, Bob already playing Alice's media: where most tests start.
async fn alice_then_bob(name: &str) -> (Room, PeerId, Room) {
    let alice = room(name, "Alice");
    let alice_id = alice.join().await.expect("Alice joins");
    let bob = room(name, "Bob");
    bob.join().await.expect("Bob joins");
    wait_for_media(&bob, &alice_id, "Bob to play Alice").await;
    (alice, alice_id, bob)
}

#[wasm_bindgen_test]
async fn join_connects_and_exchanges_media_with_a_second_participant() {
    let name = unique_room("two");
    let alice = room(&name, "Alice");
    let alice_id = alice.join().await.expect("Alice joins");
    assert!(!alice_id.is_empty());
    assert_eq!(
        alice.endpoint().local_peer_id().as_deref(),
        Some(alice_id.as_str())
    );
    assert!(alice.ui().has_video_element(LOCAL_PEER_ID));
    let me = alice
        .ui()
        .root()
        .query_selector("#feed-local-peer")
        .unwrap()
        .unwrap();
    assert_eq!(me.text_content().unwrap(), "Me");
    assert_eq!(participants(&alice), "Participants: Alice");
    wait_for("Alice's ICE to connect", 15_000.0, || ice_connected(&alice)).await;
    assert_eq!(alice.endpoint().uplink().len(), 2, "audio and video sent");

    let t0 = now_ms();
    let bob = room(&name, "Bob");
    let bob_id = bob.join().await.expect("Bob joins");
    assert_eq!(participants(&bob), "Participants: Alice, Bob");
    assert!(
        bob.ui().has_video_element(&alice_id),
        "Bob sees Alice's tile"
    );
    wait_for("Bob's ICE to connect", 15_000.0, || ice_connected(&bob)).await;

    wait_for("Alice to list Bob", 10_000.0, || {
        participants(&alice) == "Participants: Bob, Alice"
    })
    .await;
    let bob_sees = wait_for_media(&bob, &alice_id, "Bob to play Alice").await - t0;
    let alice_sees = wait_for_media(&alice, &bob_id, "Alice to play Bob").await - t0;
    console_log!(
        "join → first remote frame: Bob sees Alice after {bob_sees:.0} ms, Alice sees Bob after {alice_sees:.0} ms"
    );

    // One MediaStream per publisher (its id is the publisher's id), in video and audio alike.
    let stream = alice
        .ui()
        .video_element(&bob_id)
        .unwrap()
        .src_object()
        .unwrap();
    assert_eq!(stream.id(), bob_id);
    let audio_stream = alice
        .ui()
        .audio_element(&bob_id)
        .unwrap()
        .src_object()
        .unwrap();
    assert!(js_sys::Object::is(&stream, &audio_stream));
    let name_tag = alice
        .ui()
        .root()
        .query_selector(&format!("[id='feed-{bob_id}']"))
        .unwrap()
        .unwrap();
    assert_eq!(name_tag.text_content().unwrap(), "Bob");

    // Bob leaves: his tile and name go from Alice's page.
    bob.leave();
    assert_left(&bob);
    wait_for("Bob's tile to go", 10_000.0, || {
        !alice.ui().has_video_element(&bob_id)
    })
    .await;
    assert_eq!(participants(&alice), "Participants: Alice");
    assert!(alice.peers().is_empty());

    alice.leave();
    assert_left(&alice);
}

#[wasm_bindgen_test]
async fn a_newcomer_after_a_departure_is_seen_and_heard() {
    let name = unique_room("reuse");
    let alice = room(&name, "Alice");
    let alice_id = alice.join().await.expect("Alice joins");
    let bob = room(&name, "Bob");
    let bob_id = bob.join().await.expect("Bob joins");
    wait_for_media(&alice, &bob_id, "Alice to play Bob").await;
    bob.leave();
    wait_for("Bob's tile to go", 10_000.0, || {
        !alice.ui().has_video_element(&bob_id)
    })
    .await;

    // Carol's tracks may come on the transceivers that carried Bob's.
    let carol = room(&name, "Carol");
    let carol_id = carol.join().await.expect("Carol joins");
    wait_for_media(&carol, &alice_id, "Carol to play Alice").await;
    wait_for_media(&alice, &carol_id, "Alice to play Carol").await;
    assert_eq!(participants(&alice), "Participants: Carol, Alice");
    carol.leave();
    alice.leave();
}

#[wasm_bindgen_test]
async fn refused_media_shows_the_exact_message() {
    let name = unique_room("nomedia");
    let no_such_camera = MediaConstraints {
        video: Some(VideoConstraints {
            device_id: Some("no-such-camera"),
            ..MEDIA_CONSTRAINTS.video.unwrap()
        }),
        ..MEDIA_CONSTRAINTS
    };
    let r = Room::with_options(RoomOptions {
        media: MediaSource::UserMedia(no_such_camera),
        ..options(&name, "Dan")
    })
    .unwrap();
    let err = r.join().await.unwrap_err();
    assert!(matches!(err, RoomError::Media(_)), "{err:?}");
    assert_eq!(r.ui().error_message().as_deref(), Some(MEDIA_ERROR));
    assert_eq!(
        MEDIA_ERROR,
        "Failed to setup video room, make sure to grant camera and microphone permissions"
    );
    assert!(!r.ui().has_video_element(LOCAL_PEER_ID), "no local tile");
    assert!(r.peer_connection().is_none(), "never joined");
    r.leave();
    assert_left(&r);
}

#[wasm_bindgen_test]
async fn permission_denied_shows_the_exact_message() {
    let name = unique_room("denied-media");
    let r = Room::with_options(RoomOptions {
        media: MediaSource::Custom(Box::new(|| {
            let e = web_sys::DomException::new_with_message_and_name("denied", "NotAllowedError")
                .unwrap();
            Promise::reject(&e)
        })),
        ..options(&name, "Eve")
    })
    .unwrap();
    let err = r.join().await.unwrap_err();
    assert_eq!(err, RoomError::Media("NotAllowedError: denied".into()));
    assert_eq!(r.ui().error_message().as_deref(), Some(MEDIA_ERROR));
    r.leave();
}

/// A peer without media, holding a place in `room`.
async fn placeholder(room: &str, n: usize) -> RawPeer {
    let peer = RawPeer::connect().await;
    peer.send(&ClientMessage::ChannelJoin {
        topic: topic_for_room(room),
        protocol_version: PROTOCOL_VERSION,
        token: None,
    });
    peer.expect("channelJoined", |m| {
        matches!(m, ServerMessage::ChannelJoined { .. }).then_some(())
    })
    .await;
    peer.send(&ClientMessage::MediaEvent {
        data: ClientMediaEvent::Join {
            metadata: PeerMetadata {
                display_name: format!("Seat {n}"),
            },
            reconnect_token: None,
        },
    });
    peer.expect("peerAccepted", |m| match m {
        ServerMessage::MediaEvent {
            data: ServerMediaEvent::PeerAccepted { .. },
        } => Some(()),
        ServerMessage::MediaEvent {
            data: ServerMediaEvent::PeerDenied { reason },
        } => panic!("seat {n} of {} denied: {reason}", max_peers_per_room()),
        _ => None,
    })
    .await;
    peer
}

#[wasm_bindgen_test]
async fn join_denied_at_the_room_cap_shows_peer_denied() {
    let name = unique_room("full");
    let cap = max_peers_per_room();
    let mut seats = Vec::new();
    for n in 0..cap {
        seats.push(placeholder(&name, n).await);
    }
    let late = room(&name, "Late");
    let err = late.join().await.unwrap_err();
    let RoomError::Denied(reason) = &err else {
        panic!("expected a denial, got {err:?}");
    };
    console_log!("denied at {cap} peers: {reason}");
    assert_eq!(late.ui().error_message().as_deref(), Some(PEER_DENIED));
    assert!(late.peer_connection().is_none());
    late.leave();
    assert_left(&late);
    drop(seats);
}

#[wasm_bindgen_test]
async fn channel_join_refusal_is_shown() {
    // The form never lets this name through; the server must refuse it too.
    let r = room("not a valid room!", "Fay");
    let err = r.join().await.unwrap_err();
    assert!(matches!(err, RoomError::ChannelJoin(_)), "{err:?}");
    let shown = r.ui().error_message().unwrap();
    assert!(shown.starts_with("Cannot open the room: "), "{shown}");
    r.leave();
}

fn banner_shown(room: &Room) -> bool {
    room.ui()
        .element("connection-status")
        .is_some_and(|b| !b.hidden())
}

#[wasm_bindgen_test]
async fn a_lost_socket_reconnects_and_keeps_the_tiles() {
    let name = unique_room("closed");
    let gus = room(&name, "Gus");
    let gus_id = gus.join().await.expect("joins");
    let ivy = room(&name, "Ivy");
    let ivy_id = ivy.join().await.expect("Ivy joins");
    wait_for_media(&gus, &ivy_id, "Gus to play Ivy").await;
    let pc = gus.peer_connection().unwrap();
    let ws = gus.web_socket();
    let global =
        js_sys::Reflect::get(&web_sys::window().unwrap(), &"videoroomSocket".into()).unwrap();
    assert_eq!(
        global,
        JsValue::from(ivy.web_socket()),
        "the newest socket is exposed"
    );
    gus.set_mic_muted(true);
    let token = gus.endpoint().reconnect_token();

    // A network drop, as the page sees it.
    ws.close().unwrap();
    wait_for("the Reconnecting banner", 2_000.0, || banner_shown(&gus)).await;
    assert_eq!(
        gus.ui()
            .element("connection-status")
            .unwrap()
            .text_content()
            .as_deref(),
        Some("Reconnecting…")
    );
    assert!(!gus.has_left());
    assert!(
        gus.ui().has_video_element(&ivy_id),
        "tiles stay while reconnecting"
    );
    assert!(gus.ui().has_video_element(LOCAL_PEER_ID));

    wait_for("the banner to go", 15_000.0, || !banner_shown(&gus)).await;
    assert!(!js_sys::Object::is(&gus.web_socket(), &ws), "a new socket");
    assert!(gus.socket_handlers_registered());
    let global =
        js_sys::Reflect::get(&web_sys::window().unwrap(), &"videoroomSocket".into()).unwrap();
    assert_eq!(global, JsValue::from(gus.web_socket()));
    wait_for("ICE to connect again", 15_000.0, || ice_connected(&gus)).await;
    assert!(
        !js_sys::Object::is(&gus.peer_connection().unwrap(), &pc),
        "a new connection"
    );
    assert_eq!(pc.signaling_state(), RtcSignalingState::Closed);
    let new_id = gus.endpoint().local_peer_id().unwrap();
    assert!(token.is_some(), "peerAccepted gave a reconnect token");
    assert_eq!(
        new_id, gus_id,
        "the reconnect token gives the same peer id back"
    );
    wait_for_media(&gus, &ivy_id, "Gus to play Ivy again").await;
    wait_for_media(&ivy, &new_id, "Ivy to play Gus again").await;
    let audio: web_sys::MediaStreamTrack = gus
        .local_stream()
        .unwrap()
        .get_audio_tracks()
        .get(0)
        .dyn_into()
        .unwrap();
    assert!(
        gus.mic_muted() && !audio.enabled(),
        "the mute state is kept"
    );
    assert_eq!(gus.ui().error_message(), None);
    assert_eq!(participants(&ivy), "Participants: Gus, Ivy");

    // Disconnect still leaves at once.
    gus.leave();
    assert_left(&gus);
    assert!(!banner_shown(&gus));
    ivy.leave();
}

#[wasm_bindgen_test]
async fn socket_lost_during_the_camera_prompt_is_reopened() {
    // The media promise resolves only when the test says: the person is reading the prompt.
    let answer: Rc<RefCell<Option<js_sys::Function>>> = Rc::default();
    let slot = answer.clone();
    let name = unique_room("slow-prompt");
    let r = Room::with_options(RoomOptions {
        media: MediaSource::Custom(Box::new(move || {
            Promise::new(&mut |resolve, _reject| *slot.borrow_mut() = Some(resolve))
        })),
        ..options(&name, "Joy")
    })
    .unwrap();
    let outcome: Rc<RefCell<Option<Result<String, RoomError>>>> = Rc::default();
    let (joining, sink) = (r.clone(), outcome.clone());
    wasm_bindgen_futures::spawn_local(async move {
        *sink.borrow_mut() = Some(joining.join().await);
    });
    wait_for("the camera prompt", 5_000.0, || answer.borrow().is_some()).await;
    wait_for("the socket to open", 5_000.0, || {
        r.web_socket().ready_state() == web_sys::WebSocket::OPEN
    })
    .await;

    // The server's join timeout (or a proxy) drops the idle socket meanwhile.
    r.web_socket().close().unwrap();
    wait_for("the lost socket to be let go", 5_000.0, || {
        !r.socket_handlers_registered()
    })
    .await;
    assert!(
        !r.has_left(),
        "losing an idle socket before joining is not fatal"
    );
    assert_eq!(r.ui().error_message(), None);

    let stream = MediaSource::default().get().await.unwrap();
    let resolve = answer.borrow_mut().take().unwrap();
    resolve.call1(&JsValue::NULL, &stream).unwrap();
    wait_for("the join to finish", 10_000.0, || {
        outcome.borrow().is_some()
    })
    .await;
    let joined = outcome.borrow_mut().take().unwrap();
    assert!(joined.is_ok(), "{joined:?}");
    assert!(r.socket_handlers_registered(), "a new socket is in use");
    wait_for("ICE to connect", 15_000.0, || ice_connected(&r)).await;
    r.leave();
    assert_left(&r);
}

#[wasm_bindgen_test]
async fn server_refusing_the_connection_makes_the_room_leave() {
    let name = unique_room("kicked");
    let r = room(&name, "Hal");
    r.join().await.expect("joins");
    // Ten bad frames in a row make the server close the connection (1008, policy): a refusal,
    // not a network drop, so the room leaves instead of reconnecting. (An over-long frame would
    // do too, but its 1009 can be lost to a reset while the frame is still being sent, and a
    // reset looks like a network drop.)
    for _ in 0..12 {
        r.web_socket()
            .send_with_str("{\"type\":\"nonsense\"}")
            .unwrap();
    }
    wait_for("leave to run", 10_000.0, || r.has_left()).await;
    assert_left(&r);
    assert_eq!(r.ui().error_message().as_deref(), Some(CONNECTION_ERROR));
}

#[wasm_bindgen_test]
async fn disconnect_button_leaves_and_goes_back() {
    let name = unique_room("bye");
    let went_back = Rc::new(Cell::new(false));
    let flag = went_back.clone();
    let r = Room::with_options(RoomOptions {
        on_disconnect: Some(Box::new(move || flag.set(true))),
        join_token: None,
        ..options(&name, "Ivy")
    })
    .unwrap();
    r.join().await.expect("joins");

    // Someone else in the room sees Ivy go when she clicks Disconnect.
    let watcher = placeholder(&name, 0).await;
    let button: HtmlElement = r
        .ui()
        .root()
        .query_selector("#disconnect")
        .unwrap()
        .unwrap()
        .dyn_into()
        .unwrap();
    button.click();
    assert!(went_back.get());
    assert_left(&r);
    watcher
        .expect("peerLeft", |m| match m {
            ServerMessage::MediaEvent {
                data: ServerMediaEvent::PeerLeft { .. },
            } => Some(()),
            _ => None,
        })
        .await;
}

fn tile_attr(viewer: &Room, tile: &str, attr: &str) -> Option<String> {
    viewer
        .ui()
        .root()
        .query_selector(&format!("[id='feed-{tile}']"))
        .ok()
        .flatten()
        .and_then(|f| f.get_attribute(attr))
}

fn pressed(room: &Room, id: &str) -> bool {
    room.ui().is_pressed(id)
}

#[wasm_bindgen_test]
async fn muting_disables_the_track_and_shows_on_every_tile() {
    let name = unique_room("mute");
    let (alice, alice_id, bob) = alice_then_bob(&name).await;

    // The button and the shortcut do the same; the shortcut is what a person uses most.
    alice.ui().element("toggle-mic").unwrap().click();
    let stream = alice.local_stream().unwrap();
    let audio: web_sys::MediaStreamTrack = stream.get_audio_tracks().get(0).dyn_into().unwrap();
    let video: web_sys::MediaStreamTrack = stream.get_video_tracks().get(0).dyn_into().unwrap();
    assert!(alice.mic_muted());
    assert!(!audio.enabled(), "a muted mic sends silence");
    assert!(pressed(&alice, "toggle-mic"));
    assert_eq!(
        tile_attr(&alice, LOCAL_PEER_ID, "data-mic-muted").as_deref(),
        Some("true")
    );
    wait_for("Bob to see Alice's mic muted", 5_000.0, || {
        tile_attr(&bob, &alice_id, "data-mic-muted").as_deref() == Some("true")
    })
    .await;

    alice.set_camera_muted(true);
    assert!(!video.enabled(), "a camera turned off sends black frames");
    assert!(pressed(&alice, "toggle-camera"));
    wait_for("Bob to see Alice's camera off", 5_000.0, || {
        tile_attr(&bob, &alice_id, "data-camera-muted").as_deref() == Some("true")
    })
    .await;

    alice.set_mic_muted(false);
    alice.set_camera_muted(false);
    assert!(audio.enabled() && video.enabled());
    assert!(!pressed(&alice, "toggle-mic") && !pressed(&alice, "toggle-camera"));
    wait_for("Bob to see Alice unmuted", 5_000.0, || {
        tile_attr(&bob, &alice_id, "data-mic-muted").as_deref() == Some("false")
            && tile_attr(&bob, &alice_id, "data-camera-muted").as_deref() == Some("false")
    })
    .await;
    assert_eq!(
        alice.ui().error_message(),
        None,
        "the server took every update"
    );

    // Someone joining later sees the state as it is.
    alice.set_mic_muted(true);
    let carol = room(&name, "Carol");
    carol.join().await.expect("Carol joins");
    wait_for("Carol to see Alice's mic muted", 5_000.0, || {
        tile_attr(&carol, &alice_id, "data-mic-muted").as_deref() == Some("true")
    })
    .await;
    carol.leave();
    bob.leave();
    alice.leave();
}

fn chat_texts(room: &Room) -> Vec<(String, String)> {
    let list = room
        .ui()
        .root()
        .query_selector_all("#chat-messages .chat-message")
        .unwrap();
    (0..list.length())
        .filter_map(|i| list.item(i))
        .filter_map(|n| n.dyn_into::<web_sys::Element>().ok())
        .map(|e| {
            let part = |role: &str| {
                e.query_selector(&format!("[data-role={role}]"))
                    .unwrap()
                    .unwrap()
                    .text_content()
                    .unwrap()
            };
            (part("chat-author"), part("chat-text"))
        })
        .collect()
}

#[wasm_bindgen_test]
async fn chat_reaches_everyone_and_newcomers_get_the_history() {
    let name = unique_room("chat");
    let alice = room(&name, "Alice");
    alice.join().await.expect("Alice joins");
    let bob = room(&name, "Bob");
    bob.join().await.expect("Bob joins");

    let input: web_sys::HtmlTextAreaElement = alice
        .ui()
        .element("chat-input")
        .unwrap()
        .dyn_into()
        .unwrap();
    input.set_value("hello <b>all</b>\nsecond line");
    alice.ui().element("chat-send").unwrap().click();
    let said = (
        "Alice".to_owned(),
        "hello <b>all</b>\nsecond line".to_owned(),
    );
    wait_for("Alice's echo", 5_000.0, || {
        chat_texts(&alice) == [said.clone()]
    })
    .await;
    wait_for("Bob to read it", 5_000.0, || {
        chat_texts(&bob) == [said.clone()]
    })
    .await;
    assert_eq!(
        text_of(&bob, "chat-unread"),
        "1",
        "unread while Bob's chat is closed"
    );
    assert_eq!(
        text_of(&alice, "chat-unread"),
        "0",
        "our own is never unread"
    );

    let carol = room(&name, "Carol");
    carol.join().await.expect("Carol joins");
    wait_for("Carol to get the history", 5_000.0, || {
        chat_texts(&carol) == [said.clone()]
    })
    .await;
    carol.leave();
    bob.leave();
    alice.leave();
}

fn text_of(room: &Room, id: &str) -> String {
    room.ui()
        .element(id)
        .and_then(|e| e.text_content())
        .unwrap_or_default()
}

#[wasm_bindgen_test]
async fn a_shared_screen_gets_its_own_tile() {
    let name = unique_room("screen");
    let (alice, alice_id, bob) = alice_then_bob(&name).await;

    // getDisplayMedia wants a person's click; a second fake camera stands in for the screen.
    let screen = MediaSource::UserMedia(MediaConstraints {
        audio: false,
        ..MEDIA_CONSTRAINTS
    })
    .get()
    .await
    .unwrap();
    alice.share_screen(&screen).unwrap();
    assert!(pressed(&alice, "toggle-screen"));
    assert!(alice.ui().has_video_element("screen-local-peer"));
    let screen_tile = format!("screen-{alice_id}");
    wait_for("Bob to see Alice's screen", 15_000.0, || {
        bob.ui()
            .video_element(&screen_tile)
            .and_then(|v| v.dyn_into::<HtmlVideoElement>().ok())
            .is_some_and(|v| v.video_width() > 0)
    })
    .await;
    let tile = bob
        .ui()
        .root()
        .query_selector(&format!("[id='feed-{screen_tile}']"))
        .unwrap()
        .unwrap();
    assert!(tile.class_list().contains("feed-screen"));
    assert_eq!(
        tile.query_selector("[data-role=video-label]")
            .unwrap()
            .unwrap()
            .text_content()
            .unwrap(),
        "Alice's screen"
    );
    let screen_stream = bob
        .ui()
        .video_element(&screen_tile)
        .unwrap()
        .src_object()
        .unwrap();
    let camera_stream = bob
        .ui()
        .video_element(&alice_id)
        .unwrap()
        .src_object()
        .unwrap();
    assert!(!js_sys::Object::is(&screen_stream, &camera_stream));
    assert_eq!(
        camera_stream.get_video_tracks().length(),
        1,
        "the camera stays alone"
    );
    assert!(
        receives_media_of(&bob, &alice_id),
        "Alice's camera tile stays"
    );

    alice.stop_screen_share();
    assert!(!pressed(&alice, "toggle-screen"));
    wait_for(
        "Alice's screen tile to go from Bob's page",
        10_000.0,
        || !bob.ui().has_video_element(&screen_tile),
    )
    .await;
    assert!(bob.ui().has_video_element(&alice_id));

    // Sharing again reuses the m-line.
    let screen = MediaSource::UserMedia(MediaConstraints {
        audio: false,
        ..MEDIA_CONSTRAINTS
    })
    .get()
    .await
    .unwrap();
    alice.share_screen(&screen).unwrap();
    wait_for("Bob to see Alice's screen again", 15_000.0, || {
        bob.ui()
            .video_element(&screen_tile)
            .and_then(|v| v.dyn_into::<HtmlVideoElement>().ok())
            .is_some_and(|v| v.video_width() > 0)
    })
    .await;
    assert_eq!(alice.endpoint().uplink().len(), 3);
    assert_eq!(alice.ui().error_message(), None);
    bob.leave();
    alice.leave();
}

#[wasm_bindgen_test]
async fn quality_and_statistics_of_remote_tracks() {
    let name = unique_room("stats");
    let (alice, alice_id, bob) = alice_then_bob(&name).await;

    let quality = || {
        bob.ui()
            .root()
            .query_selector(&format!("[id='feed-{alice_id}'] [data-role=quality]"))
            .unwrap()
            .and_then(|q| q.get_attribute("data-quality"))
            .unwrap_or_default()
    };
    // Two samples 2 s apart make the first rates.
    wait_for("a quality verdict on Alice's tile", 10_000.0, || {
        matches!(quality().as_str(), "good" | "fair" | "poor")
    })
    .await;
    assert_eq!(quality(), "good", "loopback is a good connection");

    let panel = bob.ui().element("stats-panel").unwrap();
    assert!(panel.hidden());
    bob.ui().element("toggle-stats").unwrap().click();
    assert!(!panel.hidden());
    assert!(pressed(&bob, "toggle-stats"));
    let cell = |row: &web_sys::Element, stat: &str| {
        row.query_selector(&format!("[data-stat={stat}]"))
            .unwrap()
            .unwrap()
            .text_content()
            .unwrap()
    };
    let start = now_ms();
    loop {
        let rows = panel.query_selector_all("tr[data-track-id]").unwrap();
        // A row per track that has received packets (a browser lists none before the first),
        // the video's with a bitrate.
        let rows: Vec<web_sys::Element> = (0..rows.length())
            .map(|i| rows.item(i).unwrap().dyn_into().unwrap())
            .collect();
        let ready = rows
            .iter()
            .all(|r| cell(r, "bitrate").parse::<f64>().is_ok())
            && rows.iter().any(|r| {
                r.text_content().unwrap_or_default().starts_with("video")
                    && cell(r, "bitrate").parse::<f64>().is_ok_and(|b| b > 0.0)
            });
        if ready {
            break;
        }
        if now_ms() - start > 6_000.0 {
            panic!(
                "timed out waiting for two rows with figures: {:?}; {}",
                panel.inner_html(),
                inbound_rtp(&bob).await
            );
        }
        common::sleep(100).await;
    }
    let rows = panel.query_selector_all("tr[data-track-id]").unwrap();
    for i in 0..rows.length() {
        let row: web_sys::Element = rows.item(i).unwrap().dyn_into().unwrap();
        let track = row.get_attribute("data-track-id").unwrap();
        assert!(track.starts_with(&format!("{alice_id}:")), "{track}");
        assert!(cell(&row, "loss").parse::<f64>().is_ok());
        assert!(cell(&row, "jitter").parse::<f64>().is_ok());
        assert!(
            cell(&row, "rtt").parse::<f64>().is_ok(),
            "RTT of the selected pair"
        );
        assert!(row.text_content().unwrap().contains("Alice"));
        // A video's row says the frame size it arrives at (the layer the server forwards).
        if row.text_content().unwrap().starts_with("video") {
            let size = cell(&row, "size");
            let (w, h) = size
                .split_once('×')
                .unwrap_or_else(|| panic!("size {size}"));
            assert!(w.parse::<u32>().is_ok_and(|w| w > 0), "size {size}");
            assert!(h.parse::<u32>().is_ok_and(|h| h > 0), "size {size}");
        }
    }
    // Nothing has limited Bob's downlink.
    let downlink = bob
        .ui()
        .element("stats-downlink")
        .unwrap()
        .text_content()
        .unwrap();
    assert_eq!(downlink, "no limit");
    let out = bob
        .ui()
        .element("stats-outbound")
        .unwrap()
        .text_content()
        .unwrap();
    assert!(out.parse::<f64>().is_ok_and(|k| k > 0.0), "outbound {out}");
    bob.leave();
    alice.leave();
}

#[wasm_bindgen_test]
async fn the_speaker_is_highlighted() {
    let name = unique_room("speaker");
    let (alice, alice_id, bob) = alice_then_bob(&name).await;
    // The fake microphone makes a tone: the server hears speech, on Alice's tile and on "Me".
    wait_for("Bob to see Alice speak", 10_000.0, || {
        tile_attr(&bob, &alice_id, "data-speaking").as_deref() == Some("true")
    })
    .await;
    wait_for("Alice to see herself speak", 10_000.0, || {
        tile_attr(&alice, LOCAL_PEER_ID, "data-speaking").as_deref() == Some("true")
    })
    .await;
    bob.leave();
    alice.leave();
}

#[wasm_bindgen_test]
async fn switching_the_camera_keeps_sending_and_keeps_the_mute_state() {
    let name = unique_room("devices");
    let (alice, alice_id, bob) = alice_then_bob(&name).await;

    let select: web_sys::HtmlSelectElement = alice
        .ui()
        .element("room-camera-select")
        .unwrap()
        .dyn_into()
        .unwrap();
    wait_for("the camera list", 5_000.0, || select.length() > 0).await;
    let old: web_sys::MediaStreamTrack = alice
        .local_stream()
        .unwrap()
        .get_video_tracks()
        .get(0)
        .dyn_into()
        .unwrap();
    assert_eq!(
        client::devices::device_of(&old).as_deref(),
        Some(select.value().as_str()),
        "the camera in use is selected"
    );
    alice.set_camera_muted(true);

    // The fake browsers have one camera: choosing it again still swaps the track.
    let chosen = select.value();
    select
        .dispatch_event(&web_sys::Event::new("change").unwrap())
        .unwrap();
    let new_track = || -> web_sys::MediaStreamTrack {
        alice
            .local_stream()
            .unwrap()
            .get_video_tracks()
            .get(0)
            .dyn_into()
            .unwrap()
    };
    wait_for("a new camera track", 5_000.0, || {
        new_track().id() != old.id()
    })
    .await;
    assert_eq!(
        old.ready_state(),
        MediaStreamTrackState::Ended,
        "the old camera stops"
    );
    assert!(!new_track().enabled(), "still muted");
    assert_eq!(alice.local_stream().unwrap().get_video_tracks().length(), 1);
    let storage = web_sys::window().unwrap().local_storage().unwrap().unwrap();
    assert_eq!(
        storage.get_item("videoroom.cameraId").unwrap().as_deref(),
        Some(chosen.as_str())
    );
    let pc = alice.peer_connection().unwrap();
    let sending = pc.get_senders().iter().any(|s| {
        s.dyn_into::<web_sys::RtcRtpSender>()
            .ok()
            .and_then(|s| s.track())
            .is_some_and(|t| t.id() == new_track().id())
    });
    assert!(sending, "the new track is on the sender");
    assert_eq!(
        alice.endpoint().uplink().len(),
        2,
        "no new track for the server"
    );

    alice.set_camera_muted(false);
    assert!(new_track().enabled());
    // Bob keeps getting frames from the new camera.
    let video: HtmlVideoElement = bob
        .ui()
        .video_element(&alice_id)
        .unwrap()
        .dyn_into()
        .unwrap();
    let before = video.current_time();
    common::sleep(1_500).await;
    assert!(video.current_time() > before, "Alice's video still plays");
    storage.remove_item("videoroom.cameraId").unwrap();
    bob.leave();
    alice.leave();
}

fn ufrag(room: &Room) -> Option<String> {
    let sdp = room.peer_connection()?.remote_description()?.sdp();
    sdp.lines()
        .find_map(|l| l.strip_prefix("a=ice-ufrag:"))
        .map(str::to_owned)
}

#[wasm_bindgen_test]
async fn an_ice_restart_keeps_the_media_flowing() {
    let name = unique_room("ice-restart");
    let (alice, alice_id, bob) = alice_then_bob(&name).await;
    let before = ufrag(&bob).unwrap();
    let pc = bob.peer_connection().unwrap();

    bob.endpoint().restart_ice();
    wait_for("an offer with new ICE credentials", 10_000.0, || {
        ufrag(&bob).is_some_and(|u| u != before)
    })
    .await;
    wait_for("ICE to connect again", 15_000.0, || ice_connected(&bob)).await;
    assert!(
        js_sys::Object::is(&bob.peer_connection().unwrap(), &pc),
        "the same connection"
    );
    let video: HtmlVideoElement = bob
        .ui()
        .video_element(&alice_id)
        .unwrap()
        .dyn_into()
        .unwrap();
    let t = video.current_time();
    common::sleep(1_500).await;
    assert!(video.current_time() > t, "Alice's video still plays");
    assert_eq!(bob.ui().error_message(), None);
    bob.leave();
    alice.leave();
}

#[wasm_bindgen_test]
async fn a_screen_shared_before_a_reconnect_is_shared_after_it() {
    let name = unique_room("share-reconnect");
    let alice = room(&name, "Alice");
    alice.join().await.expect("Alice joins");
    let bob = room(&name, "Bob");
    bob.join().await.expect("Bob joins");
    let screen = MediaSource::UserMedia(MediaConstraints {
        audio: false,
        ..MEDIA_CONSTRAINTS
    })
    .get()
    .await
    .unwrap();
    alice.share_screen(&screen).unwrap();
    let sees_screen = |id: &str| {
        bob.ui()
            .video_element(&format!("screen-{id}"))
            .and_then(|v| v.dyn_into::<HtmlVideoElement>().ok())
            .is_some_and(|v| v.video_width() > 0)
    };
    let id = alice.endpoint().local_peer_id().unwrap();
    wait_for("Bob to see Alice's screen", 15_000.0, || sees_screen(&id)).await;

    alice.web_socket().close().unwrap();
    wait_for("the Reconnecting banner", 2_000.0, || banner_shown(&alice)).await;
    wait_for("Alice to be back", 15_000.0, || !banner_shown(&alice)).await;
    let id = alice.endpoint().local_peer_id().unwrap();
    wait_for("Bob to see Alice's screen again", 15_000.0, || {
        sees_screen(&id)
    })
    .await;
    assert!(alice.is_sharing_screen());
    assert_eq!(
        alice.endpoint().uplink().len(),
        3,
        "mic, camera and screen sent"
    );
    let screens = bob
        .ui()
        .root()
        .query_selector_all(".feed-screen")
        .unwrap()
        .length();
    assert_eq!(screens, 1, "one screen tile");
    bob.leave();
    alice.leave();
}

#[wasm_bindgen_test]
async fn the_server_is_told_how_big_each_remote_video_is_shown() {
    let name = unique_room("tiles");
    let (alice, alice_id, bob) = alice_then_bob(&name).await;
    let camera = bob
        .endpoint()
        .peers()
        .iter()
        .find(|p| p.id == alice_id)
        .and_then(|p| {
            p.track_id_to_metadata
                .iter()
                .find(|(_, m)| m.source == TrackSource::Camera)
                .map(|(id, _)| id.clone())
        })
        .expect("Alice's camera track");
    let video: HtmlElement = bob
        .ui()
        .video_element(&alice_id)
        .unwrap()
        .dyn_into()
        .unwrap();
    let ratio = web_sys::window().unwrap().device_pixel_ratio();
    let told = || bob.told_tile_sizes().get(&camera).copied();
    let device = |css: f64| (css * ratio).round() as u32;
    let style = |property: &str, value: &str| video.style().set_property(property, value).unwrap();

    // The tile as laid out: told once it was seen, in device pixels.
    wait_for("a first size", 5_000.0, || told().is_some()).await;
    style("width", "320px");
    style("height", "180px");
    let size = |w: f64, h: f64| TileSize {
        width: device(w),
        height: device(h),
    };
    wait_for("320×180 told", 5_000.0, || {
        told() == Some(size(320.0, 180.0))
    })
    .await;
    // Resized: told again after the layout settles.
    style("width", "160px");
    style("height", "90px");
    wait_for("160×90 told", 5_000.0, || {
        told() == Some(size(160.0, 90.0))
    })
    .await;
    // Hidden, then scrolled out of view: 0×0 both times.
    style("display", "none");
    wait_for("0×0 for a hidden tile", 5_000.0, || {
        told() == Some(TileSize::default())
    })
    .await;
    style("display", "");
    wait_for("shown again", 5_000.0, || told() == Some(size(160.0, 90.0))).await;
    style("position", "fixed");
    style("top", "100000px");
    wait_for("0×0 off screen", 5_000.0, || {
        told() == Some(TileSize::default())
    })
    .await;
    style("position", "");
    style("top", "");
    wait_for("in view again", 5_000.0, || {
        told() == Some(size(160.0, 90.0))
    })
    .await;
    // The server took every message (a refusal would show in the error area).
    assert_eq!(bob.ui().error_message(), None);

    // Alice leaves: her tile is no longer told of.
    alice.leave();
    wait_for("Alice's track forgotten", 10_000.0, || {
        !bob.told_tile_sizes().contains_key(&camera)
    })
    .await;
    assert_eq!(bob.ui().error_message(), None);
    bob.leave();
}

/// `rid → (scaleResolutionDownBy, maxBitrate, active)` of the local `source` track's sender.
fn encodings(room: &Room, source: TrackSource) -> Vec<(String, Option<f32>, Option<u32>, bool)> {
    let local = room
        .endpoint()
        .local_track_id(source)
        .expect("a local track");
    let mid = room
        .endpoint()
        .uplink()
        .into_iter()
        .find(|(_, id)| *id == local)
        .map(|(mid, _)| mid)
        .expect("the track's mid");
    let pc = room.peer_connection().unwrap();
    let transceiver = pc
        .get_transceivers()
        .iter()
        .filter_map(|t| t.dyn_into::<web_sys::RtcRtpTransceiver>().ok())
        .find(|t| t.mid().as_deref() == Some(mid.as_str()))
        .expect("the track's transceiver");
    let params = transceiver.sender().get_parameters();
    params
        .get_encodings()
        .map(|e| e.iter().collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .map(|e| {
            let e: web_sys::RtcRtpEncodingParameters = e.unchecked_into();
            (
                e.get_rid().unwrap_or_default(),
                e.get_scale_resolution_down_by(),
                e.get_max_bitrate(),
                e.get_active().unwrap_or(true),
            )
        })
        .collect()
}

#[wasm_bindgen_test]
async fn the_camera_publishes_layers_down_from_its_full_picture() {
    let name = unique_room("layers");
    let (alice, _alice_id, bob) = alice_then_bob(&name).await;
    // The server asks cameras for simulcast: both browsers answer with the three RIDs, and
    // each is set to its size and cap (from the size the camera captures) once the answer is
    // applied.
    for room in [&alice, &bob] {
        let settings = room
            .local_stream()
            .unwrap()
            .get_video_tracks()
            .get(0)
            .unchecked_into::<web_sys::MediaStreamTrack>()
            .get_settings();
        let size = (
            settings.get_width().unwrap_or(0) as u32,
            settings.get_height().unwrap_or(0) as u32,
        );
        let want = |rid: &str| {
            client::layer_encodings::encoding_for(rid, size, false, true).expect("a known RID")
        };
        let mut got = Vec::new();
        wait_for("the layers set", 5_000.0, || {
            got = encodings(room, TrackSource::Camera);
            got.len() == 3
                && got.iter().all(|(rid, scale, bitrate, active)| {
                    let w = want(rid);
                    *scale == Some(w.scale)
                        && *bitrate == Some(w.max_bitrate)
                        && *active == w.active
                })
        })
        .await;
        console_log!("camera {size:?}: encodings {got:?}");
        let rids: Vec<&str> = got.iter().map(|(rid, ..)| rid.as_str()).collect();
        assert_eq!(rids, protocol::SIMULCAST_RIDS, "{got:?}");
        // The first layers are on, and the last of them is the full picture.
        let on: Vec<_> = got.iter().take_while(|(.., active)| *active).collect();
        assert!(!on.is_empty(), "{got:?}");
        assert_eq!(on.last().unwrap().1, Some(1.0), "{got:?}");
        // The microphone is one plain encoding, untouched.
        let mic = encodings(room, TrackSource::Microphone);
        assert!(
            mic.len() <= 1 && mic.iter().all(|(rid, ..)| rid.is_empty()),
            "{mic:?}"
        );
    }
    bob.leave();
    alice.leave();
}
