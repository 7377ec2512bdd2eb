//! Transport-wide congestion control on the downlink: every RTP packet a subscriber's
//! connection sends carries a transport-wide sequence number (one counter per connection,
//! the `transport-cc` header extension the offers already negotiate), its send time and size
//! are kept in a ring, and the subscriber's feedback (RTCP transport-cc) is matched against
//! the ring and handed to the connection's estimator (`bwe`).
//!
//! The SRTP session hands a compound RTCP packet to every SSRC it names, so one feedback can
//! reach several senders' readers: each is taken once, by its feedback count and base number.
//!
//! Who sends the feedback (checked): Chromium and Firefox both do, for our stream, once its
//! packets carry the extension (e2e `s10`: both browsers' connections report); so does the
//! testkit peer (the webrtc crate's TWCC receiver, every 100 ms; `tests/simulcast.rs`). A
//! subscriber that sends none is never limited.

use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use tokio::sync::Notify;
use tokio::time::Instant;
use webrtc::interceptor::stream_info::StreamInfo;
use webrtc::interceptor::{
    Attributes, Error as InterceptorError, Interceptor, InterceptorBuilder, RTCPReader, RTCPWriter,
    RTPReader, RTPWriter,
};
use webrtc::rtcp::payload_feedbacks::receiver_estimated_maximum_bitrate::ReceiverEstimatedMaximumBitrate;
use webrtc::rtcp::transport_feedbacks::transport_layer_cc::{
    PacketStatusChunk, SymbolTypeTcc, TransportLayerCc,
};
use webrtc::rtp::packet::Packet;
use webrtc::sdp::extmap::TRANSPORT_CC_URI;
use webrtc::util::MarshalSize;

use crate::bwe::{Arrival, Cause, Delivery, Estimator};

/// Sent packets remembered per connection: ~1 s at 1000 packets a second, several feedback
/// intervals (Chromium reports every 50–250 ms). 8 bytes a slot: 8 KB, taken at the first
/// packet.
const RING: usize = 1024;

/// Send times are kept as 31-bit milliseconds.
const MS_MASK: u32 = 0x7fff_ffff;

/// Feedbacks remembered to tell a duplicate.
const SEEN: usize = 8;

/// Server-wide figures of the downlink estimates, and every live connection's estimate for
/// `/metrics`.
#[derive(Debug, Default)]
pub struct BweStats {
    /// Feedback packets taken (after de-duplication).
    pub feedbacks: AtomicU64,
    /// Feedback packets seen again through another SSRC's reader, and skipped.
    pub duplicates: AtomicU64,
    /// Estimate decreases on loss.
    pub decreases_loss: AtomicU64,
    /// Estimate decreases on queueing delay.
    pub decreases_delay: AtomicU64,
    live: Mutex<Vec<Weak<Downlink>>>,
}

impl BweStats {
    /// Every live connection's estimate (`None`: not limited) and paused video tracks.
    pub fn snapshot(&self) -> Vec<(Option<u64>, usize)> {
        let Ok(mut live) = self.live.lock() else {
            return Vec::new();
        };
        live.retain(|d| d.strong_count() > 0);
        let now = Instant::now();
        live.iter()
            .filter_map(Weak::upgrade)
            .filter(|d| d.has_feedback())
            .map(|d| (d.estimate(now), d.paused.load(Ordering::Relaxed)))
            .collect()
    }

    fn register(&self, downlink: &Arc<Downlink>) {
        if let Ok(mut live) = self.live.lock() {
            live.retain(|d| d.strong_count() > 0);
            live.push(Arc::downgrade(downlink));
        }
    }
}

/// One connection's downlink: what it sent, and what its subscriber says arrived.
pub struct Downlink {
    epoch: Instant,
    next: AtomicU32,
    /// Slot `seq % RING`: sent ms since `epoch` << 32 | size << 16 | seq; 0 is empty.
    ring: OnceLock<Box<[AtomicU64]>>,
    feedback: Mutex<FeedbackState>,
    /// Signalled when the estimate goes down: allocate at once, not at the next tick.
    pub lowered: Notify,
    feedbacks: AtomicU64,
    /// Video tracks the allocator has paused for this subscriber.
    pub paused: AtomicUsize,
    stats: Arc<BweStats>,
}

#[derive(Default)]
struct FeedbackState {
    seen: Vec<(u8, u16, u32)>,
    /// The last reference time, unwrapped from 24 bits (units of 64 ms).
    reference: Option<i64>,
    estimator: Estimator,
}

tokio::task_local! {
    /// The downlink a peer connection being made gets (see [`with_downlink`]).
    static CURRENT: Arc<Downlink>;
}

/// Runs `make` (which creates a peer connection) so the connection's interceptor reports to
/// `downlink`: interceptors are built inside the crate, which passes them nothing of ours.
pub async fn with_downlink<F: std::future::Future>(downlink: Arc<Downlink>, make: F) -> F::Output {
    CURRENT.scope(downlink, make).await
}

impl Downlink {
    /// A connection's downlink, counted in `stats`.
    pub fn new(stats: Arc<BweStats>) -> Arc<Downlink> {
        let d = Arc::new(Downlink {
            epoch: Instant::now(),
            next: AtomicU32::new(1),
            ring: OnceLock::new(),
            feedback: Mutex::default(),
            lowered: Notify::new(),
            feedbacks: AtomicU64::new(0),
            paused: AtomicUsize::new(0),
            stats: stats.clone(),
        });
        stats.register(&d);
        d
    }

    /// The estimate now: `None` when nothing limits it (no congestion seen, or no feedback).
    pub fn estimate(&self, now: Instant) -> Option<u64> {
        self.feedback.lock().ok()?.estimator.estimate(now)
    }

    /// Whether the subscriber has sent feedback at all.
    pub fn has_feedback(&self) -> bool {
        self.feedbacks.load(Ordering::Relaxed) > 0
    }

    /// Numbers a packet about to be sent, and remembers it.
    fn stamp(&self, size: usize, now: Instant) -> u16 {
        let seq = self.next.fetch_add(1, Ordering::Relaxed) as u16;
        let ring = self
            .ring
            .get_or_init(|| (0..RING).map(|_| AtomicU64::new(0)).collect());
        // 31 bits wrap after 24 days: `sent` takes the time back to the latest such lap.
        let ms = now.saturating_duration_since(self.epoch).as_millis() as u32 & MS_MASK;
        let size = size.min(usize::from(u16::MAX)) as u64;
        let slot = (u64::from(ms) << 32) | (size << 16) | u64::from(seq) | (1 << 63);
        ring[usize::from(seq) % RING].store(slot, Ordering::Relaxed);
        seq
    }

    /// Packet `seq`'s send time and size, if the ring still has it (asked at `now`).
    fn sent(&self, seq: u16, now: Instant) -> Option<(Instant, u32)> {
        let slot = self.ring.get()?[usize::from(seq) % RING].load(Ordering::Relaxed);
        if slot == 0 || slot as u16 != seq {
            return None;
        }
        let ms = (slot >> 32) as u32 & MS_MASK;
        let now_ms = now.saturating_duration_since(self.epoch).as_millis() as u32 & MS_MASK;
        let ago = now_ms.wrapping_sub(ms) & MS_MASK;
        let size = (slot >> 16) as u16;
        Some((
            now.checked_sub(Duration::from_millis(u64::from(ago)))
                .unwrap_or(self.epoch),
            u32::from(size),
        ))
    }

    /// Takes one transport-cc feedback (once, however many readers it reaches).
    pub fn on_feedback(&self, fb: &TransportLayerCc, now: Instant) {
        let Ok(mut st) = self.feedback.lock() else {
            return;
        };
        let key = (fb.fb_pkt_count, fb.base_sequence_number, fb.reference_time);
        if st.seen.contains(&key) {
            self.stats.duplicates.fetch_add(1, Ordering::Relaxed);
            return;
        }
        if st.seen.len() == SEEN {
            st.seen.remove(0);
        }
        st.seen.push(key);
        self.feedbacks.fetch_add(1, Ordering::Relaxed);
        self.stats.feedbacks.fetch_add(1, Ordering::Relaxed);
        let reference = unwrap_reference(st.reference, fb.reference_time);
        st.reference = Some(reference);
        let deliveries: Vec<Delivery> = decode(fb, reference)
            .into_iter()
            .filter_map(|(seq, arrival)| {
                let (sent, size) = self.sent(seq, now)?;
                Some(Delivery {
                    sent,
                    size,
                    arrival,
                })
            })
            .collect();
        if deliveries.is_empty() {
            return;
        }
        let loss = st.estimator.loss();
        let cause = st.estimator.on_feedback(now, &deliveries);
        let acknowledged = st.estimator.acknowledged();
        drop(st);
        if let Some(cause) = cause {
            let counter = match cause {
                Cause::Loss => &self.stats.decreases_loss,
                Cause::Delay => &self.stats.decreases_delay,
            };
            counter.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(?cause, estimate = ?self.estimate(now), acknowledged, ?loss, "downlink estimate lowered");
            self.lowered.notify_one();
        }
    }

    /// Takes a REMB value.
    pub fn on_remb(&self, bps: u64, now: Instant) {
        if let Ok(mut st) = self.feedback.lock() {
            st.estimator.on_remb(now, bps);
        }
    }
}

/// The 24-bit reference time (64 ms units) continued from the previous one across its wrap
/// (every ~12 days).
fn unwrap_reference(previous: Option<i64>, raw: u32) -> i64 {
    const SPAN: i64 = 1 << 24;
    let raw = i64::from(raw & 0x00ff_ffff);
    let Some(prev) = previous else { return raw };
    let mut candidate = prev - prev.rem_euclid(SPAN) + raw;
    if candidate - prev > SPAN / 2 {
        candidate -= SPAN;
    } else if prev - candidate > SPAN / 2 {
        candidate += SPAN;
    }
    candidate
}

/// Each reported packet's transport-wide number and arrival (µs from the unwrapped reference).
fn decode(fb: &TransportLayerCc, reference: i64) -> Vec<(u16, Arrival)> {
    let count = usize::from(fb.packet_status_count);
    let mut symbols: Vec<SymbolTypeTcc> = Vec::with_capacity(count);
    for chunk in &fb.packet_chunks {
        match chunk {
            PacketStatusChunk::RunLengthChunk(c) => {
                let n = usize::from(c.run_length).min(count - symbols.len());
                symbols.extend(std::iter::repeat_n(c.packet_status_symbol, n));
            }
            PacketStatusChunk::StatusVectorChunk(c) => {
                let n = c.symbol_list.len().min(count - symbols.len());
                symbols.extend_from_slice(&c.symbol_list[..n]);
            }
        }
        if symbols.len() == count {
            break;
        }
    }
    let mut deltas = fb.recv_deltas.iter();
    let mut at = reference * 64_000;
    symbols
        .into_iter()
        .enumerate()
        .map(|(i, symbol)| {
            let seq = fb.base_sequence_number.wrapping_add(i as u16);
            let arrival = match symbol {
                SymbolTypeTcc::PacketNotReceived => Arrival::Lost,
                SymbolTypeTcc::PacketReceivedWithoutDelta => Arrival::Untimed,
                SymbolTypeTcc::PacketReceivedSmallDelta
                | SymbolTypeTcc::PacketReceivedLargeDelta => match deltas.next() {
                    Some(d) => {
                        at += d.delta;
                        Arrival::At(at)
                    }
                    // A short feedback: received, time unknown.
                    None => Arrival::Untimed,
                },
            };
            (seq, arrival)
        })
        .collect()
}

/// Builds one [`TransportCc`] per peer connection.
pub struct TransportCcBuilder {
    /// Shared figures.
    pub stats: Arc<BweStats>,
}

impl InterceptorBuilder for TransportCcBuilder {
    fn build(&self, _id: &str) -> Result<Arc<dyn Interceptor + Send + Sync>, InterceptorError> {
        // A connection made outside `with_downlink` still stamps and estimates; nobody reads it.
        let downlink = CURRENT
            .try_with(Arc::clone)
            .unwrap_or_else(|_| Downlink::new(self.stats.clone()));
        Ok(Arc::new(TransportCc { downlink }))
    }
}

/// The interceptor: stamps outgoing packets, reads feedback.
pub struct TransportCc {
    downlink: Arc<Downlink>,
}

struct Stamper {
    id: u8,
    downlink: Arc<Downlink>,
    next: Arc<dyn RTPWriter + Send + Sync>,
}

#[async_trait]
impl RTPWriter for Stamper {
    async fn write(&self, packet: &Packet, a: &Attributes) -> Result<usize, InterceptorError> {
        let mut p = packet.clone();
        if !p.header.extension {
            // A stale figure from a header whose extensions were cleared would be counted
            // by the marshalled size but not written: the write would fail.
            p.header.extensions_padding = 0;
        }
        // Sized with the extension's 4 bytes (and the header's 4 if it had none).
        let size = p.marshal_size() + if p.header.extension { 4 } else { 8 };
        let seq = self.downlink.stamp(size, Instant::now());
        p.header
            .set_extension(self.id, Bytes::copy_from_slice(&seq.to_be_bytes()))?;
        self.next.write(&p, a).await
    }
}

struct FeedbackReader {
    parent: Arc<dyn RTCPReader + Send + Sync>,
    downlink: Arc<Downlink>,
}

#[async_trait]
impl RTCPReader for FeedbackReader {
    async fn read(
        &self,
        buf: &mut [u8],
        a: &Attributes,
    ) -> Result<
        (
            Vec<Box<dyn webrtc::rtcp::packet::Packet + Send + Sync>>,
            Attributes,
        ),
        InterceptorError,
    > {
        let (packets, attributes) = self.parent.read(buf, a).await?;
        let now = Instant::now();
        for p in &packets {
            let any = p.as_any();
            if let Some(fb) = any.downcast_ref::<TransportLayerCc>() {
                self.downlink.on_feedback(fb, now);
            } else if let Some(remb) = any.downcast_ref::<ReceiverEstimatedMaximumBitrate>() {
                if remb.bitrate.is_finite() && remb.bitrate >= 0.0 {
                    self.downlink.on_remb(remb.bitrate as u64, now);
                }
            }
        }
        Ok((packets, attributes))
    }
}

#[async_trait]
impl Interceptor for TransportCc {
    async fn bind_rtcp_reader(
        &self,
        reader: Arc<dyn RTCPReader + Send + Sync>,
    ) -> Arc<dyn RTCPReader + Send + Sync> {
        Arc::new(FeedbackReader {
            parent: reader,
            downlink: self.downlink.clone(),
        })
    }

    async fn bind_rtcp_writer(
        &self,
        writer: Arc<dyn RTCPWriter + Send + Sync>,
    ) -> Arc<dyn RTCPWriter + Send + Sync> {
        writer
    }

    async fn bind_local_stream(
        &self,
        info: &StreamInfo,
        writer: Arc<dyn RTPWriter + Send + Sync>,
    ) -> Arc<dyn RTPWriter + Send + Sync> {
        let id = info
            .rtp_header_extensions
            .iter()
            .find(|e| e.uri == TRANSPORT_CC_URI)
            .and_then(|e| u8::try_from(e.id).ok())
            .filter(|&id| (1..=14).contains(&id));
        match id {
            Some(id) => Arc::new(Stamper {
                id,
                downlink: self.downlink.clone(),
                next: writer,
            }),
            // The subscriber declined the extension: its packets go out as they are.
            None => writer,
        }
    }

    async fn unbind_local_stream(&self, _info: &StreamInfo) {}

    async fn bind_remote_stream(
        &self,
        _info: &StreamInfo,
        reader: Arc<dyn RTPReader + Send + Sync>,
    ) -> Arc<dyn RTPReader + Send + Sync> {
        reader
    }

    async fn unbind_remote_stream(&self, _info: &StreamInfo) {}

    async fn close(&self) -> Result<(), InterceptorError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use webrtc::rtcp::transport_feedbacks::transport_layer_cc::{
        RecvDelta, RunLengthChunk, StatusChunkTypeTcc, StatusVectorChunk, SymbolSizeTypeTcc,
    };

    fn received(delta_us: i64) -> RecvDelta {
        RecvDelta {
            type_tcc_packet: SymbolTypeTcc::PacketReceivedSmallDelta,
            delta: delta_us,
        }
    }

    fn feedback(
        count: u8,
        base: u16,
        chunks: Vec<PacketStatusChunk>,
        deltas: Vec<RecvDelta>,
        n: u16,
    ) -> TransportLayerCc {
        TransportLayerCc {
            sender_ssrc: 1,
            media_ssrc: 2,
            base_sequence_number: base,
            packet_status_count: n,
            reference_time: 10,
            fb_pkt_count: count,
            packet_chunks: chunks,
            recv_deltas: deltas,
        }
    }

    #[test]
    fn feedback_is_decoded_packet_by_packet() {
        let fb = feedback(
            0,
            65_534,
            vec![
                PacketStatusChunk::RunLengthChunk(RunLengthChunk {
                    type_tcc: StatusChunkTypeTcc::RunLengthChunk,
                    packet_status_symbol: SymbolTypeTcc::PacketReceivedSmallDelta,
                    run_length: 2,
                }),
                PacketStatusChunk::StatusVectorChunk(StatusVectorChunk {
                    type_tcc: StatusChunkTypeTcc::StatusVectorChunk,
                    symbol_size: SymbolSizeTypeTcc::OneBit,
                    // 14 symbols; only 3 are counted.
                    symbol_list: [0, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1]
                        .iter()
                        .map(|&s| {
                            if s == 0 {
                                SymbolTypeTcc::PacketNotReceived
                            } else {
                                SymbolTypeTcc::PacketReceivedSmallDelta
                            }
                        })
                        .collect(),
                }),
            ],
            vec![received(1000), received(250), received(4000)],
            5,
        );
        let base = 10 * 64_000;
        assert_eq!(
            decode(&fb, 10),
            vec![
                (65_534, Arrival::At(base + 1000)),
                (65_535, Arrival::At(base + 1250)),
                (0, Arrival::Lost),
                (1, Arrival::At(base + 5250)),
                (2, Arrival::Lost),
            ]
        );
    }

    #[test]
    fn the_reference_time_continues_across_its_wrap() {
        assert_eq!(unwrap_reference(None, 5), 5);
        assert_eq!(unwrap_reference(Some(5), 6), 6);
        let top: u32 = (1 << 24) - 1;
        assert_eq!(unwrap_reference(Some(i64::from(top)), 0), 1 << 24);
        assert_eq!(
            unwrap_reference(Some(1 << 24), top),
            i64::from(top),
            "a late one"
        );
        assert_eq!(unwrap_reference(Some((1 << 24) + 3), 4), (1 << 24) + 4);
    }

    #[tokio::test(start_paused = true)]
    async fn a_feedback_counts_once_and_matches_what_was_sent() {
        let stats = Arc::new(BweStats::default());
        let d = Downlink::new(stats.clone());
        let t0 = Instant::now();
        // One packet at the start, received: the estimator's first second is not judged.
        d.stamp(1200, t0);
        let run = |symbol, n| {
            vec![PacketStatusChunk::RunLengthChunk(RunLengthChunk {
                type_tcc: StatusChunkTypeTcc::RunLengthChunk,
                packet_status_symbol: symbol,
                run_length: n,
            })]
        };
        let first = feedback(
            0,
            1,
            run(SymbolTypeTcc::PacketReceivedSmallDelta, 1),
            vec![received(1000)],
            1,
        );
        d.on_feedback(&first, t0 + Duration::from_millis(100));
        let later = t0 + Duration::from_secs(2);
        for _ in 0..400 {
            d.stamp(1200, later);
        }
        assert_eq!(d.sent(2, later), Some((later, 1200)));
        assert_eq!(d.sent(402, later), None, "not sent yet");
        // All 400 lost: a duplicate through a second SSRC's reader is not a second report.
        let lost = feedback(
            7,
            2,
            run(SymbolTypeTcc::PacketNotReceived, 400),
            vec![],
            400,
        );
        d.on_feedback(&lost, later + Duration::from_millis(100));
        d.on_feedback(&lost, later + Duration::from_millis(100));
        assert_eq!(stats.feedbacks.load(Ordering::Relaxed), 2);
        assert_eq!(stats.duplicates.load(Ordering::Relaxed), 1);
        assert_eq!(stats.decreases_loss.load(Ordering::Relaxed), 1);
        assert_eq!(
            d.estimate(later + Duration::from_millis(100)),
            Some(crate::bwe::MIN_ESTIMATE),
            "nothing acknowledged since: the floor"
        );
        assert_eq!(stats.snapshot(), vec![(Some(crate::bwe::MIN_ESTIMATE), 0)]);
        drop(d);
        assert!(stats.snapshot().is_empty());
    }
}
