//! Token buckets: how many messages a connection (or its chat) may send, and how many room
//! joins one source address may make.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

use tokio::time::Instant;

/// A token bucket: a burst of `burst` messages, refilled at `per_second`.
pub(crate) struct RateLimit {
    tokens: f64,
    last: Instant,
    per_second: f64,
    burst: f64,
}

impl RateLimit {
    /// A full bucket.
    pub(crate) fn new(now: Instant, per_second: f64, burst: f64) -> Self {
        RateLimit {
            tokens: burst,
            last: now,
            per_second,
            burst,
        }
    }

    /// Takes a token if there is one.
    pub(crate) fn admit(&mut self, now: Instant) -> bool {
        let refill = now.duration_since(self.last).as_secs_f64() * self.per_second;
        self.tokens = (self.tokens + refill).min(self.burst);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// The source a per-address limit counts: an IPv4 address, or an IPv6 address's /64 — one
/// host is routinely given a whole /64, so counting single IPv6 addresses would be no limit.
pub fn source_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mut s = v6.segments();
                s[4..].fill(0);
                IpAddr::V6(s.into())
            }
        },
    }
}

/// Sources remembered before the idle ones (full buckets, which remember nothing) are forgotten.
const PRUNE_AT: usize = 4096;

/// A token bucket per source address (room joins): a burst of a third of the minute's rate
/// (at least 5), refilled at the rate. Memory stays bounded: a source whose bucket has refilled
/// is forgotten when the map grows.
pub struct PerSource {
    per_second: f64,
    burst: f64,
    buckets: Mutex<HashMap<IpAddr, RateLimit>>,
}

impl PerSource {
    /// `per_minute` per source.
    pub fn per_minute(per_minute: u32) -> PerSource {
        let per_minute = f64::from(per_minute.max(1));
        PerSource {
            per_second: per_minute / 60.0,
            burst: (per_minute / 3.0).max(5.0),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes a token from `source`'s bucket if there is one.
    pub fn admit(&self, source: IpAddr, now: Instant) -> bool {
        let source = source_key(source);
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if buckets.len() >= PRUNE_AT && !buckets.contains_key(&source) {
            buckets.retain(|_, b| !b.is_full(now));
            // Still full of busy sources (many addresses at once): forgetting them is lenient,
            // growing without bound is not.
            if buckets.len() >= 4 * PRUNE_AT {
                buckets.clear();
            }
        }
        buckets
            .entry(source)
            .or_insert_with(|| RateLimit::new(now, self.per_second, self.burst))
            .admit(now)
    }
}

impl RateLimit {
    /// Whether the bucket would be full at `now` (its source can be forgotten).
    fn is_full(&self, now: Instant) -> bool {
        self.tokens + now.duration_since(self.last).as_secs_f64() * self.per_second >= self.burst
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn joins_per_source_burst_then_rate_and_sources_are_apart() {
        let joins = PerSource::per_minute(30);
        let a: IpAddr = [10, 0, 0, 1].into();
        let b: IpAddr = [10, 0, 0, 2].into();
        let admitted = (0..50).filter(|_| joins.admit(a, Instant::now())).count();
        assert_eq!(admitted, 10, "a burst of a third of the minute's 30");
        assert!(
            joins.admit(b, Instant::now()),
            "another source has its own bucket"
        );
        tokio::time::advance(Duration::from_secs(2)).await;
        assert!(
            joins.admit(a, Instant::now()),
            "one every 2 s at 30 a minute"
        );
        assert!(!joins.admit(a, Instant::now()));
    }

    #[test]
    fn an_ipv6_host_counts_as_its_slash_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let other: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(source_key(a), source_key(b));
        assert_ne!(source_key(a), source_key(other));
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        assert_eq!(source_key(mapped), IpAddr::from([10, 0, 0, 1]));
        let v4: IpAddr = [10, 0, 0, 2].into();
        assert_eq!(source_key(v4), v4);
    }

    #[tokio::test(start_paused = true)]
    async fn idle_sources_are_forgotten_when_the_map_grows() {
        let joins = PerSource::per_minute(30);
        for i in 0..PRUNE_AT as u32 {
            joins.admit(IpAddr::from(i.to_be_bytes()), Instant::now());
        }
        tokio::time::advance(Duration::from_secs(60)).await;
        joins.admit(IpAddr::from([255, 0, 0, 1]), Instant::now());
        assert_eq!(joins.buckets.lock().unwrap().len(), 1);
    }
}
