//! Moving RTP: one published track, read from its publisher and written, untouched but for
//! SSRC and payload type, to every subscriber bound to one of its local tracks. Also keyframe
//! requests (PLI) from subscribers back to the publisher, throttled.
//!
//! A camera that sends simulcast has a task per layer; every layer's packets go to its shards'
//! [`LayeredTrack`]s, which give each subscriber the layer chosen for it (`simulcast`).
//! Keyframe requests go to the SSRC of the layer a subscriber is on or waits for.
//!
//! Fan-out is sharded: a track has one local track (a set of subscriber bindings) per core,
//! written by its own task, so one publisher's packets reach a large audience from every core
//! rather than one subscriber after another on one task. Shard 0 is written inline by the
//! forwarder; the others only fill once it has [`INLINE_SUBSCRIBERS`], so small rooms pay no
//! task hop.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};

use protocol::{PeerId, TrackId, TrackMetadata};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn, Instrument};
use webrtc::interceptor::Attributes;
use webrtc::rtp::packet::Packet;

use crate::keyframes::KeyframeRequester;
use crate::layers::{Cursor, Layer, Layers, Ranking, Verdict};
use crate::simulcast::{Cap, Cause, LayeredTrack, Switch};
use crate::voice::VoiceWatch;
use webrtc::peer_connection::RTCPeerConnection;
use webrtc::rtp_transceiver::rtp_codec::RTPCodecType;
use webrtc::track::track_local::track_local_static_rtp::TrackLocalStaticRTP;
use webrtc::track::track_local::{TrackLocal, TrackLocalWriter};
use webrtc::track::track_remote::TrackRemote;

pub use crate::keyframes::KEYFRAME_REQUEST_INTERVAL;
pub use crate::media_stats::MediaStats;

/// Subscribers written inline by the forwarder before any go to another core's shard.
pub const INLINE_SUBSCRIBERS: usize = 8;

/// Packets queued for one shard's task; beyond this (a shard starved of CPU for ~1 s of
/// video) its subscribers miss packets, which NACK and keyframe requests repair, rather than
/// holding up every other shard.
const SHARD_QUEUE: usize = 256;

/// One share of a track's subscribers: their senders are bound to `local`.
struct Shard {
    local: Local,
    bound: AtomicUsize,
}

/// The local track a shard's subscribers are bound to.
#[derive(Clone)]
enum Local {
    /// One stream (audio, or video without simulcast): the crate's track.
    Plain(Arc<TrackLocalStaticRTP>),
    /// A simulcast camera: each subscriber on a layer of its own.
    Layered(Arc<LayeredTrack>),
}

/// A subscriber's place in one shard of a track: while it lives, the shard counts it.
pub struct ShardLease {
    shard: Arc<Shard>,
}

impl ShardLease {
    /// The local track the subscriber's sender is bound to.
    pub fn local(&self) -> Arc<dyn TrackLocal + Send + Sync> {
        match &self.shard.local {
            Local::Plain(t) => t.clone(),
            Local::Layered(t) => t.clone(),
        }
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
    /// What the publisher sends of it: one stream, or a camera's simulcast layers.
    pub layers: Layers,
    /// Whether subscribers get a layer each ([`LayeredTrack`]) rather than one stream.
    layered: bool,
    /// Where keyframe requests for its layers go.
    publisher_pc: Weak<RTCPeerConnection>,
    stats: Arc<MediaStats>,
}

impl PublishedTrack {
    /// The published form of `remote`, a track `publisher` sends through `publisher_pc`.
    ///
    /// Its stream id is the publisher's id, so subscribers get one MediaStream per participant;
    /// its audience is split over `shards` fan-out shards (at least one). `remote` is its
    /// first layer; [`PublishedTrack::add_layer`] adds the others. A video stream with a RID
    /// is a simulcast layer: then every subscriber gets a layer of its own.
    pub fn new(
        id: TrackId,
        publisher: PeerId,
        metadata: TrackMetadata,
        remote: &TrackRemote,
        publisher_pc: Weak<RTCPeerConnection>,
        stats: Arc<MediaStats>,
        shards: usize,
    ) -> Self {
        let layered = remote.kind() == RTPCodecType::Video && !remote.rid().is_empty();
        let codec = remote.codec().capability;
        let shards = (0..shards.max(1))
            .map(|_| {
                let local = if layered {
                    Local::Layered(Arc::new(LayeredTrack::new(
                        codec.clone(),
                        id.clone(),
                        publisher.clone(),
                    )))
                } else {
                    Local::Plain(Arc::new(TrackLocalStaticRTP::new(
                        codec.clone(),
                        id.clone(),
                        publisher.clone(),
                    )))
                };
                Arc::new(Shard {
                    local,
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
            layers: Layers::new(remote.kind() == RTPCodecType::Video),
            layered,
            publisher_pc,
            stats,
        }
    }

    /// One more stream of it (a simulcast layer), read by its own [`forward`] task.
    pub fn add_layer(&self, remote: &TrackRemote) -> Arc<Layer> {
        let keyframes =
            KeyframeRequester::new(self.publisher_pc.clone(), remote.ssrc(), self.stats.clone());
        self.layers.add(remote.rid(), remote.ssrc(), keyframes)
    }

    /// Sets what the subscriber receiving `ssrc` may get of this layered track: a layer at
    /// most, nothing, or the track's choice. False if no subscriber of it receives `ssrc`.
    pub fn set_layer_cap(&self, ssrc: u32, cap: Cap) -> bool {
        self.shards.iter().any(|s| match &s.local {
            Local::Layered(t) => t.set_cap(ssrc, cap.clone()),
            Local::Plain(_) => false,
        })
    }

    /// Sets the most the subscriber receiving `ssrc` needs of this layered track (its tile,
    /// for dynacast). False if no subscriber of it receives `ssrc`.
    pub fn set_layer_need(&self, ssrc: u32, need: Cap) -> bool {
        self.shards.iter().any(|s| match &s.local {
            Local::Layered(t) => t.set_need(ssrc, need.clone()),
            Local::Plain(_) => false,
        })
    }

    /// What each subscriber of this layered track needs of it.
    pub fn layer_needs(&self) -> Vec<Cap> {
        self.shards
            .iter()
            .flat_map(|s| match &s.local {
                Local::Layered(t) => t.needs(),
                Local::Plain(_) => Vec::new(),
            })
            .collect()
    }

    /// Whether subscribers get a layer each (a simulcast camera), which can be capped.
    pub fn is_layered(&self) -> bool {
        self.layered
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

    /// Asks the publisher for a keyframe of the layer forwarded by default (video only;
    /// throttled per layer).
    pub async fn request_keyframe(&self) {
        self.request_keyframe_for(None).await;
    }

    /// Asks the publisher for a keyframe for the subscriber receiving `ssrc`: of the layer
    /// it is on or waits for (video only; throttled per layer).
    pub async fn request_keyframe_for(&self, ssrc: Option<u32>) {
        if self.kind != RTPCodecType::Video {
            return;
        }
        let own = ssrc.and_then(|ssrc| {
            self.shards.iter().find_map(|s| match &s.local {
                Local::Layered(t) => t.keyframe_layer(ssrc, &self.layers),
                Local::Plain(_) => None,
            })
        });
        if let Some(layer) = own.or_else(|| self.layers.selected()) {
            layer.keyframes.request().await;
        }
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
        packet.header.extensions_padding = 0;
        let verdict = track.layers.on_packet(&layer, &packet, &mut cursor);
        let source = if track.layered {
            // Every layer goes to the layered tracks; each subscriber takes its own.
            Source::Layered(layer.clone(), track.layers.ranking())
        } else {
            match verdict {
                Verdict::Skip => continue,
                Verdict::Forward => {}
                Verdict::Switched => {
                    // A restarted stream took over: subscribers decode it from a keyframe
                    // (a track's first packet counts too: new subscribers ask anyway).
                    attributes = Arc::new(layer.attributes(track.layers.generation()));
                    if track.layers.count() > 1 {
                        track.request_keyframe().await;
                    }
                }
            }
            Source::Plain(attributes.clone())
        };
        // Kept once for every subscriber's NACKs (video only), before any of them can ask.
        layer.source.record(&packet);
        fanout.write(Handoff { packet, source }, bytes).await;
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

/// What a shard's writes need besides the packet and its source.
#[derive(Clone)]
struct ShardWriter {
    track: TrackId,
    stats: Arc<MediaStats>,
}

/// A packet for a shard, with what says where it comes from.
#[derive(Clone)]
struct Handoff {
    packet: Packet,
    source: Source,
}

/// Where a packet comes from, as a shard's local track needs to know.
#[derive(Clone)]
enum Source {
    /// The attributes that name its source to `nack`.
    Plain(Arc<Attributes>),
    /// Its layer, and the layers' ranking when it arrived.
    Layered(Arc<Layer>, Arc<Ranking>),
}

impl ShardWriter {
    /// Writes to every subscriber bound to `shard`. One subscriber's failure must not stop
    /// the others: write_rtp has already delivered to every other binding when it reports
    /// an error, so log and go on. The source tag tells each subscriber's `nack` stream whose
    /// numbering this is.
    async fn write(&self, shard: &Shard, handoff: &Handoff, bytes: u64, errors: &mut u64) {
        let result = match (&shard.local, &handoff.source) {
            (Local::Plain(local), Source::Plain(attributes)) => local
                .write_rtp_with_attributes(&handoff.packet, attributes)
                .await
                .map(|_| shard.bound.load(Ordering::Relaxed) as u64),
            (Local::Layered(local), Source::Layered(layer, ranking)) => {
                let (switches, written, error) = local.write(layer, &handoff.packet, ranking).await;
                for (switch, cause) in switches {
                    let counter = match switch {
                        Switch::Up => &self.stats.layer_switches_up,
                        Switch::Down => &self.stats.layer_switches_down,
                        Switch::Paused => &self.stats.video_pauses,
                        Switch::Resumed => &self.stats.video_resumes,
                        Switch::First => continue,
                    };
                    counter.fetch_add(1, Ordering::Relaxed);
                    if cause == Cause::Bandwidth && matches!(switch, Switch::Up | Switch::Down) {
                        self.stats
                            .layer_switches_bandwidth
                            .fetch_add(1, Ordering::Relaxed);
                    }
                }
                match error {
                    Some(e) => Err(e),
                    None => Ok(written as u64),
                }
            }
            // A track's shards and its packets are of one kind.
            _ => Ok(0),
        };
        match result {
            Ok(n) => {
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
                            let handoff = tokio::select! {
                                biased;
                                _ = cancel.cancelled() => break,
                                p = rx.recv() => match p {
                                    Some(p) => p,
                                    None => break,
                                },
                            };
                            let bytes = handoff.packet.payload.len() as u64;
                            writer
                                .write(&shard_task, &handoff, bytes, &mut errors)
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

    async fn write(&mut self, handoff: Handoff, bytes: u64) {
        for (shard, tx) in &self.others {
            if shard.bound.load(Ordering::Relaxed) == 0 {
                continue;
            }
            let sent = tx.try_send(handoff.clone());
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
                .write(&self.inline, &handoff, bytes, &mut self.errors)
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
}
