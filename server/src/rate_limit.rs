//! A token bucket: how many messages a connection (or its chat) may send.

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
