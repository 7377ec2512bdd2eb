//! Connection quality from `getStats` samples, free of the browser so it is tested on the host:
//! rates between two samples of a track's counters, and the good/fair/poor verdict.

/// One `inbound-rtp` (or `outbound-rtp`) sample of a track's cumulative counters.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct RtpSample {
    /// The report's timestamp, in milliseconds.
    pub timestamp_ms: f64,
    /// Payload bytes received (or sent) so far.
    pub bytes: f64,
    /// Packets received (or sent) so far.
    pub packets: f64,
    /// Packets lost so far (as the receiver counts them; may go down with late packets).
    pub packets_lost: f64,
    /// Interarrival jitter now, in seconds.
    pub jitter_s: f64,
}

/// What one track did between two samples.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrackRates {
    /// Bitrate in kbit/s.
    pub kbps: f64,
    /// Lost packets as a fraction of those expected, 0..=1.
    pub loss: f64,
    /// Jitter in milliseconds (the latest sample's).
    pub jitter_ms: f64,
}

/// The rates between `prev` and `cur`; `None` when no time passed or a counter went back (the
/// track restarted, e.g. a reused receiver).
pub fn rates(prev: &RtpSample, cur: &RtpSample) -> Option<TrackRates> {
    let dt = cur.timestamp_ms - prev.timestamp_ms;
    let bytes = cur.bytes - prev.bytes;
    let packets = cur.packets - prev.packets;
    if dt <= 0.0 || bytes < 0.0 || packets < 0.0 {
        return None;
    }
    // Late packets can lower the lost count; that interval lost nothing.
    let lost = (cur.packets_lost - prev.packets_lost).max(0.0);
    let expected = packets + lost;
    let loss = if expected > 0.0 { lost / expected } else { 0.0 };
    Some(TrackRates {
        kbps: bytes * 8.0 / dt,
        loss,
        jitter_ms: cur.jitter_s * 1000.0,
    })
}

/// A connection's quality, as the tile shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Quality {
    /// Not measured yet.
    Unknown,
    /// Little loss, low delay and jitter.
    Good,
    /// Noticeable loss, delay or jitter.
    Fair,
    /// Heavy loss, long delay or jitter.
    Poor,
}

impl Quality {
    /// The `data-quality` value: `good`, `fair`, `poor` or `unknown`.
    pub fn as_str(self) -> &'static str {
        match self {
            Quality::Unknown => "unknown",
            Quality::Good => "good",
            Quality::Fair => "fair",
            Quality::Poor => "poor",
        }
    }
}

/// Loss fraction above which a track is fair, then poor.
pub const LOSS_FAIR: f64 = 0.02;
/// See [`LOSS_FAIR`].
pub const LOSS_POOR: f64 = 0.10;
/// Round-trip time (ms) above which a connection is fair, then poor.
pub const RTT_FAIR_MS: f64 = 150.0;
/// See [`RTT_FAIR_MS`].
pub const RTT_POOR_MS: f64 = 400.0;
/// Jitter (ms) above which a track is fair, then poor.
pub const JITTER_FAIR_MS: f64 = 30.0;
/// See [`JITTER_FAIR_MS`].
pub const JITTER_POOR_MS: f64 = 100.0;

/// The verdict for one track's rates and the connection's round-trip time (if known).
pub fn quality(rates: &TrackRates, rtt_ms: Option<f64>) -> Quality {
    let rtt = rtt_ms.unwrap_or(0.0);
    if rates.loss > LOSS_POOR || rtt > RTT_POOR_MS || rates.jitter_ms > JITTER_POOR_MS {
        Quality::Poor
    } else if rates.loss > LOSS_FAIR || rtt > RTT_FAIR_MS || rates.jitter_ms > JITTER_FAIR_MS {
        Quality::Fair
    } else {
        Quality::Good
    }
}

/// A peer's quality: the worst of its tracks' (unknown only when none is known).
pub fn worst(qualities: impl IntoIterator<Item = Quality>) -> Quality {
    qualities.into_iter().max().unwrap_or(Quality::Unknown)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(t: f64, bytes: f64, packets: f64, lost: f64, jitter_s: f64) -> RtpSample {
        RtpSample {
            timestamp_ms: t,
            bytes,
            packets,
            packets_lost: lost,
            jitter_s,
        }
    }

    #[test]
    fn rates_from_two_samples() {
        let a = sample(1_000.0, 10_000.0, 100.0, 0.0, 0.0);
        let b = sample(3_000.0, 60_000.0, 196.0, 4.0, 0.012);
        let r = rates(&a, &b).unwrap();
        assert_eq!(r.kbps, 200.0); // 50 000 bytes in 2 s
        assert_eq!(r.loss, 0.04); // 4 lost of 100 expected
        assert_eq!(r.jitter_ms, 12.0);
    }

    #[test]
    fn no_rates_without_time_or_after_a_reset() {
        let a = sample(1_000.0, 10_000.0, 100.0, 0.0, 0.0);
        assert_eq!(rates(&a, &a), None);
        assert_eq!(rates(&a, &sample(2_000.0, 5.0, 1.0, 0.0, 0.0)), None);
    }

    #[test]
    fn late_packets_do_not_make_negative_loss() {
        let a = sample(0.0, 0.0, 0.0, 5.0, 0.0);
        let b = sample(1_000.0, 1_000.0, 10.0, 3.0, 0.0);
        assert_eq!(rates(&a, &b).unwrap().loss, 0.0);
        let idle = sample(2_000.0, 1_000.0, 10.0, 3.0, 0.0);
        assert_eq!(
            rates(&b, &idle).unwrap().loss,
            0.0,
            "nothing expected, nothing lost"
        );
    }

    #[test]
    fn thresholds() {
        let r = |loss, jitter_ms| TrackRates {
            kbps: 500.0,
            loss,
            jitter_ms,
        };
        assert_eq!(quality(&r(0.0, 5.0), Some(20.0)), Quality::Good);
        assert_eq!(quality(&r(0.0, 5.0), None), Quality::Good);
        assert_eq!(quality(&r(0.05, 5.0), Some(20.0)), Quality::Fair);
        assert_eq!(quality(&r(0.0, 50.0), Some(20.0)), Quality::Fair);
        assert_eq!(quality(&r(0.0, 5.0), Some(200.0)), Quality::Fair);
        assert_eq!(quality(&r(0.2, 5.0), Some(20.0)), Quality::Poor);
        assert_eq!(quality(&r(0.0, 150.0), Some(20.0)), Quality::Poor);
        assert_eq!(quality(&r(0.0, 5.0), Some(500.0)), Quality::Poor);
    }

    #[test]
    fn a_peer_is_as_good_as_its_worst_track() {
        assert_eq!(worst([]), Quality::Unknown);
        assert_eq!(worst([Quality::Good, Quality::Fair]), Quality::Fair);
        assert_eq!(worst([Quality::Unknown, Quality::Good]), Quality::Good);
        assert_eq!(Quality::Poor.as_str(), "poor");
    }
}
