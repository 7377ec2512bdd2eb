//! Bad input on the signaling socket gets a clear error, never a panic, and never disturbs
//! the other peers.

mod common;

use std::collections::BTreeMap;

use common::{RawClient, Read, WAIT};
use protocol::*;

fn expect_error(msg: ServerMessage, code: ErrorCode, needle: &str) {
    match msg {
        ServerMessage::Error { code: c, message } => {
            assert_eq!(c, code, "{message}");
            assert!(message.contains(needle), "{message:?} lacks {needle:?}");
        }
        other => panic!("expected an error, got {other:?}"),
    }
}

#[tokio::test]
async fn malformed_and_unknown_messages_get_errors_and_the_connection_stays() {
    let server = common::start(|_| {}).await;
    let mut c = RawClient::connect(&server).await;
    c.send_text("{not json").await;
    expect_error(
        c.read_message().await,
        ErrorCode::BadMessage,
        "malformed message",
    );
    c.send_text(r#"{"type":"teleport"}"#).await;
    expect_error(
        c.read_message().await,
        ErrorCode::BadMessage,
        "unknown variant `teleport`",
    );
    c.send_text(r#"{"type":"channelJoin","topic":"room:a"}"#)
        .await;
    expect_error(
        c.read_message().await,
        ErrorCode::BadMessage,
        "missing field `protocolVersion`",
    );
    c.send(&common::room_join("Ada")).await;
    expect_error(
        c.read_message().await,
        ErrorCode::UnexpectedMessage,
        "channelJoin",
    );
    let long = format!(
        r#"{{"type":"mediaEvent","data":{{"type":"join","metadata":{{"displayName":"{}"}}}}}}"#,
        "x".repeat(100)
    );
    c.send_text(long).await;
    expect_error(
        c.read_message().await,
        ErrorCode::InvalidField,
        "display name: is 100 characters",
    );

    // Still usable: a proper join works on the same connection.
    let room = common::room("ok");
    c.send(&common::channel_join(&room)).await;
    assert!(matches!(
        c.read_message().await,
        ServerMessage::ChannelJoined { .. }
    ));
    c.send(&common::room_join("Ada")).await;
    match c.read_message().await {
        ServerMessage::MediaEvent {
            data: ServerMediaEvent::PeerAccepted { peers_in_room, .. },
        } => assert!(peers_in_room.is_empty()),
        other => panic!("expected peerAccepted, got {other:?}"),
    }
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn bad_topics_room_names_and_versions_are_refused_with_reasons() {
    let server = common::start(|_| {}).await;
    let mut c = RawClient::connect(&server).await;
    let cases = [
        ("lobby:x", PROTOCOL_VERSION, "unknown topic \"lobby:x\""),
        ("room:", PROTOCOL_VERSION, "room name: must not be empty"),
        ("room:a b", PROTOCOL_VERSION, "may only contain letters"),
        ("room:ok", 99, "protocol version 99 is not supported"),
    ];
    for (topic, version, needle) in cases {
        c.send(&ClientMessage::ChannelJoin {
            topic: topic.into(),
            protocol_version: version,
            token: None,
        })
        .await;
        match c.read_message().await {
            ServerMessage::ChannelJoinError { reason } => {
                assert!(reason.contains(needle), "{reason:?} lacks {needle:?}")
            }
            other => panic!("expected channelJoinError for {topic}, got {other:?}"),
        }
    }
    assert_eq!(server.state.rooms.census().rooms, 0);
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn an_oversized_frame_closes_with_1009() {
    let server = common::start(|_| {}).await;
    let mut c = RawClient::connect(&server).await;
    c.send_text("x".repeat(MAX_FRAME_BYTES + 1)).await;
    match c.read().await {
        Read::Closed(Some((code, _))) => assert_eq!(code, 1009),
        other => panic!("expected close 1009, got {other:?}"),
    }
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn too_many_consecutive_errors_close_the_connection() {
    let server = common::start(|_| {}).await;
    let mut c = RawClient::connect(&server).await;
    for _ in 0..20 {
        c.send_text("nope").await;
    }
    let mut errors = 0;
    loop {
        match c.read().await {
            Read::Message(ServerMessage::Error { .. }) => errors += 1,
            Read::Closed(Some((code, reason))) => {
                assert_eq!(code, 1008);
                assert_eq!(reason, "too many invalid messages");
                break;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(errors, 10);
    server.shutdown().await.unwrap();
}

// Real time with a 1 s limit: under paused time the runtime also skips the close handshake's
// grace period, so the client could not reply to the close frame it is checking.
#[tokio::test]
async fn no_join_within_the_timeout_closes_with_1008_and_leaves_no_room() {
    let server = common::start(|c| c.join_timeout_secs = 1).await;
    let mut c = RawClient::connect(&server).await;
    let room = common::room("late");
    c.send(&common::channel_join(&room)).await;
    assert!(matches!(
        c.read_message().await,
        ServerMessage::ChannelJoined { .. }
    ));
    match c.read().await {
        Read::Closed(Some((code, reason))) => {
            assert_eq!((code, reason.as_str()), (1008, "no join in time"))
        }
        other => panic!("expected close 1008, got {other:?}"),
    }
    assert_eq!(server.state.rooms.census().rooms, 0);
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_nonsense_answer_removes_only_that_peer() {
    let server = common::start(|_| {}).await;
    let room = common::room("sdp");
    let (mut ada, _) = RawClient::join(&server, &room, "Ada").await;
    let (mut c, mallory) = RawClient::join(&server, &room, "Mallory").await;
    // An answer after the offer, but nonsense.
    c.next_offer().await;
    let close = answer_refused(&mut c, "v=0\r\nthis is not sdp\r\n".into()).await;
    assert_eq!(close.map(|c| c.0), Some(1011));
    // Ada stays in the room: she is told that Mallory, and only Mallory, left.
    loop {
        if let ServerMessage::MediaEvent {
            data: ServerMediaEvent::PeerLeft { peer_id },
        } = ada.read_message().await
        {
            assert_eq!(peer_id, mallory);
            break;
        }
    }
    server.shutdown().await.unwrap();
}

/// Found by the `protocol_decode` fuzz target: the decoder's message quotes the unknown type,
/// and a long one made the reply longer than the protocol allows, so clients refused it.
#[tokio::test]
async fn an_error_reply_quoting_a_long_unknown_type_stays_within_bounds() {
    let server = common::start(|_| {}).await;
    let mut c = RawClient::connect(&server).await;
    c.send_text(format!(r#"{{"type":"{}"}}"#, "é".repeat(2000)))
        .await;
    // `read_message` decodes with the client's bounds: an oversized reply fails here.
    expect_error(
        c.read_message().await,
        ErrorCode::BadMessage,
        "unknown variant `éé",
    );
    server.shutdown().await.unwrap();
}

/// Found by the `sdp_answer` fuzz target: the SDP parser quotes the offending line, which made
/// both the error event and the close frame's reason (at most 123 bytes) too long.
#[tokio::test]
async fn a_refused_answer_quoting_a_long_line_still_reports_and_closes_cleanly() {
    let server = common::start(|_| {}).await;
    let (mut c, _) = RawClient::join(&server, &common::room("sdp"), "Mallory").await;
    c.next_offer().await;
    let close = answer_refused(&mut c, format!("v=0\r\n{}\r\n", "x".repeat(5000))).await;
    let (code, reason) = close.expect("a close frame, not a broken connection");
    assert_eq!(code, 1011);
    assert!(reason.starts_with("the SDP answer was refused"), "{reason}");
    server.shutdown().await.unwrap();
}

/// Answers with `sdp`, which the server must refuse: the refusal is reported as an error event
/// before the socket closes. Returns the close frame.
async fn answer_refused(c: &mut RawClient, sdp: String) -> Option<(u16, String)> {
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
    let mut saw_error = false;
    loop {
        match c.read().await {
            Read::Message(ServerMessage::MediaEvent {
                data: ServerMediaEvent::Error { message },
            }) => {
                assert!(message.contains("SDP answer was refused"), "{message}");
                saw_error = true;
            }
            Read::Message(_) => {}
            Read::Closed(close) => {
                assert!(saw_error, "closed without reporting the refusal");
                return close;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_from_one_client_does_not_disturb_a_room() {
    let server = common::start(|_| {}).await;
    let room = common::room("calm");
    let a = common::peer(&server, &room, "Ada").await;
    let b = common::peer(&server, &room, "Bob").await;
    common::video_flowing(&b, &a).await;

    // A hostile neighbour in the same room: garbage, then an oversized frame.
    let mut m = RawClient::connect(&server).await;
    m.send(&common::channel_join(&room)).await;
    m.read_message().await;
    for _ in 0..5 {
        m.send_text("garbage").await;
    }
    m.send_text("y".repeat(MAX_FRAME_BYTES * 2)).await;
    loop {
        if let Read::Closed(_) = m.read().await {
            break;
        }
    }
    // And a peer in the room sending garbage is answered, not dropped.
    a.send_raw("{\"type\":\"mediaEvent\",\"data\":{\"type\":\"bogus\"}}");
    a.wait_for("error reply", WAIT, |s| !s.errors.is_empty())
        .await
        .unwrap();

    common::video_keeps_flowing(&b, &a).await;
    assert_eq!(a.state().closed, None);
    a.leave().await;
    b.leave().await;
    server.shutdown().await.unwrap();
}

async fn upgrade_status(server: &server::RunningServer, origin: &str) -> u16 {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut req = server.socket_url().into_client_request().unwrap();
    req.headers_mut().insert("Origin", origin.parse().unwrap());
    match tokio_tungstenite::connect_async(req).await {
        Ok((_, resp)) => resp.status().as_u16(),
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => resp.status().as_u16(),
        Err(e) => panic!("unexpected: {e}"),
    }
}

#[tokio::test]
async fn foreign_origins_get_403_same_origin_and_allow_list_pass() {
    let server = common::start(|c| c.allowed_origins = vec!["http://localhost:8080".into()]).await;
    let own = format!("http://{}", server.addr);
    assert_eq!(upgrade_status(&server, &own).await, 101);
    assert_eq!(upgrade_status(&server, "http://localhost:8080").await, 101);
    assert_eq!(upgrade_status(&server, "https://evil.example").await, 403);
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_flood_is_limited_then_closed_and_others_are_unaffected() {
    let server = common::start(|_| {}).await;
    let room = common::room("flood");
    let a = common::peer(&server, &room, "Ada").await;
    let b = common::peer(&server, &room, "Bob").await;
    common::video_flowing(&b, &a).await;

    // In the room, where an end-of-candidates is accepted: only the rate refuses the flood
    // (before the join every one of them would be refused as out of place, and close sooner).
    let (mut m, _) = RawClient::join(&server, &room, "Mallory").await;
    let candidate = ClientMessage::MediaEvent {
        data: ClientMediaEvent::Candidate(IceCandidate {
            candidate: String::new(),
            sdp_mid: None,
            sdp_m_line_index: None,
            username_fragment: None,
        }),
    };
    for _ in 0..1000 {
        m.send(&candidate).await;
    }
    let mut limited = 0;
    let close = loop {
        match m.read().await {
            Read::Message(ServerMessage::Error {
                code: ErrorCode::RateLimited,
                ..
            }) => limited += 1,
            Read::Message(_) => {}
            Read::Closed(c) => break c,
        }
    };
    assert!(limited > 0, "no rateLimited error before the close");
    assert_eq!(close.map(|c| c.0), Some(1008));

    common::video_keeps_flowing(&b, &a).await;
    a.leave().await;
    b.leave().await;
    server.shutdown().await.unwrap();
}

/// A client that trickles from a callback can send its candidates ahead of its answer: the
/// server keeps them, adds them once the answer is applied, and media connects.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn candidates_ahead_of_the_first_answer_are_kept_until_it_lands() {
    use webrtc::ice_transport::ice_candidate::RTCIceCandidateInit;
    use webrtc::peer_connection::configuration::RTCConfiguration;
    use webrtc::peer_connection::peer_connection_state::RTCPeerConnectionState as State;
    use webrtc::peer_connection::sdp::session_description::RTCSessionDescription;

    let server = common::start(|_| {}).await;
    let (mut c, _) = RawClient::join(&server, &common::room("early"), "Eve").await;
    let offer = c.next_offer().await;
    let pc = testkit::api(std::net::Ipv4Addr::LOCALHOST.into())
        .unwrap()
        .new_peer_connection(RTCConfiguration::default())
        .await
        .unwrap();
    let (state_tx, mut state) = tokio::sync::watch::channel(State::New);
    pc.on_peer_connection_state_change(Box::new(move |s| {
        let _ = state_tx.send(s);
        Box::pin(async {})
    }));
    pc.set_remote_description(RTCSessionDescription::offer(offer.sdp).unwrap())
        .await
        .unwrap();
    let answer = pc.create_answer(None).await.unwrap();
    let mut gathered = pc.gathering_complete_promise().await;
    pc.set_local_description(answer).await.unwrap();
    let _ = gathered.recv().await;
    let sdp = pc.local_description().await.unwrap().sdp;
    let candidates: Vec<&str> = sdp
        .lines()
        .filter_map(|l| l.strip_prefix("a="))
        .filter(|l| l.starts_with("candidate:"))
        .collect();
    assert!(!candidates.is_empty(), "no local candidate gathered");
    for candidate in &candidates {
        c.send(&ClientMessage::MediaEvent {
            data: ClientMediaEvent::Candidate(IceCandidate {
                candidate: (*candidate).to_owned(),
                sdp_mid: Some("0".into()),
                sdp_m_line_index: Some(0),
                username_fragment: None,
            }),
        })
        .await;
    }
    c.send(&ClientMessage::MediaEvent {
        data: ClientMediaEvent::SdpAnswer {
            sdp_answer: SessionDescription {
                kind: SdpType::Answer,
                sdp: testkit::strip_sdp_lines(&sdp, &["a=candidate", "a=end-of-candidates"]),
            },
            track_id_to_track_metadata: BTreeMap::new(),
            mid_to_track_id: BTreeMap::new(),
        },
    })
    .await;
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        tokio::select! {
            _ = state.wait_for(|s| *s == State::Connected) => break,
            m = c.read_message() => match m {
                ServerMessage::MediaEvent { data: ServerMediaEvent::Candidate(s) } => {
                    pc.add_ice_candidate(RTCIceCandidateInit {
                        candidate: s.candidate,
                        sdp_mid: s.sdp_mid,
                        sdp_mline_index: s.sdp_m_line_index,
                        username_fragment: s.username_fragment,
                    })
                    .await
                    .unwrap();
                }
                ServerMessage::Error { message, .. }
                | ServerMessage::MediaEvent { data: ServerMediaEvent::Error { message } } => {
                    panic!("the server refused: {message}")
                }
                _ => {}
            },
            _ = tokio::time::sleep_until(deadline) => panic!("media never connected"),
        }
    }
    println!(
        "{} candidates sent ahead of the answer: connected",
        candidates.len()
    );
    pc.close().await.unwrap();
    server.shutdown().await.unwrap();
}

/// Candidates kept before the first answer are bounded: one past the limit is refused.
#[tokio::test]
async fn candidates_ahead_of_the_answer_are_bounded() {
    use server::peer::MAX_EARLY_CANDIDATES;
    let server = common::start(|_| {}).await;
    let (mut c, _) = RawClient::join(&server, &common::room("early"), "Eve").await;
    c.next_offer().await;
    for port in 0..=MAX_EARLY_CANDIDATES {
        c.send(&ClientMessage::MediaEvent {
            data: ClientMediaEvent::Candidate(IceCandidate {
                candidate: format!(
                    "candidate:{port} 1 udp 2130706431 127.0.0.1 {} typ host",
                    40000 + port
                ),
                sdp_mid: Some("0".into()),
                sdp_m_line_index: Some(0),
                username_fragment: None,
            }),
        })
        .await;
    }
    loop {
        match c.read_message().await {
            ServerMessage::MediaEvent {
                data: ServerMediaEvent::Candidate(_),
            } => {}
            other => {
                expect_error(other, ErrorCode::Negotiation, "before the first answer");
                break;
            }
        }
    }
    server.shutdown().await.unwrap();
}
