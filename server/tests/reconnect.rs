//! Reconnect without ghosts: a participant whose connection drops keeps its place for the grace
//! period — its media goes at once, its departure only if it does not come back — and a join
//! with its reconnect token gets the same peer id back. Stale tokens make ordinary joins.

mod common;

use std::time::{Duration, Instant};

use common::WAIT;
use testkit::{PeerOptions, TestPeer};

async fn rejoin(
    server: &server::RunningServer,
    room: &str,
    name: &str,
    token: Option<String>,
) -> TestPeer {
    TestPeer::join_with_token(
        &server.socket_url(),
        room,
        name,
        PeerOptions::default(),
        token,
    )
    .await
    .unwrap_or_else(|e| panic!("{name} could not join: {e}"))
}

fn count(events: &[(&str, String)], kind: &str, id: &str) -> usize {
    events.iter().filter(|(k, p)| *k == kind && p == id).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_peer_rejoins_with_its_token_as_the_same_peer() {
    let server = common::start(|c| c.reconnect_grace_secs = 30).await;
    let room = common::room("reconnect");
    let ada = common::peer(&server, &room, "Ada").await;
    let bob = common::peer(&server, &room, "Bob").await;
    common::video_flowing(&ada, &bob).await;
    let token = bob.state().reconnect_token.expect("a reconnect token");
    assert_eq!(token.len(), 32);
    assert_ne!(ada.state().reconnect_token.as_ref(), Some(&token));
    let bob_id = bob.id.clone();

    bob.vanish().await;
    let st = ada
        .wait_for("Bob's tracks removed", WAIT, |s| {
            s.tracks.values().all(|(p, _)| *p != bob_id) && s.removed_tracks.len() == 2
        })
        .await
        .unwrap();
    assert!(st.peers.contains_key(&bob_id), "no peerLeft in the grace");
    assert_eq!(server.state.rooms.census().peers, 2, "Bob still counts");
    // The survivor's own media is unaffected.
    assert!(ada.state().errors.is_empty());

    let t = Instant::now();
    let bob = rejoin(&server, &room, "Bobby", Some(token.clone())).await;
    assert_eq!(bob.id, bob_id, "the same peer id back");
    let st = bob.state();
    assert!(st.peers.contains_key(&ada.id), "Bob finds Ada");
    let new_token = st.reconnect_token.expect("a new token");
    assert_ne!(new_token, token, "tokens are single use");
    common::video_flowing(&ada, &bob).await;
    common::video_flowing(&bob, &ada).await;
    println!("reconnect: rejoin → media both ways in {:?}", t.elapsed());
    let st = ada
        .wait_for("the new name", WAIT, |s| {
            s.peers.get(&bob_id).is_some_and(|n| n == "Bobby")
        })
        .await
        .unwrap();
    assert_eq!(
        count(&st.peer_events, "joined", &bob_id),
        1,
        "{:?}",
        st.peer_events
    );
    assert_eq!(
        count(&st.peer_events, "left", &bob_id),
        0,
        "{:?}",
        st.peer_events
    );
    assert_eq!(count(&st.peer_events, "updated", &bob_id), 1);
    assert_eq!(
        st.tracks.values().filter(|(p, _)| *p == bob_id).count(),
        2,
        "tracksAdded again"
    );
    assert_eq!(server.state.rooms.census().peers, 2);

    // The old token is spent: a join with it is an ordinary one.
    let other = rejoin(&server, &room, "Eve", Some(token)).await;
    assert_ne!(other.id, bob_id);
    other.leave().await;

    // A clean leave removes at once and spends the token.
    bob.leave().await;
    ada.wait_for("Bob left", WAIT, |s| !s.peers.contains_key(&bob_id))
        .await
        .unwrap();
    let again = rejoin(&server, &room, "Bob", Some(new_token)).await;
    assert_ne!(again.id, bob_id);
    again.leave().await;
    ada.leave().await;
    common::assert_released(&server).await;
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_grace_expires_with_peer_left_and_the_token_with_it() {
    let server = common::start(|c| c.reconnect_grace_secs = 1).await;
    let room = common::room("grace");
    let ada = common::peer(&server, &room, "Ada").await;
    let bob = common::peer(&server, &room, "Bob").await;
    common::video_flowing(&ada, &bob).await;
    let token = bob.state().reconnect_token.unwrap();
    let bob_id = bob.id.clone();
    bob.vanish().await;
    // tracksRemoved comes first, with Bob still listed...
    ada.wait_for("tracks removed, Bob still there", WAIT, |s| {
        s.removed_tracks.len() == 2 && s.peers.contains_key(&bob_id)
    })
    .await
    .unwrap();
    let t = Instant::now();
    // ...then peerLeft once the grace is over.
    ada.wait_for("Bob left after the grace", WAIT, |s| {
        !s.peers.contains_key(&bob_id)
    })
    .await
    .unwrap();
    println!("grace 1 s: peerLeft {:?} after tracksRemoved", t.elapsed());
    assert_eq!(server.state.rooms.census().peers, 1);
    // Too late: a new participant.
    let late = rejoin(&server, &room, "Bob", Some(token)).await;
    assert_ne!(late.id, bob_id);
    ada.wait_for("the newcomer", WAIT, |s| s.peers.contains_key(&late.id))
        .await
        .unwrap();

    // Tokens are per room, and nonsense is just ignored.
    let elsewhere = rejoin(
        &server,
        &common::room("grace-other"),
        "Ada",
        ada.state().reconnect_token,
    )
    .await;
    assert_ne!(elsewhere.id, ada.id);
    let bogus = rejoin(&server, &room, "Zed", Some("not-a-token".into())).await;
    assert!(bogus.state().errors.is_empty());
    for p in [ada, late, elsewhere, bogus] {
        p.leave().await;
    }
    common::assert_released(&server).await;
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reconnect_before_the_drop_is_noticed_takes_over_the_old_session() {
    let server = common::start(|c| c.reconnect_grace_secs = 30).await;
    let room = common::room("takeover");
    let ada = common::peer(&server, &room, "Ada").await;
    let old = common::peer(&server, &room, "Bob").await;
    common::video_flowing(&ada, &old).await;
    let token = old.state().reconnect_token.unwrap();
    let old_tracks: Vec<String> = ada
        .state()
        .tracks
        .iter()
        .filter(|(_, (p, _))| *p == old.id)
        .map(|(t, _)| t.clone())
        .collect();

    // The old socket is still open as far as the server knows.
    let bob = rejoin(&server, &room, "Bob", Some(token)).await;
    assert_eq!(bob.id, old.id);
    let st = old
        .wait_for("the old session closed", WAIT, |s| s.closed.is_some())
        .await
        .unwrap();
    assert_eq!(st.closed.map(|c| c.0), Some(1000), "closed quietly");
    common::video_flowing(&ada, &bob).await;
    let st = ada
        .wait_for("the old tracks gone, new ones there", WAIT, |s| {
            old_tracks.iter().all(|t| !s.tracks.contains_key(t))
                && s.tracks.values().filter(|(p, _)| *p == bob.id).count() == 2
        })
        .await
        .unwrap();
    assert_eq!(count(&st.peer_events, "left", &bob.id), 0);
    assert_eq!(count(&st.peer_events, "joined", &bob.id), 1);
    assert_eq!(server.state.rooms.census().peers, 2);
    old.vanish().await;
    bob.leave().await;
    ada.leave().await;
    common::assert_released(&server).await;
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_clears_members_awaiting_a_reconnect() {
    let server = common::start(|c| c.reconnect_grace_secs = 60).await;
    let room = common::room("grace-shutdown");
    let ada = common::peer(&server, &room, "Ada").await;
    let bob = common::peer(&server, &room, "Bob").await;
    common::video_flowing(&ada, &bob).await;
    bob.vanish().await;
    ada.wait_for("Bob's tracks removed", WAIT, |s| {
        s.removed_tracks.len() == 2
    })
    .await
    .unwrap();
    let state = server.state.clone();
    let t = Instant::now();
    tokio::time::timeout(Duration::from_secs(10), server.shutdown())
        .await
        .expect("shutdown within 10 s")
        .unwrap();
    println!("shutdown with a member away: {:?}", t.elapsed());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while state.rooms.census().peers > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(state.rooms.census().peers, 0);
    assert_eq!(state.rooms.census().rooms, 0);
    ada.vanish().await;
}

/// A page that is closed says so (close code 1001, Going Away): that is a leave, seen at once.
/// Any other close keeps the place for the grace period, as a network drop does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_page_leaves_at_once_other_closes_keep_the_place() {
    let server = common::start(|c| c.reconnect_grace_secs = 30).await;
    let room = common::room("page-gone");
    let ada = common::peer(&server, &room, "Ada").await;
    let bob = common::peer(&server, &room, "Bob").await;
    let cy = common::peer(&server, &room, "Cy").await;
    common::video_flowing(&ada, &bob).await;
    let (bob_id, cy_id) = (bob.id.clone(), cy.id.clone());

    let t = Instant::now();
    bob.close_with(1001).await;
    ada.wait_for("Bob gone", WAIT, |s| !s.peers.contains_key(&bob_id))
        .await
        .unwrap();
    let gone_in = t.elapsed();
    assert!(gone_in < Duration::from_secs(5), "took {gone_in:?}");

    cy.close_with(4000).await;
    ada.wait_for("Cy's tracks removed", WAIT, |s| {
        s.tracks.values().all(|(p, _)| *p != cy_id)
    })
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        ada.state().peers.contains_key(&cy_id),
        "Cy keeps the place in the grace period"
    );
    println!("a closed page (1001) left the room in {gone_in:?}");
    ada.leave().await;
    server.shutdown().await.unwrap();
}
