//! Media really flows: Rust peers publish synthetic audio and video through the real server
//! (WebSocket, ICE, DTLS, SRTP over loopback) and every other peer receives every stream intact.

mod common;

use std::time::Instant;

use common::WAIT;
use futures_util::future::join_all;
use testkit::{PeerOptions, TestPeer};

/// Enough packets to show a stream flows steadily (~1 s of audio, ~1 s of video).
const AUDIO_PACKETS: u64 = 50;
const VIDEO_PACKETS: u64 = 100;

/// Waits until `receiver` has had a steady stream of `from`'s audio and video, all intact.
async fn assert_receives(receiver: &TestPeer, from: &TestPeer) {
    let st = receiver
        .wait_for(
            &format!("audio and video from {} at {}", from.name, receiver.name),
            WAIT,
            |s| {
                s.packets_from(&from.id, "audio") >= AUDIO_PACKETS
                    && s.packets_from(&from.id, "video") >= VIDEO_PACKETS
            },
        )
        .await
        .unwrap();
    assert_eq!(
        st.corrupt(),
        0,
        "{} received corrupt payloads",
        receiver.name
    );
}

async fn assert_everyone_receives_everyone(peers: &[TestPeer]) {
    for p in peers {
        for other in peers.iter().filter(|o| o.id != p.id) {
            assert_receives(p, other).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_peers_exchange_audio_and_video() {
    let server = common::start(|_| {}).await;
    let room = common::room("two");
    let started = Instant::now();
    let a = common::peer(&server, &room, "Ada").await;
    let b = common::peer(&server, &room, "Bob").await;
    b.wait_for("first packet from Ada", WAIT, |s| {
        s.packets_from(&a.id, "video") > 0
    })
    .await
    .unwrap();
    println!(
        "2 peers: second join → first video packet in {:?}",
        started.elapsed()
    );

    // Each sees the other in the list, with both tracks announced.
    let st = a.state();
    assert_eq!(st.peers.get(&b.id).map(String::as_str), Some("Bob"));
    let st = b
        .wait_for("both of Ada's tracks announced", WAIT, |s| {
            s.tracks.values().filter(|(p, _)| *p == a.id).count() == 2
        })
        .await
        .unwrap();
    assert_eq!(st.peers.get(&a.id).map(String::as_str), Some("Ada"));

    // The newcomer needs a keyframe: the server asked Ada's publisher for one.
    a.wait_for("a keyframe request for Bob", WAIT, |s| {
        s.keyframe_requests > 0
    })
    .await
    .unwrap();

    let peers = [a, b];
    assert_everyone_receives_everyone(&peers).await;
    let health = server.state.health();
    println!(
        "2 peers: packets in {}, packets forwarded {}",
        health.packets_in, health.packets_out
    );
    assert!(health.packets_out > 0);
    for p in peers {
        p.leave().await;
    }
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_peers_joining_at_once_all_receive_everyone() {
    let server = common::start(|_| {}).await;
    let room = common::room("five");
    let url = server.socket_url();
    let started = Instant::now();
    let names = ["Ada", "Bob", "Cy", "Dee", "Eve"];
    // Joining concurrently stresses renegotiation: offers pile up while answers are in flight.
    let peers: Vec<TestPeer> = join_all(
        names
            .iter()
            .map(|n| TestPeer::join(&url, &room, n, PeerOptions::default())),
    )
    .await
    .into_iter()
    .map(|r| r.unwrap())
    .collect();
    let joined = started.elapsed();
    assert_everyone_receives_everyone(&peers).await;
    let flowing = started.elapsed();
    for p in &peers {
        let st = p.state();
        assert_eq!(st.peers.len(), 4, "{} sees {:?}", p.name, st.peers);
        assert_eq!(
            st.tracks.len(),
            8,
            "{} knows tracks {:?}",
            p.name,
            st.tracks
        );
    }
    let health = server.state.health();
    println!(
        "5 peers: all joined in {joined:?}, every stream flowing everywhere after {flowing:?}; \
         packets in {}, forwarded {}",
        health.packets_in, health.packets_out
    );
    for p in peers {
        p.leave().await;
    }
    server.shutdown().await.unwrap();
}

/// A large audience is split over fan-out shards (here 3, whatever this machine's cores): the
/// first `INLINE_SUBSCRIBERS` are written by the forwarder itself, the rest by the other shards'
/// tasks, and every subscriber gets every packet intact either way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_audience_is_served_by_every_fanout_shard() {
    let server = common::start(|c| c.fanout_shards = Some(3)).await;
    let room = common::room("audience");
    let url = server.socket_url();
    let ada = common::peer(&server, &room, "Ada").await;
    let audience = server::forwarder::INLINE_SUBSCRIBERS + 4;
    let viewer = PeerOptions {
        audio: false,
        video: false,
        ..PeerOptions::default()
    };
    let names: Vec<String> = (0..audience).map(|i| format!("Viewer {i}")).collect();
    let viewers: Vec<TestPeer> = join_all(
        names
            .iter()
            .map(|n| TestPeer::join(&url, &room, n, viewer.clone())),
    )
    .await
    .into_iter()
    .map(|r| r.unwrap())
    .collect();
    for v in &viewers {
        assert_receives(v, &ada).await;
    }
    let health = server.state.health();
    println!(
        "{audience} viewers over 3 shards: packets in {}, forwarded {}, handed to other shards {}",
        health.packets_in, health.packets_out, health.shard_handoffs
    );
    assert!(
        health.shard_handoffs > 0,
        "the viewers beyond the inline shard were served by the other shards' tasks"
    );
    for v in viewers {
        v.leave().await;
    }
    ada.leave().await;
    server.shutdown().await.unwrap();
}
