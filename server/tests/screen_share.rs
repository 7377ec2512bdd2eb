//! Screen share: more uplink m-lines on request, a track published and withdrawn as the
//! client's answers map its m-line, published again under a new id when the browser reuses the
//! transceiver — and mute by the client's own track id, before or after publishing.

mod common;

use std::time::Duration;

use common::WAIT;
use protocol::{TrackMetadata, TrackSource};
use testkit::{PeerState, TestPeer};

fn screen() -> TrackMetadata {
    TrackMetadata {
        source: TrackSource::Screen,
        muted: false,
    }
}

/// The id of `publisher`'s track with this source, as `viewer` knows it.
fn track_of(s: &PeerState, publisher: &str, source: TrackSource) -> Option<String> {
    s.tracks
        .iter()
        .find(|(_, (p, m))| p == publisher && m.source == source)
        .map(|(id, _)| id.clone())
}

/// Waits until `viewer` has a screen track from `from` carrying media; returns its id.
async fn screen_flowing(viewer: &TestPeer, from: &TestPeer) -> String {
    let st = viewer
        .wait_for("a screen track with media", WAIT, |s| {
            track_of(s, &from.id, TrackSource::Screen)
                .is_some_and(|id| s.received.get(&id).is_some_and(|t| t.packets > 20))
        })
        .await
        .unwrap();
    let id = track_of(&st, &from.id, TrackSource::Screen).unwrap();
    assert_eq!(st.received[&id].corrupt, 0);
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_screen_share_starts_stops_and_starts_again_on_the_same_m_line() {
    let server = common::start(|_| {}).await;
    let room = common::room("screen");
    let ada = common::peer(&server, &room, "Ada").await;
    let bob = common::peer(&server, &room, "Bob").await;
    common::video_flowing(&bob, &ada).await;
    common::video_flowing(&ada, &bob).await;
    let before = bob.state().offer_m_lines();

    let mut local = ada
        .add_video_track("screen0", screen(), true)
        .await
        .unwrap();
    let mut screen_id = screen_flowing(&bob, &ada).await;
    // The camera keeps its metadata and keeps flowing alongside.
    let st = bob.state();
    let cam = track_of(&st, &ada.id, TrackSource::Camera).expect("camera still announced");
    assert_ne!(cam, screen_id);
    common::video_keeps_flowing(&bob, &ada).await;
    let with_screen = bob.state().offer_m_lines();
    assert_eq!(with_screen, before + 1, "one more m-line for the screen");

    let mut ids = vec![screen_id.clone()];
    for round in 1..=3 {
        ada.stop_track(&local);
        let gone = screen_id.clone();
        let st = bob
            .wait_for("the screen track removed", WAIT, |s| {
                s.removed_tracks.contains(&gone)
                    && !s.tracks.contains_key(&gone)
                    && !s.mid_to_track.values().any(|t| *t == gone)
            })
            .await
            .unwrap();
        assert!(
            st.tracks.contains_key(&cam),
            "only the screen goes: {:?}",
            st.tracks
        );
        // Packets stop: the slot is idle (unmapped) and nothing is forwarded into it.
        let stopped_at = st.received.get(&gone).map_or(0, |t| t.packets);
        let unmapped = st.unmapped_packets;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let st = bob.state();
        assert_eq!(st.received.get(&gone).map_or(0, |t| t.packets), stopped_at);
        assert!(
            st.unmapped_packets <= unmapped + 5,
            "packets kept coming on the idle slot: {} → {}",
            unmapped,
            st.unmapped_packets
        );
        // The camera was not disturbed.
        common::video_keeps_flowing(&bob, &ada).await;

        let keyframes = ada.state().keyframe_requests;
        local = ada
            .restart_track(&local, &format!("screen{round}"), screen())
            .await
            .unwrap();
        screen_id = screen_flowing(&bob, &ada).await;
        // Bob subscribes to a new track: he needs a keyframe, asked of Ada for him.
        ada.wait_for("a keyframe request for the new track", WAIT, |s| {
            s.keyframe_requests > keyframes
        })
        .await
        .unwrap();
        assert!(!ids.contains(&screen_id), "a new track id each time");
        ids.push(screen_id.clone());
        assert_eq!(
            bob.state().offer_m_lines(),
            with_screen,
            "the subscriber's idle slot is reused (round {round})"
        );
    }
    assert_eq!(
        ada.state().offer_m_lines(),
        with_screen,
        "the publisher's uplink m-line is reused too"
    );
    for p in [&ada, &bob] {
        assert!(
            p.state().errors.is_empty(),
            "{}: {:?}",
            p.name,
            p.state().errors
        );
    }
    ada.leave().await;
    bob.leave().await;
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mute_by_the_clients_track_id_before_and_after_publishing() {
    let server = common::start(|_| {}).await;
    let room = common::room("mute");
    let ada = common::peer(&server, &room, "Ada").await;
    let bob = common::peer(&server, &room, "Bob").await;
    common::video_flowing(&bob, &ada).await;

    // Published: Ada names her microphone by her own id; Bob hears of it by the server's.
    let mic_local = format!("{}-audio", ada.id);
    let muted_mic = TrackMetadata {
        source: TrackSource::Microphone,
        muted: true,
    };
    ada.set_track_metadata(&mic_local, muted_mic.clone());
    let st = bob
        .wait_for("Ada's microphone muted", WAIT, |s| {
            track_of(s, &ada.id, TrackSource::Microphone).is_some_and(|id| s.tracks[&id].1.muted)
        })
        .await
        .unwrap();
    let mic = track_of(&st, &ada.id, TrackSource::Microphone).unwrap();
    assert!(
        mic.starts_with(&format!("{}:", ada.id)),
        "the server's id: {mic}"
    );

    // Not yet published (m-line mapped, no RTP yet): kept for when it is.
    let m_lines = ada.state().offer_m_lines();
    let local = ada
        .add_video_track("screen", screen(), false)
        .await
        .unwrap();
    ada.wait_for("the answer mapping the screen", WAIT, |s| {
        s.answered_m_lines > m_lines
    })
    .await
    .unwrap();
    let muted_screen = TrackMetadata {
        source: TrackSource::Screen,
        muted: true,
    };
    ada.set_track_metadata(&local, muted_screen.clone());
    // Events on one connection are ordered: once Ada's own reply to a later message is back,
    // the update has been handled (an unknown track would have been refused by then).
    ada.send_chat("sync");
    ada.wait_for("the sync message", WAIT, |s| s.chat.len() == 1)
        .await
        .unwrap();
    assert!(ada.state().errors.is_empty(), "{:?}", ada.state().errors);
    assert!(track_of(&bob.state(), &ada.id, TrackSource::Screen).is_none());
    ada.resume_track(&local).await.unwrap();
    let id = screen_flowing(&bob, &ada).await;
    assert_eq!(bob.state().tracks[&id].1, muted_screen);
    // A newcomer sees the same.
    let cy = common::peer(&server, &room, "Cy").await;
    let st = cy.state();
    assert_eq!(st.tracks[&id].1, muted_screen);
    assert_eq!(st.tracks[&mic].1, muted_mic);

    // Someone else's local id is just unknown: refused as not one's own.
    bob.set_track_metadata(&mic_local, muted_mic.clone());
    bob.wait_for("a refusal", WAIT, |s| {
        s.errors.iter().any(|e| e.contains("Forbidden"))
    })
    .await
    .unwrap();
    for p in [ada, bob, cy] {
        p.leave().await;
    }
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uplink_m_lines_are_added_up_to_the_track_limit_and_never_removed() {
    use protocol::{ClientMediaEvent, ClientMessage, TrackCounts, MAX_TRACKS_PER_PEER};
    let server = common::start(|_| {}).await;
    let room = common::room("uplinks");
    // Alone in the room: every m-line in its offers is an uplink.
    let ada = common::peer(&server, &room, "Ada").await;
    let ask = |audio, video| {
        ada.send(&ClientMessage::MediaEvent {
            data: ClientMediaEvent::RenegotiateTracks {
                tracks: Some(TrackCounts { audio, video }),
                ice_restart: false,
            },
        })
    };
    ada.wait_for("the first offer answered", WAIT, |s| {
        s.answered_m_lines == 2
    })
    .await
    .unwrap();
    ask(1, 3);
    ada.wait_for("two more video m-lines", WAIT, |s| s.answered_m_lines == 4)
        .await
        .unwrap();
    // Fewer than there are: nothing is taken away.
    ask(0, 1);
    let offers = ada.state().offers;
    ada.wait_for("another offer", WAIT, |s| s.offers > offers)
        .await
        .unwrap();
    assert_eq!(ada.state().answered_m_lines, 4);
    // 8 video with the microphone's audio m-line would be 9: the server stops at the limit.
    ask(0, MAX_TRACKS_PER_PEER as u8);
    let st = ada
        .wait_for("the limit", WAIT, |s| {
            s.answered_m_lines == MAX_TRACKS_PER_PEER
        })
        .await
        .unwrap();
    assert!(st.errors.is_empty(), "{:?}", st.errors);
    common::video_flowing(&common::peer(&server, &room, "Bob").await, &ada).await;
    ada.leave().await;
    server.shutdown().await.unwrap();
}
