//! Golden JSON pins the wire format; every variant round-trips; bad frames get clear errors.
//!
//! Set `UPDATE_GOLDEN=1` to rewrite the golden files after a deliberate wire change.

use std::collections::BTreeMap;
use std::path::PathBuf;

use protocol::*;

fn camera() -> TrackMetadata {
    TrackMetadata {
        source: TrackSource::Camera,
        muted: false,
    }
}

fn peer(id: &str, name: &str) -> PeerInfo {
    PeerInfo {
        id: id.into(),
        metadata: PeerMetadata {
            display_name: name.into(),
        },
        track_id_to_metadata: BTreeMap::from([(format!("{id}:t1"), camera())]),
    }
}

fn chat(seq: u64, text: &str) -> ChatMessage {
    ChatMessage {
        seq,
        peer_id: "p1".into(),
        display_name: "Ada".into(),
        text: text.into(),
        sent_at_ms: 1_764_000_000_000 + seq,
    }
}

fn candidate() -> IceCandidate {
    IceCandidate {
        candidate: "candidate:1 1 udp 2130706431 127.0.0.1 4000 typ host".into(),
        sdp_mid: Some("0".into()),
        sdp_m_line_index: Some(0),
        username_fragment: Some("abcd".into()),
    }
}

fn client_samples() -> Vec<(&'static str, ClientMessage)> {
    use ClientMediaEvent as E;
    let media = |data| ClientMessage::MediaEvent { data };
    vec![
        (
            "client_channel_join",
            ClientMessage::ChannelJoin {
                topic: "room:standup".into(),
                protocol_version: PROTOCOL_VERSION,
                token: None,
            },
        ),
        (
            "client_channel_join_with_token",
            ClientMessage::ChannelJoin {
                topic: "room:standup".into(),
                protocol_version: PROTOCOL_VERSION,
                token: Some("eyJyb29tIjoic3RhbmR1cCJ9.c2ln".into()),
            },
        ),
        ("client_channel_leave", ClientMessage::ChannelLeave {}),
        (
            "client_join",
            media(E::Join {
                metadata: PeerMetadata {
                    display_name: "Ada".into(),
                },
                reconnect_token: None,
            }),
        ),
        (
            "client_join_reconnecting",
            media(E::Join {
                metadata: PeerMetadata {
                    display_name: "Ada".into(),
                },
                reconnect_token: Some("b3f1c9a0d5e24f7c8a6b2e1d0c9f8a7b".into()),
            }),
        ),
        (
            "client_sdp_answer",
            media(E::SdpAnswer {
                sdp_answer: SessionDescription {
                    kind: SdpType::Answer,
                    sdp: "v=0\r\n".into(),
                },
                track_id_to_track_metadata: BTreeMap::from([("local-video".into(), camera())]),
                mid_to_track_id: BTreeMap::from([("1".into(), "local-video".into())]),
            }),
        ),
        ("client_candidate", media(E::Candidate(candidate()))),
        (
            "client_renegotiate_tracks",
            media(E::RenegotiateTracks {
                tracks: None,
                ice_restart: false,
            }),
        ),
        (
            "client_renegotiate_tracks_for_a_screen",
            media(E::RenegotiateTracks {
                tracks: Some(TrackCounts { audio: 1, video: 2 }),
                ice_restart: false,
            }),
        ),
        (
            "client_renegotiate_tracks_ice_restart",
            media(E::RenegotiateTracks {
                tracks: None,
                ice_restart: true,
            }),
        ),
        (
            "client_send_chat_message",
            media(E::SendChatMessage {
                text: "Hello <b>all</b>\nsecond line".into(),
            }),
        ),
        (
            "client_update_peer_metadata",
            media(E::UpdatePeerMetadata {
                metadata: PeerMetadata {
                    display_name: "Ada L.".into(),
                },
            }),
        ),
        (
            "client_update_track_metadata",
            media(E::UpdateTrackMetadata {
                track_id: "p1:t1".into(),
                track_metadata: TrackMetadata {
                    source: TrackSource::Microphone,
                    muted: true,
                },
            }),
        ),
        (
            "client_set_tile_sizes",
            media(E::SetTileSizes {
                sizes: [
                    (
                        "p1:t2".into(),
                        TileSize {
                            width: 640,
                            height: 360,
                        },
                    ),
                    ("p2:t2".into(), TileSize::default()),
                ]
                .into(),
            }),
        ),
        ("client_leave", media(E::Leave {})),
    ]
}

fn server_samples() -> Vec<(&'static str, ServerMessage)> {
    use ServerMediaEvent as E;
    vec![
        (
            "server_channel_joined",
            ServerMessage::ChannelJoined {
                topic: "room:standup".into(),
                protocol_version: PROTOCOL_VERSION,
            },
        ),
        (
            "server_channel_join_error",
            ServerMessage::ChannelJoinError {
                reason: "room name: must not be empty".into(),
            },
        ),
        (
            "server_error",
            ServerMessage::error(ErrorCode::BadMessage, "malformed message"),
        ),
        (
            "server_peer_accepted",
            ServerMessage::media(E::PeerAccepted {
                id: "p2".into(),
                peers_in_room: vec![peer("p1", "Ada")],
                ice_servers: vec![],
                chat_history: vec![],
                reconnect_token: None,
            }),
        ),
        (
            "server_peer_accepted_with_chat_and_token",
            ServerMessage::media(E::PeerAccepted {
                id: "p2".into(),
                peers_in_room: vec![peer("p1", "Ada")],
                ice_servers: vec![],
                chat_history: vec![chat(1, "Hi!"), chat(2, "Anyone?")],
                reconnect_token: Some("b3f1c9a0d5e24f7c8a6b2e1d0c9f8a7b".into()),
            }),
        ),
        (
            "server_chat_message",
            ServerMessage::media(E::ChatMessage(chat(3, "Hello <b>all</b>"))),
        ),
        (
            "server_voice_activity",
            ServerMessage::media(E::VoiceActivity {
                peer_id: "p1".into(),
                track_id: "p1:t2".into(),
                speaking: true,
            }),
        ),
        (
            "server_downlink",
            ServerMessage::media(E::Downlink {
                estimate: Some(850_000),
                paused_track_ids: vec!["p1:t1".into()],
            }),
        ),
        (
            "server_layers_wanted",
            ServerMessage::media(E::LayersWanted {
                track_id: "{b7f1c0de-local}".into(),
                rids: vec!["q".into(), "h".into()],
            }),
        ),
        (
            "server_downlink_unlimited",
            ServerMessage::media(E::Downlink {
                estimate: None,
                paused_track_ids: vec![],
            }),
        ),
        (
            "server_peer_accepted_with_turn",
            ServerMessage::media(E::PeerAccepted {
                id: "p2".into(),
                peers_in_room: vec![],
                ice_servers: vec![
                    protocol::IceServer {
                        urls: vec!["stun:turn.example.com:3478".into()],
                        username: None,
                        credential: None,
                    },
                    protocol::IceServer {
                        urls: vec![
                            "turn:turn.example.com:3478?transport=udp".into(),
                            "turns:turn.example.com:5349?transport=tcp".into(),
                        ],
                        username: Some("1700000000:p2".into()),
                        credential: Some("3xWzN0nB1vCwdKaXW8xaRv6Qq0c=".into()),
                    },
                ],
                chat_history: vec![],
                reconnect_token: None,
            }),
        ),
        (
            "server_peer_denied",
            ServerMessage::media(E::PeerDenied {
                reason: "room is full".into(),
            }),
        ),
        (
            "server_peer_joined",
            ServerMessage::media(E::PeerJoined {
                peer: peer("p3", "Grace"),
            }),
        ),
        (
            "server_peer_left",
            ServerMessage::media(E::PeerLeft {
                peer_id: "p3".into(),
            }),
        ),
        (
            "server_peer_updated",
            ServerMessage::media(E::PeerUpdated {
                peer_id: "p1".into(),
                metadata: PeerMetadata {
                    display_name: "Ada L.".into(),
                },
            }),
        ),
        (
            "server_tracks_added",
            ServerMessage::media(E::TracksAdded {
                peer_id: "p1".into(),
                track_id_to_metadata: BTreeMap::from([("p1:t1".into(), camera())]),
            }),
        ),
        (
            "server_tracks_removed",
            ServerMessage::media(E::TracksRemoved {
                peer_id: "p1".into(),
                track_ids: vec!["p1:t1".into()],
            }),
        ),
        (
            "server_track_updated",
            ServerMessage::media(E::TrackUpdated {
                peer_id: "p1".into(),
                track_id: "p1:t1".into(),
                track_metadata: camera(),
            }),
        ),
        (
            "server_sdp_offer",
            ServerMessage::media(E::SdpOffer {
                sdp_offer: SessionDescription {
                    kind: SdpType::Offer,
                    sdp: "v=0\r\n".into(),
                },
                mid_to_track_id: BTreeMap::from([("2".into(), "p1:t1".into())]),
            }),
        ),
        (
            "server_candidate",
            ServerMessage::media(E::Candidate(candidate())),
        ),
        (
            "server_media_error",
            ServerMessage::media(E::Error {
                message: "negotiation failed".into(),
            }),
        ),
    ]
}

fn golden(name: &str, json: &str) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(format!("{name}.json"));
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, format!("{json}\n")).unwrap();
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (run with UPDATE_GOLDEN=1)", path.display()));
    assert_eq!(expected.trim_end(), json, "wire format of {name} changed");
}

#[test]
fn client_messages_match_golden_and_round_trip() {
    for (name, msg) in client_samples() {
        let json = msg.encode();
        golden(name, &json);
        assert_eq!(ClientMessage::decode(&json).unwrap(), msg, "{name}");
    }
}

#[test]
fn server_messages_match_golden_and_round_trip() {
    for (name, msg) in server_samples() {
        let json = msg.encode();
        golden(name, &json);
        assert_eq!(ServerMessage::decode(&json).unwrap(), msg, "{name}");
    }
}

#[test]
fn unknown_type_is_named_in_the_error() {
    let e = ClientMessage::decode(r#"{"type":"fly"}"#).unwrap_err();
    assert_eq!(e.code(), ErrorCode::BadMessage);
    assert!(e.to_string().contains("unknown variant `fly`"), "{e}");

    let e =
        ClientMessage::decode(r#"{"type":"mediaEvent","data":{"type":"teleport"}}"#).unwrap_err();
    assert!(e.to_string().contains("unknown variant `teleport`"), "{e}");
}

#[test]
fn malformed_and_missing_fields_are_reported() {
    let e = ClientMessage::decode("{not json").unwrap_err();
    assert!(matches!(e, DecodeError::Malformed(_)), "{e}");
    let e = ClientMessage::decode(r#"{"type":"channelJoin","topic":"room:a"}"#).unwrap_err();
    assert!(
        e.to_string().contains("missing field `protocolVersion`"),
        "{e}"
    );
    let e = ClientMessage::decode(r#"{"type":"channelLeave","extra":1}"#).unwrap_err();
    assert!(e.to_string().contains("unknown field `extra`"), "{e}");
}

#[test]
fn oversized_frames_and_fields_are_refused() {
    let big = format!(
        r#"{{"type":"channelJoin","topic":"{}","protocolVersion":1}}"#,
        "a".repeat(MAX_FRAME_BYTES)
    );
    assert!(matches!(
        ClientMessage::decode(&big),
        Err(DecodeError::TooLarge { .. })
    ));

    let long_name = format!(
        r#"{{"type":"mediaEvent","data":{{"type":"join","metadata":{{"displayName":"{}"}}}}}}"#,
        "x".repeat(65)
    );
    let e = ClientMessage::decode(&long_name).unwrap_err();
    assert_eq!(e.code(), ErrorCode::InvalidField);
    assert_eq!(
        e.to_string(),
        "invalid field: display name: is 65 characters, the limit is 64"
    );

    let mids: BTreeMap<String, String> = (0..=MAX_MIDS)
        .map(|i| (i.to_string(), "t".into()))
        .collect();
    let msg = ClientMessage::MediaEvent {
        data: ClientMediaEvent::SdpAnswer {
            sdp_answer: SessionDescription {
                kind: SdpType::Answer,
                sdp: String::new(),
            },
            track_id_to_track_metadata: BTreeMap::new(),
            mid_to_track_id: mids,
        },
    };
    assert!(msg.validate().is_err());
}

#[test]
fn chat_and_track_requests_are_checked() {
    let e = ClientMessage::decode(
        r#"{"type":"mediaEvent","data":{"type":"sendChatMessage","text":"  "}}"#,
    )
    .unwrap_err();
    assert_eq!(e.code(), ErrorCode::InvalidField);
    assert_eq!(
        e.to_string(),
        "invalid field: chat message: must not be empty"
    );
    let e = ClientMessage::decode(
        r#"{"type":"mediaEvent","data":{"type":"renegotiateTracks","tracks":{"audio":4,"video":5}}}"#,
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "invalid field: tracks: asks for 9 tracks, the limit is 8"
    );
    let e = ClientMessage::decode(
        r#"{"type":"mediaEvent","data":{"type":"renegotiateTracks","tracks":{"audio":1,"video":300}}}"#,
    )
    .unwrap_err();
    assert_eq!(e.code(), ErrorCode::BadMessage, "{e}");
    // Older clients' bare form still means "offer again".
    assert_eq!(
        ClientMessage::decode(r#"{"type":"mediaEvent","data":{"type":"renegotiateTracks"}}"#)
            .unwrap(),
        ClientMessage::MediaEvent {
            data: ClientMediaEvent::RenegotiateTracks {
                tracks: None,
                ice_restart: false
            }
        }
    );
}

#[test]
fn topics() {
    assert_eq!(room_from_topic("room:abc"), Some("abc"));
    assert_eq!(room_from_topic("lobby:abc"), None);
    assert_eq!(topic_for_room("abc"), "room:abc");
}

/// The server's largest replies fit what a client accepts: a join reply listing a full room
/// (every id, name and track at its longest) and an offer of realistic m-lines for it.
#[test]
fn a_full_rooms_join_reply_and_offer_fit_a_client() {
    let long_id = |p: usize, t: usize| format!("{p:0>60}:{t:0>60}");
    let peers: Vec<PeerInfo> = (0..MAX_PEERS_LISTED - 1)
        .map(|p| PeerInfo {
            id: format!("{p:0>120}"),
            metadata: PeerMetadata {
                display_name: "𝄞".repeat(MAX_DISPLAY_NAME_CHARS),
            },
            track_id_to_metadata: (0..MAX_TRACKS_PER_PEER)
                .map(|t| (long_id(p, t), camera()))
                .collect(),
        })
        .collect();
    // The longest chat history: every message at its longest, each character escaped in JSON.
    let chat_history = (0..MAX_CHAT_HISTORY as u64)
        .map(|seq| ChatMessage {
            seq,
            peer_id: format!("{seq:0>120}"),
            display_name: "𝄞".repeat(MAX_DISPLAY_NAME_CHARS),
            text: "\"".repeat(MAX_CHAT_CHARS),
            sent_at_ms: u64::MAX,
        })
        .collect();
    let reply = ServerMessage::media(ServerMediaEvent::PeerAccepted {
        id: "me".into(),
        peers_in_room: peers,
        ice_servers: vec![],
        chat_history,
        reconnect_token: Some("t".repeat(MAX_ID_BYTES)),
    })
    .encode();
    assert!(reply.len() > MAX_FRAME_BYTES, "the case worth testing");
    assert!(
        ServerMessage::decode(&reply).is_ok(),
        "{} bytes refused",
        reply.len()
    );

    // A browser-grade video m-line as the server writes it, ~650 bytes, for two tracks of
    // every other peer in a full room.
    let m_line = "m=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=setup:active\r\n\
        a=mid:123\r\na=ice-ufrag:abcdefghijklmnop\r\na=ice-pwd:abcdefghijklmnopqrstuvwxyzabcdef\r\n\
        a=rtcp-mux\r\na=rtcp-rsize\r\na=rtpmap:96 VP8/90000\r\na=rtcp-fb:96 goog-remb \r\n\
        a=rtcp-fb:96 ccm fir\r\na=rtcp-fb:96 nack \r\na=rtcp-fb:96 nack pli\r\n\
        a=rtcp-fb:96 transport-cc \r\na=extmap:1 http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01\r\n\
        a=ssrc:1234567890 cname:0123456789abcdef0123456789abcdef\r\n\
        a=ssrc:1234567890 msid:0123456789abcdef 0123456789abcdef:0123456789abcdef\r\n\
        a=msid:0123456789abcdef 0123456789abcdef:0123456789abcdef\r\na=sendonly\r\n";
    let sdp = m_line.repeat(2 * (MAX_PEERS_LISTED - 1));
    let offer = ServerMessage::media(ServerMediaEvent::SdpOffer {
        sdp_offer: SessionDescription {
            kind: SdpType::Offer,
            sdp,
        },
        mid_to_track_id: (0..2 * (MAX_PEERS_LISTED - 1))
            .map(|i| (i.to_string(), long_id(i, i)))
            .collect(),
    })
    .encode();
    assert!(
        ServerMessage::decode(&offer).is_ok(),
        "an offer of {} bytes refused",
        offer.len()
    );
    println!(
        "full room: join reply {} bytes, offer {} bytes (limit {MAX_SERVER_FRAME_BYTES})",
        reply.len(),
        offer.len()
    );
}
