//! Chat: every member (the sender too) gets each message with the room's sequence number, the
//! sender's current name and the server's time; newcomers get the history; a flood is slowed
//! down with `rateLimited` but not disconnected.

mod common;

use std::time::{Duration, Instant};

use common::WAIT;
use protocol::{ClientMediaEvent, ClientMessage, PeerMetadata};
use testkit::{PeerOptions, TestPeer};

/// A participant without media: chat needs none.
async fn chatter(server: &server::RunningServer, room: &str, name: &str) -> TestPeer {
    TestPeer::join(
        &server.socket_url(),
        room,
        name,
        PeerOptions {
            audio: false,
            video: false,
            ..PeerOptions::default()
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{name} could not join: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_reach_everyone_in_order_and_newcomers_get_the_history() {
    let server = common::start(|_| {}).await;
    let room = common::room("chat");
    let ada = chatter(&server, &room, "Ada").await;
    let bob = chatter(&server, &room, "Bob").await;
    assert!(bob.state().chat.is_empty(), "a new room has no history");

    let before = protocol_now_ms();
    let sent = Instant::now();
    ada.send_chat("hello");
    let st = bob
        .wait_for("Ada's first message", WAIT, |s| s.chat.len() == 1)
        .await
        .unwrap();
    println!("chat fan-out: send → other member in {:?}", sent.elapsed());
    let m = &st.chat[0];
    assert_eq!(
        (m.peer_id.as_str(), m.display_name.as_str(), m.text.as_str()),
        (ada.id.as_str(), "Ada", "hello")
    );
    assert!(
        m.sent_at_ms >= before && m.sent_at_ms <= protocol_now_ms(),
        "server wall clock: {} not in [{before}, now]",
        m.sent_at_ms
    );
    bob.send_chat("hi Ada");
    // The sender gets its own messages too, in the same order as everyone else.
    for p in [&ada, &bob] {
        let st = p
            .wait_for("both messages", WAIT, |s| s.chat.len() == 2)
            .await
            .unwrap();
        let texts: Vec<&str> = st.chat.iter().map(|m| m.text.as_str()).collect();
        assert_eq!(texts, ["hello", "hi Ada"], "{}", p.name);
        assert!(st.chat[0].seq < st.chat[1].seq);
    }

    // The name is the sender's current one.
    ada.send(&ClientMessage::MediaEvent {
        data: ClientMediaEvent::UpdatePeerMetadata {
            metadata: PeerMetadata {
                display_name: "Ada L.".into(),
            },
        },
    });
    ada.send_chat("renamed");
    let st = bob
        .wait_for("the third message", WAIT, |s| s.chat.len() == 3)
        .await
        .unwrap();
    assert_eq!(st.chat[2].display_name, "Ada L.");

    // A newcomer gets the history with peerAccepted, oldest first, identical to what was sent.
    let cy = chatter(&server, &room, "Cy").await;
    let history = cy.state().chat;
    assert_eq!(history, st.chat);
    // And is included from then on.
    cy.send_chat("late but here");
    for p in [&ada, &bob, &cy] {
        p.wait_for("Cy's message", WAIT, |s| {
            s.chat.last().is_some_and(|m| m.text == "late but here")
        })
        .await
        .unwrap();
    }
    // Chat is per room.
    let other = chatter(&server, &common::room("chat-other"), "Dee").await;
    assert!(other.state().chat.is_empty());
    for p in [ada, bob, cy, other] {
        assert!(
            p.state().errors.is_empty(),
            "{}: {:?}",
            p.name,
            p.state().errors
        );
        p.leave().await;
    }
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chat_flood_is_refused_with_rate_limited_but_not_disconnected() {
    let server = common::start(|_| {}).await;
    let room = common::room("chat-flood");
    let ada = chatter(&server, &room, "Ada").await;
    let bob = chatter(&server, &room, "Bob").await;
    for i in 0..25 {
        ada.send_chat(&format!("spam {i}"));
    }
    let st = ada
        .wait_for("refusals", WAIT, |s| {
            s.errors
                .iter()
                .filter(|e| e.contains("RateLimited"))
                .count()
                >= 10
        })
        .await
        .unwrap();
    // The burst (10), plus at most what trickled back in while the frames arrived.
    let delivered = bob
        .wait_for("the burst", WAIT, |s| s.chat.len() >= 10)
        .await
        .unwrap()
        .chat
        .len();
    assert!((10..=12).contains(&delivered), "{delivered} delivered");
    assert!(st.closed.is_none(), "the flooder stays connected");

    // A second later it may speak again.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    ada.send_chat("sorry");
    bob.wait_for("the apology", WAIT, |s| {
        s.chat.last().is_some_and(|m| m.text == "sorry")
    })
    .await
    .unwrap();
    assert!(ada.state().closed.is_none());
    ada.leave().await;
    bob.leave().await;
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_history_is_bounded() {
    let server = common::start(|_| {}).await;
    let room = common::room("chat-bound");
    // Each member has its own budget: six of them send 10 each, within their bursts.
    let mut members = Vec::new();
    for i in 0..6 {
        members.push(chatter(&server, &room, &format!("P{i}")).await);
    }
    for (i, p) in members.iter().enumerate() {
        for j in 0..10 {
            p.send_chat(&format!("{i}.{j}"));
        }
        // Wait for each to land, so the order is known.
        p.wait_for("own messages", WAIT, |s| {
            s.chat.iter().filter(|m| m.peer_id == p.id).count() == 10
        })
        .await
        .unwrap();
    }
    let late = chatter(&server, &room, "Late").await;
    let history = late.state().chat;
    assert_eq!(history.len(), protocol::MAX_CHAT_HISTORY);
    assert_eq!(history[0].text, "1.0", "the oldest ten are forgotten");
    assert_eq!(history.last().map(|m| m.text.as_str()), Some("5.9"));
    assert!(history.windows(2).all(|w| w[0].seq < w[1].seq));
    for p in members {
        p.leave().await;
    }
    late.leave().await;
    server.shutdown().await.unwrap();
}

fn protocol_now_ms() -> u64 {
    server::chat::now_ms()
}
