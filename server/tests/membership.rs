//! Joining, leaving, vanishing, rejoining and the room cap, seen from the other peers — and
//! every room and session released afterwards.

mod common;

use std::time::Duration;

use common::WAIT;
use testkit::{JoinError, PeerOptions, TestPeer};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leave_vanish_and_rejoin() {
    let server = common::start(|_| {}).await;
    let room = common::room("life");
    let url = server.socket_url();
    let join = |name: &'static str| TestPeer::join(&url, &room, name, PeerOptions::default());
    let a = join("Ada").await.unwrap();
    let b = join("Bob").await.unwrap();
    let c = join("Cy").await.unwrap();
    common::video_flowing(&a, &c).await;
    common::video_flowing(&b, &c).await;

    // A polite leave: the others get tracksRemoved and peerLeft.
    let c_id = c.id.clone();
    c.leave().await;
    for p in [&a, &b] {
        p.wait_for("Cy gone with its tracks", Duration::from_secs(5), |s| {
            !s.peers.contains_key(&c_id) && s.tracks.values().all(|(pub_id, _)| *pub_id != c_id)
        })
        .await
        .unwrap();
        assert_eq!(p.state().removed_tracks.len(), 2);
    }

    // Rejoin the same room: media flows both ways again.
    let c = join("Cy").await.unwrap();
    common::video_flowing(&a, &c).await;
    common::video_flowing(&c, &a).await;

    // Vanish: the socket is dropped without a close frame.
    let b_id = b.id.clone();
    b.vanish().await;
    for p in [&a, &c] {
        p.wait_for("Bob gone after vanishing", Duration::from_secs(10), |s| {
            !s.peers.contains_key(&b_id)
        })
        .await
        .unwrap();
    }
    // The survivors still exchange media.
    common::video_keeps_flowing(&a, &c).await;

    a.leave().await;
    c.leave().await;
    common::assert_released(&server).await;
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_room_cap_denies_the_next_peer_and_nobody_hears_of_it() {
    let server = common::start(|c| c.max_peers_per_room = 2).await;
    let room = common::room("cap");
    let url = server.socket_url();
    let a = common::peer(&server, &room, "Ada").await;
    let b = common::peer(&server, &room, "Bob").await;
    match TestPeer::join(&url, &room, "Cy", PeerOptions::default()).await {
        Err(JoinError::Denied(reason)) => assert_eq!(reason, "room is full (2 participants)"),
        Err(e) => panic!("expected peerDenied, got {e}"),
        Ok(_) => panic!("a third peer joined a room capped at 2"),
    }
    // Events are ordered per connection: once Ada sees Bob leave, anything about Cy would
    // already have arrived.
    let b_id = b.id.clone();
    b.leave().await;
    let st = a
        .wait_for("Bob left", WAIT, |s| !s.peers.contains_key(&b_id))
        .await
        .unwrap();
    assert!(st.peers.values().all(|n| n != "Cy"), "{:?}", st.peers);
    // Another room on the same server is unaffected by this room's cap.
    let other = TestPeer::join(
        &url,
        &common::room("cap-other"),
        "Dee",
        PeerOptions::default(),
    )
    .await
    .unwrap();
    other.leave().await;
    a.leave().await;
    common::assert_released(&server).await;
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_tells_every_peer() {
    let server = common::start(|_| {}).await;
    let room = common::room("bye");
    let a = common::peer(&server, &room, "Ada").await;
    let b = common::peer(&server, &room, "Bob").await;
    common::video_flowing(&a, &b).await;
    tokio::time::timeout(Duration::from_secs(10), server.shutdown())
        .await
        .expect("shutdown within 10 s")
        .unwrap();
    for p in [&a, &b] {
        let st = p
            .wait_for("close frame", WAIT, |s| s.closed.is_some())
            .await
            .unwrap();
        assert_eq!(st.closed.map(|c| c.0), Some(1001), "{}", p.name);
    }
}
