//! A published track's layers: the streams one camera sends at several sizes (simulcast), each
//! measured as it arrives, and which one is forwarded. A track without simulcast has one layer,
//! always forwarded.
//!
//! Layers are ranked by what they carry — the picture size of their keyframes, else their
//! bitrate — never by their RID names, which a sender may use as it likes. Browsers start and
//! stop layers as their bandwidth and CPU allow, so a layer silent for [`SILENCE`] counts as
//! gone and the next best is forwarded.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;
use webrtc::interceptor::Attributes;
use webrtc::rtp::packet::Packet;

use crate::keyframes::KeyframeRequester;
use crate::nack::{SourceTag, GENERATION_ATTRIBUTE};
use crate::vp8::{self, Size};

/// A layer that sent nothing for this long is not forwarded.
pub const SILENCE: Duration = Duration::from_secs(1);

/// A layer that starts (or starts again after [`SILENCE`]) counts as live only once it has
/// sent this long without a gap over [`WARMUP_GAP`], unless no other layer is live by then: a
/// browser turning an encoding back on can send a keyframe and then stall while its encoder
/// and bandwidth estimate settle, and a viewer switched to it then sees a freeze (seen in e2e
/// s12: 1.5–3 s with a Firefox camera). Its viewers wait on the layer below meanwhile.
pub const WARMUP: Duration = Duration::from_secs(1);

/// The longest gap between a warming layer's packets that does not start its warm-up again.
const WARMUP_GAP: Duration = Duration::from_millis(500);

/// How often a layer's task looks again at which layer to forward.
const RECHECK: Duration = Duration::from_millis(100);

/// Bytes a forwarded packet carries besides its payload: the RTP header and the
/// transport-wide sequence number extension. Counted in a layer's bitrate so that it compares
/// with what a subscriber's feedback acknowledges (`bwe`).
const RTP_OVERHEAD: usize = 12 + 8;

/// The window over which a layer's bitrate is measured.
const BITRATE_WINDOW: Duration = Duration::from_millis(500);

/// One stream of a published track, as the publisher sends it.
pub struct Layer {
    /// Its RTP stream id (`a=rid`), empty without simulcast.
    pub rid: String,
    /// Its SSRC on the publisher's connection (where keyframe requests go).
    pub ssrc: u32,
    /// Its packets' numbering and NACK history: one per layer, since a history is forgotten
    /// whenever the SSRC it keeps changes.
    pub(crate) source: SourceTag,
    /// Whether this is the layer being forwarded.
    selected: AtomicBool,
    meter: Mutex<Meter>,
    /// Keyframe requests to this layer's stream.
    pub keyframes: KeyframeRequester,
}

/// What is known of a layer from its packets.
#[derive(Debug, Default)]
struct Meter {
    last: Option<Instant>,
    /// When its current warm-up started (its first packet, or the first after a gap).
    since: Option<Instant>,
    size: Option<Size>,
    window_start: Option<Instant>,
    window_bytes: u64,
    /// Bits per second over the last full window.
    bitrate: u64,
}

impl Meter {
    /// Counts one packet; true when it was a keyframe of a size not seen before.
    fn on_packet(&mut self, now: Instant, packet: &Packet, video: bool) -> bool {
        let warming = self.since.is_none_or(|s| now.duration_since(s) < WARMUP);
        let restart = self.last.is_none_or(|t| {
            let gap = now.duration_since(t);
            gap >= SILENCE || (warming && gap > WARMUP_GAP)
        });
        if restart {
            self.since = Some(now);
        }
        self.last = Some(now);
        let start = *self.window_start.get_or_insert(now);
        self.window_bytes += (packet.payload.len() + RTP_OVERHEAD) as u64;
        let elapsed = now.duration_since(start);
        if elapsed >= BITRATE_WINDOW {
            self.bitrate = self.window_bytes * 8 * 1000 / (elapsed.as_millis() as u64).max(1);
            self.window_start = Some(now);
            self.window_bytes = 0;
        }
        if !video {
            return false;
        }
        match vp8::keyframe_size(&packet.payload) {
            Some(size) if self.size != Some(size) => {
                self.size = Some(size);
                true
            }
            _ => false,
        }
    }

    fn reading(&self, now: Instant) -> Reading {
        Reading {
            live: self.last.is_some_and(|t| now.duration_since(t) < SILENCE),
            warm: self.since.is_some_and(|s| now.duration_since(s) >= WARMUP),
            since: self.since,
            area: self.size.map_or(0, Size::area),
            bitrate: self.bitrate,
        }
    }
}

/// `readings` with a layer still warming up counted as not live if it (re)started once another
/// was already warm (see [`WARMUP`]). Layers that start together, as a publisher's do, count
/// at once: demoting the later ones for the moment the first is warm and they are not would
/// move every viewer down and up again for nothing.
fn settle(mut readings: Vec<Reading>) -> Vec<Reading> {
    let warm_at = readings
        .iter()
        .filter(|r| r.live && r.warm)
        .filter_map(|r| r.since)
        .map(|s| s + WARMUP)
        .min();
    if let Some(warm_at) = warm_at {
        for r in &mut readings {
            if r.live && !r.warm && r.since.is_some_and(|s| s >= warm_at) {
                r.live = false;
            }
        }
    }
    readings
}

/// A live layer as the allocator sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rung {
    /// Its RID.
    pub rid: String,
    /// Bits per second of RTP.
    pub bitrate: u64,
    /// The picture height of its keyframes, once one was seen.
    pub height: Option<u16>,
}

/// The highest layer a tile `tile_height` pixels high needs, of `heights` (lowest layer
/// first): the smallest at least 0.9 × the tile's height (LiveKit's rule: a slightly smaller
/// picture scaled up looks as good, at a fraction of the bits), else the top. `None` when
/// some layer's height is not known yet.
pub fn layer_for_tile(heights: &[Option<u16>], tile_height: u32) -> Option<usize> {
    let heights: Vec<u16> = heights.iter().copied().collect::<Option<_>>()?;
    if heights.is_empty() {
        return None;
    }
    let wanted = u64::from(tile_height) * 9;
    Some(
        heights
            .iter()
            .position(|&h| u64::from(h) * 10 >= wanted)
            .unwrap_or(heights.len().saturating_sub(1)),
    )
}

/// A layer's state as the choice sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reading {
    /// It sent something within [`SILENCE`] (and, once another layer is warm, has warmed up).
    pub live: bool,
    /// It has sent steadily for [`WARMUP`].
    pub warm: bool,
    /// When its current warm-up started.
    pub since: Option<Instant>,
    /// Pixels in its last keyframe; 0 until one is seen.
    pub area: u32,
    /// Bits per second of RTP (payload and header).
    pub bitrate: u64,
}

/// Which layer to forward: the current one while it is live and none is clearly better
/// (bigger pictures, or at the same size over 1.5 times the bitrate), else the best live one.
/// `None` when no layer is live.
pub fn choose(current: Option<usize>, readings: &[Reading]) -> Option<usize> {
    let best = readings
        .iter()
        .enumerate()
        .filter(|(_, r)| r.live)
        // Ties go to the earlier layer, so the choice is stable.
        .max_by(|(i, a), (j, b)| (a.area, a.bitrate, j).cmp(&(b.area, b.bitrate, i)))
        .map(|(i, _)| i);
    let Some(cur) = current.filter(|&c| readings.get(c).is_some_and(|r| r.live)) else {
        return best;
    };
    match best {
        Some(b) if b != cur => {
            let (c, n) = (readings[cur], readings[b]);
            let better = n.area > c.area || (n.area == c.area && n.bitrate * 2 > c.bitrate * 3);
            Some(if better { b } else { cur })
        }
        _ => Some(cur),
    }
}

/// The layers of one published track and the choice among them.
pub struct Layers {
    video: bool,
    state: Mutex<Choice>,
    /// The latest ranking, for choosing a layer per subscriber.
    ranking: Mutex<Arc<Ranking>>,
    /// Bumped at every change of the forwarded layer, and written with each forwarded packet:
    /// a subscriber's numbering then tells a return to an earlier layer from a late packet
    /// of it.
    generation: AtomicUsize,
}

#[derive(Default)]
struct Choice {
    layers: Vec<Arc<Layer>>,
    current: Option<usize>,
}

/// A layer task's own view of the choice.
#[derive(Debug, Default)]
pub struct Cursor {
    /// When to look at the choice again.
    recheck: Option<Instant>,
    /// Whether its last packet was forwarded.
    forwarding: bool,
    /// The choice's generation at its last packet.
    generation: usize,
}

/// What a layer's task does with the packet it just read.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Forward it.
    Forward,
    /// Forward it: its layer has just become the forwarded one (ask it for a keyframe).
    Switched,
    /// Drop it: another layer is forwarded.
    Skip,
}

impl Layers {
    /// No layers yet; `video` ones are sized from their keyframes.
    pub fn new(video: bool) -> Layers {
        Layers {
            video,
            state: Mutex::default(),
            ranking: Mutex::default(),
            generation: AtomicUsize::new(0),
        }
    }

    /// Adds a layer; one with the same RID (its stream started again) replaces the old one.
    pub fn add(&self, rid: &str, ssrc: u32, keyframes: KeyframeRequester) -> Arc<Layer> {
        let layer = Arc::new(Layer {
            rid: rid.to_owned(),
            ssrc,
            source: SourceTag::new(self.video),
            selected: AtomicBool::new(false),
            meter: Mutex::default(),
            keyframes,
        });
        if let Ok(mut choice) = self.state.lock() {
            match choice.layers.iter().position(|l| l.rid == rid) {
                Some(i) => {
                    choice.layers[i].selected.store(false, Ordering::Relaxed);
                    choice.layers[i] = layer.clone();
                    if choice.current == Some(i) {
                        choice.current = None;
                    }
                }
                None => choice.layers.push(layer.clone()),
            }
        }
        // A replaced layer may have been the forwarded one: the others need not wait.
        self.rechoose(Instant::now());
        layer
    }

    /// How many layers have been seen.
    pub fn count(&self) -> usize {
        self.state.lock().map_or(0, |c| c.layers.len())
    }

    /// The forwarded layer's SSRC, where keyframe requests go.
    pub fn selected_ssrc(&self) -> Option<u32> {
        Some(self.selected()?.ssrc)
    }

    /// The layer forwarded to subscribers that have no choice of their own; before any is
    /// chosen (nothing read yet), the latest to arrive.
    pub fn selected(&self) -> Option<Arc<Layer>> {
        let choice = self.state.lock().ok()?;
        match choice.current {
            Some(c) => choice.layers.get(c).cloned(),
            None => choice.layers.last().cloned(),
        }
    }

    /// The latest ranking of the layers.
    pub fn ranking(&self) -> Arc<Ranking> {
        self.ranking.lock().map(|r| r.clone()).unwrap_or_default()
    }

    /// Each layer's RID, SSRC and reading, in the order they arrived.
    pub fn readings(&self, now: Instant) -> Vec<(String, u32, Reading)> {
        let Ok(choice) = self.state.lock() else {
            return Vec::new();
        };
        let readings = settle(choice.layers.iter().map(|l| l.reading(now)).collect());
        choice
            .layers
            .iter()
            .zip(readings)
            .map(|(l, r)| (l.rid.clone(), l.ssrc, r))
            .collect()
    }

    /// The live layers, lowest first (for the `allocator`).
    pub fn ladder(&self, now: Instant) -> Vec<Rung> {
        let ranking = self.ranking();
        let readings = settle(ranking.ranked.iter().map(|(l, _)| l.reading(now)).collect());
        ranking
            .ranked
            .iter()
            .zip(readings)
            .filter_map(|((l, _), r)| {
                let height = l.meter.lock().ok().and_then(|m| m.size).map(|s| s.height);
                r.live.then(|| Rung {
                    rid: l.rid.clone(),
                    bitrate: r.bitrate,
                    height,
                })
            })
            .collect()
    }

    /// Every layer ever seen, live or not, lowest first: its RID and the picture height of
    /// its keyframes (remembered while it is off, for dynacast).
    pub fn heights(&self) -> Vec<(String, Option<u16>)> {
        self.ranking()
            .ranked
            .iter()
            .map(|(l, _)| {
                let height = l.meter.lock().ok().and_then(|m| m.size).map(|s| s.height);
                (l.rid.clone(), height)
            })
            .collect()
    }

    /// The bitrate of the layer forwarded by default (a track without layers: its only one).
    pub fn bitrate(&self, now: Instant) -> u64 {
        self.selected().map_or(0, |l| l.reading(now).bitrate)
    }

    /// The generation to write forwarded packets with.
    pub fn generation(&self) -> usize {
        self.generation.load(Ordering::Relaxed)
    }

    /// Measures a packet of `layer` and says what to do with it. `cursor` is the layer
    /// task's own: when it last looked at the choice, and whether it was forwarding.
    pub fn on_packet(&self, layer: &Layer, packet: &Packet, cursor: &mut Cursor) -> Verdict {
        let now = Instant::now();
        let (first, new_size) = match layer.meter.lock() {
            Ok(mut m) => (m.last.is_none(), m.on_packet(now, packet, self.video)),
            Err(_) => (false, false),
        };
        if first || new_size || cursor.recheck.is_none_or(|t| now >= t) {
            cursor.recheck = Some(now + RECHECK);
            self.rechoose(now);
        }
        let forwarding = layer.selected.load(Ordering::Relaxed);
        let generation = self.generation();
        let was = std::mem::replace(&mut cursor.forwarding, forwarding);
        // Another layer may have been forwarded in between, unseen by this task.
        let same = std::mem::replace(&mut cursor.generation, generation) == generation;
        match (forwarding, was && same) {
            (false, _) => Verdict::Skip,
            (true, false) => Verdict::Switched,
            (true, true) => Verdict::Forward,
        }
    }

    fn rechoose(&self, now: Instant) {
        let Ok(mut choice) = self.state.lock() else {
            return;
        };
        let readings = settle(choice.layers.iter().map(|l| l.reading(now)).collect());
        let next = choose(choice.current, &readings);
        self.rerank(&choice.layers, &readings, next);
        if next == choice.current {
            return;
        }
        if let Some(l) = choice.current.and_then(|c| choice.layers.get(c)) {
            l.selected.store(false, Ordering::Relaxed);
        }
        if let Some(l) = next.and_then(|n| choice.layers.get(n)) {
            l.selected.store(true, Ordering::Relaxed);
            tracing::debug!(rid = %l.rid, ssrc = l.ssrc, ?readings, "forwarding layer");
        }
        choice.current = next;
        self.generation.fetch_add(1, Ordering::Relaxed);
    }
}

impl Layers {
    /// Publishes a new ranking if the order, what is live or the choice changed.
    fn rerank(&self, layers: &[Arc<Layer>], readings: &[Reading], chosen: Option<usize>) {
        let mut order: Vec<usize> = (0..layers.len()).collect();
        order.sort_by_key(|&i| (readings[i].area, readings[i].bitrate, std::cmp::Reverse(i)));
        let ranked: Vec<(Arc<Layer>, bool)> = order
            .iter()
            .map(|&i| (layers[i].clone(), readings[i].live))
            .collect();
        let auto = chosen.and_then(|c| layers.get(c)).cloned();
        let Ok(mut current) = self.ranking.lock() else {
            return;
        };
        let same = current.ranked.len() == ranked.len()
            && current
                .ranked
                .iter()
                .zip(&ranked)
                .all(|((a, al), (b, bl))| Arc::ptr_eq(a, b) && al == bl)
            && match (&current.auto, &auto) {
                (Some(a), Some(b)) => Arc::ptr_eq(a, b),
                (None, None) => true,
                _ => false,
            };
        if !same {
            *current = Arc::new(Ranking {
                epoch: current.epoch + 1,
                ranked,
                auto,
            });
        }
    }
}

/// The layers of a track from lowest to highest (by picture size, then bitrate), which are
/// live, and the one forwarded by default. A new one is made whenever any of that changes.
#[derive(Default)]
pub struct Ranking {
    /// Counts the rankings made: a subscriber looks again when it changes.
    pub epoch: u64,
    /// Every layer, lowest first, and whether it is live.
    pub ranked: Vec<(Arc<Layer>, bool)>,
    /// The default choice (see [`choose`]).
    pub auto: Option<Arc<Layer>>,
}

impl Ranking {
    /// The layer for a subscriber that wants at most the layer `cap` (a RID): the highest live
    /// layer ranked no higher than it, else the lowest live one. Without a cap (or with an
    /// unknown RID), the default choice.
    pub fn pick(&self, cap: Option<&str>) -> Option<Arc<Layer>> {
        let Some(limit) = cap.and_then(|rid| self.ranked.iter().position(|(l, _)| l.rid == rid))
        else {
            return self.auto.clone();
        };
        let live = |(l, live): &(Arc<Layer>, bool)| live.then(|| l.clone());
        self.ranked[..=limit]
            .iter()
            .rev()
            .find_map(live)
            .or_else(|| self.ranked[limit..].iter().find_map(live))
    }
}

impl Layer {
    /// This layer's identity: its source id, unique among all layers of all tracks.
    pub fn id(&self) -> usize {
        self.source.id()
    }

    /// Whether an RTP payload of this layer starts a keyframe.
    pub fn is_keyframe(payload: &[u8]) -> bool {
        vp8::keyframe_size(payload).is_some()
    }

    fn reading(&self, now: Instant) -> Reading {
        self.meter.lock().map_or(
            Reading {
                live: false,
                warm: false,
                since: None,
                area: 0,
                bitrate: 0,
            },
            |m| m.reading(now),
        )
    }

    /// The attributes to write this layer's packets with in `generation`.
    pub fn attributes(&self, generation: usize) -> Attributes {
        let mut a = self.source.attributes().clone();
        a.insert(GENERATION_ATTRIBUTE, generation);
        a
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(live: bool, area: u32, bitrate: u64) -> Reading {
        Reading {
            live,
            warm: live,
            since: None,
            area,
            bitrate,
        }
    }

    #[test]
    fn the_biggest_live_picture_is_forwarded() {
        let q = r(true, 320 * 180, 150_000);
        let h = r(true, 640 * 360, 500_000);
        let f = r(true, 1280 * 720, 1_500_000);
        // Whatever the order the layers arrived in.
        assert_eq!(choose(None, &[q, h, f]), Some(2));
        assert_eq!(choose(None, &[f, q, h]), Some(0));
        assert_eq!(
            choose(Some(0), &[q, h, f]),
            Some(2),
            "up as soon as it is seen"
        );
        // f went quiet: the next best, and back once f is live again.
        let f_gone = r(false, 1280 * 720, 1_500_000);
        assert_eq!(choose(Some(2), &[q, h, f_gone]), Some(1));
        assert_eq!(choose(Some(1), &[q, h, f]), Some(2));
        assert_eq!(choose(Some(1), &[r(false, 0, 0); 3]), None, "nothing live");
    }

    #[test]
    fn sizes_outrank_bitrate_and_bitrate_needs_a_clear_lead() {
        // No keyframe seen yet: bitrate decides.
        assert_eq!(choose(None, &[r(true, 0, 100), r(true, 0, 300)]), Some(1));
        // A known size beats a higher bitrate of unknown size.
        assert_eq!(
            choose(Some(1), &[r(true, 1, 100), r(true, 0, 300)]),
            Some(0)
        );
        // Same size: the current keeps its place unless another has 1.5 times its bitrate.
        let cur = r(true, 100, 1000);
        assert_eq!(choose(Some(0), &[cur, r(true, 100, 1400)]), Some(0));
        assert_eq!(choose(Some(0), &[cur, r(true, 100, 1501)]), Some(1));
        // A smaller picture never takes over from a live bigger one.
        assert_eq!(choose(Some(0), &[cur, r(true, 50, 9000)]), Some(0));
        // Ties go to the first.
        assert_eq!(choose(None, &[r(true, 5, 5), r(true, 5, 5)]), Some(0));
        // A current index out of range is no current.
        assert_eq!(choose(Some(7), &[r(true, 5, 5)]), Some(0));
    }

    fn requester(ssrc: u32) -> KeyframeRequester {
        KeyframeRequester::new(std::sync::Weak::new(), ssrc, Arc::default())
    }

    fn vp8_key(w: u16, h: u16) -> Packet {
        let mut payload = vec![0x10, 0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a];
        payload.extend_from_slice(&w.to_le_bytes());
        payload.extend_from_slice(&h.to_le_bytes());
        payload.resize(100, 0);
        Packet {
            payload: payload.into(),
            ..Default::default()
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_layer_is_forwarded_while_it_is_the_best_live_one() {
        let layers = Layers::new(true);
        let q = layers.add("q", 1, requester(1));
        let f = layers.add("f", 3, requester(3));
        let (mut rq, mut rf) = (Cursor::default(), Cursor::default());
        // The first packet of the only layer that has sent anything is forwarded.
        assert_eq!(
            layers.on_packet(&q, &vp8_key(320, 180), &mut rq),
            Verdict::Switched
        );
        assert_eq!(
            layers.on_packet(&q, &vp8_key(320, 180), &mut rq),
            Verdict::Forward
        );
        assert_eq!(layers.selected_ssrc(), Some(1));
        let g = layers.generation();
        // A bigger keyframe takes over at once.
        assert_eq!(
            layers.on_packet(&f, &vp8_key(1280, 720), &mut rf),
            Verdict::Switched
        );
        assert_eq!(
            layers.on_packet(&q, &vp8_key(320, 180), &mut rq),
            Verdict::Skip
        );
        assert_eq!(layers.selected_ssrc(), Some(3));
        assert!(layers.generation() > g);
        // f falls silent: after a second q is forwarded again, then f when it returns.
        tokio::time::advance(SILENCE).await;
        assert_eq!(
            layers.on_packet(&q, &vp8_key(320, 180), &mut rq),
            Verdict::Switched
        );
        assert_eq!(
            layers.on_packet(&f, &vp8_key(1280, 720), &mut rf),
            Verdict::Switched
        );
        // A restarted f replaces the old one and must be seen again.
        let f2 = layers.add("f", 4, requester(4));
        assert_eq!(layers.count(), 2);
        assert_eq!(
            layers.selected_ssrc(),
            Some(1),
            "q at once, not after a silence"
        );
        assert_eq!(
            layers.on_packet(&q, &vp8_key(320, 180), &mut rq),
            Verdict::Switched
        );
        assert_eq!(
            layers.on_packet(&f2, &vp8_key(1280, 720), &mut rf),
            Verdict::Switched
        );
        assert_eq!(layers.selected_ssrc(), Some(4));
    }

    #[tokio::test(start_paused = true)]
    async fn a_layer_back_from_silence_is_forwarded_once_it_has_sent_steadily() {
        let layers = Layers::new(true);
        let q = layers.add("q", 1, requester(1));
        let f = layers.add("f", 3, requester(3));
        let (mut cq, mut cf) = (Cursor::default(), Cursor::default());
        let tick = Duration::from_millis(100);
        // Both start together: nothing is warm yet, so the bigger is forwarded at once.
        layers.on_packet(&q, &vp8_key(320, 180), &mut cq);
        layers.on_packet(&f, &vp8_key(1280, 720), &mut cf);
        assert_eq!(layers.selected_ssrc(), Some(3));
        // f falls silent while q goes on: q is forwarded.
        for _ in 0..12 {
            tokio::time::advance(tick).await;
            layers.on_packet(&q, &vp8_key(320, 180), &mut cq);
        }
        assert_eq!(layers.selected_ssrc(), Some(1));
        // f comes back with a keyframe and stalls (a gap over WARMUP_GAP), then sends on:
        // q stays forwarded until f has sent steadily for WARMUP from the end of the stall.
        assert_eq!(
            layers.on_packet(&f, &vp8_key(1280, 720), &mut cf),
            Verdict::Skip
        );
        tokio::time::advance(Duration::from_millis(600)).await;
        layers.on_packet(&q, &vp8_key(320, 180), &mut cq);
        let restarted = Instant::now();
        while restarted.elapsed() < WARMUP {
            assert_eq!(
                layers.on_packet(&f, &vp8_key(1280, 720), &mut cf),
                Verdict::Skip,
                "f forwarded {:?} into its warm-up",
                restarted.elapsed()
            );
            assert!(
                !layers.readings(Instant::now())[1].2.live,
                "f counts as live to the allocator during its warm-up"
            );
            assert!(layers.ladder(Instant::now()).iter().all(|r| r.rid == "q"));
            tokio::time::advance(tick).await;
            layers.on_packet(&q, &vp8_key(320, 180), &mut cq);
        }
        assert_eq!(
            layers.on_packet(&f, &vp8_key(1280, 720), &mut cf),
            Verdict::Switched
        );
        assert_eq!(layers.ladder(Instant::now()).len(), 2);
        // Once warm, a gap shorter than SILENCE does not take it off.
        tokio::time::advance(Duration::from_millis(600)).await;
        layers.on_packet(&q, &vp8_key(320, 180), &mut cq);
        assert_eq!(
            layers.on_packet(&f, &vp8_key(1280, 720), &mut cf),
            Verdict::Forward
        );
    }

    #[tokio::test(start_paused = true)]
    async fn layers_that_start_a_moment_apart_all_count_at_once() {
        let layers = Layers::new(true);
        let q = layers.add("q", 1, requester(1));
        let h = layers.add("h", 2, requester(2));
        let (mut cq, mut ch) = (Cursor::default(), Cursor::default());
        let tick = Duration::from_millis(100);
        layers.on_packet(&q, &vp8_key(320, 180), &mut cq);
        // h starts 300 ms after q, as a browser's layers do: when q is warm and h not yet,
        // h is still forwarded and never drops out of the ranking.
        for i in 1..20 {
            tokio::time::advance(tick).await;
            layers.on_packet(&q, &vp8_key(320, 180), &mut cq);
            if i >= 3 {
                layers.on_packet(&h, &vp8_key(640, 360), &mut ch);
                assert_eq!(layers.selected_ssrc(), Some(2), "at {} ms", i * 100);
                assert!(layers.ranking().ranked.iter().all(|(_, live)| *live));
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_subscriber_with_a_cap_gets_the_best_layer_under_it() {
        let layers = Layers::new(true);
        let q = layers.add("q", 1, requester(1));
        let h = layers.add("h", 2, requester(2));
        let f = layers.add("f", 3, requester(3));
        let mut c = [Cursor::default(), Cursor::default(), Cursor::default()];
        // Arrival order says nothing: f's keyframe came first.
        layers.on_packet(&f, &vp8_key(1280, 720), &mut c[2]);
        layers.on_packet(&q, &vp8_key(320, 180), &mut c[0]);
        layers.on_packet(&h, &vp8_key(640, 360), &mut c[1]);
        let r = layers.ranking();
        let rid = |l: Option<Arc<Layer>>| l.map(|l| l.rid.clone()).unwrap_or_default();
        let order: Vec<&str> = r.ranked.iter().map(|(l, _)| l.rid.as_str()).collect();
        assert_eq!(order, ["q", "h", "f"]);
        assert_eq!(rid(r.pick(None)), "f");
        assert_eq!(rid(r.pick(Some("h"))), "h");
        assert_eq!(rid(r.pick(Some("q"))), "q");
        assert_eq!(rid(r.pick(Some("x"))), "f", "an unknown RID is no cap");
        // h goes quiet: capped at h means q; f stays on f.
        tokio::time::advance(SILENCE).await;
        layers.on_packet(&q, &vp8_key(320, 180), &mut c[0]);
        layers.on_packet(&f, &vp8_key(1280, 720), &mut c[2]);
        let r2 = layers.ranking();
        assert!(
            r2.epoch > r.epoch,
            "a change of what is live is a new ranking"
        );
        assert_eq!(rid(r2.pick(Some("h"))), "q");
        assert_eq!(rid(r2.pick(Some("f"))), "f");
        // Only f live: a subscriber capped below it still gets something.
        tokio::time::advance(SILENCE).await;
        layers.on_packet(&f, &vp8_key(1280, 720), &mut c[2]);
        assert_eq!(rid(layers.ranking().pick(Some("q"))), "f");
        // Nothing changed: the same ranking, no new epoch.
        let e = layers.ranking().epoch;
        layers.on_packet(&f, &vp8_key(1280, 720), &mut c[2]);
        assert_eq!(layers.ranking().epoch, e);
    }

    #[test]
    fn a_tile_gets_the_smallest_layer_at_least_nine_tenths_its_height() {
        let h = [Some(180), Some(360), Some(720)];
        assert_eq!(layer_for_tile(&h, 180), Some(0));
        assert_eq!(layer_for_tile(&h, 200), Some(0), "180 ≥ 0.9 × 200");
        assert_eq!(layer_for_tile(&h, 201), Some(1));
        assert_eq!(layer_for_tile(&h, 400), Some(1));
        assert_eq!(layer_for_tile(&h, 401), Some(2));
        assert_eq!(layer_for_tile(&h, 2160), Some(2), "nothing bigger: the top");
        assert_eq!(
            layer_for_tile(&[Some(180), None], 100),
            None,
            "not sized yet"
        );
        assert_eq!(layer_for_tile(&[], 100), None, "no layer live");
    }
}
