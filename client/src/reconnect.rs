//! When and whether to reconnect after the signaling socket is lost (pure, host-tested).
//!
//! A socket that closes or fails without our leave is retried after 0.5, 1, 2, 4 and then every
//! 8 s, for about a minute; the server keeps our place (same peer id) for ~10 s of that.

/// The waits before successive attempts, in milliseconds; the last repeats.
pub const BACKOFF_MS: [u32; 5] = [500, 1_000, 2_000, 4_000, 8_000];

/// No new attempt starts this long (ms) after the socket was lost.
pub const GIVE_UP_AFTER_MS: f64 = 60_000.0;

/// How long (ms) one attempt may take from opening the socket to being back in the room.
pub const ATTEMPT_TIMEOUT_MS: i32 = 5_000;

/// The wait before attempt `n` (0-based).
pub fn delay_ms(attempt: u32) -> u32 {
    let last = BACKOFF_MS.len() - 1;
    BACKOFF_MS[(attempt as usize).min(last)]
}

/// Whether attempt `n` may start `elapsed_ms` after the socket was lost.
pub fn may_retry(attempt: u32, elapsed_ms: f64) -> bool {
    elapsed_ms + f64::from(delay_ms(attempt)) <= GIVE_UP_AFTER_MS
}

/// Whether a close code leaves hope: the server closes with 1008 (policy: bad frames, too
/// slow, keepalive) or 1009 (frame too big) when it does not want this client back as is.
pub fn worth_retrying(close_code: Option<u16>) -> bool {
    !matches!(close_code, Some(1008 | 1009))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_then_stays() {
        let waits: Vec<u32> = (0..7).map(delay_ms).collect();
        assert_eq!(waits, [500, 1_000, 2_000, 4_000, 8_000, 8_000, 8_000]);
    }

    #[test]
    fn gives_up_after_about_a_minute() {
        assert!(may_retry(0, 0.0));
        assert!(may_retry(9, 50_000.0));
        assert!(!may_retry(9, 55_000.0));
        // 0.5 + 1 + 2 + 4 + 8 × 6 = 55.5 s of waiting: ten attempts.
        let mut elapsed = 0.0;
        let mut attempts = 0;
        while may_retry(attempts, elapsed) {
            elapsed += f64::from(delay_ms(attempts));
            attempts += 1;
        }
        assert_eq!(attempts, 10);
    }

    #[test]
    fn policy_closes_are_final() {
        assert!(worth_retrying(None));
        assert!(worth_retrying(Some(1005)));
        assert!(worth_retrying(Some(1006)));
        assert!(worth_retrying(Some(1001)));
        assert!(!worth_retrying(Some(1008)));
        assert!(!worth_retrying(Some(1009)));
    }
}
