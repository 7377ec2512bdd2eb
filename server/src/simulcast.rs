//! The layered local track: what a subscriber's sender is bound to for a simulcast camera.
//! It is fed every layer's packets and writes to each subscriber only those of the layer that
//! subscriber is on, switching layer only where the new one starts a keyframe, so a change of
//! layer shows as a change of sharpness and nothing else: no frozen or broken frame.
//!
//! Each binding (one per subscriber sender, keyed by the SSRC that subscriber receives) has a
//! current layer, a target (from the track's [`Ranking`], capped by the subscriber's own
//! choice), and a generation bumped at every switch. Sequence numbers and timestamps stay
//! continuous across switches; both are rewritten by the `nack` interceptor below, which is
//! also where retransmissions are answered: this track only says, with each packet, which
//! layer and generation it belongs to and the timestamp offset of that generation.
//!
//! Timestamps follow Janus: the new layer's first packet goes out at the last timestamp sent
//! plus the wall-clock time since it (90 kHz), not by sender reports' NTP mapping as mediasoup
//! does. Sender reports arrive only every second or so and a layer that just started may have
//! none yet; elapsed time is always known, and off by at most the send jitter, which the
//! receiver's jitter buffer absorbs.

use std::any::Any;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use tokio::time::Instant;
use webrtc::interceptor::Attributes;
use webrtc::rtp::packet::Packet;
use webrtc::rtp_transceiver::rtp_codec::{
    RTCRtpCodecCapability, RTCRtpCodecParameters, RTPCodecType,
};
use webrtc::track::track_local::{TrackLocal, TrackLocalContext, TrackLocalWriter};

use crate::layers::{Layer, Layers, Ranking};
use crate::nack::{RENUMBER_ATTRIBUTE, TIMESTAMP_OFFSET_ATTRIBUTE};
use crate::vp8::{self, Numbers, Renumber};

/// The RTP clock of video.
const VIDEO_CLOCK_HZ: u64 = 90_000;

/// A binding waiting to switch asks for the keyframe again this often: a request can be lost,
/// and browsers send no keyframe unasked.
const KEYFRAME_RETRY: Duration = Duration::from_secs(1);

/// Which way a switch went, for the metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Switch {
    /// The binding's first layer.
    First,
    /// To a bigger layer.
    Up,
    /// To a smaller layer.
    Down,
    /// Stopped: the subscriber's link has no room for it.
    Paused,
    /// Back after a pause.
    Resumed,
}

/// Why a binding's target changed, for the metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Cause {
    /// The publisher's layers changed (one started, stopped or was measured anew).
    #[default]
    Publisher,
    /// The subscriber's cap changed (its downlink estimate, see `allocator`).
    Bandwidth,
}

/// What a subscriber may receive of a simulcast track.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Cap {
    /// The track's own choice (nothing limits the subscriber).
    #[default]
    Auto,
    /// At most the layer with this RID (the highest live one not above it).
    AtMost(String),
    /// Nothing: the video is paused for this subscriber.
    Paused,
}

/// A simulcast track's local side: one binding per subscriber sender.
pub struct LayeredTrack {
    codec: RTCRtpCodecCapability,
    /// VP8: the codec whose descriptor numbering a switch keeps continuous (decided once).
    vp8: bool,
    id: String,
    stream_id: String,
    bindings: Mutex<Vec<Arc<Binding>>>,
}

/// One subscriber sender bound to the track.
struct Binding {
    /// The crate's id for this binding (unbind names it).
    id: String,
    ssrc: u32,
    payload_type: u8,
    write_stream: Arc<dyn TrackLocalWriter + Send + Sync>,
    /// The sender's pause flag (the crate's own atomic type, read through this).
    paused: Box<dyn Fn() -> bool + Send + Sync>,
    state: Mutex<BindingState>,
}

/// Where one subscriber is.
#[derive(Default)]
struct BindingState {
    /// The layer being sent, by layer id.
    current: Option<usize>,
    /// The layer wanted next; switched to at its next keyframe.
    target: Option<usize>,
    /// What the subscriber may receive.
    cap: Cap,
    /// The cap changed since the target was last picked.
    cap_changed: bool,
    /// The most the subscriber's tile needs, whatever its link (dynacast reads it):
    /// [`Cap::Auto`] the top layer, [`Cap::Paused`] nothing.
    need: Cap,
    /// Why the target last changed.
    cause: Cause,
    /// Paused by its cap: the next layer sent is a resumption.
    paused: bool,
    /// The ranking the target was taken from.
    epoch: Option<u64>,
    /// Bumped at every switch; written with each packet.
    generation: usize,
    /// Added to the current layer's timestamps.
    timestamp_offset: u32,
    /// The last timestamp sent, after the offset, and when.
    last_sent: Option<(u32, Instant)>,
    /// Applied to the current layer's VP8 descriptors.
    renumber: Renumber,
    /// The VP8 numbers last sent, renumbered.
    last_numbers: Option<Numbers>,
    /// The attributes packets of this generation are written with.
    attributes: Arc<Attributes>,
    /// When a keyframe of the target was last asked for, while waiting to switch.
    asked: Option<Instant>,
}

impl LayeredTrack {
    /// A track with no subscribers yet.
    pub fn new(codec: RTCRtpCodecCapability, id: String, stream_id: String) -> Self {
        LayeredTrack {
            vp8: codec.mime_type.eq_ignore_ascii_case("video/vp8"),
            codec,
            id,
            stream_id,
            bindings: Mutex::default(),
        }
    }

    fn bindings(&self) -> Vec<Arc<Binding>> {
        self.bindings.lock().map(|b| b.clone()).unwrap_or_default()
    }

    /// Sets what the subscriber receiving `ssrc` may receive. False if no binding has that
    /// SSRC.
    pub fn set_cap(&self, ssrc: u32, cap: Cap) -> bool {
        let Some(b) = self.bindings().into_iter().find(|b| b.ssrc == ssrc) else {
            return false;
        };
        if let Ok(mut st) = b.state.lock() {
            if st.cap != cap {
                st.cap = cap;
                st.cap_changed = true;
                // Look again at the next packet.
                st.epoch = None;
            }
        }
        true
    }

    /// Sets the most the subscriber receiving `ssrc` needs of the track (its tile's size,
    /// not its link). False if no binding has that SSRC.
    pub fn set_need(&self, ssrc: u32, need: Cap) -> bool {
        let Some(b) = self.bindings().into_iter().find(|b| b.ssrc == ssrc) else {
            return false;
        };
        if let Ok(mut st) = b.state.lock() {
            st.need = need;
        }
        true
    }

    /// What each subscriber needs (see [`set_need`](Self::set_need)).
    pub fn needs(&self) -> Vec<Cap> {
        self.bindings()
            .iter()
            .filter_map(|b| b.state.lock().ok().map(|st| st.need.clone()))
            .collect()
    }

    /// The layer the subscriber receiving `ssrc` needs a keyframe of: the one it waits to
    /// switch to, else the one it is on.
    pub fn keyframe_layer(&self, ssrc: u32, layers: &Layers) -> Option<Arc<Layer>> {
        let b = self.bindings().into_iter().find(|b| b.ssrc == ssrc)?;
        let id = b
            .state
            .lock()
            .ok()
            .and_then(|st| st.target.or(st.current))?;
        layers
            .ranking()
            .ranked
            .iter()
            .find(|(l, _)| l.id() == id)
            .map(|(l, _)| l.clone())
    }

    /// Writes `packet` of `layer` to every binding on that layer, switching those waiting for
    /// it when it starts a keyframe. Returns the switches made and why, for the metrics; asks
    /// publishers for the keyframes bindings wait for.
    pub async fn write(
        &self,
        layer: &Arc<Layer>,
        packet: &Packet,
        ranking: &Ranking,
    ) -> (Vec<(Switch, Cause)>, usize, Option<webrtc::Error>) {
        let keyframe = Layer::is_keyframe(&packet.payload);
        let numbers = if self.vp8 {
            vp8::numbers(&packet.payload)
        } else {
            None
        };
        let now = Instant::now();
        let mut switches = Vec::new();
        // Layers whose keyframe a binding waits for: asked once the locks are released.
        let mut needs: Vec<Arc<Layer>> = Vec::new();
        let mut written = 0;
        let mut error = None;
        for b in self.bindings() {
            if (b.paused)() {
                continue;
            }
            let out = {
                let Ok(mut st) = b.state.lock() else { continue };
                if st.epoch != Some(ranking.epoch) {
                    st.epoch = Some(ranking.epoch);
                    let target_id = match &st.cap {
                        Cap::Auto => ranking.pick(None),
                        Cap::AtMost(rid) => ranking.pick(Some(rid)),
                        Cap::Paused => None,
                    }
                    .map(|l| l.id());
                    if target_id != st.target {
                        st.target = target_id;
                        st.asked = None;
                        st.cause = if st.cap_changed {
                            Cause::Bandwidth
                        } else {
                            Cause::Publisher
                        };
                    }
                    st.cap_changed = false;
                }
                if st.cap == Cap::Paused {
                    if st.current.take().is_some() {
                        st.paused = true;
                        switches.push((Switch::Paused, Cause::Bandwidth));
                    }
                    continue;
                }
                let waiting = st.target.is_some() && st.target != st.current;
                if waiting
                    && st
                        .asked
                        .is_none_or(|t| now.duration_since(t) >= KEYFRAME_RETRY)
                {
                    st.asked = Some(now);
                    let target = ranking
                        .ranked
                        .iter()
                        .find(|(l, _)| Some(l.id()) == st.target);
                    if let Some((t, _)) = target {
                        if !needs.iter().any(|n| n.id() == t.id()) {
                            needs.push(t.clone());
                        }
                    }
                }
                let id = layer.id();
                if st.current != Some(id) {
                    // Another layer's packet: a switch only at the target's keyframe.
                    if st.target != Some(id) || !keyframe {
                        continue;
                    }
                    let switch = st.switch_to(
                        layer,
                        ranking,
                        now,
                        packet.header.timestamp,
                        numbers.as_ref(),
                    );
                    let switch = if std::mem::take(&mut st.paused) {
                        Switch::Resumed
                    } else {
                        switch
                    };
                    switches.push((switch, st.cause));
                }
                let timestamp = packet.header.timestamp.wrapping_add(st.timestamp_offset);
                st.last_sent = Some((timestamp, now));
                if let Some(n) = &numbers {
                    st.last_numbers = Some(st.renumber.numbers(n));
                }
                st.attributes.clone()
            };
            let mut p = packet.clone();
            p.header.ssrc = b.ssrc;
            p.header.payload_type = b.payload_type;
            // The timestamp is left as the layer has it: `nack` adds the offset (see above).
            match b.write_stream.write_rtp_with_attributes(&p, &out).await {
                Ok(_) => written += 1,
                Err(e) => {
                    error.get_or_insert(e);
                }
            }
        }
        for layer in needs {
            layer.keyframes.request().await;
        }
        (switches, written, error)
    }
}

impl BindingState {
    /// Makes `layer` current from its packet with timestamp `raw_timestamp` and VP8 numbers
    /// `numbers`.
    fn switch_to(
        &mut self,
        layer: &Layer,
        ranking: &Ranking,
        now: Instant,
        raw_timestamp: u32,
        numbers: Option<&Numbers>,
    ) -> Switch {
        self.generation += 1;
        self.timestamp_offset = match self.last_sent {
            // Continue from the last timestamp sent, as much later as time is.
            Some((last, at)) => {
                let elapsed =
                    now.duration_since(at).as_micros() as u64 * VIDEO_CLOCK_HZ / 1_000_000;
                last.wrapping_add((elapsed as u32).max(1))
                    .wrapping_sub(raw_timestamp)
            }
            None => 0,
        };
        // Up or down by the ranking of now: sizes may have become known since the last switch.
        let rank = |id: usize| ranking.ranked.iter().position(|(l, _)| l.id() == id);
        let switch = match (self.current.and_then(rank), rank(layer.id())) {
            (Some(was), Some(now)) if now > was => Switch::Up,
            (Some(_), Some(_)) => Switch::Down,
            _ => Switch::First,
        };
        self.current = Some(layer.id());
        let mut a = layer.attributes(self.generation);
        a.insert(TIMESTAMP_OFFSET_ATTRIBUTE, self.timestamp_offset as usize);
        self.renumber = match (&self.last_numbers, numbers) {
            (Some(last), Some(next)) => Renumber::continuing(last, next),
            _ => Renumber::default(),
        };
        if !self.renumber.is_identity() {
            a.insert(RENUMBER_ATTRIBUTE, self.renumber.pack());
        }
        self.attributes = Arc::new(a);
        tracing::debug!(rid = %layer.rid, generation = self.generation, ?switch, "layer switch");
        switch
    }
}

/// The codec among the negotiated ones with this MIME type (compared as the crate does,
/// ignoring case).
fn negotiated(
    codec: &RTCRtpCodecCapability,
    offered: &[RTCRtpCodecParameters],
) -> Option<RTCRtpCodecParameters> {
    offered
        .iter()
        .find(|c| {
            c.capability
                .mime_type
                .eq_ignore_ascii_case(&codec.mime_type)
        })
        .cloned()
}

#[async_trait]
impl TrackLocal for LayeredTrack {
    async fn bind(&self, t: &TrackLocalContext) -> webrtc::error::Result<RTCRtpCodecParameters> {
        let codec = negotiated(&self.codec, t.codec_parameters())
            .ok_or(webrtc::Error::ErrUnsupportedCodec)?;
        let paused = t.paused();
        let binding = Arc::new(Binding {
            id: t.id(),
            ssrc: t.ssrc(),
            payload_type: codec.payload_type,
            write_stream: t.write_stream(),
            paused: Box::new(move || paused.load(Ordering::Relaxed)),
            state: Mutex::default(),
        });
        if let Ok(mut b) = self.bindings.lock() {
            b.push(binding);
        }
        Ok(codec)
    }

    async fn unbind(&self, t: &TrackLocalContext) -> webrtc::error::Result<()> {
        let mut b = self
            .bindings
            .lock()
            .map_err(|_| webrtc::Error::ErrUnbindFailed)?;
        let before = b.len();
        b.retain(|x| x.id != t.id());
        if b.len() == before {
            return Err(webrtc::Error::ErrUnbindFailed);
        }
        Ok(())
    }

    fn id(&self) -> &str {
        &self.id
    }

    fn rid(&self) -> Option<&str> {
        None
    }

    fn stream_id(&self) -> &str {
        &self.stream_id
    }

    fn kind(&self) -> RTPCodecType {
        RTPCodecType::Video
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

impl std::fmt::Debug for LayeredTrack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LayeredTrack")
            .field("id", &self.id)
            .field("bindings", &self.bindings().len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keyframes::KeyframeRequester;

    fn requester(ssrc: u32) -> KeyframeRequester {
        KeyframeRequester::new(std::sync::Weak::new(), ssrc, Arc::default())
    }

    #[tokio::test(start_paused = true)]
    async fn a_switch_continues_the_timestamps_by_the_time_since_the_last_packet() {
        let layers = Layers::new(true);
        let q = layers.add("q", 1, requester(1));
        let f = layers.add("f", 3, requester(3));
        let ranking = Ranking {
            epoch: 1,
            ranked: vec![(q.clone(), true), (f.clone(), true)],
            auto: Some(f.clone()),
        };
        let mut st = BindingState::default();
        let t0 = Instant::now();
        // The first layer keeps its own timestamps.
        assert_eq!(st.switch_to(&f, &ranking, t0, 7_000, None), Switch::First);
        assert_eq!(st.timestamp_offset, 0);
        st.last_sent = Some((7_000, t0));
        // 100 ms later q's keyframe, stamped 555 by q's own clock, goes out 9000 ticks later.
        let later = t0 + Duration::from_millis(100);
        assert_eq!(st.switch_to(&q, &ranking, later, 555, None), Switch::Down);
        assert_eq!(555u32.wrapping_add(st.timestamp_offset), 16_000);
        assert_eq!(st.generation, 2);
        assert_eq!(st.current, Some(q.id()));
        // Across the wrap of either clock, and never the same timestamp twice.
        st.last_sent = Some((u32::MAX - 10, later));
        assert_eq!(st.switch_to(&f, &ranking, later, 20, None), Switch::Up);
        assert_eq!(20u32.wrapping_add(st.timestamp_offset), u32::MAX - 9);
        let a = &st.attributes;
        assert_eq!(
            a.get(&TIMESTAMP_OFFSET_ATTRIBUTE),
            Some(&(st.timestamp_offset as usize))
        );
        assert_eq!(a.get(&crate::nack::GENERATION_ATTRIBUTE), Some(&3));
    }
}
