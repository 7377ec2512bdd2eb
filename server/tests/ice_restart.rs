//! ICE restart: `renegotiateTracks {iceRestart: true}` brings an offer with new ICE credentials,
//! and media flows on (over the new candidate pair) both ways.

mod common;

use std::time::Instant;

use common::WAIT;
use webrtc::peer_connection::peer_connection_state::RTCPeerConnectionState;

fn ufrag(sdp: &str) -> Option<String> {
    sdp.lines()
        .find_map(|l| l.strip_prefix("a=ice-ufrag:"))
        .map(str::to_owned)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ice_restart_offers_new_credentials_and_media_keeps_flowing() {
    let server = common::start(|_| {}).await;
    let room = common::room("ice-restart");
    let ada = common::peer(&server, &room, "Ada").await;
    let bob = common::peer(&server, &room, "Bob").await;
    common::video_flowing(&bob, &ada).await;
    common::video_flowing(&ada, &bob).await;

    for round in 0..2 {
        let st = ada.state();
        let (old, offers) = (ufrag(&st.offer_sdp).expect("an ice-ufrag"), st.offers);
        let t = Instant::now();
        ada.restart_ice();
        let st = ada
            .wait_for("the restart offer answered", WAIT, |s| {
                s.offers > offers && ufrag(&s.offer_sdp).is_some_and(|u| u != old)
            })
            .await
            .unwrap();
        println!(
            "ICE restart {round}: new ufrag {:?} (was {old}) after {:?}",
            ufrag(&st.offer_sdp),
            t.elapsed()
        );
        common::video_keeps_flowing(&bob, &ada).await;
        common::video_keeps_flowing(&ada, &bob).await;
        println!(
            "ICE restart {round}: media flowing both ways {:?} after the request",
            t.elapsed()
        );
        let st = ada.state();
        assert_eq!(st.connection, Some(RTCPeerConnectionState::Connected));
        assert!(st.errors.is_empty(), "{:?}", st.errors);
    }
    // Only Ada's credentials changed.
    assert!(bob.state().errors.is_empty());
    ada.leave().await;
    bob.leave().await;
    server.shutdown().await.unwrap();
}
