//! The Room: the tutorial's `room.ts`. It opens the socket, gets the camera and microphone,
//! joins the channel and the room, keeps the participants list and tiles current through the
//! endpoint's callbacks, and leaves (on Disconnect, or when the socket fails or closes).
//!
//! This module owns the lifecycle (construct, init, join, leave) and the room's state; its
//! children add one concern each to `RoomInner`: `events` (the endpoint's callbacks),
//! `local_media` (mute, device switch), `screen_share`, `reconnecting`, `page_hide`; the
//! `tile_observer` it holds tells the server how big each remote video is shown.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::rc::{Rc, Weak};

use futures_channel::oneshot;
use protocol::{
    topic_for_room, ClientMediaEvent, ClientMessage, PeerId, PeerInfo, PeerMetadata, ServerMessage,
    TileSize, TrackId, TrackSource, PROTOCOL_VERSION,
};
use wasm_bindgen::closure::Closure;
use wasm_bindgen::{JsCast, JsValue};
use web_sys::{Element, MediaStream, MouseEvent, RtcPeerConnection, WebSocket};

use crate::chat::Chat;
use crate::consts::{
    CONNECTION_ERROR, DISPLAY_NAME_PARAM, LOCAL_LABEL, LOCAL_PEER_ID, MEDIA_ERROR, PEER_DENIED,
    SOCKET_PATH,
};
use crate::controls::{Control, Controls};
use crate::devices::DeviceSelect;
use crate::endpoint::{EndpointConfig, IceServer, WebRtcEndpoint};
use crate::form::validate_form;
use crate::log;
use crate::media;
use crate::media_source::MediaSource;
use crate::monitor::StatsMonitor;
use crate::room_ui::RoomUi;
use crate::routing::room_from_path;
use crate::screen::{self, ScreenShare};
use crate::socket::{Socket, SocketEvent};
use crate::tile_observer::TileObserver;

mod events;
mod local_media;
mod page_hide;
mod reconnecting;
mod screen_share;

use events::RoomEvents;
use page_hide::PageHide;
use reconnecting::Reconnect;

/// Why the room could not be set up or joined.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RoomError {
    /// The page is not a usable room page (no window, bad URL, no display name...).
    #[error("cannot set up the room: {0}")]
    Setup(String),
    /// The camera or microphone could not be had (the browser's reason).
    #[error("{MEDIA_ERROR} ({0})")]
    Media(String),
    /// The server refused the channel join.
    #[error("the server refused to open the room: {0}")]
    ChannelJoin(String),
    /// The server refused the join (`peerDenied`).
    #[error("{PEER_DENIED} {0}")]
    Denied(String),
    /// The connection to the server failed or closed.
    #[error("{CONNECTION_ERROR}")]
    Disconnected,
    /// The room was left before the step finished.
    #[error("the room was left")]
    Left,
}

/// Everything a Room needs, explicitly (tests build rooms this way; the page uses
/// [`Room::new`], which reads them from the location).
pub struct RoomOptions {
    /// `ws://host/socket` or `wss://host/socket`.
    pub socket_url: String,
    /// The room to join.
    pub room_name: String,
    /// The name shown to the others.
    pub display_name: String,
    /// The element the room page is rendered into.
    pub root: Element,
    /// Where the camera and microphone come from.
    pub media: MediaSource,
    /// ICE servers (none by default).
    pub ice_servers: Vec<IceServer>,
    /// Runs after Disconnect has left the room (the page goes back to the form).
    pub on_disconnect: Option<Box<dyn Fn()>>,
    /// The join token, for servers that require one.
    pub join_token: Option<String>,
}

/// The Disconnect button's click handler, owned by the room.
type ClickHandler = Closure<dyn FnMut(MouseEvent)>;

/// A room being joined, joined or left (a cheap handle).
#[derive(Clone)]
pub struct Room {
    inner: Rc<RoomInner>,
}

struct RoomInner {
    room_name: String,
    display_name: String,
    join_token: Option<String>,
    ui: RoomUi,
    socket_url: String,
    /// Replaced once if it drops before the channel join (see `socket_lost`).
    socket: RefCell<Socket>,
    channel_join_sent: Cell<bool>,
    socket_lost_early: Cell<bool>,
    endpoint: WebRtcEndpoint,
    media: MediaSource,
    local_stream: RefCell<Option<MediaStream>>,
    peers: RefCell<Vec<PeerInfo>>,
    channel_reply: RefCell<Option<oneshot::Sender<Result<(), RoomError>>>>,
    join_reply: RefCell<Option<oneshot::Sender<Result<PeerId, RoomError>>>>,
    left: Cell<bool>,
    disconnect_click: RefCell<Option<ClickHandler>>,
    sound_click: RefCell<Option<ClickHandler>>,
    page_hide: RefCell<Option<PageHide>>,
    on_disconnect: Option<Box<dyn Fn()>>,
    controls: RefCell<Option<Controls>>,
    chat: RefCell<Option<Chat>>,
    screen: RefCell<Option<ScreenShare>>,
    monitor: RefCell<Option<StatsMonitor>>,
    /// Tells the server how big each remote video is shown (between join and leave).
    tiles: RefCell<Option<TileObserver>>,
    device_selects: RefCell<Vec<DeviceSelect>>,
    /// A screen is being asked for (the browser's picker is open).
    screen_pending: Cell<bool>,
    mic_muted: Cell<bool>,
    camera_muted: Cell<bool>,
    /// Set while the socket is being reconnected after a loss.
    reconnect: RefCell<Option<Reconnect>>,
}

impl Room {
    /// The page's room, from the location: room name from `/room/<name>`, display name from
    /// the `display_name` query parameter (then removed from the address bar), socket on the
    /// same origin, rendered into `#app`. Disconnect leads back to the form for this room.
    pub fn new() -> Result<Room, RoomError> {
        let setup = |what: &str| RoomError::Setup(what.to_owned());
        let window = web_sys::window().ok_or_else(|| setup("no window"))?;
        let document = window.document().ok_or_else(|| setup("no document"))?;
        let location = window.location();
        let pathname = location.pathname().map_err(|_| setup("no location"))?;
        let href = location.href().map_err(|_| setup("no location"))?;
        let url = web_sys::Url::new(&href).map_err(|_| setup("bad location"))?;
        let room_name = room_from_path(&pathname).ok_or_else(|| setup("not a room page"))?;
        let display_name = url
            .search_params()
            .get(DISPLAY_NAME_PARAM)
            .ok_or_else(|| setup("no display name"))?;
        let request = validate_form(&room_name, &display_name).map_err(|e| {
            RoomError::Setup(
                [e.room_name, e.display_name]
                    .into_iter()
                    .flatten()
                    .collect::<Vec<_>>()
                    .join(" "),
            )
        })?;

        // The name (and a join token) stay out of the address bar, history and shared links.
        url.search_params().delete(DISPLAY_NAME_PARAM);
        crate::access::stash_from_url(&url, &request.room_name);
        let join_token = crate::access::token_for(&request.room_name);
        if let Ok(history) = window.history() {
            let _ = history.replace_state_with_url(&JsValue::NULL, "", Some(&url.href()));
        }

        let protocol = location.protocol().map_err(|_| setup("no location"))?;
        let host = location.host().map_err(|_| setup("no location"))?;
        let scheme = if protocol == "https:" { "wss" } else { "ws" };
        let root = document
            .get_element_by_id("app")
            .or_else(|| document.body().map(Into::into))
            .ok_or_else(|| setup("no page body"))?;
        document.set_title(&format!("{} · Videoroom", request.room_name));

        let back = pathname.clone();
        Room::with_options(RoomOptions {
            socket_url: format!("{scheme}://{host}{SOCKET_PATH}"),
            room_name: request.room_name,
            display_name: request.display_name,
            root,
            media: MediaSource::Preferred(crate::consts::MEDIA_CONSTRAINTS),
            ice_servers: Vec::new(),
            on_disconnect: Some(Box::new(move || {
                // Reload the room's address without the name: a ready form for this room.
                if let Some(w) = web_sys::window() {
                    let _ = w.location().replace(&back);
                }
            })),
            join_token,
        })
    }

    /// A room from explicit options: renders the room page into `options.root` and opens the
    /// socket. Call [`join`](Self::join) next.
    pub fn with_options(options: RoomOptions) -> Result<Room, RoomError> {
        let ws = open_socket(&options.socket_url)?;
        let ui = RoomUi::render(&options.root, &options.room_name);
        let inner = Rc::new_cyclic(|weak: &Weak<RoomInner>| {
            let socket = attach_socket(ws, weak.clone());
            let endpoint = WebRtcEndpoint::new(
                EndpointConfig {
                    ice_servers: options.ice_servers,
                },
                RoomEvents { room: weak.clone() },
            );
            RoomInner {
                room_name: options.room_name,
                display_name: options.display_name,
                join_token: options.join_token,
                ui,
                socket_url: options.socket_url,
                socket: RefCell::new(socket),
                channel_join_sent: Cell::new(false),
                socket_lost_early: Cell::new(false),
                endpoint,
                media: options.media,
                local_stream: RefCell::default(),
                peers: RefCell::default(),
                channel_reply: RefCell::default(),
                join_reply: RefCell::default(),
                left: Cell::new(false),
                disconnect_click: RefCell::default(),
                sound_click: RefCell::default(),
                page_hide: RefCell::default(),
                on_disconnect: options.on_disconnect,
                controls: RefCell::default(),
                chat: RefCell::default(),
                screen: RefCell::default(),
                monitor: RefCell::default(),
                tiles: RefCell::default(),
                device_selects: RefCell::default(),
                screen_pending: Cell::new(false),
                mic_muted: Cell::new(false),
                camera_muted: Cell::new(false),
                reconnect: RefCell::default(),
            }
        });
        Ok(Room { inner })
    }

    /// Gets the local media (showing it in the "Me" tile) and joins the channel. On failure
    /// the reason is shown in the error area.
    pub async fn init(&self) -> Result<(), RoomError> {
        let r = &self.inner;
        let stream = match r.media.get().await {
            Ok(stream) => stream,
            Err(e) => {
                let reason = log::describe(&e);
                log::error(&format!("getUserMedia failed: {reason}"));
                r.ui.set_error_message(Some(MEDIA_ERROR));
                return Err(RoomError::Media(reason));
            }
        };
        if r.left.get() {
            media::stop_tracks(&stream);
            return Err(RoomError::Left);
        }
        r.ui.add_video_element(LOCAL_PEER_ID, LOCAL_LABEL, true);
        r.ui.attach_stream(&stream, LOCAL_PEER_ID);
        *r.local_stream.borrow_mut() = Some(stream);

        if r.socket_lost_early.get() {
            // The server (or a proxy) dropped the idle socket while the person was answering
            // the camera prompt: connect again, now that there is something to say.
            let ws = open_socket(&r.socket_url)?;
            *r.socket.borrow_mut() = attach_socket(ws, Rc::downgrade(r));
            r.socket_lost_early.set(false);
        }
        let (tx, rx) = oneshot::channel();
        *r.channel_reply.borrow_mut() = Some(tx);
        r.channel_join_sent.set(true);
        r.socket.borrow().send(&ClientMessage::ChannelJoin {
            topic: topic_for_room(&r.room_name),
            protocol_version: PROTOCOL_VERSION,
            token: r.join_token.clone(),
        });
        let reply = rx.await.unwrap_or(Err(RoomError::Left));
        if let Err(RoomError::ChannelJoin(reason)) = &reply {
            r.ui.set_error_message(Some(&format!("Cannot open the room: {reason}")));
        }
        reply
    }

    /// [`init`](Self::init), then sets up Disconnect and asks to join the room; resolves with
    /// our peer id once the server accepts ("Peer denied." is shown if it refuses).
    pub async fn join(&self) -> Result<PeerId, RoomError> {
        self.init().await?;
        let r = &self.inner;
        let weak = Rc::downgrade(r);
        let click = ClickHandler::new(move |_: MouseEvent| {
            if let Some(room) = weak.upgrade() {
                room.leave();
                if let Some(after) = &room.on_disconnect {
                    after();
                }
            }
        });
        r.ui.setup_disconnect_button(Some(click.as_ref().unchecked_ref()));
        *r.disconnect_click.borrow_mut() = Some(click);
        let ui = r.ui.clone();
        let sound = ClickHandler::new(move |_: MouseEvent| ui.play_all_audio());
        r.ui.setup_sound_button(Some(sound.as_ref().unchecked_ref()));
        *r.sound_click.borrow_mut() = Some(sound);
        // Closing the tab is leaving: without this the server would keep our place for its
        // reconnect grace period, and the others would see an empty tile until it ran out.
        let weak = Rc::downgrade(r);
        *r.page_hide.borrow_mut() = PageHide::attach(move || {
            if let Some(room) = weak.upgrade() {
                room.leave();
            }
        });
        let weak = Rc::downgrade(r);
        *r.controls.borrow_mut() = Some(Controls::attach(&r.ui, move |control| {
            if let Some(room) = weak.upgrade() {
                room.on_control(control);
            }
        }));
        let weak = Rc::downgrade(r);
        *r.chat.borrow_mut() = Some(Chat::attach(&r.ui, move |text| {
            weak.upgrade().is_some_and(|room| room.send_chat(text))
        }));
        r.setup_device_selects();
        if !screen::supported() {
            if let Some(b) = r.ui.element("toggle-screen") {
                b.set_hidden(true);
            }
        }
        let weak = Rc::downgrade(r);
        *r.monitor.borrow_mut() = StatsMonitor::start(&r.ui, &r.endpoint, move |peer_id| {
            weak.upgrade()
                .map(|room| room.display_name_of(peer_id))
                .unwrap_or_default()
        });
        let weak = Rc::downgrade(r);
        *r.tiles.borrow_mut() = TileObserver::start(&r.ui, move |sizes| {
            weak.upgrade()
                .is_some_and(|room| room.send_media_event(ClientMediaEvent::SetTileSizes { sizes }))
        });

        let (tx, rx) = oneshot::channel();
        *r.join_reply.borrow_mut() = Some(tx);
        r.endpoint.join(PeerMetadata {
            display_name: r.display_name.clone(),
        });
        rx.await.unwrap_or(Err(RoomError::Left))
    }

    /// Leaves: the endpoint leaves (telling the server), the channel is left, the socket's
    /// handlers are unregistered and it is closed, and the camera and microphone stop.
    pub fn leave(&self) {
        self.inner.leave();
    }

    /// Mutes or unmutes the microphone (as `#toggle-mic` and `m` do).
    pub fn set_mic_muted(&self, muted: bool) {
        self.inner.set_muted(TrackSource::Microphone, muted);
    }

    /// Turns the camera off or on (as `#toggle-camera` and `v` do).
    pub fn set_camera_muted(&self, muted: bool) {
        self.inner.set_muted(TrackSource::Camera, muted);
    }

    /// Whether the microphone is muted.
    pub fn mic_muted(&self) -> bool {
        self.inner.mic_muted.get()
    }

    /// Whether the camera is off.
    pub fn camera_muted(&self) -> bool {
        self.inner.camera_muted.get()
    }

    /// Shares a screen already captured (the button captures one with `getDisplayMedia`).
    pub fn share_screen(&self, stream: &MediaStream) -> Result<(), RoomError> {
        let track = stream
            .get_video_tracks()
            .get(0)
            .dyn_into::<web_sys::MediaStreamTrack>()
            .map_err(|_| RoomError::Media("no video track to share".into()))?;
        self.inner.publish_screen(Clone::clone(stream), track);
        Ok(())
    }

    /// Stops sharing the screen, if shared.
    pub fn stop_screen_share(&self) {
        self.inner.stop_screen();
    }

    /// Whether a screen is shared.
    pub fn is_sharing_screen(&self) -> bool {
        self.inner.screen.borrow().is_some()
    }

    /// Whether [`leave`](Self::leave) ran (by request or because the socket failed).
    pub fn has_left(&self) -> bool {
        self.inner.left.get()
    }

    /// The room's name.
    pub fn room_name(&self) -> &str {
        &self.inner.room_name
    }

    /// Our display name.
    pub fn display_name(&self) -> &str {
        &self.inner.display_name
    }

    /// The page's DOM helpers.
    pub fn ui(&self) -> &RoomUi {
        &self.inner.ui
    }

    /// The WebRTC endpoint.
    pub fn endpoint(&self) -> &WebRtcEndpoint {
        &self.inner.endpoint
    }

    /// The others in the room, in the order they are listed.
    pub fn peers(&self) -> Vec<PeerInfo> {
        self.inner.peers.borrow().clone()
    }

    /// The local camera and microphone stream, once granted.
    pub fn local_stream(&self) -> Option<MediaStream> {
        self.inner.local_stream.borrow().clone()
    }

    /// The peer connection, between join and leave.
    pub fn peer_connection(&self) -> Option<RtcPeerConnection> {
        self.inner.endpoint.peer_connection()
    }

    /// The signaling WebSocket (diagnostics and tests).
    pub fn web_socket(&self) -> WebSocket {
        self.inner.socket.borrow().web_socket().clone()
    }

    /// The tile sizes the server was last told, by track (diagnostics and tests).
    pub fn told_tile_sizes(&self) -> BTreeMap<TrackId, TileSize> {
        self.inner
            .tiles
            .borrow()
            .as_ref()
            .map(TileObserver::told)
            .unwrap_or_default()
    }

    /// Whether the socket's handlers are still registered (they are removed by leave).
    pub fn socket_handlers_registered(&self) -> bool {
        self.inner.socket.borrow().has_handlers()
    }
}

impl RoomInner {
    fn on_socket_event(self: &Rc<Self>, event: SocketEvent) {
        match event {
            SocketEvent::Message(Ok(message)) => self.on_message(message),
            SocketEvent::Message(Err(e)) => {
                log::warn(&format!("ignoring a bad frame from the server: {e}"))
            }
            // A `close` always follows an `error`; its code says whether to come back.
            SocketEvent::Error => log::warn("socket error"),
            SocketEvent::Closed { code, reason } => {
                log::warn(&format!("socket closed: {code} {reason}"));
                let code = Some(code);
                // Act from a fresh task: this runs inside a handler that is about to be dropped.
                let weak = Rc::downgrade(self);
                wasm_bindgen_futures::spawn_local(async move {
                    if let Some(room) = weak.upgrade() {
                        room.socket_lost(code);
                    }
                });
            }
        }
    }

    fn on_message(&self, message: ServerMessage) {
        match message {
            ServerMessage::ChannelJoined { .. } => self.reply_channel(Ok(())),
            ServerMessage::ChannelJoinError { reason } => {
                self.reply_channel(Err(RoomError::ChannelJoin(reason)))
            }
            ServerMessage::MediaEvent { data } => self.endpoint.receive_media_event(data),
            ServerMessage::Error { code, message } => {
                log::warn(&format!(
                    "the server refused a message ({}): {message}",
                    code.wire_name()
                ));
                self.ui
                    .set_error_message(Some(&format!("The server refused a message: {message}")));
            }
        }
    }

    fn reply_channel(&self, reply: Result<(), RoomError>) {
        if let Some(tx) = self.channel_reply.borrow_mut().take() {
            let _ = tx.send(reply);
        }
    }

    fn reply_join(&self, reply: Result<PeerId, RoomError>) {
        if let Some(tx) = self.join_reply.borrow_mut().take() {
            let _ = tx.send(reply);
        }
    }

    fn leave(&self) {
        if self.left.replace(true) {
            return;
        }
        if self.reconnect.borrow_mut().take().is_some() {
            self.ui.show_reconnecting(false);
        }
        self.endpoint.leave();
        let socket = self.socket.borrow();
        socket.send(&ClientMessage::ChannelLeave {});
        socket.unregister();
        socket.close();
        drop(socket);
        if let Some(stream) = self.local_stream.borrow().as_ref() {
            media::stop_tracks(stream);
        }
        if let Some(share) = self.screen.borrow_mut().take() {
            share.stop();
        }
        self.controls.borrow_mut().take();
        self.device_selects.borrow_mut().clear();
        self.chat.borrow_mut().take();
        self.monitor.borrow_mut().take();
        self.tiles.borrow_mut().take();
        self.reply_channel(Err(RoomError::Left));
        self.reply_join(Err(RoomError::Left));
    }

    fn on_control(self: &Rc<Self>, control: Control) {
        match control {
            Control::Mic => self.set_muted(TrackSource::Microphone, !self.mic_muted.get()),
            Control::Camera => self.set_muted(TrackSource::Camera, !self.camera_muted.get()),
            Control::Screen => self.toggle_screen(),
            Control::Chat => {
                if let Some(chat) = self.chat.borrow().as_ref() {
                    chat.set_open(!chat.is_open());
                }
            }
            Control::Stats => {
                if let Some(monitor) = self.monitor.borrow().as_ref() {
                    monitor.set_open(!monitor.is_open());
                }
            }
        }
    }

    fn send_chat(&self, text: &str) -> bool {
        self.send_media_event(ClientMediaEvent::SendChatMessage {
            text: text.to_owned(),
        })
    }

    /// Sends a media event of the room's own (not the endpoint's), once joined.
    fn send_media_event(&self, data: ClientMediaEvent) -> bool {
        if self.left.get() || self.endpoint.local_peer_id().is_none() {
            return false;
        }
        self.socket
            .borrow()
            .send(&ClientMessage::MediaEvent { data })
    }
}

fn open_socket(url: &str) -> Result<WebSocket, RoomError> {
    WebSocket::new(url)
        .map_err(|e| RoomError::Setup(format!("cannot open {url}: {}", log::describe(&e))))
}

fn attach_socket(ws: WebSocket, room: Weak<RoomInner>) -> Socket {
    Socket::new(ws, move |event| {
        if let Some(room) = room.upgrade() {
            room.on_socket_event(event);
        }
    })
}

impl Drop for RoomInner {
    fn drop(&mut self) {
        // Dropped without leave(): still release the camera and the connection.
        self.leave();
        self.ui.setup_disconnect_button(None);
        self.ui.setup_sound_button(None);
    }
}
