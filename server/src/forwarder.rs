//! Moving RTP: one published track, read from its publisher and written, untouched but for
//! SSRC and payload type, to every subscriber bound to one of its local tracks. Also keyframe
//! requests (PLI) from subscribers back to the publisher, throttled.
//!
//! A camera that sends simulcast has a task per layer, and only the layer `layers` chooses
//! is written; keyframe requests go to that layer's SSRC.
//!
//! Fan-out is sharded: a track has one local track (a set of subscriber bindings) per core,
//! written by its own task, so one publisher's packets reach a large audience from every core
//! rather than one subscriber after another on one task. Shard 0 is written inline by the
//! forwarder; the others only fill once it has [`INLINE_SUBSCRIBERS`], so small rooms pay no
//! task hop.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use protocol::{PeerId, TrackId, TrackMetadata};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn, Instrument};
use webrtc::interceptor::Attributes;
use webrtc::rtp::packet::Packet;

use crate::layers::{Cursor, Layer, Layers, Verdict};
use crate::voice::VoiceWatch;
use webrtc::peer_connection::RTCPeerConnection;
use webrtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use webrtc::rtp_transceiver::rtp_codec::RTPCodecType;
use webrtc::track::track_local::track_local_static_rtp::TrackLocalStaticRTP;
use webrtc::track::track_local::TrackLocalWriter;
use webrtc::track::track_remote::TrackRemote;

/// Keyframe requests to one publisher stream are sent at most this often. A request that comes
/// sooner is not dropped but sent when the interval ends (one, however many came): the viewer
/// who asked must still get its keyframe. Browsers' encoders ignore a request within 300 ms of
/// the last one they honoured (libwebrtc's `kMinKeyframeSendIntervalMs`), so a deferred request
/// sent any sooner would be lost; the 50 ms over that absorbs jitter on the way to the publisher.
pub const KEYFRAME_REQUEST_INTERVAL: Duration = Duration::from_millis(350);

/// Subscribers written inline by the forwarder before any go to another core's shard.
pub const INLINE_SUBSCRIBERS: usize = 8;

/// Packets queued for one shard's task; beyond this (a shard starved of CPU for ~1 s of
/// video) its subscribers miss packets, which NACK and keyframe requests repair, rather than
/// holding up every other shard.
const SHARD_QUEUE: usize = 256;

/// One share of a track's subscribers: their senders are bound to `local`.
struct Shard {
    local: Arc<TrackLocalStaticRTP>,
    bound: AtomicUsize,
}

/// A subscriber's place in one shard of a track: while it lives, the shard counts it.
pub struct ShardLease {
    shard: Arc<Shard>,
}

impl ShardLease {
    /// The local track the subscriber's sender is bound to.
    pub fn local(&self) -> Arc<TrackLocalStaticRTP> {
        self.shard.local.clone()
    }
}

impl Drop for ShardLease {
    fn drop(&mut self) {
        self.shard.bound.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Where a new subscriber goes: shard 0 until it is full enough, then the least loaded.
fn pick_shard(bound: &[usize]) -> usize {
    match bound.first() {
        Some(&n) if n < INLINE_SUBSCRIBERS => 0,
        _ => bound
            .iter()
            .enumerate()
            .min_by_key(|&(i, &n)| (n, i))
            .map_or(0, |(i, _)| i),
    }
}

/// Server-wide media counters.
#[derive(Debug, Default)]
pub struct MediaStats {
    /// RTP packets received from publishers.
    pub packets_in: AtomicU64,
    /// RTP packets written to subscribers (one per subscriber per packet).
    pub packets_out: AtomicU64,
    /// RTP payload bytes received from publishers.
    pub bytes_in: AtomicU64,
    /// RTP payload bytes written to subscribers.
    pub bytes_out: AtomicU64,
    /// Keyframe requests sent to publishers.
    pub keyframe_requests: AtomicU64,
    /// Packets handed to another fan-out shard's task (one per shard with subscribers).
    pub shard_handoffs: AtomicU64,
    /// Packets a fan-out shard's task could not take because its queue was full.
    pub shard_drops: AtomicU64,
    /// Times a simulcast track's forwarded layer changed.
    pub layer_switches: AtomicU64,
}

/// A track a participant publishes, as the room and its subscribers see it.
pub struct PublishedTrack {
    /// `<publisherId>:<uuid>`.
    pub id: TrackId,
    /// Who publishes it.
    pub publisher: PeerId,
    /// Audio or video.
    pub kind: RTPCodecType,
    /// The fan-out points: every subscriber's sender is bound to one shard's local track.
    shards: Vec<Arc<Shard>>,
    /// Whether it carries speech now (audio; set by the room with each `voiceActivity`), so
    /// that a newcomer learns who is already speaking.
    pub speaking: AtomicBool,
    metadata: Mutex<TrackMetadata>,
    keyframes: KeyframeRequester,
    /// What the publisher sends of it: one stream, or a camera's simulcast layers.
    pub layers: Layers,
}

impl PublishedTrack {
    /// The published form of `remote`, a track `publisher` sends through `publisher_pc`.
    ///
    /// Its stream id is the publisher's id, so subscribers get one MediaStream per participant;
    /// its audience is split over `shards` fan-out shards (at least one). `remote` is its
    /// first layer; [`PublishedTrack::add_layer`] adds the others.
    pub fn new(
        id: TrackId,
        publisher: PeerId,
        metadata: TrackMetadata,
        remote: &TrackRemote,
        publisher_pc: Weak<RTCPeerConnection>,
        stats: Arc<MediaStats>,
        shards: usize,
    ) -> Self {
        let shards = (0..shards.max(1))
            .map(|_| {
                Arc::new(Shard {
                    local: Arc::new(TrackLocalStaticRTP::new(
                        remote.codec().capability,
                        id.clone(),
                        publisher.clone(),
                    )),
                    bound: AtomicUsize::new(0),
                })
            })
            .collect();
        PublishedTrack {
            id,
            publisher,
            kind: remote.kind(),
            shards,
            speaking: AtomicBool::new(false),
            metadata: Mutex::new(metadata),
            keyframes: KeyframeRequester {
                pc: publisher_pc,
                media_ssrc: Arc::new(AtomicU32::new(remote.ssrc())),
                throttle: Arc::default(),
                stats,
            },
            layers: Layers::new(remote.kind() == RTPCodecType::Video),
        }
    }

    /// One more stream of it (a simulcast layer), read by its own [`forward`] task.
    pub fn add_layer(&self, remote: &TrackRemote) -> Arc<Layer> {
        self.layers.add(remote.rid(), remote.ssrc())
    }

    /// A place for one more subscriber: bind its sender to the lease's local track and keep
    /// the lease for as long as the sender carries this track.
    pub fn lease(&self) -> ShardLease {
        let bound: Vec<usize> = self
            .shards
            .iter()
            .map(|s| s.bound.load(Ordering::Relaxed))
            .collect();
        let shard = self.shards[pick_shard(&bound)].clone();
        shard.bound.fetch_add(1, Ordering::Relaxed);
        ShardLease { shard }
    }

    /// The track's current metadata.
    pub fn metadata(&self) -> TrackMetadata {
        self.metadata
            .lock()
            .map(|m| m.clone())
            .unwrap_or_else(|poisoned| poisoned.into_inner().clone())
    }

    /// Replaces the track's metadata.
    pub fn set_metadata(&self, metadata: TrackMetadata) {
        match self.metadata.lock() {
            Ok(mut m) => *m = metadata,
            Err(poisoned) => *poisoned.into_inner() = metadata,
        }
    }

    /// Asks the publisher for a keyframe of the layer being forwarded (video only; throttled
    /// per track).
    pub async fn request_keyframe(&self) {
        if self.kind == RTPCodecType::Video {
            if let Some(ssrc) = self.layers.selected_ssrc() {
                self.keyframes.media_ssrc.store(ssrc, Ordering::Relaxed);
            }
            self.keyframes.request().await;
        }
    }
}

struct KeyframeRequester {
    pc: Weak<RTCPeerConnection>,
    /// The forwarded layer's SSRC; read when a request goes out, so a deferred one asks the
    /// layer forwarded then.
    media_ssrc: Arc<AtomicU32>,
    throttle: Arc<Mutex<Throttle>>,
    stats: Arc<MediaStats>,
}

/// When keyframe requests to one stream go out.
#[derive(Debug, Default)]
struct Throttle {
    last: Option<Instant>,
    deferred: bool,
}

/// What to do with a keyframe request.
#[derive(Debug, PartialEq, Eq)]
enum Decision {
    /// Send it now.
    Now,
    /// Send it at this time (the end of the interval).
    At(Instant),
    /// One is already due at the end of the interval: that one serves this too.
    Coalesced,
}

impl Throttle {
    fn decide(&mut self, now: Instant) -> Decision {
        // A deferred request serves everything until it fires, even when its timer runs late:
        // sending another now would put two requests a few ms apart.
        if self.deferred {
            return Decision::Coalesced;
        }
        match self.last {
            Some(t) if now.duration_since(t) < KEYFRAME_REQUEST_INTERVAL => {
                self.deferred = true;
                Decision::At(t + KEYFRAME_REQUEST_INTERVAL)
            }
            _ => {
                self.last = Some(now);
                Decision::Now
            }
        }
    }

    /// The deferred request went out at `now`.
    fn sent_deferred(&mut self, now: Instant) {
        self.deferred = false;
        self.last = Some(now);
    }
}

impl KeyframeRequester {
    async fn request(&self) {
        let decision = match self.throttle.lock() {
            Ok(mut t) => t.decide(Instant::now()),
            Err(_) => return,
        };
        match decision {
            Decision::Now => {
                let ssrc = self.media_ssrc.load(Ordering::Relaxed);
                send_pli(&self.pc, ssrc, &self.stats).await
            }
            Decision::Coalesced => {}
            Decision::At(at) => {
                // Short-lived and holding only weak and shared counters: nothing outlives the
                // publisher but this one timer.
                let (pc, ssrc, stats) =
                    (self.pc.clone(), self.media_ssrc.clone(), self.stats.clone());
                let throttle = self.throttle.clone();
                tokio::spawn(async move {
                    tokio::time::sleep_until(at).await;
                    if let Ok(mut t) = throttle.lock() {
                        t.sent_deferred(Instant::now());
                    }
                    send_pli(&pc, ssrc.load(Ordering::Relaxed), &stats).await;
                });
            }
        }
    }
}

async fn send_pli(pc: &Weak<RTCPeerConnection>, media_ssrc: u32, stats: &MediaStats) {
    let Some(pc) = pc.upgrade() else {
        return;
    };
    let pli = PictureLossIndication {
        sender_ssrc: 0,
        media_ssrc,
    };
    match pc.write_rtcp(&[Box::new(pli)]).await {
        Ok(_) => {
            stats.keyframe_requests.fetch_add(1, Ordering::Relaxed);
        }
        Err(e) => debug!(error = %e, "keyframe request not sent"),
    }
}

/// Forwards `remote`, the publisher's stream of `layer`, to the track's subscribers whenever it
/// is the layer chosen, until the stream ends or `cancel` fires; for an audio track with the
/// audio-level extension, watches for voice activity too.
pub async fn forward(
    remote: Arc<TrackRemote>,
    track: Arc<PublishedTrack>,
    layer: Arc<Layer>,
    stats: Arc<MediaStats>,
    cancel: CancellationToken,
    mut voice: Option<VoiceWatch>,
) {
    let mut fanout = Fanout::start(&track, &stats, &cancel);
    let mut cursor = Cursor::default();
    let mut attributes = Arc::new(layer.attributes(track.layers.generation()));
    // Ends speech when packets stop altogether. Armed lazily (when speech starts, and again
    // at each expiry while newer loud packets moved the end), not reset on every packet.
    let quiet = tokio::time::sleep_until(Instant::now());
    tokio::pin!(quiet);
    let mut quiet_armed = false;
    loop {
        let read = tokio::select! {
            // A stopped track's remote is read again by the next forwarder: this one must not
            // take a packet once cancelled.
            biased;
            _ = cancel.cancelled() => break,
            _ = &mut quiet, if quiet_armed => {
                quiet_armed = false;
                if let Some(v) = voice.as_mut() {
                    v.on_timer(Instant::now());
                    if let Some(at) = v.detector.quiet_deadline() {
                        quiet.as_mut().reset(at);
                        quiet_armed = true;
                    }
                }
                continue;
            }
            r = remote.read_rtp() => r,
        };
        let mut packet = match read {
            Ok((packet, _)) => packet,
            Err(e) => {
                debug!(track = %track.id, error = %e, "publisher track ended");
                break;
            }
        };
        let bytes = packet.payload.len() as u64;
        stats.packets_in.fetch_add(1, Ordering::Relaxed);
        stats.bytes_in.fetch_add(bytes, Ordering::Relaxed);
        if let Some(v) = voice.as_mut() {
            if v.detector.speaking() && !track.speaking.load(Ordering::Relaxed) {
                // The room ended this speech (the track was muted): start afresh.
                v.detector = crate::voice::VoiceDetector::default();
                quiet_armed = false;
            }
            v.on_packet(Instant::now(), &packet.header);
            if !quiet_armed {
                if let Some(at) = v.detector.quiet_deadline() {
                    quiet.as_mut().reset(at);
                    quiet_armed = true;
                }
            }
        }
        // The publisher's header extensions carry ids negotiated with the publisher; the
        // subscribers' senders add their own. The audio level is dropped too: forwarded as it
        // came, Chromium received no audio at all (the e2e suite's inbound-bytes check), and
        // voice activity reaches clients as `voiceActivity` events anyway.
        packet.header.extension = false;
        packet.header.extensions.clear();
        packet.header.extension_profile = 0;
        match track.layers.on_packet(&layer, &packet, &mut cursor) {
            Verdict::Skip => continue,
            Verdict::Forward => {}
            Verdict::Switched => {
                // Subscribers see this layer from now on and can decode it only from a
                // keyframe (a single layer's first packet counts too: new subscribers ask
                // anyway, once connected).
                attributes = Arc::new(layer.attributes(track.layers.generation()));
                if track.layers.count() > 1 {
                    stats.layer_switches.fetch_add(1, Ordering::Relaxed);
                    track.request_keyframe().await;
                }
            }
        }
        // Kept once for every subscriber's NACKs (video only), before any of them can ask.
        layer.source.record(&packet);
        fanout.write(&packet, bytes, &attributes).await;
    }
    // The room ignores this for a track it no longer has (tracksRemoved says it all).
    if let Some(v) = voice.filter(|v| v.detector.speaking()) {
        (v.report)(false);
    }
}

/// Writes one track's packets to its shards: shard 0 inline, the others through their tasks.
struct Fanout {
    inline: Arc<Shard>,
    others: Vec<(Arc<Shard>, mpsc::Sender<Handoff>)>,
    writer: ShardWriter,
    dropped: u64,
    errors: u64,
}

/// What a shard's writes need besides the packet and its attributes.
#[derive(Clone)]
struct ShardWriter {
    track: TrackId,
    stats: Arc<MediaStats>,
}

/// A packet for a shard's task, with the attributes that name its source.
type Handoff = (Packet, Arc<Attributes>);

impl ShardWriter {
    /// Writes to every subscriber bound to `shard`. One subscriber's failure must not stop
    /// the others: write_rtp has already delivered to every other binding when it reports
    /// an error, so log and go on. The source tag tells each subscriber's `nack` stream whose
    /// numbering this is.
    async fn write(
        &self,
        shard: &Shard,
        packet: &Packet,
        source: &Attributes,
        bytes: u64,
        errors: &mut u64,
    ) {
        match shard.local.write_rtp_with_attributes(packet, source).await {
            Ok(_) => {
                let n = shard.bound.load(Ordering::Relaxed) as u64;
                self.stats.packets_out.fetch_add(n, Ordering::Relaxed);
                self.stats.bytes_out.fetch_add(n * bytes, Ordering::Relaxed);
            }
            Err(webrtc::Error::ErrClosedPipe) => {}
            Err(e) => {
                *errors += 1;
                if errors.is_power_of_two() {
                    warn!(track = %self.track, error = %e, count = *errors, "forwarding to a subscriber failed");
                }
            }
        }
    }
}

impl Fanout {
    /// Starts a task per shard beyond the first; they end with the forwarder (their queue
    /// closes) or with `cancel`.
    fn start(
        track: &PublishedTrack,
        stats: &Arc<MediaStats>,
        cancel: &CancellationToken,
    ) -> Fanout {
        let writer = ShardWriter {
            track: track.id.clone(),
            stats: stats.clone(),
        };
        let others = track.shards[1..]
            .iter()
            .map(|shard| {
                let (tx, mut rx) = mpsc::channel::<Handoff>(SHARD_QUEUE);
                let (shard_task, writer, cancel) = (shard.clone(), writer.clone(), cancel.clone());
                tokio::spawn(
                    async move {
                        let mut errors = 0;
                        loop {
                            let (packet, source) = tokio::select! {
                                biased;
                                _ = cancel.cancelled() => break,
                                p = rx.recv() => match p {
                                    Some(p) => p,
                                    None => break,
                                },
                            };
                            let bytes = packet.payload.len() as u64;
                            writer
                                .write(&shard_task, &packet, &source, bytes, &mut errors)
                                .await;
                        }
                    }
                    .in_current_span(),
                );
                (shard.clone(), tx)
            })
            .collect();
        Fanout {
            inline: track.shards[0].clone(),
            others,
            writer,
            dropped: 0,
            errors: 0,
        }
    }

    async fn write(&mut self, packet: &Packet, bytes: u64, source: &Arc<Attributes>) {
        for (shard, tx) in &self.others {
            if shard.bound.load(Ordering::Relaxed) == 0 {
                continue;
            }
            let sent = tx.try_send((packet.clone(), source.clone()));
            self.writer
                .stats
                .shard_handoffs
                .fetch_add(1, Ordering::Relaxed);
            if let Err(mpsc::error::TrySendError::Full(_)) = sent {
                self.writer
                    .stats
                    .shard_drops
                    .fetch_add(1, Ordering::Relaxed);
                self.dropped += 1;
                if self.dropped.is_power_of_two() {
                    warn!(track = %self.writer.track, count = self.dropped, "a fan-out shard fell behind; packets dropped for its subscribers");
                }
            }
        }
        if self.inline.bound.load(Ordering::Relaxed) > 0 {
            self.writer
                .write(&self.inline, packet, source, bytes, &mut self.errors)
                .await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_audiences_stay_inline_then_shards_fill_evenly() {
        assert_eq!(pick_shard(&[0]), 0);
        assert_eq!(pick_shard(&[100]), 0, "one core: everything inline");
        assert_eq!(pick_shard(&[0, 0]), 0);
        assert_eq!(pick_shard(&[INLINE_SUBSCRIBERS - 1, 0]), 0);
        assert_eq!(pick_shard(&[INLINE_SUBSCRIBERS, 0]), 1);
        assert_eq!(pick_shard(&[INLINE_SUBSCRIBERS, 3, 2]), 2);
        assert_eq!(pick_shard(&[INLINE_SUBSCRIBERS, 9, 9]), 0);
        // Subscribers left shard 0: it is refilled first.
        assert_eq!(pick_shard(&[2, 9]), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn keyframe_requests_are_throttled_per_stream_but_never_lost() {
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let mut t = Throttle::default();
        assert_eq!(t.decide(ms(0)), Decision::Now);
        // Sooner than 350 ms: sent when the interval ends, once however many ask.
        assert_eq!(t.decide(ms(50)), Decision::At(ms(350)));
        assert_eq!(t.decide(ms(100)), Decision::Coalesced);
        assert_eq!(t.decide(ms(349)), Decision::Coalesced);
        // Its timer is late (a loaded machine): still one request, not a second one now.
        assert_eq!(t.decide(ms(380)), Decision::Coalesced);
        t.sent_deferred(ms(410));
        assert_eq!(t.decide(ms(500)), Decision::At(ms(760)));
        t.sent_deferred(ms(760));
        assert_eq!(t.decide(ms(800)), Decision::At(ms(1110)));
        t.sent_deferred(ms(1110));
        assert_eq!(t.decide(ms(1500)), Decision::Now);
        // Another stream has its own budget.
        assert_eq!(Throttle::default().decide(ms(1500)), Decision::Now);
    }
}
