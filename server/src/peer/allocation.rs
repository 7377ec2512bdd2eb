//! Fitting what a subscriber receives to its downlink: every [`ALLOCATION_INTERVAL`], and at
//! once when the estimate goes down, the `allocator` picks a layer for each simulcast video
//! this peer receives from its connection's estimate (`transport_cc`, `bwe`), and each
//! slot's track is capped to it — or paused for this peer when even its lowest layer does
//! not fit. Audio and video without layers are counted, never paused. A tile size from the
//! page (`setTileSizes`) caps a video at the layer the tile needs (`layers::layer_for_tile`),
//! and a hidden tile's video is paused.

use std::sync::atomic::Ordering;
use std::time::Duration;

use std::collections::BTreeMap;

use protocol::{ErrorCode, ServerMediaEvent, TileSize, TrackId, TrackSource};
use tokio::time::Instant;
use tracing::debug;
use webrtc::rtp_transceiver::rtp_codec::RTPCodecType;

use super::{Peer, Refusal};
use crate::allocator::{allocate, Priority, Video};
use crate::layers::layer_for_tile;
use crate::simulcast::Cap;

/// How often the layers are fitted to the estimate.
pub const ALLOCATION_INTERVAL: Duration = Duration::from_millis(500);

impl Peer {
    /// Caps each simulcast video this peer receives to what its downlink carries and its
    /// tile needs.
    pub async fn allocate(&mut self, now: Instant) {
        self.next_allocation = Some(now + ALLOCATION_INTERVAL);
        let estimate = self.downlink.estimate(now);
        let speakers: Vec<_> = self
            .slots
            .iter()
            .filter_map(|s| s.current())
            .filter(|t| t.kind == RTPCodecType::Audio && t.speaking.load(Ordering::Relaxed))
            .map(|t| t.publisher.clone())
            .collect();
        let mut fixed = 0;
        // Per simulcast slot: its index, its live layers' RIDs, and what the allocator sees.
        let mut layered: Vec<(usize, Vec<String>)> = Vec::new();
        let mut videos: Vec<Video> = Vec::new();
        // Slots whose tile is hidden: paused whatever the estimate.
        let mut hidden: Vec<usize> = Vec::new();
        for (i, slot) in self.slots.iter().enumerate() {
            let Some(track) = slot.current() else {
                continue;
            };
            let Some(ssrc) = slot.ssrc.filter(|_| track.is_layered()) else {
                fixed += track.layers.bitrate(now);
                continue;
            };
            track.set_layer_need(ssrc, need_of(slot.tile, &track.layers.heights()));
            if slot.tile.is_some_and(|t| t.width == 0 || t.height == 0) {
                hidden.push(i);
                continue;
            }
            let mut ladder = track.layers.ladder(now);
            // No bigger a layer than the tile needs.
            if let Some(tile) = slot.tile {
                let heights: Vec<Option<u16>> = ladder.iter().map(|r| r.height).collect();
                if let Some(top) = layer_for_tile(&heights, tile.height) {
                    ladder.truncate(top + 1);
                }
            }
            let (rids, rates): (Vec<String>, Vec<u64>) =
                ladder.into_iter().map(|r| (r.rid, r.bitrate)).unzip();
            let current = match &slot.cap {
                Cap::Auto => rids.len().checked_sub(1),
                Cap::AtMost(rid) => rids.iter().position(|r| r == rid),
                Cap::Paused => None,
            };
            let priority = if track.metadata().source == TrackSource::Screen {
                Priority::Screen
            } else if speakers.contains(&track.publisher) {
                Priority::Speaker
            } else {
                Priority::Other
            };
            videos.push(Video {
                priority,
                layers: rates,
                current,
            });
            layered.push((i, rids));
        }
        let chosen: Vec<Option<usize>> = match estimate {
            Some(budget) => allocate(budget, fixed, &videos),
            None => videos
                .iter()
                .map(|v| v.layers.len().checked_sub(1))
                .collect(),
        };
        // Reported paused: only what the link has no room for (a hidden tile is the page's
        // own doing, and its label says "slow connection").
        let mut paused = Vec::new();
        let mut caps: Vec<(usize, Cap, bool)> = hidden
            .into_iter()
            .map(|i| (i, Cap::Paused, false))
            .collect();
        for ((i, rids), choice) in layered.into_iter().zip(chosen) {
            let limited = self.slots[i].tile.is_some();
            let cap = match choice {
                // Nothing limits it: the track's own choice.
                Some(_) if estimate.is_none() && !limited => Cap::Auto,
                Some(k) => Cap::AtMost(rids[k].clone()),
                // Nothing live to send: nothing to pause either.
                None if rids.is_empty() => Cap::Auto,
                None => Cap::Paused,
            };
            caps.push((i, cap, true));
        }
        for (i, cap, by_link) in caps {
            let span = &self.span;
            let slot = &mut self.slots[i];
            if by_link && cap == Cap::Paused {
                if let Some(t) = slot.current() {
                    paused.push(t.id.clone());
                }
            }
            if slot.cap == cap {
                continue;
            }
            let (Some(track), Some(ssrc)) = (slot.current(), slot.ssrc) else {
                continue;
            };
            debug!(parent: span, track = %track.id, ?cap, ?estimate, fixed, tile = ?slot.tile, "layer allocation");
            if track.set_layer_cap(ssrc, cap.clone()) {
                slot.cap = cap;
            }
        }
        self.downlink.paused.store(paused.len(), Ordering::Relaxed);
        self.tell_downlink(now, estimate, paused);
        // What this peer publishes, now that its subscribers' needs are fresh.
        self.dynacast(now);
    }

    /// Tells the client its estimate and paused videos when they changed: at once for a pause
    /// or a resumption, at most every [`REPORT_INTERVAL`] for the estimate moving by over a
    /// tenth.
    fn tell_downlink(&mut self, now: Instant, estimate: Option<u64>, paused: Vec<TrackId>) {
        let due = match &self.told_downlink {
            None => estimate.is_some() || !paused.is_empty(),
            Some(told) => {
                told.paused != paused
                    || (now.duration_since(told.at) >= REPORT_INTERVAL
                        && moved(told.estimate, estimate))
            }
        };
        if !due {
            return;
        }
        self.out.media(ServerMediaEvent::Downlink {
            estimate,
            paused_track_ids: paused.clone(),
        });
        self.told_downlink = Some(Told {
            at: now,
            estimate,
            paused,
        });
    }
}

impl Peer {
    /// Takes the page's tile sizes for the videos this peer receives; they apply at the next
    /// allocation, made at once. A track this peer does not receive is refused by name (the
    /// others still apply).
    pub fn set_tile_sizes(&mut self, sizes: BTreeMap<TrackId, TileSize>) -> Result<(), Refusal> {
        let mut unknown = Vec::new();
        for (track_id, size) in sizes {
            match self
                .slots
                .iter_mut()
                .find(|s| s.current().is_some_and(|t| t.id == track_id))
            {
                Some(slot) => slot.tile = Some(size),
                None if self.unsubscribed.contains(&track_id) => {}
                None => unknown.push(track_id),
            }
        }
        if self.simulcast {
            self.next_allocation = Some(Instant::now());
        }
        if unknown.is_empty() {
            return Ok(());
        }
        Err(Refusal {
            code: ErrorCode::InvalidField,
            message: format!("sizes: not a video you receive: {}", unknown.join(", ")),
        })
    }
}

impl Peer {
    /// Remembers a track just unsubscribed, so that a tile size sent before the client heard
    /// of it is ignored, not refused.
    pub(super) fn forget_tile(&mut self, track_id: &str) {
        if self.unsubscribed.len() == STALE_TRACKS {
            self.unsubscribed.pop_front();
        }
        self.unsubscribed.push_back(track_id.to_owned());
    }
}

/// How many lately unsubscribed tracks a tile size may still name without an error.
pub(super) const STALE_TRACKS: usize = 32;

/// The most a tile needs of a track whose layers (lowest first) are `heights`, whatever the
/// link (for dynacast): nothing when hidden, the layer `layer_for_tile` picks when sized,
/// else the top.
fn need_of(tile: Option<TileSize>, heights: &[(String, Option<u16>)]) -> Cap {
    let Some(tile) = tile else {
        return Cap::Auto;
    };
    if tile.width == 0 || tile.height == 0 {
        return Cap::Paused;
    }
    let only: Vec<Option<u16>> = heights.iter().map(|(_, h)| *h).collect();
    match layer_for_tile(&only, tile.height) {
        Some(i) if i + 1 < heights.len() => Cap::AtMost(heights[i].0.clone()),
        _ => Cap::Auto,
    }
}

/// What the client was last told of its downlink.
#[derive(Debug)]
pub(super) struct Told {
    at: Instant,
    estimate: Option<u64>,
    paused: Vec<TrackId>,
}

/// The estimate is reported again at most this often.
const REPORT_INTERVAL: Duration = Duration::from_secs(2);

/// Whether an estimate changed enough to be worth telling: by over a tenth, or to or from
/// "no limit".
fn moved(before: Option<u64>, now: Option<u64>) -> bool {
    match (before, now) {
        (Some(a), Some(b)) => a.abs_diff(b) * 10 > a,
        (a, b) => a.is_some() != b.is_some(),
    }
}

#[cfg(test)]
mod tests {
    use super::moved;

    #[test]
    fn an_estimate_is_told_again_when_it_moves_by_a_tenth_or_to_or_from_no_limit() {
        assert!(!moved(Some(1_000_000), Some(1_090_000)));
        assert!(moved(Some(1_000_000), Some(1_110_000)));
        assert!(moved(Some(1_000_000), Some(850_000)));
        assert!(moved(None, Some(850_000)));
        assert!(moved(Some(850_000), None));
        assert!(!moved(None, None));
    }
}
