//! The limits an attacker could walk around (issue 49): each test reproduces one attack from
//! outside, on loopback, and shows the limit holds.

mod common;

use std::time::{Duration, Instant};

use common::{RawClient, Read, WAIT};
use protocol::*;
use testkit::{PeerOptions, TestPeer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use webrtc::peer_connection::peer_connection_state::RTCPeerConnectionState;

/// Sends a raw HTTP/1.1 request and reads the answer until the server closes (or `wait`).
async fn http(server: &server::RunningServer, request: &str, wait: Duration) -> String {
    let mut tcp = TcpStream::connect(server.addr).await.expect("connects");
    tcp.write_all(request.as_bytes()).await.expect("writes");
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(wait, tcp.read_to_end(&mut answer)).await;
    String::from_utf8_lossy(&answer).into_owned()
}

fn get(path: &str, extra_headers: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n{extra_headers}\r\n")
}

/// Whether the server closed `tcp` (read gives EOF or a reset) within `wait`.
async fn closed_within(tcp: &mut TcpStream, wait: Duration) -> bool {
    let mut buf = [0u8; 64];
    matches!(
        tokio::time::timeout(wait, tcp.read(&mut buf)).await,
        Ok(Ok(0) | Err(_))
    )
}

/// Row 1: idle connections are closed at the header deadline, and open ones are capped.
#[tokio::test]
async fn an_idle_connection_is_closed_at_the_header_deadline() {
    let server = common::start(|c| c.header_timeout_secs = 1).await;
    let started = Instant::now();
    let mut idle = TcpStream::connect(server.addr).await.unwrap();
    assert!(closed_within(&mut idle, Duration::from_secs(5)).await);
    assert!(started.elapsed() >= Duration::from_millis(900));
    // A keep-alive connection idle after its request is closed too.
    let mut kept = TcpStream::connect(server.addr).await.unwrap();
    kept.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .await
        .unwrap();
    let mut buf = vec![0u8; 4096];
    let n = kept.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    assert!(closed_within(&mut kept, Duration::from_secs(5)).await);
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn connections_are_capped_per_source_and_in_all() {
    for (total, per_ip) in [(100, 5), (5, 100)] {
        let server = common::start(|c| {
            c.max_connections = total;
            c.max_connections_per_ip = per_ip;
        })
        .await;
        let mut held = Vec::new();
        for _ in 0..5 {
            held.push(TcpStream::connect(server.addr).await.unwrap());
        }
        // The sixth is closed at once, before any request.
        let mut sixth = TcpStream::connect(server.addr).await.unwrap();
        assert!(
            closed_within(&mut sixth, Duration::from_secs(2)).await,
            "cap {total}/{per_ip}"
        );
        assert_eq!(
            server
                .state
                .connections
                .refused
                .load(std::sync::atomic::Ordering::Relaxed),
            1
        );
        // A place freed is a place again.
        drop(held.pop());
        let deadline = Instant::now() + WAIT;
        loop {
            let answer = http(&server, &get("/healthz", ""), Duration::from_secs(2)).await;
            if answer.starts_with("HTTP/1.1 200") {
                break;
            }
            assert!(Instant::now() < deadline, "no place freed: {answer:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        server.shutdown().await.unwrap();
    }
}

/// Row 2: joins that close at once hold no place for the reconnect grace; one source cannot
/// join faster than `--joins-per-minute-per-ip`.
#[tokio::test]
async fn joins_whose_media_never_connected_hold_no_place() {
    let server = common::start(|c| {
        c.reconnect_grace_secs = 10;
        c.max_peers = 4;
    })
    .await;
    let room = common::room("flood");
    for i in 0..4 {
        let (c, _) = RawClient::join(&server, &room, &format!("F{i}")).await;
        drop(c); // gone without a word, media never up
    }
    // Well inside the 10 s grace, a real person still gets in.
    let started = Instant::now();
    loop {
        match TestPeer::join(&server.socket_url(), &room, "Ada", PeerOptions::default()).await {
            Ok(p) => {
                p.leave().await;
                break;
            }
            Err(e) => {
                assert!(
                    started.elapsed() < Duration::from_secs(5),
                    "still refused after {:?}: {e}",
                    started.elapsed()
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn joins_from_one_source_are_rate_limited() {
    let server = common::start(|c| c.joins_per_minute_per_ip = 30).await;
    let room = common::room("rate");
    // A burst of a third of the minute's 30 is admitted, the next is denied with the reason.
    let mut clients = Vec::new();
    for i in 0..10 {
        clients.push(RawClient::join(&server, &room, &format!("P{i}")).await);
    }
    let mut c = RawClient::connect(&server).await;
    c.send(&common::channel_join(&room)).await;
    assert!(matches!(
        c.read_message().await,
        ServerMessage::ChannelJoined { .. }
    ));
    c.send(&common::room_join("Eleventh")).await;
    loop {
        if let ServerMessage::MediaEvent {
            data: ServerMediaEvent::PeerDenied { reason },
        } = c.read_message().await
        {
            assert!(reason.contains("too many joins"), "{reason}");
            break;
        }
    }
    server.shutdown().await.unwrap();
}

/// Row 2: one source cannot fill a room with joins that never answer: its members still
/// connecting are capped, and a place comes back when one goes.
#[tokio::test]
async fn joins_that_never_answer_cannot_fill_a_room_from_one_source() {
    let server = common::start(|c| {
        c.max_connecting_per_ip = 2;
        c.max_peers_per_room = 4;
    })
    .await;
    let room = common::room("lock");
    let (first, _) = RawClient::join(&server, &room, "Q1").await;
    let (_second, _) = RawClient::join(&server, &room, "Q2").await;
    let mut third = RawClient::connect(&server).await;
    third.send(&common::channel_join(&room)).await;
    third.read_message().await;
    third.send(&common::room_join("Q3")).await;
    loop {
        if let ServerMessage::MediaEvent {
            data: ServerMediaEvent::PeerDenied { reason },
        } = third.read_message().await
        {
            assert!(reason.contains("still connecting"), "{reason}");
            break;
        }
    }
    // A real person's media connects, so it never counts against the cap for long; and when
    // a stuck one goes, its place is free again.
    drop(first);
    let deadline = Instant::now() + WAIT;
    loop {
        third.send(&common::room_join("Q3")).await;
        match third.read_message().await {
            ServerMessage::MediaEvent {
                data: ServerMediaEvent::PeerAccepted { .. },
            } => break,
            _ => assert!(Instant::now() < deadline, "the freed place never came back"),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    server.shutdown().await.unwrap();
}

/// Row 3: a huge Origin is neither logged nor echoed whole.
#[tokio::test]
async fn a_huge_origin_is_cut_in_the_reply() {
    let server = common::start(|_| {}).await;
    let origin = format!("http://{}.example", "a".repeat(300 * 1024));
    let request = format!(
        "GET /socket HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
         Origin: {origin}\r\n\r\n"
    );
    let answer = http(&server, &request, Duration::from_secs(5)).await;
    assert!(
        answer.starts_with("HTTP/1.1 403"),
        "{}",
        &answer[..200.min(answer.len())]
    );
    assert!(answer.len() < 4096, "reply of {} bytes", answer.len());
    assert!(answer.contains("bytes)"), "the cut says how long it was");
    server.shutdown().await.unwrap();
}

/// Row 4: paths that cannot name a file are 404 / 414, not 500.
#[tokio::test]
async fn impossible_paths_are_not_found_or_too_long() {
    let server = common::start(|_| {}).await;
    let long_segment = format!("/{}", "a".repeat(256));
    let answer = http(&server, &get(&long_segment, ""), WAIT).await;
    assert!(answer.starts_with("HTTP/1.1 404"), "{answer}");
    let long_path = "/a".repeat(2100);
    let answer = http(&server, &get(&long_path, ""), WAIT).await;
    assert!(answer.starts_with("HTTP/1.1 414"), "{answer}");
    server.shutdown().await.unwrap();
}

/// Row 5: names that reverse or hide themselves are refused at the door.
#[tokio::test]
async fn names_with_bidi_controls_or_nothing_visible_are_refused() {
    let server = common::start(|_| {}).await;
    let room = common::room("names");
    for (name, needle) in [
        ("\u{202E}nimdA", "bidirectional"),
        ("\u{200B}\u{200B}", "visible character"),
    ] {
        let mut c = RawClient::connect(&server).await;
        c.send(&common::channel_join(&room)).await;
        c.read_message().await;
        c.send(&common::room_join(name)).await;
        match c.read_message().await {
            ServerMessage::Error { code, message } => {
                assert_eq!(code, ErrorCode::InvalidField, "{message}");
                assert!(message.contains(needle), "{message}");
            }
            other => panic!("{name:?} was not refused: {other:?}"),
        }
    }
    server.shutdown().await.unwrap();
}

/// Row 6: renames are held to the chat's rate; the others see no flood.
#[tokio::test]
async fn renames_are_held_to_the_chat_rate() {
    use server::chat::{CHAT_BURST, CHAT_PER_SECOND};
    let server = common::start(|_| {}).await;
    let room = common::room("renames");
    let (mut ada, _) = RawClient::join(&server, &room, "Ada").await;
    let (mut eve, _) = RawClient::join(&server, &room, "Eve").await;
    let flood = 40;
    for i in 0..flood {
        eve.send(&ClientMessage::MediaEvent {
            data: ClientMediaEvent::UpdatePeerMetadata {
                metadata: PeerMetadata {
                    display_name: format!("Eve {i}"),
                },
            },
        })
        .await;
    }
    let mut limited = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    while let Ok(read) = tokio::time::timeout_at(deadline, eve.read()).await {
        match read {
            Read::Message(ServerMessage::Error { code, .. }) => {
                assert_eq!(code, ErrorCode::RateLimited);
                limited += 1;
            }
            Read::Message(_) => {}
            Read::Closed(c) => panic!("a rename flood must not close the socket: {c:?}"),
        }
    }
    let mut seen = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_millis(500);
    while let Ok(Read::Message(m)) = tokio::time::timeout_at(deadline, ada.read()).await {
        if matches!(
            m,
            ServerMessage::MediaEvent {
                data: ServerMediaEvent::PeerUpdated { .. }
            }
        ) {
            seen += 1;
        }
    }
    // The burst, plus what the rate refilled while the flood was read (well under a second).
    let allowed = CHAT_BURST as usize + CHAT_PER_SECOND as usize;
    assert!(seen <= allowed, "Ada saw {seen} renames");
    assert!(limited >= flood - allowed, "only {limited} refused");
    server.shutdown().await.unwrap();
}

/// Row 7: well-formed but refused messages count toward closing, whatever comes between.
#[tokio::test]
async fn refused_well_formed_messages_close_the_socket() {
    let secret = "a long enough join token secret";
    let server = common::start(|c| c.join_token_secret = Some(secret.into())).await;
    let mut c = RawClient::connect(&server).await;
    let mut refusals = 0;
    loop {
        // Guessing tokens: every guess well-formed, every one refused.
        c.send(&ClientMessage::ChannelJoin {
            topic: topic_for_room("vault"),
            protocol_version: PROTOCOL_VERSION,
            token: Some(format!("guess-{refusals}")),
        })
        .await;
        match c.read().await {
            Read::Message(ServerMessage::ChannelJoinError { .. }) => refusals += 1,
            Read::Closed(Some((code, reason))) => {
                assert_eq!((code, reason.as_str()), (1008, "too many invalid messages"));
                break;
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(
            refusals <= MAX_REFUSALS_FOR_TEST,
            "{refusals} guesses and still open"
        );
    }
    assert_eq!(refusals, MAX_REFUSALS_FOR_TEST);
    server.shutdown().await.unwrap();
}

const MAX_REFUSALS_FOR_TEST: u32 = server::signaling::MAX_REFUSALS;

/// Row 8: ICE candidates are capped for the connection's life, not only before the answer.
#[tokio::test]
async fn candidates_are_capped_for_the_connection_s_life() {
    use server::peer::MAX_CANDIDATES;
    let server = common::start(|_| {}).await;
    let room = common::room("cands");
    let eve = TestPeer::join(&server.socket_url(), &room, "Eve", PeerOptions::default())
        .await
        .unwrap();
    eve.wait_for("media connected", WAIT, |s| {
        s.connection == Some(RTCPeerConnectionState::Connected)
    })
    .await
    .unwrap();
    for port in 0..600 {
        eve.send(&ClientMessage::MediaEvent {
            data: ClientMediaEvent::Candidate(IceCandidate {
                candidate: format!(
                    "candidate:{port} 1 udp 2130706431 127.0.0.1 {} typ host",
                    20000 + port
                ),
                sdp_mid: Some("0".into()),
                sdp_m_line_index: Some(0),
                username_fragment: None,
            }),
        });
    }
    let state = eve
        .wait_for("the cap's refusal", WAIT, |s| {
            s.errors
                .iter()
                .any(|e| e.contains(&format!("has taken {MAX_CANDIDATES} already")))
        })
        .await
        .unwrap();
    // Refusals spend the budget: the flood ends the session instead of going on.
    let refused = state
        .errors
        .iter()
        .filter(|e| e.contains("has taken"))
        .count();
    assert!(
        refused <= server::signaling::MAX_REFUSALS as usize,
        "{refused}"
    );
    eve.vanish().await;
    server.shutdown().await.unwrap();
}

/// Row 9: DNS rebinding — a WebSocket for a host name the server does not go by is refused,
/// even when Origin and Host agree; a listed public host passes.
#[tokio::test]
async fn a_rebound_host_name_is_refused_on_the_websocket() {
    let server = common::start(|c| c.public_host = vec!["meet.example.com".into()]).await;
    let upgrade = |host: &str| {
        format!(
            "GET /socket HTTP/1.1\r\nHost: {host}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
             Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
             Origin: http://{host}\r\n\r\n"
        )
    };
    let port = server.addr.port();
    let answer = http(&server, &upgrade(&format!("evil.example:{port}")), WAIT).await;
    assert!(answer.starts_with("HTTP/1.1 403"), "{answer}");
    assert!(answer.contains("--public-host"), "{answer}");
    for host in [
        format!("meet.example.com:{port}"),
        format!("127.0.0.1:{port}"),
    ] {
        let answer = http(&server, &upgrade(&host), Duration::from_secs(1)).await;
        assert!(answer.starts_with("HTTP/1.1 101"), "{host}: {answer}");
    }
    server.shutdown().await.unwrap();
}

/// Row 10: a validity the token cannot carry is refused, not wrapped into the past.
#[test]
fn mint_token_refuses_a_validity_it_cannot_write() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_videoroom-server"))
        .args([
            "mint-token",
            "standup",
            "--valid-for-secs",
            "18446744073709551615",
        ])
        .env(
            "VIDEOROOM_JOIN_TOKEN_SECRET",
            "a long enough join token secret",
        )
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot be written"), "{err}");
    assert!(out.stdout.is_empty(), "no token printed");
}

/// Every page carries the security headers; its CSP admits the page's own inline script.
#[tokio::test]
async fn pages_carry_security_headers() {
    let dir = std::env::temp_dir().join(format!("limits-page-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("index.html"),
        "<html><script type=\"module\">alert(1)</script></html>",
    )
    .unwrap();
    let static_dir = dir.clone();
    let server = common::start(move |c| c.static_dir = static_dir).await;
    for path in ["/", "/room/abc", "/healthz", "/nope"] {
        let answer = http(&server, &get(path, ""), WAIT)
            .await
            .to_ascii_lowercase();
        assert!(
            answer.contains("x-content-type-options: nosniff"),
            "{path}: {answer}"
        );
        assert!(answer.contains("frame-ancestors 'none'"), "{path}");
        assert!(
            answer.contains("script-src 'self' 'wasm-unsafe-eval' 'sha256-bhhhl3z2vdgxut0w3dwqorprscmda2y5plslg4gf+pi='"),
            "{path}: {answer}"
        );
    }
    server.shutdown().await.unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

/// `/metrics` needs the token when one is set; `/healthz` then says only that the server is up.
#[tokio::test]
async fn metrics_need_the_token_when_one_is_set() {
    let server = common::start(|c| c.metrics_token = Some("s3cret-token".into())).await;
    let answer = http(&server, &get("/metrics", ""), WAIT).await;
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
    let answer = http(
        &server,
        &get("/metrics", "Authorization: Bearer wrong-token\r\n"),
        WAIT,
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
    let answer = http(
        &server,
        &get("/metrics", "Authorization: Bearer s3cret-token\r\n"),
        WAIT,
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("videoroom_connections"), "{answer}");
    let answer = http(&server, &get("/healthz", ""), WAIT).await;
    assert!(answer.contains(r#"{"status":"ok"}"#), "{answer}");
    assert!(!answer.contains("packets_in"), "{answer}");
    let answer = http(
        &server,
        &get("/healthz", "Authorization: Bearer s3cret-token\r\n"),
        WAIT,
    )
    .await;
    assert!(answer.contains("packets_in"), "{answer}");
    server.shutdown().await.unwrap();
}

/// Pings cost the rate limit like messages: a ping flood closes the socket.
#[tokio::test]
async fn a_ping_flood_closes_the_socket() {
    use futures_util::SinkExt;
    use tokio_tungstenite::tungstenite::Message;
    let server = common::start(|_| {}).await;
    let (mut ws, _) = tokio_tungstenite::connect_async(server.socket_url())
        .await
        .unwrap();
    let flood = server::signaling::RATE_BURST as usize + 100;
    for _ in 0..flood {
        if ws.send(Message::Ping(Default::default())).await.is_err() {
            break;
        }
    }
    let mut raw = RawClient::from_stream(ws);
    loop {
        match raw.read().await {
            Read::Closed(Some((code, reason))) => {
                assert_eq!((code, reason.as_str()), (1008, "too many invalid messages"));
                break;
            }
            Read::Closed(None) => panic!("closed without a reason"),
            Read::Message(_) => {}
        }
    }
    server.shutdown().await.unwrap();
}
