//! Peers that vanish without a word, never connect, or send SDP that must not be trusted are
//! removed with a reason, and the others carry on.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use common::{RawClient, Read, WAIT};
use protocol::*;
use testkit::{strip_sdp_lines, PeerOptions, TestPeer};
use webrtc::peer_connection::configuration::RTCConfiguration;
use webrtc::peer_connection::sdp::session_description::RTCSessionDescription;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_gone_silent_is_removed_after_the_keepalive() {
    let server = common::start(|c| c.keepalive_secs = 2).await;
    let room = common::room("silent");
    let ada = TestPeer::join(&server.socket_url(), &room, "Ada", PeerOptions::default())
        .await
        .unwrap();
    // The TCP connection stays open, but nothing is read or answered any more (a laptop lid
    // closed): tungstenite only answers pings while it is being read.
    let (silent, silent_id) = RawClient::join(&server, &room, "Lid").await;
    ada.wait_for("Lid joined", WAIT, |s| s.peers.contains_key(&silent_id))
        .await
        .unwrap();
    let t = std::time::Instant::now();
    ada.wait_for("Lid removed", Duration::from_secs(8), |s| {
        !s.peers.contains_key(&silent_id)
    })
    .await
    .unwrap();
    println!(
        "silent client removed {:?} after it went quiet (keepalive 2 s)",
        t.elapsed()
    );
    assert_eq!(server.state.rooms.census().peers, 1);
    drop(silent);
    ada.leave().await;
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn media_that_never_connects_removes_the_peer_with_a_reason() {
    let server = common::start(|c| c.ice_connect_timeout_secs = 2).await;
    let room = common::room("noice");
    let ada = common::peer(&server, &room, "Ada").await;
    let stuck = common::stuck_peer(&server, &room, "Stuck").await;
    let st = stuck
        .wait_for("the server to give up", Duration::from_secs(10), |s| {
            s.closed.is_some()
        })
        .await
        .unwrap();
    assert_eq!(
        st.closed,
        Some((1011, "media connection not established in time".into()))
    );
    assert!(
        st.errors.iter().any(|e| e.contains("not established")),
        "{:?}",
        st.errors
    );
    ada.wait_for("Stuck removed", WAIT, |s| !s.peers.contains_key(&stuck.id))
        .await
        .unwrap();
    // Ada never lost her own connection.
    assert_eq!(ada.state().closed, None);
    ada.leave().await;
    server.shutdown().await.unwrap();
}

/// A real answer to `offer`, made by a `webrtc` peer, as text.
async fn real_answer(offer: SessionDescription) -> String {
    let api = testkit::api("127.0.0.1".parse().unwrap()).unwrap();
    let pc = Arc::new(
        api.new_peer_connection(RTCConfiguration::default())
            .await
            .unwrap(),
    );
    pc.set_remote_description(RTCSessionDescription::offer(offer.sdp).unwrap())
        .await
        .unwrap();
    let answer = pc.create_answer(None).await.unwrap();
    pc.set_local_description(answer).await.unwrap();
    let sdp = pc.local_description().await.unwrap().sdp;
    pc.close().await.unwrap();
    sdp
}

async fn refused_answer(strip: &[&str]) {
    let server = common::start(|_| {}).await;
    let room = common::room("sdp");
    let (mut c, _) = RawClient::join(&server, &room, "Mallory").await;
    let offer = c.next_offer().await;
    let sdp = strip_sdp_lines(&real_answer(offer).await, strip);
    c.send(&ClientMessage::MediaEvent {
        data: ClientMediaEvent::SdpAnswer {
            sdp_answer: SessionDescription {
                kind: SdpType::Answer,
                sdp,
            },
            track_id_to_track_metadata: BTreeMap::new(),
            mid_to_track_id: BTreeMap::new(),
        },
    })
    .await;
    let mut refused = None;
    let close = loop {
        match c.read().await {
            Read::Message(ServerMessage::MediaEvent {
                data: ServerMediaEvent::Error { message },
            }) => refused = Some(message),
            Read::Message(_) => {}
            Read::Closed(close) => break close,
        }
    };
    let refused = refused.unwrap_or_else(|| panic!("answer without {strip:?} accepted"));
    assert!(refused.contains("SDP answer was refused"), "{refused}");
    assert_eq!(close.map(|c| c.0), Some(1011));
    assert_eq!(server.state.rooms.census().peers, 0);
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn an_answer_without_a_dtls_fingerprint_is_refused() {
    // Without a fingerprint DTLS cannot authenticate the peer: never fall back to plain RTP.
    refused_answer(&["a=fingerprint"]).await;
}

#[tokio::test]
async fn an_answer_without_ice_credentials_is_refused() {
    refused_answer(&["a=ice-ufrag", "a=ice-pwd"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_may_only_change_its_own_tracks() {
    let server = common::start(|_| {}).await;
    let room = common::room("mine");
    let ada = common::peer(&server, &room, "Ada").await;
    let bob = common::peer(&server, &room, "Bob").await;
    let st = bob
        .wait_for("Ada's tracks", WAIT, |s| {
            s.tracks.values().filter(|(p, _)| *p == ada.id).count() == 2
        })
        .await
        .unwrap();
    let (adas_track, _) = st.tracks.iter().find(|(_, (p, _))| *p == ada.id).unwrap();
    let mute = |track_id: &str| ClientMessage::MediaEvent {
        data: ClientMediaEvent::UpdateTrackMetadata {
            track_id: track_id.into(),
            track_metadata: TrackMetadata {
                source: TrackSource::Camera,
                muted: true,
            },
        },
    };
    bob.send(&mute(adas_track));
    bob.wait_for("a refusal", WAIT, |s| {
        s.errors
            .iter()
            .any(|e| e.contains("Forbidden") && e.contains("is not one of yours"))
    })
    .await
    .unwrap();

    // Muting one's own track is announced to the others.
    let a_st = ada
        .wait_for("Bob's tracks", WAIT, |s| {
            s.tracks.values().filter(|(p, _)| *p == bob.id).count() == 2
        })
        .await
        .unwrap();
    let (bobs_track, _) = a_st.tracks.iter().find(|(_, (p, _))| *p == bob.id).unwrap();
    bob.send(&mute(bobs_track));
    ada.wait_for("Bob's track muted", WAIT, |s| {
        s.tracks.get(bobs_track).is_some_and(|(_, m)| m.muted)
    })
    .await
    .unwrap();
    // The room's own record, as a newcomer receives it: Bob's mute took, Bob's attempt on
    // Ada's track did not.
    let cy = common::peer(&server, &room, "Cy").await;
    let st = cy.state();
    assert!(st.tracks.get(bobs_track).is_some_and(|(_, m)| m.muted));
    assert!(st.tracks.get(adas_track).is_some_and(|(_, m)| !m.muted));
    for p in [ada, bob, cy] {
        p.leave().await;
    }
    server.shutdown().await.unwrap();
}
