//! Media over a bad network: every UDP datagram of the publisher and of the subscriber crosses a
//! link that loses 5% each way and adds 50 ms each way (testkit's in-process impairment, which
//! needs no root or kernel module — this kernel has no `netem`). The viewer must still see
//! continuous video: losses repaired by NACK on both hops — also once Sue's sender is reused for
//! a new publisher — and keyframe requests forwarded to the publisher but throttled.

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use server::forwarder::KEYFRAME_REQUEST_INTERVAL;

use common::{bad_link, room, start, video_from, WAIT};
use testkit::{Impairment, PeerOptions, TestPeer};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn video_stays_continuous_over_a_lossy_link() {
    let server = start(|_| {}).await;
    let room = room("loss");
    let url = server.socket_url();
    let pat = TestPeer::join(
        &url,
        &room,
        "Pat",
        PeerOptions {
            impairment: bad_link(0x5eed_0001),
            ..PeerOptions::default()
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
            impairment: bad_link(0x5eed_0002),
            ..PeerOptions::default()
        },
    )
    .await
    .expect("Sue joins");

    // Ten seconds of video at 100 packets/s: enough for losses to be counted in percent.
    let started = tokio::time::Instant::now();
    sue.wait_for("1000 packets of Pat's video", WAIT * 2, |s| {
        video_from(s, &pat.id).distinct >= 1000
    })
    .await
    .unwrap();
    let video = video_from(&sue.state(), &pat.id);
    let pat_link = pat.link().expect("Pat's link is impaired");
    let sue_link = sue.link().expect("Sue's link is impaired");
    let dropped = [pat_link, sue_link]
        .iter()
        .map(|l| l.dropped_in.load(Ordering::Relaxed) + l.dropped_out.load(Ordering::Relaxed))
        .sum::<u64>();
    let delivered = [pat_link, sue_link]
        .iter()
        .map(|l| l.delivered.load(Ordering::Relaxed))
        .sum::<u64>();
    let link_loss = dropped as f64 / (dropped + delivered) as f64;
    println!(
        "lossy link: {dropped} of {} datagrams dropped ({:.1}%) in {:.1} s; \
         Sue got {} distinct of {} sent video packets ({:.2}%), {} copies in all, \
         longest gap {} ms, {} corrupt",
        dropped + delivered,
        link_loss * 100.0,
        started.elapsed().as_secs_f64(),
        video.distinct,
        video.counters.map_or(0, |(lo, hi)| hi - lo + 1),
        video.delivery() * 100.0,
        video.packets,
        video.longest_gap.as_millis(),
        video.corrupt,
    );
    // The link really was bad, else the rest proves nothing.
    assert!(
        (0.03..0.08).contains(&link_loss),
        "link loss {link_loss:.3} is not ~5%"
    );
    // Unrepaired, two 5% hops would deliver ~90%; at least 98.5% means both hops' losses were
    // retransmitted on NACK (the server's own NACKs to Pat, and its answers to Sue's). The
    // webrtc crate's own responder reached only ~97% here: it forgot packets sent after a late one.
    assert!(
        video.delivery() >= 0.985,
        "only {:.2}% of Pat's video reached Sue: NACKs not answered?",
        video.delivery() * 100.0
    );
    assert_eq!(video.corrupt, 0, "corrupt payloads");
    // Continuous: no freeze longer than a few lost packets plus a retransmission round trip.
    assert!(
        video.longest_gap < Duration::from_millis(500),
        "video froze for {:?}",
        video.longest_gap
    );

    // Sue's decoder asks for keyframes every 10 ms for ~2 s: Pat hears of it once per interval
    // for as long as she asks — no more however hard she asks, and no fewer (a request inside
    // the interval is sent when it ends, not dropped).
    let asked_before = pat.state().keyframe_requests;
    let window_start = tokio::time::Instant::now();
    let sent_before = server.state.stats.keyframe_requests.load(Ordering::Relaxed);
    let mut asked = 0;
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    for _ in 0..200 {
        tick.tick().await;
        asked += sue.request_keyframes().await;
    }
    let asking = window_start.elapsed();
    tokio::time::sleep(KEYFRAME_REQUEST_INTERVAL + Duration::from_millis(100)).await;
    let window = window_start.elapsed();
    let sent = server.state.stats.keyframe_requests.load(Ordering::Relaxed) - sent_before;
    let heard = pat.state().keyframe_requests - asked_before;
    println!(
        "keyframes: Sue asked {asked} times in {} ms, the server asked Pat {sent} times in \
         {} ms, Pat heard {heard} (the link loses some)",
        asking.as_millis(),
        window.as_millis()
    );
    assert!(asked >= 190, "Sue sent only {asked} PLIs");
    let interval = KEYFRAME_REQUEST_INTERVAL.as_millis() as u64;
    let most = window.as_millis() as u64 / interval + 1;
    let fewest = asking.as_millis() as u64 / interval - 1;
    assert!(
        (fewest..=most).contains(&sent),
        "server sent {sent} keyframe requests for {asked} PLIs over {} ms: want one per {interval} \
         ms while asked ({fewest}..={most})",
        asking.as_millis()
    );
    assert!(
        heard >= 3 && heard <= sent,
        "Pat heard {heard} of {sent} requests"
    );

    // Pat leaves and Quinn publishes: Sue's video sender is reused, renumbered, and must
    // still answer her NACKs with the right packets.
    let video_mid = |s: &testkit::PeerState, publisher: &str| {
        s.mid_to_track
            .iter()
            .find(|(_, t)| {
                s.received
                    .get(*t)
                    .is_some_and(|r| r.publisher == publisher && r.kind == "video")
            })
            .map(|(mid, _)| mid.clone())
    };
    let pat_mid = video_mid(&sue.state(), &pat.id).expect("Pat's video has a mid at Sue");
    pat.leave().await;
    let quinn = TestPeer::join(
        &url,
        &room,
        "Quinn",
        PeerOptions {
            audio: false,
            impairment: bad_link(0x5eed_0003),
            ..PeerOptions::default()
        },
    )
    .await
    .expect("Quinn joins");
    sue.wait_for("1000 packets of Quinn's video", WAIT * 2, |s| {
        video_from(s, &quinn.id).distinct >= 1000
    })
    .await
    .unwrap();
    let video = video_from(&sue.state(), &quinn.id);
    let repair = &server.state.rtc.repair;
    println!(
        "reused sender: Sue got {} distinct of {} sent packets of Quinn's video ({:.2}%); \
         server answered {} of {} NACKed packets in the whole test",
        video.distinct,
        video.counters.map_or(0, |(lo, hi)| hi - lo + 1),
        video.delivery() * 100.0,
        repair.resent.load(Ordering::Relaxed),
        repair.nacked.load(Ordering::Relaxed),
    );
    let st = sue.state();
    assert!(
        video.delivery() >= 0.985,
        "only {:.2}% of Quinn's video reached Sue over a reused sender: {video:?}; \
         every track Sue received: {:#?}; unmapped packets {}, offers {}, removed {:?}",
        video.delivery() * 100.0,
        st.received,
        st.unmapped_packets,
        st.offers,
        st.removed_tracks,
    );
    assert_eq!(video.corrupt, 0, "corrupt payloads from Quinn");
    assert_eq!(
        video_mid(&sue.state(), &quinn.id),
        Some(pat_mid),
        "Quinn's video should reuse the sender that carried Pat's"
    );

    quinn.leave().await;
    sue.leave().await;
    server.shutdown().await.unwrap();
}

/// Joins over a link losing 15% each way: every peer's media must connect. The server's DTLS
/// flights are lost too and it must resend them; as the DTLS server it used not to resend its
/// last flight, and 5 of 40 joins stayed stuck at 5% loss.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn joins_connect_over_a_lossy_link() {
    use webrtc::peer_connection::peer_connection_state::RTCPeerConnectionState;
    let server = start(|_| {}).await;
    let url = server.socket_url();
    let mut times = Vec::new();
    for i in 0..20u64 {
        let room = room("lossy-join");
        let started = tokio::time::Instant::now();
        let peer = TestPeer::join(
            &url,
            &room,
            &format!("P{i}"),
            PeerOptions {
                impairment: Some(Impairment {
                    loss: 0.15,
                    delay: Duration::from_millis(50),
                    seed: 0x10_0000 + i,
                    spare_dtls_handshake: true,
                }),
                ..PeerOptions::default()
            },
        )
        .await
        .expect("joins");
        peer.wait_for("media connected", WAIT, |s| {
            s.connection == Some(RTCPeerConnectionState::Connected)
        })
        .await
        .unwrap_or_else(|e| panic!("join {i} of 20 over a 15% lossy link: {e}"));
        times.push(started.elapsed());
        peer.leave().await;
    }
    times.sort();
    println!(
        "20 joins at 15% loss, 50 ms each way: connected after median {} ms, max {} ms",
        times[10].as_millis(),
        times[19].as_millis()
    );
    server.shutdown().await.unwrap();
}
