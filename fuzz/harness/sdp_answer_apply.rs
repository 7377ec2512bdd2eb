// The `sdp_answer_apply` fuzz target's body. It is `include!`d both by the fuzz target and by
// `server/tests/fuzz_regressions.rs`, so `cargo test` replays saved inputs through exactly the
// code the fuzzer ran. (Plain comments: an included file cannot open with inner doc comments.)

/// The longest `set_remote_description` may take: it only records the answer and queues the
/// transport start, so seconds mean a hang (which would stall that peer's session for good).
const APPLY_LIMIT: std::time::Duration = std::time::Duration::from_secs(5);

/// What every input reuses: building these per input would dominate the run time.
struct ApplyRig {
    rt: tokio::runtime::Runtime,
    /// The server's own `webrtc` API: its codecs, interceptors and ICE settings.
    rtc: server::rtc::Rtc,
}

fn apply_rig() -> &'static ApplyRig {
    static RIG: std::sync::OnceLock<ApplyRig> = std::sync::OnceLock::new();
    RIG.get_or_init(|| {
        // One thread: background tasks only run while an input is being applied, which keeps
        // runs repeatable.
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("rig: tokio runtime: {e}"));
        let rtc = rt
            .block_on(server::rtc::build(&server::Config::for_tests()))
            .unwrap_or_else(|e| panic!("rig: the server's webrtc API: {e}"));
        ApplyRig { rt, rtc }
    })
}

/// A connection shaped like a server peer with one subscriber slot (`peer.rs`): recvonly audio
/// and video for what the client publishes, one sendonly video track, and its offer set.
async fn offering_connection(rig: &ApplyRig) -> webrtc::peer_connection::RTCPeerConnection {
    use webrtc::rtp_transceiver::rtp_codec::{RTCRtpCodecCapability, RTPCodecType};
    use webrtc::rtp_transceiver::rtp_transceiver_direction::RTCRtpTransceiverDirection;
    use webrtc::rtp_transceiver::RTCRtpTransceiverInit;

    let pc = rig
        .rtc
        .api
        .new_peer_connection(Default::default())
        .await
        .unwrap_or_else(|e| panic!("rig: peer connection: {e}"));
    for kind in [RTPCodecType::Audio, RTPCodecType::Video] {
        pc.add_transceiver_from_kind(
            kind,
            Some(RTCRtpTransceiverInit {
                direction: RTCRtpTransceiverDirection::Recvonly,
                send_encodings: vec![],
            }),
        )
        .await
        .unwrap_or_else(|e| panic!("rig: recvonly transceiver: {e}"));
    }
    let track = std::sync::Arc::new(
        webrtc::track::track_local::track_local_static_rtp::TrackLocalStaticRTP::new(
            RTCRtpCodecCapability {
                mime_type: webrtc::api::media_engine::MIME_TYPE_VP8.to_owned(),
                clock_rate: 90000,
                ..Default::default()
            },
            "publisher:camera".to_owned(),
            "publisher".to_owned(),
        ),
    );
    pc.add_transceiver_from_track(
        track,
        Some(RTCRtpTransceiverInit {
            direction: RTCRtpTransceiverDirection::Sendonly,
            send_encodings: vec![],
        }),
    )
    .await
    .unwrap_or_else(|e| panic!("rig: sendonly transceiver: {e}"));
    let offer = pc
        .create_offer(None)
        .await
        .unwrap_or_else(|e| panic!("rig: offer: {e}"));
    pc.set_local_description(offer)
        .await
        .unwrap_or_else(|e| panic!("rig: local description: {e}"));
    pc
}

/// Applies `data` as a client's answer to a fresh server-side offer, the way `Peer::on_answer`
/// does (the server's checks, then `set_remote_description`), and panics if that panics or
/// hangs. Refusals are fine: the server removes the peer with the reason.
pub fn sdp_answer_apply(data: &[u8]) {
    let sdp = String::from_utf8_lossy(data).into_owned();
    if sdp.len() > protocol::MAX_SDP_BYTES {
        return;
    }
    let answer = protocol::SessionDescription {
        kind: protocol::SdpType::Answer,
        sdp,
    };
    // The server never applies what its checks refuse (the `sdp_answer` target covers those).
    let Ok(desc) = server::sdp_answer::check_answer(answer) else {
        return;
    };
    let rig = apply_rig();
    rig.rt.block_on(async {
        let pc = offering_connection(rig).await;
        let applied = tokio::time::timeout(APPLY_LIMIT, pc.set_remote_description(desc)).await;
        let closed = tokio::time::timeout(APPLY_LIMIT, pc.close()).await;
        assert!(applied.is_ok(), "set_remote_description hung");
        assert!(closed.is_ok(), "closing after an answer hung");
    });
}
