//! The load generator's peers, whichever server they talk to: peer connections on one shared
//! `webrtc` API, publishers that send the synthetic media of [`crate::media`] (answering PLI/FIR
//! with a keyframe, as an encoder would), and receivers that count what arrives per stream,
//! detect gaps, and time each packet against its send time (same process, same clock).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use webrtc::api::media_engine::{MIME_TYPE_OPUS, MIME_TYPE_VP8};
use webrtc::peer_connection::peer_connection_state::RTCPeerConnectionState;
use webrtc::peer_connection::RTCPeerConnection;
use webrtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use webrtc::rtp_transceiver::rtp_codec::{RTCRtpCodecCapability, RTPCodecType};
use webrtc::rtp_transceiver::rtp_sender::RTCRtpSender;
use webrtc::track::track_local::track_local_static_rtp::TrackLocalStaticRTP;
use webrtc::track::track_local::{TrackLocal, TrackLocalWriter};
use webrtc::track::track_remote::TrackRemote;

use crate::media::{self, Trailer};

/// With no keyframe request, a publisher still sends one this often (a long GOP, as browsers
/// do), so the time to a new subscriber's first keyframe measures the server's PLI path.
const KEYFRAME_INTERVAL: Duration = Duration::from_secs(30);

static EPOCH: OnceLock<Instant> = OnceLock::new();
/// Latency samples are kept only while this is set (the measurement window).
static MEASURING: AtomicBool = AtomicBool::new(false);

/// Nanoseconds since the generator started: send and receive times share this clock.
pub fn now_ns() -> u64 {
    EPOCH.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

/// Starts or stops keeping latency samples.
pub fn set_measuring(on: bool) {
    MEASURING.store(on, Ordering::SeqCst);
}

/// What a publisher sends.
#[derive(Debug, Clone, Copy)]
pub struct PublishSpec {
    /// Index of the publisher (its stream ids derive from it).
    pub index: u32,
    /// Video bit rate.
    pub video_bps: u32,
    /// Video frames per second.
    pub fps: u32,
    /// How a frame's packets leave.
    pub pacing: Pacing,
}

/// How a publisher sends the packets of one video frame.
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    serde::Serialize,
    serde::Deserialize,
    clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum Pacing {
    /// As browsers do: libwebrtc's pacer sends at 2.5× the target bit rate, so a frame's
    /// packets are spread over part of the frame interval.
    #[default]
    Browser,
    /// All of a frame's packets back to back: the fan-out's worst case, every packet of the
    /// frame queued behind the previous one's copies to every subscriber.
    Burst,
}

/// libwebrtc's pacing factor (`kDefaultPaceMultiplier`).
pub const BROWSER_PACE_MULTIPLIER: f64 = 2.5;

impl Pacing {
    /// The gap between a frame's packets of `bytes` each at `bits_per_second` of video.
    pub fn gap(self, bytes: usize, bits_per_second: u32) -> Duration {
        match self {
            Pacing::Burst => Duration::ZERO,
            Pacing::Browser => Duration::from_secs_f64(
                (bytes * 8) as f64 / (f64::from(bits_per_second.max(1)) * BROWSER_PACE_MULTIPLIER),
            ),
        }
    }
}

/// A publisher's local tracks, added to its peer connection before the offer/answer.
pub struct LocalMedia {
    spec: PublishSpec,
    /// The audio track.
    pub audio: Arc<TrackLocalStaticRTP>,
    /// The video track.
    pub video: Arc<TrackLocalStaticRTP>,
    video_sender: Arc<RTCRtpSender>,
    /// Keyframe requests (PLI/FIR) received from the server.
    pub keyframe_requests: Arc<AtomicU64>,
    /// Of those, the ones ignored as too soon after the last honoured one.
    pub keyframe_requests_ignored: Arc<AtomicU64>,
}

impl LocalMedia {
    /// Adds an Opus and a VP8 track named `<prefix>-audio`/`-video` in stream `stream_id`.
    pub async fn add(
        pc: &RTCPeerConnection,
        spec: PublishSpec,
        prefix: &str,
        stream_id: &str,
    ) -> anyhow::Result<LocalMedia> {
        let audio = Arc::new(TrackLocalStaticRTP::new(
            RTCRtpCodecCapability {
                mime_type: MIME_TYPE_OPUS.into(),
                clock_rate: 48000,
                channels: 2,
                ..Default::default()
            },
            format!("{prefix}-audio"),
            stream_id.to_owned(),
        ));
        let video = Arc::new(TrackLocalStaticRTP::new(
            RTCRtpCodecCapability {
                mime_type: MIME_TYPE_VP8.into(),
                clock_rate: 90000,
                ..Default::default()
            },
            format!("{prefix}-video"),
            stream_id.to_owned(),
        ));
        let audio_sender = pc
            .add_track(audio.clone() as Arc<dyn TrackLocal + Send + Sync>)
            .await?;
        let video_sender = pc
            .add_track(video.clone() as Arc<dyn TrackLocal + Send + Sync>)
            .await?;
        // Every sender needs its RTCP read or the interceptors behind it stall; audio's
        // reports carry nothing the generator needs.
        tokio::spawn(async move { while audio_sender.read_rtcp().await.is_ok() {} });
        Ok(LocalMedia {
            spec,
            audio,
            video,
            video_sender,
            keyframe_requests: Arc::new(AtomicU64::new(0)),
            keyframe_requests_ignored: Arc::new(AtomicU64::new(0)),
        })
    }

    /// Starts sending until `cancel`.
    pub fn start(&self, cancel: &CancellationToken) -> Vec<JoinHandle<()>> {
        let wanted = Arc::new(AtomicBool::new(true));
        vec![
            tokio::spawn(cancellable(
                cancel.clone(),
                send_video(self.video.clone(), self.spec, wanted.clone()),
            )),
            tokio::spawn(cancellable(
                cancel.clone(),
                send_audio(self.audio.clone(), self.spec.index),
            )),
            tokio::spawn(cancellable(
                cancel.clone(),
                read_keyframe_requests(
                    self.video_sender.clone(),
                    wanted,
                    self.keyframe_requests.clone(),
                    self.keyframe_requests_ignored.clone(),
                ),
            )),
        ]
    }
}

async fn cancellable(cancel: CancellationToken, f: impl std::future::Future<Output = ()>) {
    tokio::select! {
        _ = cancel.cancelled() => {}
        _ = f => {}
    }
}

async fn send_video(track: Arc<TrackLocalStaticRTP>, spec: PublishSpec, wanted: Arc<AtomicBool>) {
    let fps = spec.fps.max(1);
    let (per_frame, size) = media::video_shape(spec.video_bps, fps);
    let stream = media::stream_id(spec.index, true);
    let mut tick = tokio::time::interval(Duration::from_secs(1) / fps);
    // A busy generator catches up on late frames rather than sending fewer: the offered load
    // must not shrink with the load it causes. Delay is timed per packet, so catch-up bursts
    // do not count as the server's delay.
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let keyint = (KEYFRAME_INTERVAL.as_secs() as u32 * fps).max(1);
    let (mut seq, mut counter) = (0u16, 0u32);
    let gap = spec.pacing.gap(size, spec.video_bps);
    for frame in 0u32.. {
        let frame_start = tick.tick().await;
        let keyframe = wanted.swap(false, Ordering::Relaxed) || frame % keyint == 0;
        for i in 0..per_frame {
            if i > 0 && !gap.is_zero() {
                tokio::time::sleep_until(frame_start + gap * i as u32).await;
            }
            let trailer = Trailer {
                stream,
                counter,
                keyframe: keyframe && i == 0,
                sent_ns: now_ns(),
            };
            let packet = webrtc::rtp::packet::Packet {
                header: webrtc::rtp::header::Header {
                    version: 2,
                    marker: i + 1 == per_frame,
                    sequence_number: seq,
                    timestamp: frame.wrapping_mul(90000 / fps),
                    ..Default::default()
                },
                payload: media::vp8_payload(size, i == 0, keyframe, trailer),
            };
            // Before negotiation binds the track there is nowhere to send: not an error.
            let _ = track.write_rtp(&packet).await;
            seq = seq.wrapping_add(1);
            counter = counter.wrapping_add(1);
        }
    }
}

async fn send_audio(track: Arc<TrackLocalStaticRTP>, index: u32) {
    let stream = media::stream_id(index, false);
    let mut tick = tokio::time::interval(Duration::from_secs(1) / media::AUDIO_PPS);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    for counter in 0u32.. {
        tick.tick().await;
        let trailer = Trailer {
            stream,
            counter,
            keyframe: false,
            sent_ns: now_ns(),
        };
        let packet = webrtc::rtp::packet::Packet {
            header: webrtc::rtp::header::Header {
                version: 2,
                marker: true,
                sequence_number: counter as u16,
                timestamp: counter.wrapping_mul(960),
                ..Default::default()
            },
            payload: media::opus_payload(media::AUDIO_PAYLOAD, trailer),
        };
        let _ = track.write_rtp(&packet).await;
    }
}

/// A libwebrtc encoder (Chrome's, Firefox's) ignores a keyframe request that comes within this
/// long of the last one it honoured (`kMinKeyframeSendIntervalMs`, video/encoder_rtcp_feedback.cc):
/// the generator does the same, so a server that asks sooner gets no keyframe here either.
pub const MIN_KEYFRAME_REQUEST_GAP: Duration = Duration::from_millis(300);

/// Which keyframe requests an encoder honours.
#[derive(Debug, Default)]
struct EncoderGate {
    last: Option<Instant>,
}

impl EncoderGate {
    /// Whether a request arriving at `now` makes a keyframe.
    fn admit(&mut self, now: Instant) -> bool {
        if self
            .last
            .is_some_and(|t| now.duration_since(t) < MIN_KEYFRAME_REQUEST_GAP)
        {
            return false;
        }
        self.last = Some(now);
        true
    }
}

async fn read_keyframe_requests(
    sender: Arc<RTCRtpSender>,
    wanted: Arc<AtomicBool>,
    count: Arc<AtomicU64>,
    ignored: Arc<AtomicU64>,
) {
    use webrtc::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
    let mut gate = EncoderGate::default();
    while let Ok((packets, _)) = sender.read_rtcp().await {
        let asks = packets.iter().any(|p| {
            let any = p.as_any();
            any.is::<PictureLossIndication>() || any.is::<FullIntraRequest>()
        });
        if asks {
            count.fetch_add(1, Ordering::Relaxed);
            if gate.admit(Instant::now()) {
                wanted.store(true, Ordering::Relaxed);
            } else {
                ignored.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// What one stream delivered to one receiver so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StreamCount {
    /// Packets received (duplicates included: a server should not make any).
    pub received: u64,
    /// Highest counter seen + 1: the packets the sender had sent by then.
    pub sent_upto: u64,
    /// Times the counter jumped forward by more than one.
    pub gaps: u64,
    last: Option<u32>,
}

impl StreamCount {
    /// Counts packet number `counter`.
    pub fn record(&mut self, counter: u32) {
        self.received += 1;
        if let Some(last) = self.last {
            if counter > last.wrapping_add(1) && counter > last {
                self.gaps += 1;
            }
        }
        if self.last.is_none_or(|l| counter > l) {
            self.last = Some(counter);
        }
        self.sent_upto = self.sent_upto.max(u64::from(counter) + 1);
    }
}

/// Join milestones of one participant, ns on the generator's clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct JoinTimes {
    /// Signaling began (before the WebSocket connect).
    pub started: u64,
    /// A peer connection reached `connected` (ICE + DTLS up).
    pub connected: Option<u64>,
    /// The first RTP packet arrived.
    pub first_rtp: Option<u64>,
    /// The first keyframe arrived.
    pub first_keyframe: Option<u64>,
}

/// Everything one participant received.
#[derive(Debug, Default)]
pub struct Received {
    /// Per stream id.
    pub streams: HashMap<u32, StreamCount>,
    /// Payload bytes.
    pub bytes: u64,
    /// One-way delay samples (µs) taken while measuring.
    pub latency_us: Vec<f64>,
    /// Milestones.
    pub times: JoinTimes,
    /// Packets without our trailer.
    pub foreign: u64,
}

/// A participant's receive side, shared by its peer connections' callbacks.
#[derive(Debug, Default)]
pub struct Receiver {
    inner: Mutex<Received>,
}

impl Receiver {
    /// A receiver whose join began now.
    pub fn starting_now() -> Arc<Receiver> {
        let r = Receiver::default();
        r.with(|s| s.times.started = now_ns());
        Arc::new(r)
    }

    /// Runs `f` on the counters.
    pub fn with<T>(&self, f: impl FnOnce(&mut Received) -> T) -> T {
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut g)
    }

    /// Per-stream counts now (for window deltas).
    pub fn snapshot(&self) -> HashMap<u32, StreamCount> {
        self.with(|s| s.streams.clone())
    }

    /// Records the connection coming up and every incoming track on `pc`.
    pub fn attach(self: &Arc<Self>, pc: &Arc<RTCPeerConnection>) {
        let weak = Arc::downgrade(self);
        pc.on_peer_connection_state_change(Box::new(move |st| {
            if st == RTCPeerConnectionState::Connected {
                if let Some(r) = weak.upgrade() {
                    let now = now_ns();
                    r.with(|s| {
                        s.times.connected.get_or_insert(now);
                    });
                }
            }
            Box::pin(async {})
        }));
        let weak = Arc::downgrade(self);
        let pc_weak = Arc::downgrade(pc);
        pc.on_track(Box::new(move |track, _, _| {
            if let Some(r) = weak.upgrade() {
                tokio::spawn(receive(track, r, pc_weak.clone()));
            }
            Box::pin(async {})
        }));
    }
}

/// How often a receiver without a keyframe asks for one: libwebrtc's decoder asks again after
/// waiting this long for a keyframe (`kMaxWaitForKeyFrame`, video/video_receive_stream2.cc).
const PLI_RETRY: Duration = Duration::from_millis(200);

async fn receive(track: Arc<TrackRemote>, r: Arc<Receiver>, pc: Weak<RTCPeerConnection>) {
    let video = track.kind() == RTPCodecType::Video;
    let mut have_keyframe = !video;
    let mut last_pli: Option<Instant> = None;
    while let Ok((packet, _)) = track.read_rtp().await {
        let now = now_ns();
        let trailer = media::parse_trailer(&packet.payload);
        if !have_keyframe {
            // A decoder that starts on a delta frame asks for a keyframe, as a browser does.
            if media::vp8_is_keyframe(&packet.payload) {
                have_keyframe = true;
            } else if last_pli.is_none_or(|t| t.elapsed() >= PLI_RETRY) {
                last_pli = Some(Instant::now());
                if let Some(pc) = pc.upgrade() {
                    let pli = PictureLossIndication {
                        sender_ssrc: 0,
                        media_ssrc: track.ssrc(),
                    };
                    let sent = pc.write_rtcp(&[Box::new(pli)]).await;
                    tracing::debug!(ssrc = track.ssrc(), ?sent, "no keyframe yet: PLI");
                }
            }
        }
        let measuring = MEASURING.load(Ordering::Relaxed);
        r.with(|s| {
            s.bytes += packet.payload.len() as u64;
            let Some(t) = trailer else {
                s.foreign += 1;
                return;
            };
            s.times.first_rtp.get_or_insert(now);
            if t.keyframe && media::vp8_is_keyframe(&packet.payload) {
                s.times.first_keyframe.get_or_insert(now);
            }
            s.streams.entry(t.stream).or_default().record(t.counter);
            if measuring {
                s.latency_us
                    .push(now.saturating_sub(t.sent_ns) as f64 / 1000.0);
            }
        });
    }
}

/// One participant as the scenarios see it: its connections, receive side and tasks.
pub struct Participant {
    /// For logs.
    pub name: String,
    /// Janus's feed id when it publishes there.
    pub feed: Option<u64>,
    /// What it received.
    pub recv: Arc<Receiver>,
    /// Its peer connections (one on our server; publisher + subscriber on Janus).
    pub pcs: Vec<Arc<RTCPeerConnection>>,
    /// Stops its tasks.
    pub cancel: CancellationToken,
    /// Its published media, if any.
    pub media: Option<LocalMedia>,
}

impl Participant {
    /// Closes every connection and stops its tasks (signaling adapters tie their socket
    /// tasks to `cancel`, so the server sees the WebSocket close).
    pub async fn close(self) {
        self.cancel.cancel();
        for pc in &self.pcs {
            let _ = pc.close().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn browser_pacing_spreads_a_frame_over_part_of_its_interval() {
        // 1.5 Mbit/s at 30 fps: 6 packets of ~1041 bytes, 2.2 ms apart at 3.75 Mbit/s, so a
        // frame takes 11 ms of its 33 ms.
        let (n, size) = crate::media::video_shape(1_500_000, 30);
        let gap = Pacing::Browser.gap(size, 1_500_000);
        assert!((gap.as_secs_f64() * 1e3 - 2.22).abs() < 0.01, "{gap:?}");
        assert!(gap * (n as u32 - 1) < Duration::from_millis(33) / 2);
        assert_eq!(Pacing::Burst.gap(size, 1_500_000), Duration::ZERO);
    }

    #[test]
    fn stream_counts_find_gaps_and_reordering() {
        let mut c = StreamCount::default();
        for n in [0, 1, 2, 5, 4, 6, 9] {
            c.record(n);
        }
        assert_eq!(c.received, 7);
        assert_eq!(c.sent_upto, 10);
        // 2→5 and 6→9 jump; the late 4 is not a gap.
        assert_eq!(c.gaps, 2);
    }

    #[test]
    fn the_encoder_ignores_requests_within_300_ms_of_the_last_it_honoured() {
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let mut gate = EncoderGate::default();
        assert!(gate.admit(t0));
        assert!(!gate.admit(ms(200)));
        // Measured from the last honoured request, not the last ignored one.
        assert!(!gate.admit(ms(299)));
        assert!(gate.admit(ms(300)));
        assert!(!gate.admit(ms(550)));
        assert!(gate.admit(ms(650)));
    }
}
