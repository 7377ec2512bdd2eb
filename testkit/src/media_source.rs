//! The synthetic media a test peer sends: local Opus/VP8-labelled tracks and the task that
//! writes checkable RTP on one at a fixed rate.

use std::sync::Arc;
use std::time::Duration;

use webrtc::api::media_engine::{MIME_TYPE_OPUS, MIME_TYPE_VP8};
use webrtc::rtp_transceiver::rtp_codec::RTCRtpCodecCapability;
use webrtc::track::track_local::track_local_static_rtp::TrackLocalStaticRTP;
use webrtc::track::track_local::TrackLocalWriter;

use crate::audio_level::LevelSource;
use crate::payload::make_payload;

/// A peer's Opus-labelled microphone track, `<peer>-audio`.
pub(crate) fn opus_track(peer: &str) -> Arc<TrackLocalStaticRTP> {
    Arc::new(TrackLocalStaticRTP::new(
        RTCRtpCodecCapability {
            mime_type: MIME_TYPE_OPUS.into(),
            clock_rate: 48000,
            channels: 2,
            ..Default::default()
        },
        format!("{peer}-audio"),
        stream_id(peer),
    ))
}

/// A peer's VP8-labelled video track, `<peer>-<name>`.
pub(crate) fn vp8_track(peer: &str, name: &str) -> Arc<TrackLocalStaticRTP> {
    Arc::new(TrackLocalStaticRTP::new(
        RTCRtpCodecCapability {
            mime_type: MIME_TYPE_VP8.into(),
            clock_rate: 90000,
            ..Default::default()
        },
        format!("{peer}-{name}"),
        stream_id(peer),
    ))
}

/// One simulcast layer of a peer's camera, `<peer>-video` with RID `rid`.
pub(crate) fn vp8_layer(peer: &str, rid: &str) -> Arc<TrackLocalStaticRTP> {
    Arc::new(TrackLocalStaticRTP::new_with_rid(
        RTCRtpCodecCapability {
            mime_type: MIME_TYPE_VP8.into(),
            clock_rate: 90000,
            ..Default::default()
        },
        format!("{peer}-video"),
        rid.to_owned(),
        stream_id(peer),
    ))
}

/// How one stream is numbered and marked: where its sequence numbers and timestamps start,
/// and the layer mark put in the top byte of every payload counter (0 without simulcast).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Numbering {
    pub(crate) first_sequence: u16,
    pub(crate) first_timestamp: u32,
    pub(crate) layer: u8,
}

impl Numbering {
    /// A layer's: random starts, as a real sender's streams have, so that a receiver that
    /// got two layers mixed would see it.
    pub(crate) fn layer(mark: u8) -> Numbering {
        Numbering {
            first_sequence: rand::random(),
            first_timestamp: rand::random(),
            layer: mark,
        }
    }
}

/// All of a peer's tracks share one stream id, as a browser's camera and microphone do.
fn stream_id(peer: &str) -> String {
    format!("testkit-{peer}")
}

/// Writes packet after packet on `track` forever: `size`-byte [`make_payload`]s at
/// `packets_per_second`, numbered as `numbering` says, with an audio level when `level` says
/// so.
pub(crate) async fn publish(
    track: Arc<TrackLocalStaticRTP>,
    packets_per_second: u32,
    size: usize,
    numbering: Numbering,
    mut level: Option<LevelSource>,
) {
    let clock = track.codec().clock_rate;
    let mut tick = tokio::time::interval(Duration::from_secs(1) / packets_per_second.max(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut seq: u16 = numbering.first_sequence;
    let mut n: u32 = 0;
    let mark = u32::from(numbering.layer) << 24;
    loop {
        tick.tick().await;
        let counter = mark | (n & 0x00ff_ffff);
        let packet = webrtc::rtp::packet::Packet {
            header: webrtc::rtp::header::Header {
                version: 2,
                marker: true,
                sequence_number: seq,
                timestamp: numbering
                    .first_timestamp
                    .wrapping_add(n.wrapping_mul(clock / packets_per_second.max(1))),
                ..Default::default()
            },
            payload: make_payload(counter, size),
        };
        let mut packet = packet;
        if let Some(source) = level.as_mut() {
            if let Some((id, l)) = source.next().await {
                let _ = packet
                    .header
                    .set_extension(id, bytes::Bytes::copy_from_slice(&[l]));
            }
        }
        // Before negotiation binds the track there is nowhere to send: not an error.
        let _ = track.write_rtp(&packet).await;
        seq = seq.wrapping_add(1);
        n = n.wrapping_add(1);
    }
}
