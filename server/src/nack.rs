//! Repairing subscribers' losses: every video packet a publisher sends is kept for a while,
//! once per published track, and resent to a subscriber that NACKs it. The interceptor here
//! numbers each downlink stream, keeping sequence numbers continuous when a reused sender
//! starts carrying another publisher's track, and maps a NACKed number back to the packet —
//! a NACK names the number on the wire, so numbering and lookup belong in one place.
//!
//! Why not the webrtc crate's responder and sequence transformer: its history moved its "newest"
//! mark back to any late packet (a publisher's retransmission the SFU forwards out of order) and
//! then erased everything sent since; and it stored numbers from before the transformer, so NACKs
//! on a reused sender fetched the wrong packets. With 5% loss on both the publisher's and the
//! subscriber's links, 3% of video never arrived; with this interceptor none is lost
//! (`tests/loss.rs`). And it kept one history per subscriber: in a mesh room of 12, 132 copies
//! of the same packets' slots (issue 7's heap profile: 0.8 MB of a 14 MB peak).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock, Mutex, Weak};
use std::time::{Duration, Instant};

use crate::vp8::Renumber;
use async_trait::async_trait;
use webrtc::interceptor::stream_info::StreamInfo;
use webrtc::interceptor::{
    Attributes, Error as InterceptorError, Interceptor, InterceptorBuilder, RTCPReader, RTCPWriter,
    RTPReader, RTPWriter,
};
use webrtc::rtcp::transport_feedbacks::transport_layer_nack::TransportLayerNack;
use webrtc::rtp::packet::Packet;

/// The attribute under which a packet written to a track names its source (a [`SourceTag`]).
pub const SOURCE_ATTRIBUTE: usize = 0x7672_736f;

/// The attribute under which a forwarded packet names the forwarder's choice of layer it was
/// sent in (see `layers`): a source that comes back in a later generation is a switch back to
/// it, not a straggler of it. Absent is generation 0.
pub const GENERATION_ATTRIBUTE: usize = 0x7672_6765;

/// The attribute under which a forwarded packet carries the offset to add to its timestamp
/// (a layered track keeps timestamps continuous across layers); absent is 0. Applied here so a
/// retransmission gets the same.
pub const TIMESTAMP_OFFSET_ATTRIBUTE: usize = 0x7672_7473;

/// The attribute under which a forwarded VP8 packet carries how to renumber its descriptor
/// (a packed [`Renumber`]: a layered track keeps PictureID and TL0PICIDX continuous across
/// layers); absent is none. Applied here so a retransmission gets the same.
pub const RENUMBER_ATTRIBUTE: usize = 0x7672_706e;

/// Packets kept per published video track: ~0.8 s of 1.5 Mbit/s video, ~2 s of 0.5 Mbit/s.
/// A resend is worth it only while the receiver's jitter buffer still waits for the packet
/// (hundreds of ms; Janus keeps 200–500 ms), and every slot pins its payload: 1024 slots cost
/// ~0.2 MB of slots and ~1 MB of payload (issue 7's RSS figures); 128 compact slots cost
/// 5 KB per track, and [`MAX_AGE`] bounds the payload they pin.
/// A power of two that divides 65 536, so a slot index survives sequence-number wrap-around.
pub const HISTORY: usize = 128;

/// How long a sent packet stays resendable. A receiver asks again every round trip and
/// gives up when its jitter buffer moves on (Janus keeps a few hundred ms); a second covers
/// a few retries at a 300 ms round trip. What is older is dropped, which also frees the
/// payloads early: at the 0.5 Mbit/s of a mesh room, [`HISTORY`] packets are over 2 s.
pub const MAX_AGE: Duration = Duration::from_secs(1);

const HALF: u16 = 1 << 15;

/// What the downlink repair did, server-wide.
#[derive(Debug, Default)]
pub struct RepairStats {
    /// Sequence numbers subscribers asked for.
    pub nacked: AtomicU64,
    /// Packets resent from history.
    pub resent: AtomicU64,
}

/// Identifies one published track's packets to the downlink interceptor and, for video,
/// keeps them for resending: one history per track, shared by all its subscribers' streams.
pub struct SourceTag {
    attributes: Attributes,
    id: usize,
    history: Option<Arc<Mutex<History>>>,
}

/// Every live source's history by source id: where a subscriber's NACK finds its packets
/// (interceptor attributes can only carry the id).
static HISTORIES: LazyLock<Mutex<HashMap<usize, Weak<Mutex<History>>>>> =
    LazyLock::new(Mutex::default);

impl SourceTag {
    /// A tag no other source has had; `repairable` sources (video: subscribers negotiate NACK
    /// for it) keep their packets for resending.
    pub fn new(repairable: bool) -> SourceTag {
        static NEXT: AtomicUsize = AtomicUsize::new(1);
        let id = NEXT.fetch_add(1, Ordering::Relaxed);
        let mut attributes = Attributes::new();
        attributes.insert(SOURCE_ATTRIBUTE, id);
        let history = repairable.then(|| {
            let history = Arc::new(Mutex::new(History::default()));
            if let Ok(mut all) = HISTORIES.lock() {
                all.insert(id, Arc::downgrade(&history));
            }
            history
        });
        SourceTag {
            attributes,
            id,
            history,
        }
    }

    /// This source's id, unique for the life of the process.
    pub fn id(&self) -> usize {
        self.id
    }

    /// The attributes to write this source's packets with.
    pub fn attributes(&self) -> &Attributes {
        &self.attributes
    }

    /// Keeps a packet the source is about to send to its subscribers (once, whatever their
    /// number), numbered as the publisher numbered it.
    pub fn record(&self, packet: &Packet) {
        if let Some(mut history) = self.history.as_ref().and_then(|h| h.lock().ok()) {
            history.add(packet, Instant::now());
        }
    }
}

impl Drop for SourceTag {
    fn drop(&mut self) {
        if self.history.is_some() {
            if let Ok(mut all) = HISTORIES.lock() {
                all.remove(&self.id);
            }
        }
    }
}

/// Source `source`'s history, while the source lives.
fn history_of(source: usize) -> Option<Arc<Mutex<History>>> {
    HISTORIES.lock().ok()?.get(&source)?.upgrade()
}

#[cfg(test)]
fn kept_packet(source: usize, seq: u16) -> Option<Packet> {
    history_of(source)?.lock().ok()?.get(seq)
}

/// Builds one [`Responder`] per peer connection.
pub struct ResponderBuilder {
    /// Shared counters.
    pub stats: Arc<RepairStats>,
}

impl InterceptorBuilder for ResponderBuilder {
    fn build(&self, _id: &str) -> Result<Arc<dyn Interceptor + Send + Sync>, InterceptorError> {
        Ok(Arc::new(Responder {
            streams: Arc::default(),
            stats: self.stats.clone(),
        }))
    }
}

type Streams = Arc<Mutex<HashMap<u32, Arc<Stream>>>>;

/// One peer connection's downlink numbering and history, by sender SSRC.
pub struct Responder {
    streams: Streams,
    stats: Arc<RepairStats>,
}

struct Stream {
    numbering: Mutex<Numbering>,
    next: Arc<dyn RTPWriter + Send + Sync>,
    /// The stream's own SSRC and payload type, which resent packets carry.
    ssrc: u32,
    payload_type: u8,
}

/// Segments of a downlink stream kept for mapping NACKed numbers back: the current one and
/// the three before it (a simulcast subscriber's recent layer switches).
const SEGMENTS: usize = 4;

/// A stretch of a downlink stream that carried one source in one generation.
#[derive(Debug, Clone, Copy)]
struct Segment {
    /// The source and the generation it came in.
    origin: (usize, usize),
    /// Added to the source's sequence numbers.
    offset: u16,
    /// Added to the source's timestamps (a layered track's continuity, see `simulcast`).
    timestamp_offset: u32,
    /// Applied to the source's VP8 descriptors (likewise).
    renumber: Renumber,
    /// The source's own number for the segment's first packet.
    first_raw: u16,
    /// Its number on the wire; `None` for the stream's first segment.
    first_wire: Option<u16>,
}

/// Maps each source's own sequence numbers onto one continuous sequence, and back.
#[derive(Debug, Default)]
struct Numbering {
    /// Oldest first, at most [`SEGMENTS`].
    segments: Vec<Segment>,
    newest: Option<u16>,
}

impl Numbering {
    /// The number on the wire for packet `raw` of `source`, sent in `generation` with
    /// `timestamp_offset`, and the timestamp offset to send it with. `None` for a straggler:
    /// a packet of a segment that has ended (the source in an earlier generation), or one older
    /// than its segment's first packet (its number on the wire would be the previous
    /// segment's; in the stream's first segment, it is from before the subscriber started,
    /// who decodes from the first packet's keyframe on).
    #[cfg(test)]
    fn map(
        &mut self,
        source: usize,
        generation: usize,
        timestamp_offset: u32,
        raw: u16,
    ) -> Option<(u16, u32)> {
        self.map_renumbered(
            source,
            generation,
            timestamp_offset,
            Renumber::default(),
            raw,
        )
        .map(|(seq, offset, _)| (seq, offset))
    }

    /// [`Numbering::map`] for a packet whose generation also renumbers VP8 descriptors: the
    /// segment keeps the first `renumber` it was mapped with, and it is returned with the
    /// timestamp offset.
    fn map_renumbered(
        &mut self,
        source: usize,
        generation: usize,
        timestamp_offset: u32,
        renumber: Renumber,
        raw: u16,
    ) -> Option<(u16, u32, Renumber)> {
        let origin = (source, generation);
        let current = match self.segments.last() {
            Some(seg) if seg.origin == origin => *seg,
            _ => {
                if self
                    .segments
                    .iter()
                    .any(|seg| seg.origin.0 == source && seg.origin.1 >= generation)
                {
                    return None;
                }
                // The receiver must see the new source continue right after the last number,
                // or it drops the packets as old ones.
                let seg = Segment {
                    origin,
                    offset: self
                        .newest
                        .map_or(0, |newest| newest.wrapping_add(1).wrapping_sub(raw)),
                    timestamp_offset,
                    renumber,
                    first_raw: raw,
                    first_wire: self.newest.map(|n| n.wrapping_add(1)),
                };
                if self.segments.len() == SEGMENTS {
                    self.segments.remove(0);
                }
                self.segments.push(seg);
                seg
            }
        };
        if raw.wrapping_sub(current.first_raw) >= HALF {
            return None;
        }
        let out = raw.wrapping_add(current.offset);
        match self.newest {
            Some(newest) if out.wrapping_sub(newest) >= HALF => {}
            _ => self.newest = Some(out),
        }
        Some((out, current.timestamp_offset, current.renumber))
    }

    /// Whose packet number `wire` on this stream was: that source, its own number for it, and
    /// the timestamp offset and renumbering it went out with.
    fn source_of(&self, wire: u16) -> Option<(usize, u16, u32, Renumber)> {
        let seg = self.segments.iter().rev().find(|seg| {
            seg.first_wire
                .is_none_or(|first| wire.wrapping_sub(first) < HALF)
        })?;
        Some((
            seg.origin.0,
            wire.wrapping_sub(seg.offset),
            seg.timestamp_offset,
            seg.renumber,
        ))
    }
}

/// The last [`HISTORY`] packets a source sent, by its own sequence numbers.
///
/// A slot keeps only what differs from packet to packet (payload, number, timestamp, marker):
/// 40 bytes instead of a whole `Packet`'s 112, whose header's two `Vec`s are empty here (the
/// forwarder clears the extensions; the sender's interceptors add theirs). The rest of the
/// header is the publisher stream's, kept once in `header`; a resend takes the subscriber
/// stream's SSRC, payload type and number instead.
#[derive(Default)]
struct History {
    slots: Vec<Slot>,
    newest: Option<u16>,
    /// The oldest number that may still hold a packet: everything before it is gone.
    oldest: u16,
    header: webrtc::rtp::header::Header,
    /// The first packet's time: slots keep theirs as milliseconds since then.
    epoch: Option<Instant>,
}

/// One packet of a [`History`]; an empty payload marks an empty slot (RTP payloads are never
/// empty here: the forwarder only writes what publishers sent).
#[derive(Clone, Default)]
struct Slot {
    payload: bytes::Bytes,
    timestamp: u32,
    /// When it was sent, in ms since the history's epoch (wrapping).
    sent_ms: u32,
    sequence_number: u16,
    marker: bool,
    padding: bool,
    payload_type: u8,
}

impl History {
    fn add(&mut self, packet: &Packet, now: Instant) {
        if self.slots.is_empty() {
            self.slots = vec![Slot::default(); HISTORY];
        }
        let epoch = *self.epoch.get_or_insert(now);
        // Wraps after 49 days; ages are differences, taken wrapping.
        let sent_ms = now.saturating_duration_since(epoch).as_millis() as u32;
        let seq = packet.header.sequence_number;
        if let Some(newest) = self.newest {
            let ahead = seq.wrapping_sub(newest);
            if ahead == 0 {
                return;
            }
            if ahead < HALF {
                // Numbers skipped over were never sent: their slots hold packets a lap old.
                for i in 1..usize::from(ahead).min(HISTORY + 1) {
                    self.slots[usize::from(newest.wrapping_add(i as u16)) % HISTORY] =
                        Slot::default();
                }
                self.newest = Some(seq);
            } else if newest.wrapping_sub(seq) > newest.wrapping_sub(self.oldest) {
                // Late, and older than anything kept.
                return;
            }
            // else: late but within the window — keep it without moving `newest` back.
        } else {
            self.newest = Some(seq);
            self.oldest = seq;
        }
        let h = &packet.header;
        if self.header.version != h.version
            || self.header.ssrc != h.ssrc
            || self.header.csrc != h.csrc
        {
            // Packets kept so far belong to the old header: resent with the new one they
            // would be wrong, so they are forgotten (never happens on one sender's stream,
            // whose SSRC is fixed and whose publishers send no CSRCs).
            self.slots.fill(Slot::default());
            self.oldest = self.newest.unwrap_or(seq);
            self.header = webrtc::rtp::header::Header {
                extension: false,
                extension_profile: 0,
                extensions: Vec::new(),
                extensions_padding: 0,
                ..h.clone()
            };
        }
        self.slots[usize::from(seq) % HISTORY] = Slot {
            payload: packet.payload.clone(),
            timestamp: h.timestamp,
            sent_ms,
            sequence_number: seq,
            marker: h.marker,
            padding: h.padding,
            payload_type: h.payload_type,
        };
        self.forget_old(sent_ms);
    }

    /// Moves `oldest` past what was overwritten or is older than [`MAX_AGE`], emptying those
    /// slots (and so releasing their payloads). Amortised O(1): a number is passed once.
    fn forget_old(&mut self, now_ms: u32) {
        let Some(newest) = self.newest else { return };
        let window = HISTORY as u16 - 1;
        if newest.wrapping_sub(self.oldest) > window {
            // The slots before this were overwritten by newer packets.
            self.oldest = newest.wrapping_sub(window);
        }
        let max_age_ms = MAX_AGE.as_millis() as u32;
        while self.oldest != newest {
            let slot = &mut self.slots[usize::from(self.oldest) % HISTORY];
            if slot.sequence_number == self.oldest && !slot.payload.is_empty() {
                if now_ms.wrapping_sub(slot.sent_ms) < max_age_ms {
                    break;
                }
                *slot = Slot::default();
            }
            self.oldest = self.oldest.wrapping_add(1);
        }
    }

    #[cfg(test)]
    fn kept(&self) -> usize {
        self.slots.iter().filter(|s| !s.payload.is_empty()).count()
    }

    fn get(&self, seq: u16) -> Option<Packet> {
        let newest = self.newest?;
        if newest.wrapping_sub(seq) > newest.wrapping_sub(self.oldest) {
            return None;
        }
        let slot = self
            .slots
            .get(usize::from(seq) % HISTORY)
            .filter(|s| s.sequence_number == seq && !s.payload.is_empty())?;
        let mut header = self.header.clone();
        header.sequence_number = seq;
        header.timestamp = slot.timestamp;
        header.marker = slot.marker;
        header.padding = slot.padding;
        header.payload_type = slot.payload_type;
        Some(Packet {
            header,
            payload: slot.payload.clone(),
        })
    }
}

#[async_trait]
impl RTPWriter for Stream {
    async fn write(&self, packet: &Packet, a: &Attributes) -> Result<usize, InterceptorError> {
        let source = a.get(&SOURCE_ATTRIBUTE).copied().unwrap_or(0);
        let generation = a.get(&GENERATION_ATTRIBUTE).copied().unwrap_or(0);
        let offset = a.get(&TIMESTAMP_OFFSET_ATTRIBUTE).copied().unwrap_or(0) as u32;
        let renumber = a
            .get(&RENUMBER_ATTRIBUTE)
            .map_or_else(Renumber::default, |&w| Renumber::unpack(w));
        let mapped = {
            let Ok(mut numbering) = self.numbering.lock() else {
                return self.next.write(packet, a).await;
            };
            numbering.map_renumbered(
                source,
                generation,
                offset,
                renumber,
                packet.header.sequence_number,
            )
        };
        let Some((seq, offset, renumber)) = mapped else {
            return Ok(0);
        };
        let mut out = packet.clone();
        out.header.sequence_number = seq;
        out.header.timestamp = out.header.timestamp.wrapping_add(offset);
        renumbered(&mut out, renumber);
        self.next.write(&out, a).await
    }
}

struct NackReader {
    parent: Arc<dyn RTCPReader + Send + Sync>,
    streams: Streams,
    stats: Arc<RepairStats>,
}

#[async_trait]
impl RTCPReader for NackReader {
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
        for p in &packets {
            let Some(nack) = p.as_any().downcast_ref::<TransportLayerNack>() else {
                continue;
            };
            let Some(stream) = self
                .streams
                .lock()
                .ok()
                .and_then(|s| s.get(&nack.media_ssrc).cloned())
            else {
                continue;
            };
            let wanted: Vec<u16> = nack
                .nacks
                .iter()
                .flat_map(|pair| pair.into_iter())
                .collect();
            self.stats
                .nacked
                .fetch_add(wanted.len() as u64, Ordering::Relaxed);
            let sources: Vec<(u16, (usize, u16, u32, Renumber))> = match stream.numbering.lock() {
                Ok(numbering) => wanted
                    .iter()
                    .filter_map(|&wire| Some((wire, numbering.source_of(wire)?)))
                    .collect(),
                Err(_) => continue,
            };
            // A NACK names one stream, so a few sources at most (before and after a reuse or
            // a layer switch): each history is looked up once, not once per number.
            let mut histories: Vec<(usize, Option<Arc<Mutex<History>>>)> = Vec::new();
            let resend: Vec<Packet> = sources
                .into_iter()
                .filter_map(|(wire, (source, seq, timestamp_offset, renumber))| {
                    let history = match histories.iter().find(|(s, _)| *s == source) {
                        Some((_, h)) => h.clone(),
                        None => {
                            let h = history_of(source);
                            histories.push((source, h.clone()));
                            h
                        }
                    }?;
                    let mut p = history.lock().ok()?.get(seq)?;
                    p.header.sequence_number = wire;
                    p.header.timestamp = p.header.timestamp.wrapping_add(timestamp_offset);
                    renumbered(&mut p, renumber);
                    p.header.ssrc = stream.ssrc;
                    p.header.payload_type = stream.payload_type;
                    Some(p)
                })
                .collect();
            if resend.is_empty() {
                continue;
            }
            self.stats
                .resent
                .fetch_add(resend.len() as u64, Ordering::Relaxed);
            // Off the RTCP read path: a slow send must not delay the next feedback.
            tokio::spawn(async move {
                let none = Attributes::new();
                for p in resend {
                    if stream.next.write(&p, &none).await.is_err() {
                        return;
                    }
                }
            });
        }
        Ok((packets, attributes))
    }
}

/// `packet` with its VP8 descriptor renumbered: a copy of the payload (the original is shared
/// with the history and the other subscribers), only when there is something to change.
fn renumbered(packet: &mut Packet, renumber: Renumber) {
    if renumber.is_identity() {
        return;
    }
    let mut payload = packet.payload.to_vec();
    renumber.apply(&mut payload);
    packet.payload = payload.into();
}

fn supports_nack(info: &StreamInfo) -> bool {
    info.rtcp_feedback
        .iter()
        .any(|fb| fb.typ == "nack" && fb.parameter.is_empty())
}

#[async_trait]
impl Interceptor for Responder {
    async fn bind_rtcp_reader(
        &self,
        reader: Arc<dyn RTCPReader + Send + Sync>,
    ) -> Arc<dyn RTCPReader + Send + Sync> {
        Arc::new(NackReader {
            parent: reader,
            streams: self.streams.clone(),
            stats: self.stats.clone(),
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
        // Audio is numbered too (senders are reused for both kinds' tracks) but, without NACK
        // negotiated, is never asked for a resend.
        let stream = Arc::new(Stream {
            numbering: Mutex::default(),
            next: writer,
            ssrc: info.ssrc,
            payload_type: info.payload_type,
        });
        if supports_nack(info) {
            if let Ok(mut streams) = self.streams.lock() {
                streams.insert(info.ssrc, stream.clone());
            }
        }
        stream
    }

    async fn unbind_local_stream(&self, info: &StreamInfo) {
        if let Ok(mut streams) = self.streams.lock() {
            streams.remove(&info.ssrc);
        }
    }

    async fn bind_remote_stream(
        &self,
        _info: &StreamInfo,
        reader: Arc<dyn RTPReader + Send + Sync>,
    ) -> Arc<dyn RTPReader + Send + Sync> {
        reader
    }

    async fn unbind_remote_stream(&self, _info: &StreamInfo) {}

    async fn close(&self) -> Result<(), InterceptorError> {
        if let Ok(mut streams) = self.streams.lock() {
            streams.clear();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `Numbering::map` without timestamp offsets: the number on the wire.
    fn map(n: &mut Numbering, source: usize, generation: usize, raw: u16) -> Option<u16> {
        n.map(source, generation, 0, raw).map(|(seq, _)| seq)
    }

    /// `Numbering::source_of`, without the timestamp offset.
    fn source_of(n: &Numbering, wire: u16) -> Option<(usize, u16)> {
        n.source_of(wire).map(|(source, raw, ..)| (source, raw))
    }

    static START: std::sync::LazyLock<Instant> = std::sync::LazyLock::new(Instant::now);

    impl History {
        /// Adds at one fixed time (for tests about numbers, not age).
        fn add_now(&mut self, p: &Packet) {
            self.add(p, *START);
        }
    }

    #[test]
    fn packets_older_than_max_age_are_forgotten_and_released() {
        let t0 = *START;
        let mut h = History::default();
        for seq in 0..10u16 {
            h.add(&packet(seq), t0 + Duration::from_millis(u64::from(seq)));
        }
        // Young enough: all kept.
        h.add(&packet(10), t0 + MAX_AGE - Duration::from_millis(100));
        assert_eq!(h.kept(), 11);
        assert!(h.get(0).is_some());
        // A second later the first ten are too old to be worth resending.
        h.add(&packet(11), t0 + MAX_AGE + Duration::from_millis(5));
        assert_eq!(h.kept(), 6, "0..=5 released, 6..=11 kept");
        assert!(h.get(5).is_none() && h.get(6).is_some() && h.get(11).is_some());
        // A late packet from before the oldest kept is not taken back in.
        h.add(&packet(2), t0 + MAX_AGE + Duration::from_millis(6));
        assert!(h.get(2).is_none());
        assert_eq!(h.kept(), 6);
        // After a pause, one new packet releases everything before it.
        h.add(&packet(12), t0 + 3 * MAX_AGE);
        assert_eq!(h.kept(), 1);
        assert!(h.get(12).is_some() && h.get(11).is_none());
    }

    #[test]
    fn a_jump_in_numbers_keeps_only_the_window() {
        let t0 = *START;
        let mut h = History::default();
        h.add(&packet(65_530), t0);
        h.add(&packet(65_531), t0);
        // Far ahead (and across the wrap): the old ones' slots are gone or overwritten.
        h.add(&packet(1000), t0);
        assert!(h.get(65_530).is_none());
        assert!(h.get(1000).is_some());
        assert_eq!(h.kept(), 1);
        for seq in 1001..1001 + 3 * HISTORY as u16 {
            h.add(&packet(seq), t0);
        }
        assert_eq!(h.kept(), HISTORY);
        assert!(h.get(1000 + 2 * HISTORY as u16).is_none());
        assert!(h.get(1001 + 2 * HISTORY as u16).is_some());
    }

    fn packet(seq: u16) -> Packet {
        let mut p = Packet::default();
        p.header.version = 2;
        p.header.sequence_number = seq;
        p.payload = bytes::Bytes::from_static(b"x");
        p
    }

    #[test]
    fn a_late_packet_does_not_erase_history() {
        for start in [0u16, 1000, 65_500] {
            let mut h = History::default();
            for i in 0..10u16 {
                if i != 3 {
                    h.add_now(&packet(start.wrapping_add(i)));
                }
            }
            // Number 3 arrives late (a publisher's retransmission), then sending goes on.
            h.add_now(&packet(start.wrapping_add(3)));
            h.add_now(&packet(start.wrapping_add(10)));
            for i in 0..=10u16 {
                let seq = start.wrapping_add(i);
                assert_eq!(
                    h.get(seq).map(|p| p.header.sequence_number),
                    Some(seq),
                    "start {start}, packet {i}"
                );
            }
        }
    }

    #[test]
    fn a_resent_packet_is_the_packet_sent() {
        let mut h = History::default();
        let mut sent = Vec::new();
        for i in 0..6u16 {
            let mut p = packet(1000 + i);
            // The stream's header changes once, after the third packet.
            p.header.ssrc = if i < 3 { 7 } else { 9 };
            p.header.csrc = if i < 3 { vec![] } else { vec![5] };
            p.header.timestamp = 90_000 * u32::from(i);
            p.header.marker = i % 2 == 1;
            p.header.padding = i == 4;
            p.header.payload_type = 96 + (i as u8 % 2);
            p.payload = bytes::Bytes::from(vec![i as u8; 10 + usize::from(i)]);
            h.add_now(&p);
            sent.push(p);
        }
        for p in &sent[3..] {
            assert_eq!(h.get(p.header.sequence_number).as_ref(), Some(p));
        }
        // Kept under the old header, they cannot be resent as they were: forgotten.
        for p in &sent[..3] {
            assert_eq!(h.get(p.header.sequence_number), None);
        }
    }

    #[test]
    fn history_forgets_what_is_too_old_or_never_sent() {
        let mut h = History::default();
        h.add_now(&packet(0));
        h.add_now(&packet(5));
        assert!(h.get(3).is_none(), "never sent");
        assert!(h.get(6).is_none(), "not sent yet");
        for seq in 6..(6 + HISTORY as u16) {
            h.add_now(&packet(seq));
        }
        assert!(h.get(5).is_none(), "a lap old");
        assert!(h.get(6).is_some());
        // A straggler older than the window is not kept over a newer packet's slot.
        h.add_now(&packet(4));
        assert!(h.get(4).is_none());
        assert!(h.get(4 + HISTORY as u16).is_some());
    }

    #[test]
    fn a_wire_number_maps_back_to_its_source_and_number() {
        let mut n = Numbering::default();
        assert_eq!(source_of(&n, 5), None, "nothing sent yet");
        for raw in 100..110 {
            map(&mut n, 1, 0, raw);
        }
        assert_eq!(source_of(&n, 105), Some((1, 105)));
        // The sender is reused for source 2 from wire number 110 on.
        for raw in 65_530..=65_535 {
            map(&mut n, 2, 0, raw);
        }
        map(&mut n, 2, 0, 0);
        assert_eq!(source_of(&n, 110), Some((2, 65_530)));
        assert_eq!(source_of(&n, 116), Some((2, 0)), "across the source's wrap");
        assert_eq!(
            source_of(&n, 109),
            Some((1, 109)),
            "before the switch: the old source"
        );
        assert_eq!(source_of(&n, 100), Some((1, 100)));
        // Reused once more, for source 3 from wire number 117, then 4 and 5: source 1's
        // numbers now belong to no segment kept, so they map to nothing rather than to
        // source 2.
        map(&mut n, 3, 0, 500);
        assert_eq!(source_of(&n, 117), Some((3, 500)));
        assert_eq!(source_of(&n, 112), Some((2, 65_532)));
        assert_eq!(source_of(&n, 105), Some((1, 105)), "four segments are kept");
        map(&mut n, 4, 0, 7);
        map(&mut n, 5, 0, 9);
        assert_eq!(source_of(&n, 119), Some((5, 9)));
        assert_eq!(source_of(&n, 117), Some((3, 500)));
        assert_eq!(source_of(&n, 112), Some((2, 65_532)));
        assert_eq!(source_of(&n, 105), None);
    }

    #[test]
    fn a_source_keeps_its_packets_for_every_stream_until_dropped() {
        let video = SourceTag::new(true);
        let audio = SourceTag::new(false);
        let id = |t: &SourceTag| t.attributes().get(&SOURCE_ATTRIBUTE).copied().unwrap();
        let (video_id, audio_id) = (id(&video), id(&audio));
        assert_ne!(video_id, audio_id);
        let mut p = packet(42);
        p.payload = bytes::Bytes::from_static(b"frame");
        video.record(&p);
        audio.record(&p);
        assert_eq!(kept_packet(video_id, 42), Some(p));
        assert_eq!(kept_packet(video_id, 43), None);
        assert_eq!(kept_packet(audio_id, 42), None, "audio keeps nothing");
        drop(video);
        assert_eq!(kept_packet(video_id, 42), None, "gone with its track");
    }

    #[test]
    fn numbering_continues_across_sources_and_ignores_stragglers() {
        let mut n = Numbering::default();
        let first = map(&mut n, 1, 0, 100);
        assert_eq!(first, Some(100), "the first source keeps its numbers");
        assert_eq!(map(&mut n, 1, 0, 102), Some(102));
        let late = map(&mut n, 1, 0, 101);
        assert_eq!(late, Some(101), "late packets map, newest stays");
        let early = map(&mut n, 1, 0, 99);
        assert_eq!(early, None, "from before the stream started");
        let next = map(&mut n, 2, 0, 50_000);
        assert_eq!(next, Some(103), "a new source continues the sequence");
        assert_eq!(map(&mut n, 2, 0, 50_001), Some(104));
        let straggler = map(&mut n, 1, 0, 103);
        assert_eq!(straggler, None, "a straggler of the old source");
        assert_eq!(map(&mut n, 2, 0, 50_002), Some(105));
        assert_eq!(map(&mut n, 3, 0, 7), Some(106));
        assert_eq!(map(&mut n, 3, 0, 8), Some(107));
    }

    #[test]
    fn a_layer_forwarded_again_in_a_later_generation_is_a_switch_back() {
        let mut n = Numbering::default();
        assert_eq!(map(&mut n, 1, 1, 500), Some(500));
        assert_eq!(map(&mut n, 2, 2, 9_000), Some(501), "layer 1 to layer 2");
        assert_eq!(
            map(&mut n, 1, 1, 501),
            None,
            "a straggler of layer 1's first turn"
        );
        assert_eq!(map(&mut n, 1, 3, 520), Some(502), "back to layer 1");
        assert_eq!(map(&mut n, 1, 3, 521), Some(503));
        assert_eq!(
            map(&mut n, 2, 2, 9_001),
            None,
            "a straggler of layer 2's turn"
        );
        assert_eq!(source_of(&n, 502), Some((1, 520)));
        assert_eq!(source_of(&n, 501), Some((2, 9_000)));
    }

    #[test]
    fn a_segment_keeps_its_timestamp_offset_and_refuses_packets_older_than_its_start() {
        let mut n = Numbering::default();
        assert_eq!(n.map(1, 1, 0, 10), Some((10, 0)));
        assert_eq!(n.map(1, 1, 0, 11), Some((11, 0)));
        // Switched to layer 2 at its keyframe, number 300, timestamps moved on by 5000.
        assert_eq!(n.map(2, 2, 5000, 300), Some((12, 5000)));
        // Layer 2's packets from before the keyframe would take layer 1's numbers.
        assert_eq!(n.map(2, 2, 5000, 299), None);
        // A late one of the segment itself is fine.
        assert_eq!(n.map(2, 2, 5000, 302), Some((14, 5000)));
        assert_eq!(n.map(2, 2, 5000, 301), Some((13, 5000)));
        // A NACK is answered with the offset its segment went out with.
        let none = Renumber::default();
        assert_eq!(n.source_of(13), Some((2, 301, 5000, none)));
        assert_eq!(n.source_of(11), Some((1, 11, 0, none)));
        // And with its VP8 renumbering: the one the segment started with.
        let r = Renumber {
            picture_id: 7,
            tl0: 3,
            key_idx: 0,
        };
        assert_eq!(n.map_renumbered(1, 3, 9000, r, 20), Some((15, 9000, r)));
        assert_eq!(n.map_renumbered(1, 3, 9000, none, 21), Some((16, 9000, r)));
        assert_eq!(n.source_of(16), Some((1, 21, 9000, r)));
        assert_eq!(n.source_of(14), Some((2, 302, 5000, none)));
        // The stream's first segment refuses them too: the subscriber starts at its first.
        let mut first = Numbering::default();
        assert_eq!(first.map(1, 0, 0, 100), Some((100, 0)));
        assert_eq!(first.map(1, 0, 0, 98), None);
    }
}
