//! Voice activity: a publisher's audio carries the RFC 6464 level; loud then quiet makes
//! everyone, the publisher included, see `voiceActivity` true then false for that track.

mod common;

use std::time::{Duration, Instant};

use common::WAIT;
use protocol::TrackSource;
use testkit::{PeerState, AUDIO_LEVEL_URI};

/// The `a=extmap` id of the audio-level extension in an SDP.
fn level_ext_id(sdp: &str) -> Option<String> {
    sdp.lines()
        .find(|l| l.starts_with("a=extmap:") && l.contains(AUDIO_LEVEL_URI))
        .and_then(|l| l.strip_prefix("a=extmap:"))
        .and_then(|l| l.split([' ', '/']).next())
        .map(str::to_owned)
}

fn mic_of(s: &PeerState, publisher: &str) -> Option<String> {
    s.tracks
        .iter()
        .find(|(_, (p, m))| p == publisher && m.source == TrackSource::Microphone)
        .map(|(id, _)| id.clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loud_then_quiet_audio_reports_speaking_then_silence_to_everyone() {
    let server = common::start(|_| {}).await;
    let room = common::room("voice");
    let ada = common::peer(&server, &room, "Ada").await;
    let bob = common::peer(&server, &room, "Bob").await;
    common::video_flowing(&bob, &ada).await;
    let st = bob
        .wait_for("Ada's audio", WAIT, |s| {
            s.packets_from(&ada.id, "audio") > 20
        })
        .await
        .unwrap();
    let mic = mic_of(&st, &ada.id).expect("Ada's microphone announced");

    // Every offer comes from one media engine: the same extension id on every connection.
    let ids = [
        level_ext_id(&ada.state().offer_sdp),
        level_ext_id(&bob.state().offer_sdp),
    ];
    assert!(ids[0].is_some(), "the server offers the audio level");
    assert_eq!(ids[0], ids[1]);

    // A quiet room: no report.
    ada.set_audio_level(Some(127));
    let before = bob.state().packets_from(&ada.id, "audio");
    bob.wait_for("quiet audio", WAIT, |s| {
        s.packets_from(&ada.id, "audio") > before + 25
    })
    .await
    .unwrap();
    assert!(bob.state().voice_activity.is_empty());

    let loud_at = Instant::now();
    ada.set_audio_level(Some(20));
    bob.wait_for("Ada speaking", WAIT, |s| {
        s.voice_activity.contains(&(mic.clone(), true))
    })
    .await
    .unwrap();
    let latency = loud_at.elapsed();
    ada.wait_for("Ada sees herself speaking", WAIT, |s| {
        s.voice_activity.contains(&(mic.clone(), true))
    })
    .await
    .unwrap();
    // Keep talking for a while: no flapping.
    tokio::time::sleep(Duration::from_millis(1500)).await;

    // Someone joining while Ada speaks learns it at once (her voice started before Cy came).
    let cy = common::peer(&server, &room, "Cy").await;
    cy.wait_for("Cy told that Ada is speaking", WAIT, |s| {
        s.voice_activity.contains(&(mic.clone(), true))
    })
    .await
    .unwrap();

    let quiet_at = Instant::now();
    ada.set_audio_level(Some(127));
    for p in [&bob, &ada] {
        let st = p
            .wait_for("Ada quiet again", WAIT, |s| {
                s.voice_activity.contains(&(mic.clone(), false))
            })
            .await
            .unwrap();
        assert_eq!(
            st.voice_activity,
            vec![(mic.clone(), true), (mic.clone(), false)],
            "{} saw one start and one end",
            p.name
        );
    }
    let end_latency = quiet_at.elapsed();
    println!(
        "voice activity: loud → speaking at the other peer in {latency:?}; \
         quiet → silence in {end_latency:?} (hangover 1 s)"
    );
    assert!(end_latency >= Duration::from_millis(900), "{end_latency:?}");

    // The level stays on the uplink: forwarded with it, Chromium played no audio at all.
    let st = bob.state();
    let (packets, with_level) = st
        .received
        .values()
        .filter(|t| t.publisher == ada.id && t.kind == "audio")
        .fold((0, 0), |(p, l), t| (p + t.packets, l + t.with_audio_level));
    assert!(packets > 0, "Ada's audio did not reach Bob");
    assert_eq!(
        with_level, 0,
        "a forwarded packet carried the publisher's extension"
    );
    assert_eq!(st.corrupt(), 0);
    // Bob sends no levels: nothing about his track.
    assert!(st.voice_activity.iter().all(|(t, _)| *t == mic));
    cy.leave().await;
    ada.leave().await;
    bob.leave().await;
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn muting_ends_speech_at_once_and_unmuting_starts_it_again() {
    let server = common::start(|_| {}).await;
    let room = common::room("voice-mute");
    let ada = common::peer(&server, &room, "Ada").await;
    let bob = common::peer(&server, &room, "Bob").await;
    common::video_flowing(&bob, &ada).await;
    let st = bob
        .wait_for("Ada's microphone", WAIT, |s| mic_of(s, &ada.id).is_some())
        .await
        .unwrap();
    let mic = mic_of(&st, &ada.id).expect("Ada's microphone announced");
    let muted = |muted| protocol::TrackMetadata {
        source: TrackSource::Microphone,
        muted,
    };

    // Loud all along: the muted microphone still sends its level (a browser's disabled track
    // sends silence, but a button press must not wait for the hangover either way).
    ada.set_audio_level(Some(20));
    bob.wait_for("Ada speaking", WAIT, |s| {
        s.voice_activity.contains(&(mic.clone(), true))
    })
    .await
    .unwrap();
    let muted_at = Instant::now();
    ada.set_track_metadata(&mic, muted(true));
    bob.wait_for("Ada silenced by muting", WAIT, |s| {
        s.voice_activity.contains(&(mic.clone(), false))
    })
    .await
    .unwrap();
    // No time bound needed: Ada stays loud, so only muting can end her speech at all.
    let silenced_in = muted_at.elapsed();
    ada.set_track_metadata(&mic, muted(false));
    let st = bob
        .wait_for("Ada speaking again", WAIT, |s| s.voice_activity.len() >= 3)
        .await
        .unwrap();
    assert_eq!(
        st.voice_activity,
        vec![
            (mic.clone(), true),
            (mic.clone(), false),
            (mic.clone(), true)
        ]
    );
    println!("voice activity: mute → silence at the other peer in {silenced_in:?}");
    ada.leave().await;
    bob.leave().await;
    server.shutdown().await.unwrap();
}
