//! Shared set-up for the server's integration tests: a real server on loopback.

#![allow(dead_code)]

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use protocol::{
    topic_for_room, ClientMediaEvent, ClientMessage, PeerMetadata, ServerMediaEvent, ServerMessage,
    SessionDescription, PROTOCOL_VERSION,
};
use server::{Config, RunningServer};
use testkit::{PeerOptions, TestPeer};
use tokio_tungstenite::tungstenite::Message;

/// 5% loss and 50 ms one way, in both directions of a peer's link.
pub fn bad_link(seed: u64) -> Option<testkit::Impairment> {
    Some(testkit::Impairment {
        loss: 0.05,
        delay: Duration::from_millis(50),
        seed,
        // The test peers' own DTLS stack cannot survive a lost last flight (see testkit).
        spare_dtls_handshake: true,
    })
}

/// What `state` received of `publisher`'s video.
pub fn video_from(state: &testkit::PeerState, publisher: &str) -> testkit::TrackStats {
    state
        .received
        .values()
        .find(|t| t.publisher == publisher && t.kind == "video")
        .cloned()
        .unwrap_or_default()
}

/// How long a test waits for media or events before it fails.
pub const WAIT: Duration = Duration::from_secs(20);

/// Waits until everyone is gone: no room, no peer, no session left behind.
pub async fn assert_released(server: &RunningServer) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let h = server.state.health();
        if h.census.rooms == 0 && h.census.peers == 0 && h.sessions == 0 {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "resources not released: {h:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Starts a server on an ephemeral loopback port with ICE on 127.0.0.1 only.
pub async fn start(tweak: impl FnOnce(&mut Config)) -> RunningServer {
    init_logs();
    let mut config = Config::for_tests();
    tweak(&mut config);
    server::start(config).await.expect("server starts")
}

/// A room name no other test uses.
pub fn room(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

fn init_logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

/// A bare WebSocket client, for speaking (and mis-speaking) the protocol by hand.
pub struct RawClient {
    ws: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
}

/// What a raw client read next.
#[derive(Debug)]
pub enum Read {
    Message(ServerMessage),
    Closed(Option<(u16, String)>),
}

impl RawClient {
    pub async fn connect(server: &RunningServer) -> RawClient {
        let (ws, _) = tokio_tungstenite::connect_async(server.socket_url())
            .await
            .expect("websocket connects");
        RawClient { ws }
    }

    /// A client over a WebSocket opened elsewhere (e.g. one that sent frames by hand first).
    pub fn from_stream(
        ws: tokio_tungstenite::WebSocketStream<
            tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
        >,
    ) -> RawClient {
        RawClient { ws }
    }

    pub async fn send_text(&mut self, text: impl Into<String>) {
        self.ws
            .send(Message::Text(text.into().into()))
            .await
            .expect("send");
    }

    pub async fn send(&mut self, msg: &ClientMessage) {
        self.send_text(msg.encode()).await;
    }

    /// The next protocol message or close, skipping pings.
    pub async fn read(&mut self) -> Read {
        loop {
            let next = tokio::time::timeout(WAIT, self.ws.next())
                .await
                .expect("server replied in time");
            match next {
                Some(Ok(Message::Text(t))) => {
                    return Read::Message(ServerMessage::decode(t.as_str()).expect("valid reply"))
                }
                Some(Ok(Message::Close(c))) => {
                    return Read::Closed(c.map(|c| (u16::from(c.code), c.reason.to_string())))
                }
                Some(Ok(_)) => continue,
                Some(Err(e)) => {
                    eprintln!("raw client: read error: {e}");
                    return Read::Closed(None);
                }
                None => return Read::Closed(None),
            }
        }
    }

    /// Reads and drops whatever has arrived, without waiting for more.
    pub async fn drain(&mut self) {
        while let Ok(Some(_)) = tokio::time::timeout(Duration::from_millis(1), self.ws.next()).await
        {
        }
    }

    /// Reads until the server's next offer, dropping what comes before it.
    pub async fn next_offer(&mut self) -> SessionDescription {
        loop {
            if let ServerMessage::MediaEvent {
                data: ServerMediaEvent::SdpOffer { sdp_offer, .. },
            } = self.read_message().await
            {
                return sdp_offer;
            }
        }
    }

    pub async fn read_message(&mut self) -> ServerMessage {
        match self.read().await {
            Read::Message(m) => m,
            Read::Closed(c) => panic!("expected a message, the socket closed: {c:?}"),
        }
    }
}

/// `channelJoin` for `room`, without a token.
pub fn channel_join(room: &str) -> ClientMessage {
    ClientMessage::ChannelJoin {
        topic: topic_for_room(room),
        protocol_version: PROTOCOL_VERSION,
        token: None,
    }
}

/// The media-event `join` with this display name.
pub fn room_join(name: &str) -> ClientMessage {
    ClientMessage::MediaEvent {
        data: ClientMediaEvent::Join {
            metadata: PeerMetadata {
                display_name: name.into(),
            },
            reconnect_token: None,
        },
    }
}

impl RawClient {
    /// Connects, joins the channel and the room; returns the client and its peer id.
    pub async fn join(server: &RunningServer, room: &str, name: &str) -> (RawClient, String) {
        let mut c = RawClient::connect(server).await;
        c.send(&channel_join(room)).await;
        match c.read_message().await {
            ServerMessage::ChannelJoined { .. } => {}
            other => panic!("expected channelJoined, got {other:?}"),
        }
        c.send(&room_join(name)).await;
        match c.read_message().await {
            ServerMessage::MediaEvent {
                data: ServerMediaEvent::PeerAccepted { id, .. },
            } => (c, id),
            other => panic!("expected peerAccepted, got {other:?}"),
        }
    }
}

/// A publishing test peer in `room`.
pub async fn peer(server: &RunningServer, room: &str, name: &str) -> TestPeer {
    TestPeer::join(&server.socket_url(), room, name, PeerOptions::default())
        .await
        .unwrap_or_else(|e| panic!("{name} could not join: {e}"))
}

/// A peer that answers but whose media can never connect (it exchanges no ICE candidates).
pub async fn stuck_peer(server: &RunningServer, room: &str, name: &str) -> TestPeer {
    let options = PeerOptions {
        ice: false,
        ..PeerOptions::default()
    };
    TestPeer::join(&server.socket_url(), room, name, options)
        .await
        .unwrap_or_else(|e| panic!("{name} could not join: {e}"))
}

/// Waits until `receiver` has had a steady trickle of video from `from`.
pub async fn video_flowing(receiver: &TestPeer, from: &TestPeer) {
    receiver
        .wait_for(&format!("video from {}", from.name), WAIT, |s| {
            s.packets_from(&from.id, "video") > 20
        })
        .await
        .unwrap();
}

/// Waits until `receiver` gets 50 more video packets from `from` than it has now.
pub async fn video_keeps_flowing(receiver: &TestPeer, from: &TestPeer) {
    let before = receiver.state().packets_from(&from.id, "video");
    receiver
        .wait_for("media still flowing", WAIT, |s| {
            s.packets_from(&from.id, "video") > before + 50
        })
        .await
        .unwrap();
}
