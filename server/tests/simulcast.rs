//! Simulcast, step 1: with `--simulcast` the server asks a camera for three layers, receives
//! all of them and forwards the best live one to every subscriber, intact; keyframe requests
//! go to that layer. Publishers that send one stream are forwarded as before.
//!
//! testkit's simulcast publisher sends layers `q`, `h`, `f` at a quarter, half and full payload
//! size, with random sequence and timestamp starts per layer, and marks each payload with its
//! layer (1, 2, 3), so a subscriber can tell which one arrived.

mod common;

use std::time::Duration;

use common::{room, start, WAIT};
use server::layers::Reading;
use server::RunningServer;
use testkit::{Impairment, LayerStats, PeerOptions, PeerState, TestPeer, TrackStats};

/// The payload mark of the full-size layer `f`.
const FULL: u8 = 3;

fn simulcast() -> PeerOptions {
    PeerOptions {
        simulcast: true,
        ..PeerOptions::default()
    }
}

fn video_from(state: &PeerState, publisher: &str) -> TrackStats {
    state
        .received
        .values()
        .find(|t| t.publisher == publisher && t.kind == "video")
        .cloned()
        .unwrap_or_default()
}

fn layer(state: &PeerState, publisher: &str, mark: u8) -> LayerStats {
    video_from(state, publisher)
        .by_layer
        .get(&mark)
        .cloned()
        .unwrap_or_default()
}

/// The layers the server receives of `publisher`'s video: (rid, reading).
fn server_layers(server: &RunningServer, room: &str, publisher: &str) -> Vec<(String, Reading)> {
    let Some(room) = server.state.rooms.get(room) else {
        return Vec::new();
    };
    room.tracks()
        .iter()
        .filter(|t| t.publisher == publisher && t.kind.to_string() == "video")
        .flat_map(|t| t.layers.readings(tokio::time::Instant::now()))
        .map(|(rid, _, r)| (rid, r))
        .collect()
}

/// Waits until the server receives `n` live layers of `publisher`'s video.
async fn wait_for_live_layers(server: &RunningServer, room: &str, publisher: &str, n: usize) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let layers = server_layers(server, room, publisher);
        if layers.iter().filter(|(_, r)| r.live).count() == n {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{n} live layers of {publisher}'s video expected, the server has {layers:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until `viewer` gets only layer `mark` of `publisher`'s video, then checks that the
/// next `packets` of it arrive whole and from that layer alone.
async fn assert_only_layer(viewer: &TestPeer, publisher: &TestPeer, mark: u8, packets: u64) {
    // Before the server has measured the layers it may forward another for a moment.
    let settled = viewer
        .wait_for(
            &format!("{} forwarded layer {mark}", publisher.name),
            WAIT,
            |s| layer(s, &publisher.id, mark).packets >= 20,
        )
        .await
        .unwrap();
    let before = video_from(&settled, &publisher.id);
    let now = viewer
        .wait_for(
            &format!("{packets} more packets of layer {mark}"),
            WAIT,
            |s| layer(s, &publisher.id, mark).packets >= before.by_layer[&mark].packets + packets,
        )
        .await
        .unwrap();
    let after = video_from(&now, &publisher.id);
    for (m, l) in &after.by_layer {
        if *m != mark {
            assert_eq!(
                before.by_layer.get(m).map(|b| b.packets),
                Some(l.packets),
                "{}: layer {m} arrived beside layer {mark}: {:?}",
                viewer.name,
                after.by_layer
            );
        }
    }
    assert_eq!(after.corrupt, 0, "corrupt payloads");
    let l = &after.by_layer[&mark];
    assert!(
        l.delivery() > 0.99,
        "{}: layer {mark} delivered {:.3} on loopback: {l:?}",
        viewer.name,
        l.delivery()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_layer_is_received_and_the_best_one_forwarded_intact() {
    let server = start(|c| c.simulcast = true).await;
    let room = room("simulcast");
    let url = server.socket_url();
    let ada = TestPeer::join(&url, &room, "Ada", simulcast())
        .await
        .expect("Ada joins");
    // Bob sends one stream: his answer declines the layers the server asks him for.
    let bob = TestPeer::join(&url, &room, "Bob", PeerOptions::default())
        .await
        .expect("Bob joins");

    // Ada answered the first offer with three layers; the server receives all of them.
    let offer = ada.state().offer_sdp;
    assert_eq!(
        offer.matches("a=simulcast:recv q;h;f").count(),
        1,
        "{offer}"
    );
    wait_for_live_layers(&server, &room, &ada.id, 3).await;
    let mut rids: Vec<String> = server_layers(&server, &room, &ada.id)
        .into_iter()
        .map(|(rid, _)| rid)
        .collect();
    rids.sort();
    assert_eq!(rids, ["f", "h", "q"]);

    // Bob gets the biggest layer, and only it, intact.
    assert_only_layer(&bob, &ada, FULL, 200).await;
    // Bob's one stream is forwarded to Ada as before (one layer, no RID).
    let plain = server_layers(&server, &room, &bob.id);
    assert_eq!(plain.len(), 1, "{plain:?}");
    assert_eq!(plain[0].0, "");
    ada.wait_for("Bob's video", WAIT, |s| {
        s.packets_from(&bob.id, "video") >= 100
    })
    .await
    .unwrap();
    assert_eq!(ada.state().corrupt(), 0);

    // A viewer's keyframe request reaches the forwarded layer.
    let before = ada.state().keyframe_requests_by_rid;
    assert!(bob.request_keyframes().await > 0);
    let st = ada
        .wait_for("a keyframe request for f", WAIT, |s| {
            s.keyframe_requests_by_rid.get("f") > before.get("f")
        })
        .await
        .unwrap();
    println!(
        "keyframe requests by layer: {:?}",
        st.keyframe_requests_by_rid
    );
    println!(
        "layers at the server: {:?}",
        server_layers(&server, &room, &ada.id)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_third_peer_joining_leaves_every_layer_alive() {
    let server = start(|c| c.simulcast = true).await;
    let room = room("simulcast-3");
    let url = server.socket_url();
    let ada = TestPeer::join(&url, &room, "Ada", simulcast())
        .await
        .expect("Ada joins");
    let bob = TestPeer::join(&url, &room, "Bob", PeerOptions::default())
        .await
        .expect("Bob joins");
    wait_for_live_layers(&server, &room, &ada.id, 3).await;
    assert_only_layer(&bob, &ada, FULL, 100).await;
    let offers = ada.state().offers;

    // Cat's tracks reach Ada in a new offer, which the crate writes itself: it must still ask
    // for the layers, once, or Ada's answer would drop them and the server stop receiving.
    let cat = TestPeer::join(&url, &room, "Cat", simulcast())
        .await
        .expect("Cat joins");
    let st = ada
        .wait_for("a new offer with Cat's tracks", WAIT, |s| {
            s.offers > offers && s.tracks.values().any(|(p, _)| *p == cat.id)
        })
        .await
        .unwrap();
    for section in st.offer_sdp.split("m=").skip(1) {
        assert!(
            section.matches("a=simulcast:").count() <= 1,
            "a=simulcast twice in one m-line: {section}"
        );
    }
    assert_eq!(
        st.offer_sdp.matches("a=simulcast:").count(),
        1,
        "only Ada's camera m-line asks for layers: {}",
        st.offer_sdp
    );
    // Every layer of Ada's still arrives after the re-negotiation, and is still forwarded.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    wait_for_live_layers(&server, &room, &ada.id, 3).await;
    assert_only_layer(&cat, &ada, FULL, 100).await;
    assert_only_layer(&bob, &ada, FULL, 100).await;
    // And Cat's layers reach Ada and Bob.
    wait_for_live_layers(&server, &room, &cat.id, 3).await;
    assert_only_layer(&ada, &cat, FULL, 100).await;
    assert_only_layer(&bob, &cat, FULL, 100).await;
}

/// 5% loss and 50 ms one way, in both directions of a peer's link (as `tests/loss.rs`).
fn bad_link(seed: u64) -> Option<Impairment> {
    Some(Impairment {
        loss: 0.05,
        delay: Duration::from_millis(50),
        seed,
        spare_dtls_handshake: true,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn losses_of_the_forwarded_layer_are_repaired() {
    let server = start(|c| c.simulcast = true).await;
    let room = room("simulcast-loss");
    let url = server.socket_url();
    let pat = TestPeer::join(
        &url,
        &room,
        "Pat",
        PeerOptions {
            impairment: bad_link(0x5eed_0101),
            ..simulcast()
        },
    )
    .await
    .expect("Pat joins");
    let sue = TestPeer::join(
        &url,
        &room,
        "Sue",
        PeerOptions {
            video: false,
            impairment: bad_link(0x5eed_0102),
            ..PeerOptions::default()
        },
    )
    .await
    .expect("Sue joins");
    wait_for_live_layers(&server, &room, &pat.id, 3).await;
    // Five seconds of the full layer, each packet crossing two lossy hops.
    let st = sue
        .wait_for("500 packets of Pat's full layer", WAIT * 2, |s| {
            layer(s, &pat.id, FULL).distinct >= 500
        })
        .await
        .unwrap();
    let f = layer(&st, &pat.id, FULL);
    let video = video_from(&st, &pat.id);
    println!(
        "simulcast over a lossy link: layer f {:.2}% delivered ({} distinct), layers seen {:?}, \
         longest gap {} ms",
        f.delivery() * 100.0,
        f.distinct,
        video.by_layer.keys().collect::<Vec<_>>(),
        video.longest_gap.as_millis()
    );
    // Unrepaired, two 5% hops deliver ~90%: the layer's own history answered the NACKs.
    assert!(
        f.delivery() >= 0.985,
        "only {:.2}% of the full layer reached Sue: NACKs not answered from its history?",
        f.delivery() * 100.0
    );
    assert_eq!(video.corrupt, 0, "corrupt payloads");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_flag_nobody_is_asked_for_layers() {
    let server = start(|_| {}).await;
    let room = room("simulcast-off");
    let url = server.socket_url();
    let ada = TestPeer::join(&url, &room, "Ada", PeerOptions::default())
        .await
        .expect("Ada joins");
    let bob = TestPeer::join(&url, &room, "Bob", PeerOptions::default())
        .await
        .expect("Bob joins");
    bob.wait_for("Ada's video", WAIT, |s| {
        s.packets_from(&ada.id, "video") >= 100
    })
    .await
    .unwrap();
    let offer = ada.state().offer_sdp;
    assert!(
        !offer.contains("a=simulcast") && !offer.contains("a=rid"),
        "{offer}"
    );
    assert!(!offer.contains("sdes:rtp-stream-id"), "{offer}");
    assert_eq!(server_layers(&server, &room, &ada.id).len(), 1);
}
