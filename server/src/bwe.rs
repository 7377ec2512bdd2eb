//! The downlink estimate: how many bits per second one subscriber's link carries, judged from
//! what its transport-wide feedback (TWCC, read by `transport_cc`) says of the packets we sent.
//!
//! The rule is loss-based with a queueing-delay guard, in the spirit of Galène's:
//! - no congestion seen yet: no limit (`None`). Every layer is already on its way to the
//!   server; starting low would show everyone a blurred picture for the ~20 s a ramp from a
//!   few hundred kbit/s takes, to spare the rare weak link a second of loss at the start;
//! - congestion — over 10 % of the packets of the last second (and at least 300 packets)
//!   lost while a queue shows (over 40 ms), or over 25 % lost, or every packet of the
//!   last 0.2 s queued over 120 ms (once per queue: it must be seen drained before it counts
//!   again) — sets the estimate to 0.85 × the rate the receiver
//!   acknowledged (what the link did carry), at most once a second, judging only packets
//!   sent 0.5 s or more after the last decrease: a lower layer takes a keyframe's round trip
//!   to replace a higher one, and until then the queue stays full;
//! - while loss stays under 2 % — or under 10 % with nothing queued (40 ms), the random loss
//!   of a radio link, which a lower rate would not cure — and no hold-off runs, the estimate
//!   grows 8 % a second. It is
//!   not held to the acknowledged rate: a subscriber's layers come in steps, and the next one
//!   must fit before the allocator takes it;
//! - after a decrease the estimate holds for a hold-off, 1 s, doubled (to 8 s) whenever the
//!   decrease followed the last one within 10 s of its hold-off ending — a failed step up —
//!   so a link at its limit is probed ever more rarely, and a fresh congestion after a calm
//!   spell starts from 1 s again.
//!
//! Why loss first and delay only as a guard: on a loaded 2-core machine a starved receiver
//! stamps arrivals late, which looks like queueing; a real queue delays *every* packet, a
//! stall only some, so the delay signal takes the smallest queueing delay of each feedback
//! and needs it high for 0.2 s on end. It earns its place: a link's queue fills (and a
//! layer can be dropped) before the queue overflows into loss.
//!
//! The base one-way delay is the smallest seen in the last 10 s (the clocks of the two ends
//! are unrelated, so only differences mean anything). Where the browser also sends REMB, the
//! estimate is the smaller of the two.
//!
//! Chromium and Firefox both send the feedback this needs (see `transport_cc`).

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

/// The smallest estimate: below it audio alone may not fit, and a probe can still climb.
pub const MIN_ESTIMATE: u64 = 100_000;
/// The largest estimate kept (a growing estimate is not a claim about the link).
pub const MAX_ESTIMATE: u64 = 50_000_000;

/// Growth per second while the link is clean.
const INCREASE_PER_SECOND: f64 = 1.08;
/// The estimate after congestion, as a share of the acknowledged rate.
const DECREASE_FACTOR: f64 = 0.85;
/// Loss under this lets the estimate grow.
const LOSS_LOW: f64 = 0.02;
/// Loss over this is congestion when a queue shows too (over [`QUEUE_LOW`] in the same
/// window): a full queue delays before it drops, while a radio's random loss comes with no
/// queue, and sending less would not cure it.
const LOSS_HIGH: f64 = 0.10;
/// Loss over this is congestion, queue or not (a policer drops without queueing).
const LOSS_SEVERE: f64 = 0.25;
/// Loss is counted over the latest feedback covering at least this long and
/// [`MIN_PACKETS`], looking back at most [`LOSS_HISTORY`]: long enough that random loss of a
/// few percent (a lossy radio link, not a full queue) does not look like 10 % by chance —
/// over 150 packets 5 % random loss reaches 10 % about once in 80 windows, over 300 about
/// once in 30 000.
const LOSS_WINDOW: Duration = Duration::from_secs(1);
/// Fewer packets than this say nothing about loss.
const MIN_PACKETS: u32 = 300;
/// How far back loss is looked for when packets are few.
const LOSS_HISTORY: Duration = Duration::from_secs(3);
/// Loss without queueing (random loss of a radio link) does not stop growth while under
/// [`LOSS_HIGH`] and the queue is under this.
const QUEUE_LOW: Duration = Duration::from_millis(40);
/// The first packets are not judged: sent before the receiver was ready, they are reported
/// lost.
const WARMUP: Duration = Duration::from_secs(1);
/// Queueing delay over this, for [`QUEUE_PERSISTS`], is congestion.
const QUEUE_HIGH: Duration = Duration::from_millis(120);
/// How long every feedback must show [`QUEUE_HIGH`].
const QUEUE_PERSISTS: Duration = Duration::from_millis(200);
/// The window of the smallest one-way delay, the "empty queue" reference.
const BASE_WINDOW: Duration = Duration::from_secs(10);
/// Arrivals are summed in buckets of this many µs of the receiver's time.
const ARRIVAL_BUCKET_US: i64 = 5_000;
/// The acknowledged rate is measured over this much of the receiver's time.
const ACKED_WINDOW: Duration = Duration::from_millis(500);
/// Decreases are at least this far apart: one congestion, one decrease.
const DECREASE_GAP: Duration = Duration::from_secs(1);
/// Packets sent this soon after a decrease are not judged: the subscriber's layers take a
/// keyframe's round trip to come down, and the queue they filled a while to drain.
const SETTLE: Duration = Duration::from_millis(500);
/// The hold-off after a decrease, doubled after each failed step up up to [`HOLD_OFF_MAX`].
const HOLD_OFF_MIN: Duration = Duration::from_secs(1);
const HOLD_OFF_MAX: Duration = Duration::from_secs(8);
/// A decrease this long after the previous hold-off ended still counts as that step's failure.
const FAILED_WITHIN: Duration = Duration::from_secs(10);
/// A REMB value counts for this long.
const REMB_VALID: Duration = Duration::from_secs(5);

/// One packet as a feedback reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivery {
    /// When it was sent.
    pub sent: Instant,
    /// Its size in bytes (RTP header and payload).
    pub size: u32,
    /// Whether, and when, it arrived.
    pub arrival: Arrival,
}

/// What a feedback says of one packet's arrival.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arrival {
    /// Not received.
    Lost,
    /// Received at this time, µs on the receiver's clock.
    At(i64),
    /// Received; no time given.
    Untimed,
}

/// Why the estimate went down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// Too many packets lost.
    Loss,
    /// Packets queued too long.
    Delay,
}

/// One subscriber link's estimate (see the module doc for the rule).
#[derive(Debug)]
pub struct Estimator {
    /// `None` until congestion was first seen.
    estimate: Option<f64>,
    /// The reference point of send times.
    epoch: Option<Instant>,
    last_feedback: Option<Instant>,
    /// Per feedback: when, packets lost, packets reported, and its smallest queueing delay
    /// (µs; 0 when unknown).
    losses: VecDeque<(Instant, u32, u32, i64)>,
    /// Bytes received per [`ARRIVAL_BUCKET_US`] of the receiver's time (µs, the bucket's
    /// first arrival), for the acknowledged rate: 200 entries at most, however many packets.
    arrivals: VecDeque<(i64, u32)>,
    /// The smallest one-way delay (µs) per second of feedback, for the base.
    base: VecDeque<(Instant, i64)>,
    /// Since when every feedback has shown queueing over [`QUEUE_HIGH`].
    queued_since: Option<Instant>,
    /// The latest feedback's smallest queueing delay (µs).
    queue_now: Option<i64>,
    /// Queueing counts as congestion: not from a decrease until the queue was seen drained
    /// (one decrease per queue; a queue that never drains overflows, which is loss).
    delay_armed: bool,
    last_decrease: Option<Instant>,
    hold_until: Option<Instant>,
    hold_off: Duration,
    remb: Option<(Instant, u64)>,
}

impl Default for Estimator {
    fn default() -> Self {
        Estimator {
            estimate: None,
            epoch: None,
            last_feedback: None,
            losses: VecDeque::new(),
            arrivals: VecDeque::new(),
            base: VecDeque::new(),
            queued_since: None,
            queue_now: None,
            delay_armed: true,
            last_decrease: None,
            hold_until: None,
            hold_off: HOLD_OFF_MIN,
            remb: None,
        }
    }
}

impl Estimator {
    /// The estimate in bits per second at `now`; `None` when nothing limits the link.
    pub fn estimate(&self, now: Instant) -> Option<u64> {
        let own = self.estimate.map(|e| e as u64);
        let remb = self
            .remb
            .filter(|(at, _)| now.duration_since(*at) < REMB_VALID)
            .map(|(_, bps)| bps.max(MIN_ESTIMATE));
        match (own, remb) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The rate the receiver acknowledged over the last [`ACKED_WINDOW`] of its time.
    pub fn acknowledged(&self) -> u64 {
        let Some(&(newest, _)) = self.arrivals.back() else {
            return 0;
        };
        let window = ACKED_WINDOW.as_micros() as i64;
        let from = newest - window;
        let bytes: u64 = self
            .arrivals
            .iter()
            .filter(|(at, _)| *at > from)
            .map(|&(_, size)| u64::from(size))
            .sum();
        let oldest = self.arrivals.front().map_or(newest, |(at, _)| *at);
        // Less than a window of history (the start): divide by what there is.
        let span = (newest - oldest).clamp(window / 5, window);
        bytes * 8 * 1_000_000 / span as u64
    }

    /// Takes a REMB value (the receiver's own estimate).
    pub fn on_remb(&mut self, now: Instant, bps: u64) {
        self.remb = Some((now, bps));
    }

    /// Takes one feedback's packets, received at `now`; says why if the estimate went down.
    pub fn on_feedback(&mut self, now: Instant, packets: &[Delivery]) -> Option<Cause> {
        let epoch = *self
            .epoch
            .get_or_insert_with(|| packets.iter().map(|p| p.sent).min().unwrap_or(now).min(now));
        let dt = self
            .last_feedback
            .map_or(Duration::ZERO, |t| now.saturating_duration_since(t))
            .min(Duration::from_secs(1));
        self.last_feedback = Some(now);

        // What was sent before the last decrease took effect says nothing new; nor does what
        // was sent while the connection started.
        let settled = self
            .last_decrease
            .map_or(epoch + WARMUP, |t| (t + SETTLE).max(epoch + WARMUP));
        let judged = |p: &&Delivery| p.sent >= settled;
        let lost = packets
            .iter()
            .filter(judged)
            .filter(|p| p.arrival == Arrival::Lost)
            .count() as u32;
        let reported = packets.iter().filter(judged).count() as u32;
        while self
            .losses
            .front()
            .is_some_and(|(t, ..)| now.saturating_duration_since(*t) > LOSS_HISTORY)
        {
            self.losses.pop_front();
        }

        // One-way delays: the smallest of this feedback, against the smallest of 10 s (every
        // packet counts for that base; only judged ones for the queue now).
        let mut smallest: Option<i64> = None;
        let mut smallest_judged: Option<i64> = None;
        for p in packets {
            let Arrival::At(at) = p.arrival else { continue };
            match self.arrivals.back_mut() {
                Some((start, bytes)) if (0..ARRIVAL_BUCKET_US).contains(&(at - *start)) => {
                    *bytes = bytes.saturating_add(p.size)
                }
                _ => self.arrivals.push_back((at, p.size)),
            }
            let sent_us = p.sent.saturating_duration_since(epoch).as_micros() as i64;
            let owd = at - sent_us;
            smallest = Some(smallest.map_or(owd, |s| s.min(owd)));
            if judged(&p) {
                smallest_judged = Some(smallest_judged.map_or(owd, |s| s.min(owd)));
            }
        }
        if let Some(&(newest, _)) = self.arrivals.back() {
            let keep_from = newest - 2 * ACKED_WINDOW.as_micros() as i64;
            while self.arrivals.front().is_some_and(|(at, _)| *at < keep_from) {
                self.arrivals.pop_front();
            }
        }
        if let Some(owd) = smallest {
            match self.base.back_mut() {
                Some((t, min)) if now.saturating_duration_since(*t) < Duration::from_secs(1) => {
                    *min = (*min).min(owd)
                }
                _ => self.base.push_back((now, owd)),
            }
            while self
                .base
                .front()
                .is_some_and(|(t, _)| now.saturating_duration_since(*t) > BASE_WINDOW)
            {
                self.base.pop_front();
            }
        }
        let mut queued_us = 0;
        if let Some(owd) = smallest_judged {
            let base = self.base.iter().map(|(_, m)| *m).min().unwrap_or(owd);
            queued_us = owd - base;
            self.queue_now = Some(owd - base);
            if owd - base > QUEUE_HIGH.as_micros() as i64 {
                self.queued_since.get_or_insert(now);
            } else {
                self.queued_since = None;
                self.delay_armed = true;
            }
        }

        self.losses.push_back((now, lost, reported, queued_us));
        let loss = self.loss();
        let queued = self.delay_armed
            && self
                .queued_since
                .is_some_and(|t| now.saturating_duration_since(t) >= QUEUE_PERSISTS);
        // Loss is congestion when a queue shows too, or when it is too high to be a radio's.
        let congested_loss = loss.is_some_and(|l| {
            l > LOSS_SEVERE || (l > LOSS_HIGH && self.queue_peak() > QUEUE_LOW.as_micros() as i64)
        });
        let cause = if congested_loss {
            Some(Cause::Loss)
        } else if queued {
            Some(Cause::Delay)
        } else {
            None
        };

        match cause {
            Some(cause)
                if self
                    .last_decrease
                    .is_none_or(|t| now.saturating_duration_since(t) >= DECREASE_GAP) =>
            {
                self.decrease(now);
                Some(cause)
            }
            Some(_) => None,
            None => {
                let unqueued = self
                    .queue_now
                    .is_some_and(|q| q < QUEUE_LOW.as_micros() as i64);
                let clean = loss.is_none_or(|l| l < LOSS_LOW || (l <= LOSS_HIGH && unqueued));
                let held = self.hold_until.is_some_and(|t| now < t);
                if let (true, false, Some(e)) = (clean, held, self.estimate.as_mut()) {
                    *e = (*e * INCREASE_PER_SECOND.powf(dt.as_secs_f64())).min(MAX_ESTIMATE as f64);
                }
                None
            }
        }
    }

    fn decrease(&mut self, now: Instant) {
        let failed_step = match (self.last_decrease, self.hold_until) {
            (Some(_), Some(held)) => now.saturating_duration_since(held) < FAILED_WITHIN,
            _ => false,
        };
        self.hold_off = if failed_step {
            (self.hold_off * 2).min(HOLD_OFF_MAX)
        } else {
            HOLD_OFF_MIN
        };
        let target = (self.acknowledged() as f64 * DECREASE_FACTOR).max(MIN_ESTIMATE as f64);
        self.estimate = Some(self.estimate.map_or(target, |e| e.min(target)));
        self.last_decrease = Some(now);
        self.hold_until = Some(now + self.hold_off);
        // The queue that caused it drains at its own pace: judge afresh.
        self.queued_since = None;
        self.delay_armed = false;
        self.losses.clear();
    }

    /// The largest of the feedbacks' smallest queueing delays (µs) over the window
    /// [`loss`](Self::loss) looks at.
    fn queue_peak(&self) -> i64 {
        let Some(&(newest, ..)) = self.losses.back() else {
            return 0;
        };
        let mut total = 0;
        let mut peak = 0;
        for &(at, _, t, q) in self.losses.iter().rev() {
            total += t;
            peak = peak.max(q);
            if total >= MIN_PACKETS && newest.saturating_duration_since(at) >= LOSS_WINDOW {
                break;
            }
        }
        peak
    }

    /// The share of packets lost over the last [`LOSS_WINDOW`] of feedback (judged ones
    /// only), when there were enough to tell.
    pub fn loss(&self) -> Option<f64> {
        let newest = self.losses.back()?.0;
        let (mut lost, mut total) = (0, 0);
        for &(at, l, t, _) in self.losses.iter().rev() {
            lost += l;
            total += t;
            if total >= MIN_PACKETS && newest.saturating_duration_since(at) >= LOSS_WINDOW {
                break;
            }
        }
        (total >= MIN_PACKETS).then(|| f64::from(lost) / f64::from(total))
    }

    /// The hold-off the next decrease starts from (for tests and logs).
    pub fn hold_off(&self) -> Duration {
        self.hold_off
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A link of `capacity` bits per second with a queue of `queue` and a fixed 20 ms path
    /// delay, fed at the rate the test says, and a receiver that reports every 100 ms: a
    /// closed loop in simulated time, as a subscriber's is.
    struct Link {
        start: Instant,
        capacity: Option<u64>,
        queue: Duration,
        /// When the link is next free, in µs since start.
        free_at: i64,
        /// Sent since the last feedback.
        pending: Vec<Delivery>,
        /// Random loss on the path, whatever the rate, and its dice (xorshift).
        random_loss: f64,
        dice: u64,
    }

    const PACKET: u32 = 1_000;

    impl Link {
        fn new(capacity: Option<u64>) -> Self {
            Link {
                start: Instant::now(),
                capacity,
                queue: Duration::from_millis(200),
                free_at: 0,
                pending: Vec::new(),
                random_loss: 0.0,
                dice: 0x9e37_79b9_7f4a_7c15,
            }
        }

        /// Sends at `rate` for 100 ms starting at `t_ms` and returns the feedback at its end.
        fn run_100ms(&mut self, t_ms: u64, rate: u64) -> (Instant, Vec<Delivery>) {
            let packets = rate / 8 / u64::from(PACKET) / 10;
            for i in 0..packets {
                let sent_us = (t_ms * 1000 + i * 100_000 / packets.max(1)) as i64;
                let sent = self.start + Duration::from_micros(sent_us as u64);
                self.dice ^= self.dice << 13;
                self.dice ^= self.dice >> 7;
                self.dice ^= self.dice << 17;
                let unlucky = ((self.dice >> 11) as f64 / (1u64 << 53) as f64) < self.random_loss;
                let arrival = match self.capacity {
                    _ if unlucky => Arrival::Lost,
                    None => Arrival::At(sent_us + 20_000),
                    Some(c) => {
                        let begin = self.free_at.max(sent_us);
                        if begin - sent_us > self.queue.as_micros() as i64 {
                            Arrival::Lost
                        } else {
                            self.free_at = begin + (i64::from(PACKET) * 8 * 1_000_000) / c as i64;
                            Arrival::At(self.free_at + 20_000)
                        }
                    }
                };
                self.pending.push(Delivery {
                    sent,
                    size: PACKET,
                    arrival,
                });
            }
            let now = self.start + Duration::from_millis(t_ms + 100);
            (now, std::mem::take(&mut self.pending))
        }
    }

    /// Runs `seconds` of a sender that sends `min(demand, estimate)`, returning the estimate
    /// every 100 ms.
    fn run(
        e: &mut Estimator,
        link: &mut Link,
        from_ms: u64,
        seconds: u64,
        demand: u64,
    ) -> Vec<Option<u64>> {
        let mut out = Vec::new();
        for step in 0..seconds * 10 {
            let t = from_ms + step * 100;
            let now = link.start + Duration::from_millis(t);
            let rate = e.estimate(now).map_or(demand, |est| est.min(demand));
            let (at, fb) = link.run_100ms(t, rate);
            e.on_feedback(at, &fb);
            out.push(e.estimate(at));
        }
        out
    }

    #[test]
    fn a_clean_link_is_never_limited() {
        let mut e = Estimator::default();
        let mut link = Link::new(None);
        let estimates = run(&mut e, &mut link, 0, 10, 3_000_000);
        assert!(estimates.iter().all(Option::is_none), "{estimates:?}");
        assert!(
            (2_800_000..3_200_000).contains(&e.acknowledged()),
            "{}",
            e.acknowledged()
        );
    }

    #[test]
    fn a_slow_link_is_found_after_the_first_second_and_held_under_its_capacity() {
        let mut e = Estimator::default();
        let mut link = Link::new(Some(1_000_000));
        let estimates = run(&mut e, &mut link, 0, 20, 3_000_000);
        let first = estimates
            .iter()
            .position(Option::is_some)
            .expect("congestion seen");
        // The first second is not judged: packets sent before a receiver is ready are lost.
        assert!((10..=15).contains(&first), "found after {}00 ms", first + 1);
        let settled = estimates[first].unwrap();
        assert!(
            (700_000..=1_000_000).contains(&settled),
            "0.85 of what the link carried: {settled}"
        );
        // Probed, not flooded: never far above the capacity, and on average just under it.
        let after: Vec<u64> = estimates[first..].iter().map(|e| e.unwrap()).collect();
        assert!(after.iter().all(|&e| e < 1_250_000), "{after:?}");
        let mean = after.iter().sum::<u64>() / after.len() as u64;
        assert!((800_000..1_050_000).contains(&mean), "mean {mean}");
    }

    #[test]
    fn when_the_link_recovers_the_estimate_climbs_about_eight_percent_a_second() {
        let mut e = Estimator::default();
        let mut link = Link::new(Some(600_000));
        run(&mut e, &mut link, 0, 5, 3_000_000);
        let low = e.estimate(link.start + Duration::from_secs(5)).unwrap();
        assert!(low < 800_000, "{low}");
        link.capacity = None;
        let estimates = run(&mut e, &mut link, 5_000, 30, 3_000_000);
        let reached = estimates
            .iter()
            .position(|e| e.is_some_and(|e| e >= 3_000_000))
            .expect("the demand fits again");
        // From ~0.5 Mbit/s, 1.08^t = 6 takes ~23 s, plus at most the longest hold-off.
        assert!((150..=320).contains(&reached), "took {}00 ms", reached + 1);
    }

    /// Two seconds of 1 Mbit/s, 15 % lost, each packet queued `queue_ms` beyond the first
    /// second's delay; the cut's time and the estimate after it, if any.
    fn fifteen_percent_lost(queue_ms: i64) -> Option<(u64, u64)> {
        let mut e = Estimator::default();
        let t0 = Instant::now();
        for step in 0..20 {
            let mut fb = Vec::new();
            for i in 0..100u64 {
                let sent_ms = step * 100 + i;
                let lost = i % 7 == 0;
                let queued = if step >= 10 { queue_ms } else { 0 };
                fb.push(Delivery {
                    sent: t0 + Duration::from_millis(sent_ms),
                    size: 125,
                    arrival: if lost {
                        Arrival::Lost
                    } else {
                        Arrival::At((sent_ms as i64 + 5 + queued) * 1000)
                    },
                });
            }
            let t = step * 100 + 100;
            if let Some(cause) = e.on_feedback(t0 + Duration::from_millis(t), &fb) {
                assert_eq!(cause, Cause::Loss);
                return e
                    .estimate(t0 + Duration::from_millis(t))
                    .map(|est| (t, est));
            }
        }
        None
    }

    #[test]
    fn loss_over_ten_percent_with_a_queue_cuts_to_085_of_the_acknowledged_rate() {
        let (t, est) = fifteen_percent_lost(60).expect("a cut");
        assert!(t >= 1_100, "judged from the first second on: {t}");
        // 86 of 100 packets of 1000 bits each in 100 ms: 0.86 Mbit/s acknowledged, less the
        // 60 ms the queue's start took out of the half second measured.
        assert!((620_000..=760_000).contains(&est), "{est}");
        // The same loss with nothing queued is a radio's, not congestion.
        assert_eq!(fifteen_percent_lost(0), None);
    }

    #[test]
    fn a_stalled_receiver_is_not_a_queue_but_a_queue_is() {
        let t0 = Instant::now();
        let fb = |from_ms: u64, extra_delay_ms: &dyn Fn(u64) -> i64| -> Vec<Delivery> {
            (0..50u64)
                .map(|i| {
                    let sent_ms = from_ms + i * 2;
                    Delivery {
                        sent: t0 + Duration::from_millis(sent_ms),
                        size: 500,
                        arrival: Arrival::At((sent_ms as i64 + 10 + extra_delay_ms(i)) * 1000),
                    }
                })
                .collect()
        };
        let mut e = Estimator::default();
        for step in 0..20 {
            e.on_feedback(
                t0 + Duration::from_millis(step * 100 + 100),
                &fb(step * 100, &|_| 0),
            );
        }
        // The receiver's task starved for 300 ms: the packets of those feedbacks that came in
        // before the stall were on time, those during it late.
        for step in 20..23 {
            let cause = e.on_feedback(
                t0 + Duration::from_millis(step * 100 + 100),
                &fb(step * 100, &|i| if i < 10 { 0 } else { 300 }),
            );
            assert_eq!(cause, None);
        }
        assert_eq!(e.estimate(t0 + Duration::from_secs(3)), None);
        // A queue: every packet 150 ms late, for long enough.
        let mut cause = None;
        for step in 23..30 {
            cause = cause.or(e.on_feedback(
                t0 + Duration::from_millis(step * 100 + 100),
                &fb(step * 100, &|_| 150),
            ));
        }
        assert_eq!(cause, Some(Cause::Delay));
    }

    #[test]
    fn the_hold_off_doubles_after_failed_steps_and_resets_after_a_calm() {
        let t0 = Instant::now();
        // 400 packets sent over 100 ms from `from_ms`, a third lost (a policer: no queue).
        let lossy = |from_ms: u64| -> Vec<Delivery> {
            (0..400u64)
                .map(|i| Delivery {
                    sent: t0 + Duration::from_millis(from_ms) + Duration::from_micros(i * 250),
                    size: 1000,
                    arrival: if i % 3 == 0 {
                        Arrival::Lost
                    } else {
                        Arrival::At(from_ms as i64 * 1000 + i as i64 * 250)
                    },
                })
                .collect()
        };
        let mut e = Estimator::default();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        // The first second's packets are not judged.
        assert_eq!(e.on_feedback(at(100), &lossy(0)), None);
        assert_eq!(e.on_feedback(at(1_100), &lossy(1_000)), Some(Cause::Loss));
        assert_eq!(e.hold_off(), HOLD_OFF_MIN);
        // Congestion again 3 s later (2 s after the hold-off ended): a failed step.
        assert_eq!(e.on_feedback(at(4_100), &lossy(4_000)), Some(Cause::Loss));
        assert_eq!(e.hold_off(), 2 * HOLD_OFF_MIN);
        assert_eq!(e.on_feedback(at(7_100), &lossy(7_000)), Some(Cause::Loss));
        assert_eq!(e.on_feedback(at(11_100), &lossy(11_000)), Some(Cause::Loss));
        assert_eq!(e.on_feedback(at(21_100), &lossy(21_000)), Some(Cause::Loss));
        assert_eq!(e.hold_off(), HOLD_OFF_MAX, "doubled up to the cap");
        // Within a second of the last one: the same congestion, no second cut.
        assert_eq!(e.on_feedback(at(21_600), &lossy(21_500)), None);
        // A minute of calm, then congestion: a fresh start.
        assert_eq!(e.on_feedback(at(81_100), &lossy(81_000)), Some(Cause::Loss));
        assert_eq!(e.hold_off(), HOLD_OFF_MIN);
    }

    #[test]
    fn random_loss_without_a_queue_does_not_wear_the_estimate_down() {
        // A radio link losing 5 % at random, at 150 packets a second: not congestion.
        let mut e = Estimator::default();
        let mut link = Link::new(None);
        link.random_loss = 0.05;
        let estimates = run(&mut e, &mut link, 0, 120, 1_200_000);
        let cuts = estimates
            .windows(2)
            .filter(|w| match (w[0], w[1]) {
                (None, Some(_)) => true,
                (Some(a), Some(b)) => b < a,
                _ => false,
            })
            .count();
        assert_eq!(cuts, 0, "{cuts} cuts in two minutes");
        let last = *estimates.last().unwrap();
        assert!(
            last.is_none_or(|e| e >= 1_200_000),
            "back above the demand: {last:?}"
        );
    }

    #[test]
    fn remb_caps_the_estimate_while_fresh() {
        let t0 = Instant::now();
        let mut e = Estimator::default();
        e.on_remb(t0, 400_000);
        assert_eq!(e.estimate(t0 + Duration::from_secs(1)), Some(400_000));
        assert_eq!(e.estimate(t0 + REMB_VALID), None, "stale");
    }
}
