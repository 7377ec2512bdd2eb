//! Which layer of each video a subscriber gets, so that everything it receives fits its
//! downlink estimate (`bwe`). Pure: the peer gathers the tracks and applies the answer.
//!
//! The rule (LiveKit's and mediasoup's shape): what cannot be paused — audio, and video sent
//! without layers — is taken off the estimate first. Then, in order of importance (a screen
//! share, then the camera of whoever speaks, then the rest, each in the order given), every
//! video gets its lowest layer if it fits, else is paused; then, round after round, each in
//! that order steps up one layer while the total stays within the estimate. A paused video
//! is thus the first to come back when room appears, and bandwidth is spread — everyone's
//! second layer before anyone's third.
//!
//! A step above the layer a video is on now must fit with [`UP_MARGIN`] to spare: measured
//! bitrates move with the picture, and a step taken on a good second and undone on the next
//! shows as flicker. The other way, a running video is paused only when its lowest layer
//! overshoots by more than [`PAUSE_SLACK`]; and while any video is paused, none steps up.

/// How much a track matters, most first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Priority {
    /// A screen share.
    Screen,
    /// The camera of someone speaking.
    Speaker,
    /// Any other video.
    Other,
}

/// One video the subscriber receives, as the allocator sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Video {
    /// How much it matters.
    pub priority: Priority,
    /// Its live layers' bitrates, lowest layer first.
    pub layers: Vec<u64>,
    /// The layer it gets now (an index into `layers`), if any.
    pub current: Option<usize>,
}

/// A step up needs this share of the estimate to spare, in percent.
pub const UP_MARGIN: u64 = 10;

/// A video already running stays on its lowest layer while that overshoots the estimate by
/// at most this share of it, in percent: the estimate after congestion is 0.85 of what the
/// link carried (room for its queue to drain), and a frozen picture is worse than a queue.
pub const PAUSE_SLACK: u64 = 15;

/// The layer each video gets (an index into its `layers`; `None`: paused), for an estimate
/// of `budget` bits per second of which `fixed` go to what cannot be paused.
pub fn allocate(budget: u64, fixed: u64, videos: &[Video]) -> Vec<Option<usize>> {
    let mut order: Vec<usize> = (0..videos.len()).collect();
    // Stable: equals keep the order given.
    order.sort_by_key(|&i| videos[i].priority);
    let mut left = budget.saturating_sub(fixed);
    let mut chosen: Vec<Option<usize>> = vec![None; videos.len()];
    let cost = |v: &Video, layer: usize| -> u64 {
        let rate = v.layers[layer];
        match v.current {
            Some(c) if layer > c => rate + rate * UP_MARGIN / 100,
            _ => rate,
        }
    };
    let mut slack = budget * PAUSE_SLACK / 100;
    let mut paused = false;
    for &i in &order {
        let v = &videos[i];
        let Some(&lowest) = v.layers.first() else {
            continue;
        };
        if cost(v, 0) <= left {
            left -= lowest;
        } else if v.current.is_some() && lowest <= left + slack {
            // Running: kept on a little over the estimate rather than frozen.
            slack -= lowest - left;
            left = 0;
        } else {
            paused = true;
            continue;
        }
        chosen[i] = Some(0);
    }
    // What room there is goes to a paused video first: none steps up meanwhile.
    if paused {
        return chosen;
    }
    loop {
        let mut stepped = false;
        for &i in &order {
            let v = &videos[i];
            let Some(at) = chosen[i] else { continue };
            if at + 1 >= v.layers.len() {
                continue;
            }
            let extra = cost(v, at + 1).saturating_sub(v.layers[at]);
            if extra <= left {
                left -= v.layers[at + 1].saturating_sub(v.layers[at]);
                chosen[i] = Some(at + 1);
                stepped = true;
            }
        }
        if !stepped {
            return chosen;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn video(priority: Priority, layers: &[u64]) -> Video {
        Video {
            priority,
            layers: layers.to_vec(),
            current: None,
        }
    }

    const CAMERA: [u64; 3] = [150_000, 500_000, 1_500_000];

    #[test]
    fn plenty_gives_everyone_the_top_layer() {
        let v = vec![video(Priority::Other, &CAMERA); 3];
        assert_eq!(allocate(10_000_000, 100_000, &v), vec![Some(2); 3]);
    }

    #[test]
    fn second_layers_for_all_before_a_third_for_anyone() {
        let v = vec![video(Priority::Other, &CAMERA); 3];
        // 3 × 500k = 1.5M fits; one more step needs 1M more.
        assert_eq!(allocate(2_000_000, 0, &v), vec![Some(1); 3]);
        // 2.5M: one of them, the first in order, goes to the top.
        assert_eq!(allocate(2_500_000, 0, &v), vec![Some(2), Some(1), Some(1)]);
    }

    #[test]
    fn a_screen_share_and_the_speaker_come_first() {
        let v = vec![
            video(Priority::Other, &CAMERA),
            video(Priority::Speaker, &CAMERA),
            video(Priority::Screen, &[300_000, 1_200_000]),
        ];
        // 1.2M + 500k + 150k = 1.85M: the share at its top, the speaker second layer.
        assert_eq!(allocate(1_900_000, 0, &v), vec![Some(0), Some(1), Some(1)]);
    }

    #[test]
    fn what_does_not_fit_at_its_lowest_is_paused_and_audio_is_taken_first() {
        let v = vec![video(Priority::Other, &CAMERA); 3];
        // 400k minus 100k of audio: two lowest layers fit, the third is paused.
        assert_eq!(allocate(400_000, 100_000, &v), vec![Some(0), Some(0), None]);
        assert_eq!(allocate(50_000, 100_000, &v), vec![None; 3]);
        // With one paused, the 100k left is not spent on a step up.
        let small_steps = vec![video(Priority::Other, &[300_000, 400_000]); 3];
        assert_eq!(
            allocate(700_000, 0, &small_steps),
            vec![Some(0), Some(0), None]
        );
        // A video with no live layer gets nothing, and costs nothing.
        let mut w = v.clone();
        w[0].layers.clear();
        assert_eq!(allocate(400_000, 100_000, &w), vec![None, Some(0), Some(0)]);
    }

    #[test]
    fn a_running_video_is_kept_a_little_over_the_estimate_but_not_started() {
        let mut v = vec![video(Priority::Other, &CAMERA); 3];
        // 3 × 150k = 450k against 420k: new ones do not all start…
        assert_eq!(allocate(420_000, 0, &v), vec![Some(0), Some(0), None]);
        // …running ones are not stopped for 7 %…
        for x in &mut v {
            x.current = Some(1);
        }
        assert_eq!(allocate(420_000, 0, &v), vec![Some(0); 3]);
        // …but are for 30 %.
        assert_eq!(allocate(350_000, 0, &v), vec![Some(0), Some(0), None]);
    }

    #[test]
    fn a_step_up_needs_a_margin_but_staying_does_not() {
        let mut v = vec![video(Priority::Other, &CAMERA)];
        // On the lowest layer: 510k is not 500k + 10 %.
        v[0].current = Some(0);
        assert_eq!(allocate(510_000, 0, &v), vec![Some(0)]);
        assert_eq!(allocate(560_000, 0, &v), vec![Some(1)]);
        // Already on the second: it stays as long as it fits at all.
        v[0].current = Some(1);
        assert_eq!(allocate(510_000, 0, &v), vec![Some(1)]);
        assert_eq!(allocate(490_000, 0, &v), vec![Some(0)]);
    }
}
