//! The synthetic media a test peer sends: local Opus/VP8-labelled tracks and the task that
//! writes checkable RTP on one at a fixed rate.

use std::sync::Arc;
use std::time::Duration;

use webrtc::api::media_engine::{MIME_TYPE_OPUS, MIME_TYPE_VP8};
use webrtc::rtp_transceiver::rtp_codec::RTCRtpCodecCapability;
use webrtc::track::track_local::track_local_static_rtp::TrackLocalStaticRTP;
use webrtc::track::track_local::TrackLocalWriter;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

use tokio::time::Instant;

use crate::audio_level::LevelSource;
use crate::payload::{make_payload, make_vp8_payload};

/// A camera honours no keyframe request within this long of the last (libwebrtc's
/// `kMinKeyframeSendIntervalMs`).
const KEYFRAME_MIN_INTERVAL: Duration = Duration::from_millis(300);

/// A simulcast camera sends a keyframe at least this often on every layer.
const KEYFRAME_EVERY: Duration = Duration::from_secs(2);

/// A simulcast camera's controls, shared by its layers' publishing tasks and the peer: keyframe
/// requests (every layer answers each, as libvpx's simulcast encoder does) and which layers
/// send.
pub(crate) struct SimulcastControl {
    /// Bumped by each keyframe request the camera honours.
    requests: AtomicU64,
    last_honoured: Mutex<Option<Instant>>,
    /// Per layer, by RID: whether it sends (as a test says).
    active: Vec<(String, AtomicBool)>,
    /// Per layer, in the same order: whether the server wants it (dynacast).
    wanted: Vec<AtomicBool>,
}

impl SimulcastControl {
    /// Every layer of `rids` sending.
    pub(crate) fn new<'a>(rids: impl IntoIterator<Item = &'a str>) -> Self {
        let active: Vec<(String, AtomicBool)> = rids
            .into_iter()
            .map(|r| (r.to_owned(), AtomicBool::new(true)))
            .collect();
        SimulcastControl {
            requests: AtomicU64::new(0),
            last_honoured: Mutex::new(None),
            wanted: active.iter().map(|_| AtomicBool::new(true)).collect(),
            active,
        }
    }

    /// The server's `layersWanted`: the layers of `rids` send, the others stop (as a
    /// browser's `encodings[i].active`), each still only if the test lets it.
    pub(crate) fn set_wanted(&self, rids: &[String]) {
        for ((rid, _), wanted) in self.active.iter().zip(&self.wanted) {
            wanted.store(rids.contains(rid), Ordering::Relaxed);
        }
    }

    /// A keyframe request from the network: honoured unless one was within 300 ms.
    pub(crate) fn request_keyframe(&self) {
        let now = Instant::now();
        let Ok(mut last) = self.last_honoured.lock() else {
            return;
        };
        if last.is_some_and(|t| now.duration_since(t) < KEYFRAME_MIN_INTERVAL) {
            return;
        }
        *last = Some(now);
        self.requests.fetch_add(1, Ordering::Relaxed);
    }

    /// Starts or stops the layer `rid`; false if there is no such layer.
    pub(crate) fn set_active(&self, rid: &str, active: bool) -> bool {
        match self.active.iter().find(|(r, _)| r == rid) {
            Some((_, a)) => {
                a.store(active, Ordering::Relaxed);
                true
            }
            None => false,
        }
    }

    fn is_active(&self, layer: usize) -> bool {
        self.active
            .get(layer)
            .is_some_and(|(_, a)| a.load(Ordering::Relaxed))
            && self
                .wanted
                .get(layer)
                .is_some_and(|w| w.load(Ordering::Relaxed))
    }
}

/// How one simulcast layer's packets are shaped: VP8 frames of this size, keyframes when its
/// camera says.
pub(crate) struct LayerShape {
    pub(crate) control: Arc<SimulcastControl>,
    /// The layer's place in `control`.
    pub(crate) index: usize,
    pub(crate) width: u16,
    pub(crate) height: u16,
}

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
/// `packets_per_second` (one frame each), numbered as `numbering` says, with an audio level
/// when `level` says so. A simulcast layer (`shape`) sends [`make_vp8_payload`]s instead,
/// keyframes as its camera says, and nothing while stopped (its timestamps keep time).
pub(crate) async fn publish(
    track: Arc<TrackLocalStaticRTP>,
    packets_per_second: u32,
    size: usize,
    numbering: Numbering,
    mut level: Option<LevelSource>,
    shape: Option<LayerShape>,
) {
    let clock = track.codec().clock_rate;
    let pps = packets_per_second.max(1);
    let mut tick = tokio::time::interval(Duration::from_secs(1) / pps);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut seq: u16 = numbering.first_sequence;
    let mut n: u32 = 0;
    let mut ticks: u32 = 0;
    let mark = u32::from(numbering.layer) << 24;
    // Keyframe state of a simulcast layer: requests seen, and when the last keyframe went.
    let mut seen_requests = 0;
    let mut last_key: Option<Instant> = None;
    loop {
        tick.tick().await;
        let timestamp = numbering
            .first_timestamp
            .wrapping_add(ticks.wrapping_mul(clock / pps));
        ticks = ticks.wrapping_add(1);
        let payload = match &shape {
            None => make_payload(mark | (n & 0x00ff_ffff), size),
            Some(shape) => {
                if !shape.control.is_active(shape.index) {
                    // A stopped layer starts again with a keyframe.
                    last_key = None;
                    continue;
                }
                let requests = shape.control.requests.load(Ordering::Relaxed);
                let now = Instant::now();
                let key = requests != seen_requests
                    || last_key.is_none_or(|t| now.duration_since(t) >= KEYFRAME_EVERY);
                seen_requests = requests;
                if key {
                    last_key = Some(now);
                }
                make_vp8_payload(
                    mark | (n & 0x00ff_ffff),
                    size,
                    key.then_some((shape.width, shape.height)),
                )
            }
        };
        let packet = webrtc::rtp::packet::Packet {
            header: webrtc::rtp::header::Header {
                version: 2,
                marker: true,
                sequence_number: seq,
                timestamp,
                ..Default::default()
            },
            payload,
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
