//! Dynacast: the layers of this peer's simulcast camera that no subscriber needs are turned
//! off at the browser (`layersWanted`), sparing its CPU and uplink; a layer someone needs
//! again is turned back on at once.
//!
//! What a subscriber needs is what its tile needs (`allocation` sets it on the track's
//! binding), not what its link carries: a layer a weak link cannot take may fit a moment
//! later, and the allocator can only pick among layers that are sent. Everything from the
//! lowest layer up to the highest any subscriber needs stays on, so a subscriber held lower
//! by its link still has its layer. Fewer layers are asked for only after [`LOWER_AFTER`] of
//! needing fewer (a tile resized back and forth, someone leaving and rejoining, do not
//! restart encoders); more at the next look, every allocation interval.

use protocol::{ServerMediaEvent, SIMULCAST_RIDS};
use tokio::time::{Duration, Instant};
use tracing::debug;

use super::Peer;
use crate::simulcast::Cap;

/// How long fewer layers must be needed before the publisher is told to stop the others.
pub const LOWER_AFTER: Duration = Duration::from_secs(5);

/// One published simulcast track's dynacast state.
#[derive(Debug, Default)]
pub(super) struct Dynacast {
    /// How many layers (lowest first) the client was told to send; `None`: not told, so all.
    on: Option<usize>,
    /// Since when fewer layers are needed, and the most needed since.
    lowering: Option<(Instant, usize)>,
}

impl Dynacast {
    /// Takes how many of the `total` layers are `needed` at `now`; returns how many the
    /// client should now send, when that changed.
    fn update(&mut self, now: Instant, needed: usize, total: usize) -> Option<usize> {
        let needed = needed.min(total);
        let on = self.on.unwrap_or(total);
        if needed >= on {
            self.lowering = None;
            return (needed > on).then(|| {
                self.on = Some(needed);
                needed
            });
        }
        let (since, most) = self.lowering.get_or_insert((now, needed));
        *most = (*most).max(needed);
        if now.duration_since(*since) < LOWER_AFTER {
            return None;
        }
        let to = *most;
        self.lowering = None;
        self.on = Some(to);
        Some(to)
    }
}

/// How many layers, lowest first, the `needs` of a track's subscribers take, of layers whose
/// RIDs are `ranked` (lowest first): up to the highest any of them needs.
fn needed_layers(ranked: &[String], needs: &[Cap]) -> usize {
    needs
        .iter()
        .map(|need| match need {
            Cap::Auto => ranked.len(),
            Cap::AtMost(rid) => ranked
                .iter()
                .position(|r| r == rid)
                .map_or(ranked.len(), |i| i + 1),
            Cap::Paused => 0,
        })
        .max()
        .unwrap_or(0)
}

impl Peer {
    /// Tells the client which layers of its simulcast tracks anyone needs, when that changed.
    pub(super) fn dynacast(&mut self, now: Instant) {
        let mut told = Vec::new();
        let span = self.span.clone();
        for uplink in &mut self.uplinks {
            let Some(published) = uplink.published.as_mut() else {
                continue;
            };
            let (track, Some(local_id)) = (&published.track, &published.local_id) else {
                continue;
            };
            if !track.is_layered() {
                continue;
            }
            let ranked: Vec<String> = track
                .layers
                .heights()
                .into_iter()
                .map(|(rid, _)| rid)
                .collect();
            if ranked.is_empty() {
                continue;
            }
            let needed = needed_layers(&ranked, &track.layer_needs());
            let Some(count) = published.dynacast.update(now, needed, ranked.len()) else {
                continue;
            };
            // All of them: also any the browser has not sent yet.
            let rids: Vec<String> = if count >= ranked.len() {
                SIMULCAST_RIDS.iter().map(|r| r.to_string()).collect()
            } else {
                ranked[..count].to_vec()
            };
            debug!(parent: &span, track = %track.id, ?rids, "layers wanted");
            told.push(ServerMediaEvent::LayersWanted {
                track_id: local_id.clone(),
                rids,
            });
        }
        for event in told {
            self.out.media(event);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rids() -> Vec<String> {
        ["q", "h", "f"].map(String::from).to_vec()
    }

    #[test]
    fn the_highest_need_counts_and_everything_below_it() {
        let at_most = |r: &str| Cap::AtMost(r.into());
        assert_eq!(needed_layers(&rids(), &[]), 0, "nobody");
        assert_eq!(needed_layers(&rids(), &[Cap::Paused, Cap::Paused]), 0);
        assert_eq!(needed_layers(&rids(), &[at_most("q"), Cap::Paused]), 1);
        assert_eq!(needed_layers(&rids(), &[at_most("q"), at_most("h")]), 2);
        assert_eq!(needed_layers(&rids(), &[at_most("q"), Cap::Auto]), 3);
        // A layer not (yet) seen: the top is the safe guess.
        assert_eq!(needed_layers(&rids(), &[at_most("x")]), 3);
    }

    #[test]
    fn fewer_layers_after_five_seconds_more_at_once() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut d = Dynacast::default();
        assert_eq!(d.update(t0, 3, 3), None, "all on, as the browser starts");
        // One small tile: q alone, but only after five seconds of it.
        assert_eq!(d.update(t0 + s(1), 1, 3), None);
        assert_eq!(d.update(t0 + s(5), 1, 3), None);
        assert_eq!(d.update(t0 + s(6), 1, 3), Some(1));
        assert_eq!(d.update(t0 + s(7), 1, 3), None);
        // A big tile: everything at once.
        assert_eq!(d.update(t0 + s(8), 3, 3), Some(3));
        // Needs that dip and come back within the wait change nothing.
        assert_eq!(d.update(t0 + s(9), 0, 3), None);
        assert_eq!(d.update(t0 + s(12), 3, 3), None);
        assert_eq!(d.update(t0 + s(18), 3, 3), None);
        // A wait lowers to the most needed during it.
        assert_eq!(d.update(t0 + s(20), 0, 3), None);
        assert_eq!(d.update(t0 + s(22), 2, 3), None);
        assert_eq!(d.update(t0 + s(24), 0, 3), None);
        assert_eq!(d.update(t0 + s(25), 0, 3), Some(2));
        // Nobody at all for long enough: nothing.
        assert_eq!(d.update(t0 + s(26), 0, 3), None);
        assert_eq!(d.update(t0 + s(31), 0, 3), Some(0));
        assert_eq!(
            d.update(t0 + s(32), 1, 3),
            Some(1),
            "a viewer: back at once"
        );
    }
}
