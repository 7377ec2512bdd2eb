//! Simulcast: with `--simulcast` the server asks a camera for three layers, receives all of
//! them and gives each subscriber one, intact; keyframe requests go to that layer. A subscriber
//! changes layer only at a keyframe of the new one, with sequence numbers contiguous and
//! timestamps moving on with time, so the switch is invisible but for sharpness. Publishers
//! that send one stream are forwarded as before.
//!
//! testkit's simulcast publisher sends layers `q`, `h`, `f` (320×180, 640×360, 1280×720
//! keyframes; a quarter, half and all of the payload size) as VP8-shaped frames, with random
//! sequence and timestamp starts per layer, and marks each payload with its layer (1, 2, 3), so
//! a subscriber can tell which one arrived.

mod common;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use common::{bad_link, room, start, video_from, WAIT};
use server::forwarder::PublishedTrack;
use server::layers::Reading;
use server::simulcast::Cap;
use server::RunningServer;
use testkit::{LayerStats, PeerOptions, PeerState, Received, TestPeer};

/// The payload mark of the full-size layer `f`.
const FULL: u8 = 3;
/// The payload mark of the half-size layer `h`.
const HALF: u8 = 2;
/// The payload mark of the quarter-size layer `q`.
const QUARTER: u8 = 1;

/// RTP timestamp ticks per testkit video frame (90 kHz, 100 frames a second).
const FRAME_TICKS: i64 = 900;

/// The tests here run one at a time: each runs several peers with media at 100 frames a
/// second per layer, and their timing (a second of silence, timestamps against wall time,
/// repairs within a jitter buffer's patience) means nothing on a CPU that two others share.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A viewer that sends no video and records every packet it receives.
fn recording_viewer() -> PeerOptions {
    PeerOptions {
        video: false,
        record_packets: true,
        ..PeerOptions::default()
    }
}

/// A server with `--simulcast`, a fresh room, and `peers` joined in order; the first, a
/// simulcast publisher, has all three layers live at the server when this returns.
async fn simulcast_room(
    prefix: &str,
    peers: Vec<(&str, PeerOptions)>,
) -> (RunningServer, String, Vec<TestPeer>) {
    let server = start(|c| c.simulcast = true).await;
    let room = room(prefix);
    let url = server.socket_url();
    let mut joined = Vec::new();
    for (name, options) in peers {
        let peer = TestPeer::join(&url, &room, name, options)
            .await
            .unwrap_or_else(|e| panic!("{name} joins: {e}"));
        joined.push(peer);
    }
    wait_for_live_layers(&server, &room, &joined[0].id, 3).await;
    (server, room, joined)
}

/// The id of `publisher`'s video track as `viewer` receives it.
fn video_track_id(viewer: &TestPeer, publisher: &TestPeer) -> String {
    viewer
        .state()
        .received
        .iter()
        .find(|(_, t)| t.publisher == publisher.id && t.kind == "video")
        .map(|(id, _)| id.clone())
        .unwrap_or_else(|| panic!("{}'s video at {}", publisher.name, viewer.name))
}

/// `publisher`'s published video track at the server.
fn video_track(server: &RunningServer, room: &str, publisher: &str) -> Arc<PublishedTrack> {
    server
        .state
        .rooms
        .get(room)
        .and_then(|r| {
            r.tracks()
                .into_iter()
                .find(|t| t.publisher == publisher && t.kind.to_string() == "video")
        })
        .expect("the publisher's video track")
}

/// The place in `log` where the packets turn from layer `from` to layer `to` (the last such
/// turn): the index of the first packet of `to`.
fn switch_in(log: &[Received], from: u8, to: u8) -> usize {
    (1..log.len())
        .rev()
        .find(|&i| log[i - 1].layer == from && log[i].layer == to)
        .unwrap_or_else(|| {
            panic!(
                "no switch from layer {from} to {to} in {} packets",
                log.len()
            )
        })
}

/// Checks that the switch at `log[i]` is seamless: it starts with a keyframe, its sequence
/// number follows the last one, and its timestamp moved on by the time between them (within
/// 50 ms: arrival times carry the scheduling jitter of a loaded machine; a missing or wrong
/// offset is off by seconds or by a random 32-bit amount).
fn assert_seamless(log: &[Received], i: usize) {
    let (before, after) = (log[i - 1], log[i]);
    assert!(
        after.keyframe,
        "the new layer's first packet is no keyframe: {after:?}"
    );
    assert_eq!(
        after.sequence_number,
        before.sequence_number.wrapping_add(1),
        "a sequence gap at the switch: {before:?} → {after:?}"
    );
    let ticks = i64::from(after.timestamp.wrapping_sub(before.timestamp) as i32);
    let elapsed = (after.at - before.at).as_micros() as i64 * 90 / 1000;
    assert!(
        (ticks - elapsed).abs() <= 5 * FRAME_TICKS,
        "timestamp moved {ticks} ticks over {elapsed} ticks of time: {before:?} → {after:?}"
    );
}

fn simulcast() -> PeerOptions {
    PeerOptions {
        simulcast: true,
        ..PeerOptions::default()
    }
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
    // Until the layer is measured, or a switch to it is made at its next keyframe, another
    // may still arrive: wait for 20 packets of it from now on.
    let start = layer(&viewer.state(), &publisher.id, mark).packets;
    let settled = viewer
        .wait_for(
            &format!("{} forwarded layer {mark}", publisher.name),
            WAIT,
            |s| layer(s, &publisher.id, mark).packets >= start + 20,
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
    // Delivery over the window: what arrived of the layer since `before` against how far its
    // counter moved (the layer may have been forwarded before, with a gap since).
    let l = &after.by_layer[&mark];
    let b = &before.by_layer[&mark];
    let moved = l.counters.map_or(0, |c| c.1) - b.counters.map_or(0, |c| c.1);
    let delivery = (l.distinct - b.distinct) as f64 / f64::from(moved.max(1));
    assert!(
        delivery > 0.99,
        "{}: layer {mark} delivered {delivery:.3} on loopback: {b:?} → {l:?}",
        viewer.name
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_layer_is_received_and_the_best_one_forwarded_intact() {
    let _one = ONE_AT_A_TIME.lock().await;
    // Bob sends one stream: his answer declines the layers the server asks him for.
    let (server, room, peers) = simulcast_room(
        "simulcast",
        vec![("Ada", simulcast()), ("Bob", PeerOptions::default())],
    )
    .await;
    let [ada, bob] = &peers[..] else {
        unreachable!()
    };

    // Ada answered the first offer with three layers; the server receives all of them.
    let offer = ada.state().offer_sdp;
    assert_eq!(
        offer.matches("a=simulcast:recv q;h;f").count(),
        1,
        "{offer}"
    );
    let mut rids: Vec<String> = server_layers(&server, &room, &ada.id)
        .into_iter()
        .map(|(rid, _)| rid)
        .collect();
    rids.sort();
    assert_eq!(rids, ["f", "h", "q"]);

    // Bob gets the biggest layer, and only it, intact.
    assert_only_layer(bob, ada, FULL, 200).await;
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
    let _one = ONE_AT_A_TIME.lock().await;
    let (server, room, peers) = simulcast_room(
        "simulcast-3",
        vec![("Ada", simulcast()), ("Bob", PeerOptions::default())],
    )
    .await;
    let [ada, bob] = &peers[..] else {
        unreachable!()
    };
    let url = server.socket_url();
    assert_only_layer(bob, ada, FULL, 100).await;
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
    // Each layer once: the crate repeats every rid of the last answer, and testkit's
    // answers (the crate's) echo ours besides their own.
    let eol = if st.offer_sdp.contains("\r\n") {
        "\r\n"
    } else {
        "\n"
    };
    assert!(
        st.offer_sdp
            .contains(&format!("a=simulcast:recv q;h;f{eol}")),
        "{}",
        st.offer_sdp
    );
    for rid in ["q", "h", "f"] {
        assert_eq!(
            st.offer_sdp.matches(&format!("a=rid:{rid} ")).count(),
            1,
            "{}",
            st.offer_sdp
        );
    }
    // Every layer of Ada's still arrives after the re-negotiation, and is still forwarded.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    wait_for_live_layers(&server, &room, &ada.id, 3).await;
    assert_only_layer(&cat, ada, FULL, 100).await;
    assert_only_layer(bob, ada, FULL, 100).await;
    // And Cat's layers reach Ada and Bob.
    wait_for_live_layers(&server, &room, &cat.id, 3).await;
    assert_only_layer(ada, &cat, FULL, 100).await;
    assert_only_layer(bob, &cat, FULL, 100).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn losses_of_the_forwarded_layer_are_repaired() {
    let _one = ONE_AT_A_TIME.lock().await;
    let (_server, _room, peers) = simulcast_room(
        "simulcast-loss",
        vec![
            (
                "Pat",
                PeerOptions {
                    impairment: bad_link(0x5eed_0101),
                    ..simulcast()
                },
            ),
            (
                "Sue",
                PeerOptions {
                    video: false,
                    impairment: bad_link(0x5eed_0102),
                    record_packets: true,
                    ..PeerOptions::default()
                },
            ),
        ],
    )
    .await;
    let [pat, sue] = &peers[..] else {
        unreachable!()
    };
    // Five seconds of the full layer, each packet crossing two lossy hops. Sue's downlink
    // estimate may move her off it for a while (5 % random loss in a short window can read
    // as congestion): delivery is counted within each stretch of f she received.
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
    // Per stretch of f: its counters received, split where half a second of them is missing
    // (Sue was on another layer then; a loss NACKs did not repair is a packet or two).
    let mut counters: Vec<u32> = video
        .log
        .iter()
        .filter(|p| p.layer == FULL)
        .map(|p| p.counter)
        .collect();
    counters.sort_unstable();
    counters.dedup();
    let distinct = counters.len() as u64;
    let expected: u64 = counters
        .windows(2)
        .map(|w| u64::from(w[1] - w[0]))
        .filter(|&step| step <= 50)
        .sum::<u64>()
        + counters.windows(2).filter(|w| w[1] - w[0] > 50).count() as u64
        + 1;
    let delivery = distinct as f64 / expected.max(1) as f64;
    // Unrepaired, two 5% hops deliver ~90%: the layer's own history answered the NACKs.
    assert!(
        delivery >= 0.985,
        "only {:.2}% of the full layer reached Sue within its stretches: NACKs not answered \
         from its history?",
        delivery * 100.0
    );
    assert_eq!(video.corrupt, 0, "corrupt payloads");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_flag_nobody_is_asked_for_layers() {
    let _one = ONE_AT_A_TIME.lock().await;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_layer_that_stops_moves_its_viewers_down_and_back_seamlessly() {
    let _one = ONE_AT_A_TIME.lock().await;
    let (server, _room, peers) = simulcast_room(
        "simulcast-switch",
        vec![("Ada", simulcast()), ("Bob", recording_viewer())],
    )
    .await;
    let [ada, bob] = &peers[..] else {
        unreachable!()
    };
    assert_only_layer(bob, ada, FULL, 100).await;
    let stats = &server.state.stats;
    let down_before = stats.layer_switches_down.load(Ordering::Relaxed);

    // f stops (a browser's bandwidth or CPU dropped): Bob moves to h once f is gone.
    ada.set_layer_active("f", false).unwrap();
    let st = bob
        .wait_for("50 packets of h", WAIT, |s| {
            layer(s, &ada.id, HALF).packets >= 50
        })
        .await
        .unwrap();
    let log = video_from(&st, &ada.id).log;
    let i = switch_in(&log, FULL, HALF);
    assert_seamless(&log, i);
    assert!(
        log[i..].iter().all(|p| p.layer == HALF),
        "only h after the switch"
    );
    let gap = log[i].at - log[i - 1].at;
    println!(
        "f stopped: Bob on h after {} ms without a frame",
        gap.as_millis()
    );
    assert!(stats.layer_switches_down.load(Ordering::Relaxed) > down_before);

    // f comes back: Bob moves up at its first keyframe.
    let up_before = stats.layer_switches_up.load(Ordering::Relaxed);
    let f_before = layer(&st, &ada.id, FULL).packets;
    ada.set_layer_active("f", true).unwrap();
    let st = bob
        .wait_for("f again", WAIT, |s| {
            layer(s, &ada.id, FULL).packets >= f_before + 50
        })
        .await
        .unwrap();
    let log = video_from(&st, &ada.id).log;
    let j = switch_in(&log, HALF, FULL);
    assert_seamless(&log, j);
    assert!(
        log[j..].iter().all(|p| p.layer == FULL),
        "only f after the switch back"
    );
    assert!(stats.layer_switches_up.load(Ordering::Relaxed) > up_before);
    // The whole stream, both switches included, is one unbroken sequence.
    for w in log.windows(2) {
        assert_eq!(
            w[1].sequence_number,
            w[0].sequence_number.wrapping_add(1),
            "a gap or reorder: {:?} → {:?}",
            w[0],
            w[1]
        );
    }
    // And one unbroken run of VP8 PictureIDs, though each layer numbers its own.
    assert_eq!(
        video_from(&st, &ada.id).picture_id_jumps,
        0,
        "PictureIDs jumped at a switch"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_viewers_with_different_targets_each_get_only_their_own_layer() {
    let _one = ONE_AT_A_TIME.lock().await;
    let (server, room, peers) = simulcast_room(
        "simulcast-targets",
        vec![
            ("Ada", simulcast()),
            ("Bob", recording_viewer()),
            ("Cat", recording_viewer()),
        ],
    )
    .await;
    let [ada, bob, cat] = &peers[..] else {
        unreachable!()
    };
    assert_only_layer(bob, ada, FULL, 50).await;
    assert_only_layer(cat, ada, FULL, 50).await;

    // Bob's tile is small: at most q for him; Cat keeps f.
    let track = video_track(&server, &room, &ada.id);
    let bob_ssrc = video_from(&bob.state(), &ada.id).ssrc;
    assert!(track.set_layer_cap(bob_ssrc, Cap::AtMost("q".into())));
    assert!(
        !track.set_layer_cap(bob_ssrc ^ 1, Cap::AtMost("q".into())),
        "no such subscriber"
    );
    assert_only_layer(bob, ada, QUARTER, 100).await;
    let log = video_from(&bob.state(), &ada.id).log;
    assert_seamless(&log, switch_in(&log, FULL, QUARTER));
    assert_only_layer(cat, ada, FULL, 100).await;

    // Back to the track's choice: Bob returns to f.
    assert!(track.set_layer_cap(bob_ssrc, Cap::Auto));
    assert_only_layer(bob, ada, FULL, 100).await;
    let log = video_from(&bob.state(), &ada.id).log;
    assert_seamless(&log, switch_in(&log, QUARTER, FULL));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nack_right_after_a_switch_is_answered_from_the_new_layer() {
    let _one = ONE_AT_A_TIME.lock().await;
    let (_server, _room, peers) = simulcast_room(
        "simulcast-nack",
        vec![
            ("Pat", simulcast()),
            (
                "Sue",
                PeerOptions {
                    impairment: bad_link(0x5eed_0201),
                    ..recording_viewer()
                },
            ),
        ],
    )
    .await;
    let [pat, sue] = &peers[..] else {
        unreachable!()
    };
    let st = sue
        .wait_for("f at Sue", WAIT, |s| layer(s, &pat.id, FULL).packets >= 100)
        .await
        .unwrap();
    // Where the log stands at the switch: Sue may have seen h before f was live, at the start
    // (a slow machine); the switch looked at is the one after f stops.
    let mark = video_from(&st, &pat.id).log.len();
    let early_h = layer(&st, &pat.id, HALF).distinct;
    pat.set_layer_active("f", false).unwrap();
    // Three seconds of h over a link that loses 5%: losses right after the switch too.
    let st = sue
        .wait_for("300 packets of h", WAIT, |s| {
            layer(s, &pat.id, HALF).distinct >= early_h + 300
        })
        .await
        .unwrap();
    let log = video_from(&st, &pat.id).log;
    // By arrival order the first h packet may be a resend; by number, the switch is where h
    // starts and f stops.
    let first_h = log[mark..]
        .iter()
        .filter(|p| p.layer == HALF)
        .map(|p| p.sequence_number)
        .min_by_key(|&s| s.wrapping_sub(log[mark - 1].sequence_number))
        .unwrap();
    let numbered_after: Vec<&Received> = log[mark..]
        .iter()
        .filter(|p| p.sequence_number.wrapping_sub(first_h) < 0x8000)
        .collect();
    assert!(
        numbered_after.iter().all(|p| p.layer != FULL),
        "a packet numbered after the switch came from f (a resend from the wrong history?)"
    );
    // Sue's downlink estimate may move her on to q later (a slow machine's stalls look like
    // a queue): the h stretch ends there.
    let h_end = numbered_after
        .iter()
        .filter(|p| p.layer != HALF)
        .map(|p| p.sequence_number.wrapping_sub(first_h))
        .min();
    let after: Vec<&Received> = numbered_after
        .into_iter()
        .filter(|p| h_end.is_none_or(|end| p.sequence_number.wrapping_sub(first_h) < end))
        .collect();
    assert!(
        after.iter().all(|p| p.layer == HALF),
        "a packet numbered in the h stretch came from another layer"
    );
    assert!(after.len() >= 100, "only {} packets of h", after.len());
    // Each h packet, first copy or resend, has the timestamp its frame has in h shifted by
    // the one offset of the switch: a resend with another offset would show here.
    let base = |p: &Received| {
        p.timestamp
            .wrapping_sub(p.counter.wrapping_mul(FRAME_TICKS as u32))
    };
    let b0 = base(after[0]);
    assert!(
        after.iter().all(|p| base(p) == b0),
        "timestamps of h not one shifted sequence"
    );
    let numbers: std::collections::BTreeSet<u16> = after
        .iter()
        .map(|p| p.sequence_number.wrapping_sub(first_h))
        .collect();
    let span = u32::from(*numbers.last().unwrap()) + 1;
    let delivered = numbers.len() as f64 / f64::from(span);
    println!(
        "after the switch: {} of {span} numbers delivered ({:.2}%), {} copies",
        numbers.len(),
        delivered * 100.0,
        after.len()
    );
    assert!(
        delivered >= 0.985,
        "only {:.2}% after the switch: NACKs not answered from h?",
        delivered * 100.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_layer_of_publishers_joining_at_once_is_received() {
    let _one = ONE_AT_A_TIME.lock().await;
    // Layers whose first packets land while the server is still setting up its receivers
    // (four connections coming up at once on two cores) must not be lost: the webrtc crate
    // dropped them for good until it was patched (third_party/webrtc/VIDEOROOM-PATCH.md).
    // The race is narrow: a few rounds of four make it likely that some layer meets it.
    let server = start(|c| c.simulcast = true).await;
    let url = server.socket_url();
    for round in 0..3 {
        let room = room(&format!("simulcast-rush-{round}"));
        let names = ["Ada", "Bob", "Cat", "Dan"];
        let joins = names.map(|name| TestPeer::join(&url, &room, name, simulcast()));
        let peers: Vec<TestPeer> = futures_util::future::join_all(joins)
            .await
            .into_iter()
            .zip(names)
            .map(|(p, name)| p.unwrap_or_else(|e| panic!("{name} joins: {e}")))
            .collect();
        for p in &peers {
            wait_for_live_layers(&server, &room, &p.id, 3).await;
        }
        // And each sees every other's best layer.
        for viewer in &peers {
            for publisher in peers.iter().filter(|p| p.id != viewer.id) {
                viewer
                    .wait_for(&format!("{}'s f", publisher.name), WAIT, |s| {
                        layer(s, &publisher.id, FULL).packets >= 20
                    })
                    .await
                    .unwrap();
            }
        }
        for p in peers {
            p.leave().await;
        }
    }
}

/// A link with nothing wrong with it, whose downlink a test can cap.
fn clean_link() -> Option<testkit::Impairment> {
    Some(testkit::Impairment {
        loss: 0.0,
        delay: Duration::ZERO,
        seed: 1,
        spare_dtls_handshake: true,
    })
}

/// Packets of layer `mark` of each publisher's video that `viewer` has received.
fn layer_counts(viewer: &TestPeer, publishers: &[TestPeer], mark: u8) -> Vec<u64> {
    let state = viewer.state();
    publishers
        .iter()
        .map(|p| layer(&state, &p.id, mark).packets)
        .collect()
}

/// Waits (up to `limit`) until `done` holds of how `viewer`'s layer `mark` counts moved over
/// the last second; returns how long it took.
async fn until_layer_moves(
    viewer: &TestPeer,
    publishers: &[TestPeer],
    mark: u8,
    limit: Duration,
    what: &str,
    done: impl Fn(&[u64]) -> bool,
) -> Duration {
    let start = tokio::time::Instant::now();
    let mut before = layer_counts(viewer, publishers, mark);
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now = layer_counts(viewer, publishers, mark);
        let moved: Vec<u64> = now.iter().zip(&before).map(|(a, b)| a - b).collect();
        if done(&moved) {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < limit,
            "{}: {what} within {limit:?}; layer {mark} moved {moved:?} in the last second",
            viewer.name
        );
        before = now;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_capped_subscriber_gets_lower_layers_and_the_top_ones_back_when_the_cap_lifts() {
    let _one = ONE_AT_A_TIME.lock().await;
    let viewer = |impairment| PeerOptions {
        audio: false,
        video: false,
        impairment,
        ..PeerOptions::default()
    };
    let (server, room, peers) = simulcast_room(
        "simulcast-bwe",
        vec![
            ("Ada", simulcast()),
            ("Bea", simulcast()),
            ("Cid", simulcast()),
            ("Slow", viewer(clean_link())),
            ("Fast", viewer(None)),
        ],
    )
    .await;
    let (publishers, viewers) = peers.split_at(3);
    let [slow, fast] = viewers else {
        unreachable!()
    };
    for p in publishers {
        wait_for_live_layers(&server, &room, &p.id, 3).await;
        assert_only_layer(slow, p, FULL, 50).await;
        assert_only_layer(fast, p, FULL, 50).await;
    }
    let link = slow.link().expect("an impaired link");

    // Three cameras' top layers are ~2.5 Mbit/s; the lowest three ~0.65 Mbit/s.
    slow.set_downlink_cap(Some(1_000_000)).unwrap();
    let left = until_layer_moves(
        slow,
        publishers,
        FULL,
        Duration::from_secs(10),
        "no top layer",
        |moved| moved.iter().all(|&m| m == 0),
    )
    .await;
    println!("capped at 1 Mbit/s: off the top layers in {left:?}");
    for p in publishers {
        assert_only_layer(fast, p, FULL, 100).await;
    }

    // Adapted: smooth video from everyone, nearly nothing lost at the link.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let dropped = link.dropped_queue.load(Ordering::Relaxed);
    let delivered = link.delivered.load(Ordering::Relaxed);
    let before = slow.state();
    tokio::time::sleep(Duration::from_secs(10)).await;
    let after = slow.state();
    let dropped = link.dropped_queue.load(Ordering::Relaxed) - dropped;
    let delivered = link.delivered.load(Ordering::Relaxed) - delivered;
    let loss = dropped as f64 / (dropped + delivered).max(1) as f64;
    println!(
        "after adapting: {dropped} of {} datagrams dropped ({:.2} %)",
        dropped + delivered,
        loss * 100.0
    );
    for p in publishers {
        let (b, a) = (video_from(&before, &p.id), video_from(&after, &p.id));
        let got = a.packets - b.packets;
        println!(
            "  {}: {got} video packets in 10 s, by layer {:?}",
            p.name,
            a.by_layer
                .iter()
                .map(|(m, l)| (*m, l.packets - b.by_layer.get(m).map_or(0, |l| l.packets)))
                .collect::<Vec<_>>()
        );
        assert!(
            got >= 800,
            "{}'s video kept coming at 100 packets/s: {got} in 10 s",
            p.name
        );
        assert_eq!(
            a.by_layer.get(&FULL).map(|l| l.packets),
            b.by_layer.get(&FULL).map(|l| l.packets),
            "no top layer while capped"
        );
    }
    // Little: a step up that does not fit (the estimate has no other way to find room for
    // the next layer) costs up to a second of overflow before it is undone — 0 % in most runs
    // here, 2.5 % and 5.4 % (two failed steps) on CI's busier machine. The figures are bench
    // scenario D's to print; this holds the link far from the ~60 % it would lose unadapted.
    assert!(loss < 0.10, "loss after adapting: {:.2} %", loss * 100.0);

    // Lifted: the top layers come back as the estimate climbs.
    slow.set_downlink_cap(None).unwrap();
    let back = until_layer_moves(
        slow,
        publishers,
        FULL,
        Duration::from_secs(40),
        "every top layer back",
        |moved| moved.iter().all(|&m| m >= 50),
    )
    .await;
    println!("cap lifted: top layers back in {back:?}");
    // The slow viewer was told its estimate; the fast one never heard of a limit.
    let told = slow.state().downlink;
    assert!(
        told.iter().any(|(e, _)| e.is_some_and(|e| e < 1_000_000)),
        "{told:?}"
    );
    assert!(fast.state().downlink.iter().all(|(e, _)| e.is_none()));
    let media = &server.state.stats;
    assert!(media.layer_switches_bandwidth.load(Ordering::Relaxed) >= 6);
    let metrics = server::metrics::render(&server.state).unwrap();
    let estimated: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("videoroom_downlink_estimate_bits_per_second_count "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no estimate histogram in {metrics}"));
    assert!(estimated >= 1, "the slow viewer's estimate is counted");
    let bwe = &server.state.rtc.bwe;
    assert!(bwe.feedbacks.load(Ordering::Relaxed) > 100);
    assert!(
        bwe.decreases_loss.load(Ordering::Relaxed) + bwe.decreases_delay.load(Ordering::Relaxed)
            >= 1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_small_tile_gets_a_small_layer_and_a_hidden_one_none() {
    let _one = ONE_AT_A_TIME.lock().await;
    let (_server, _room, peers) = simulcast_room(
        "simulcast-tiles",
        vec![("Ada", simulcast()), ("Bob", recording_viewer())],
    )
    .await;
    let [ada, bob] = &peers[..] else {
        unreachable!()
    };
    let ada_id = ada.id.clone();
    assert_only_layer(bob, ada, FULL, 50).await;
    let track = video_track_id(bob, ada);

    // A thumbnail: the smallest layer, switched to seamlessly.
    bob.set_tile_size(&track, 320, 180);
    assert_only_layer(bob, ada, QUARTER, 100).await;
    let log = video_from(&bob.state(), &ada.id).log;
    assert_seamless(&log, switch_in(&log, FULL, QUARTER));
    // 400 high: 360 is nine tenths of it, so h.
    bob.set_tile_size(&track, 640, 400);
    assert_only_layer(bob, ada, HALF, 100).await;

    // Hidden: nothing at all.
    bob.set_tile_size(&track, 0, 0);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = video_from(&bob.state(), &ada.id).packets;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        video_from(&bob.state(), &ada.id).packets,
        before,
        "a hidden tile's video is paused"
    );
    // Paused by the page, not the link: nothing to report as "slow connection".
    assert!(
        bob.state().downlink.iter().all(|(_, p)| p.is_empty()),
        "{:?}",
        bob.state().downlink
    );

    // Full screen: the top layer again, from a keyframe.
    bob.set_tile_size(&track, 1920, 1080);
    assert_only_layer(bob, ada, FULL, 100).await;
    let log = video_from(&bob.state(), &ada.id).log;
    assert_seamless(&log, switch_in(&log, HALF, FULL));

    // A track Bob does not receive, and a size out of range, are refused by name; the session
    // goes on.
    bob.set_tile_size("nobody:nothing", 10, 10);
    bob.send(&protocol::ClientMessage::MediaEvent {
        data: protocol::ClientMediaEvent::SetTileSizes {
            sizes: [(
                track.clone(),
                protocol::TileSize {
                    width: 100_000,
                    height: 10,
                },
            )]
            .into(),
        },
    });
    bob.wait_for("both refusals", WAIT, |s| {
        s.errors.iter().any(|e| e.contains("nobody:nothing"))
            && s.errors.iter().any(|e| e.contains("sizes"))
    })
    .await
    .unwrap();
    assert_only_layer(bob, ada, FULL, 50).await;

    // Ada leaves while Bob's page, not yet told, sends her tile's size: that crossed her
    // removal on the wire and is no error (only the unknown track after it is).
    let mut peers = peers;
    let bob = peers.pop().unwrap();
    peers.pop().unwrap().leave().await;
    bob.wait_for("Ada gone", WAIT, |s| !s.peers.contains_key(&ada_id))
        .await
        .unwrap();
    bob.set_tile_size(&track, 320, 180);
    bob.set_tile_size("nobody:else", 10, 10);
    let st = bob
        .wait_for("the refusal", WAIT, |s| {
            s.errors.iter().any(|e| e.contains("nobody:else"))
        })
        .await
        .unwrap();
    assert!(
        !st.errors.iter().any(|e| e.contains(&track)),
        "{:?}",
        st.errors
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn layers_nobody_needs_stop_at_the_publisher_and_come_back_at_once() {
    let _one = ONE_AT_A_TIME.lock().await;
    let (server, room, peers) = simulcast_room(
        "simulcast-dynacast",
        vec![("Ada", simulcast()), ("Bob", recording_viewer())],
    )
    .await;
    let [ada, bob] = &peers[..] else {
        unreachable!()
    };
    let ada_id = ada.id.clone();
    wait_for_live_layers(&server, &room, &ada.id, 3).await;
    assert_only_layer(bob, ada, FULL, 50).await;
    let track = video_track_id(bob, ada);
    let wanted = |s: &PeerState| s.layers_wanted.last().map(|(_, rids)| rids.clone());
    assert_eq!(
        wanted(&ada.state()),
        None,
        "everything is watched: nothing said"
    );

    // A thumbnail needs q alone: h and f stop at Ada, but only after five seconds of it.
    let resized = tokio::time::Instant::now();
    bob.set_tile_size(&track, 320, 180);
    assert_only_layer(bob, ada, QUARTER, 50).await;
    let st = ada
        .wait_for("q alone wanted", Duration::from_secs(15), |s| {
            wanted(s).is_some_and(|r| r == ["q"])
        })
        .await
        .unwrap();
    let waited = resized.elapsed();
    assert!(waited >= Duration::from_secs(5), "lowered after {waited:?}");
    // Named by Ada's own id for her camera, the one her answers gave.
    let (local, _) = st.layers_wanted.last().unwrap();
    assert!(
        !local.is_empty() && !local.starts_with(&format!("{ada_id}:")),
        "{local}"
    );
    wait_for_live_layers(&server, &room, &ada.id, 1).await;
    assert_only_layer(bob, ada, QUARTER, 100).await;

    // Full screen: every layer at once, and Bob back on f.
    let resized = tokio::time::Instant::now();
    bob.set_tile_size(&track, 1920, 1080);
    ada.wait_for("every layer wanted", Duration::from_secs(3), |s| {
        wanted(s).is_some_and(|r| r == ["q", "h", "f"])
    })
    .await
    .unwrap();
    println!("dynacast: raised in {:?}", resized.elapsed());
    assert_only_layer(bob, ada, FULL, 100).await;

    // Bob leaves: nobody watches, nothing is encoded (after the wait).
    let mut peers = peers;
    peers.pop().unwrap().leave().await;
    let ada = &peers[0];
    ada.wait_for("no layer wanted", Duration::from_secs(15), |s| {
        wanted(s).is_some_and(|r| r.is_empty())
    })
    .await
    .unwrap();
    wait_for_live_layers(&server, &room, &ada.id, 0).await;
    assert!(ada.state().errors.is_empty(), "{:?}", ada.state().errors);
}
