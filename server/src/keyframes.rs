//! Keyframe requests (PLI) to a publisher's stream, throttled per stream: however many viewers
//! ask, the publisher's encoder hears at most one request per interval, and none is lost.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use tokio::time::Instant;
use tracing::debug;
use webrtc::peer_connection::RTCPeerConnection;
use webrtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;

use crate::media_stats::MediaStats;

/// Keyframe requests to one publisher stream are sent at most this often. A request that comes
/// sooner is not dropped but sent when the interval ends (one, however many came): the viewer
/// who asked must still get its keyframe. Browsers' encoders ignore a request within 300 ms of
/// the last one they honoured (libwebrtc's `kMinKeyframeSendIntervalMs`), so a deferred request
/// sent any sooner would be lost; the 50 ms over that absorbs jitter on the way to the publisher.
pub const KEYFRAME_REQUEST_INTERVAL: Duration = Duration::from_millis(350);

/// Sends keyframe requests (PLI) for one stream of a publisher, throttled.
pub struct KeyframeRequester {
    pc: Weak<RTCPeerConnection>,
    media_ssrc: u32,
    throttle: Arc<Mutex<Throttle>>,
    stats: Arc<MediaStats>,
}

/// When keyframe requests to one stream go out.
#[derive(Debug, Default)]
struct Throttle {
    last: Option<Instant>,
    deferred: bool,
}

/// What to do with a keyframe request.
#[derive(Debug, PartialEq, Eq)]
enum Decision {
    /// Send it now.
    Now,
    /// Send it at this time (the end of the interval).
    At(Instant),
    /// One is already due at the end of the interval: that one serves this too.
    Coalesced,
}

impl Throttle {
    fn decide(&mut self, now: Instant) -> Decision {
        // A deferred request serves everything until it fires, even when its timer runs late:
        // sending another now would put two requests a few ms apart.
        if self.deferred {
            return Decision::Coalesced;
        }
        match self.last {
            Some(t) if now.duration_since(t) < KEYFRAME_REQUEST_INTERVAL => {
                self.deferred = true;
                Decision::At(t + KEYFRAME_REQUEST_INTERVAL)
            }
            _ => {
                self.last = Some(now);
                Decision::Now
            }
        }
    }

    /// The deferred request went out at `now`.
    fn sent_deferred(&mut self, now: Instant) {
        self.deferred = false;
        self.last = Some(now);
    }
}

impl KeyframeRequester {
    /// Requests for the stream `media_ssrc` that `pc`'s publisher sends.
    pub fn new(pc: Weak<RTCPeerConnection>, media_ssrc: u32, stats: Arc<MediaStats>) -> Self {
        KeyframeRequester {
            pc,
            media_ssrc,
            throttle: Arc::default(),
            stats,
        }
    }

    /// Asks for a keyframe now, or at the end of the interval if one went out too recently.
    pub async fn request(&self) {
        let decision = match self.throttle.lock() {
            Ok(mut t) => t.decide(Instant::now()),
            Err(_) => return,
        };
        match decision {
            Decision::Now => send_pli(&self.pc, self.media_ssrc, &self.stats).await,
            Decision::Coalesced => {}
            Decision::At(at) => {
                // Short-lived and holding only weak and shared counters: nothing outlives the
                // publisher but this one timer.
                let (pc, ssrc, stats) = (self.pc.clone(), self.media_ssrc, self.stats.clone());
                let throttle = self.throttle.clone();
                tokio::spawn(async move {
                    tokio::time::sleep_until(at).await;
                    if let Ok(mut t) = throttle.lock() {
                        t.sent_deferred(Instant::now());
                    }
                    send_pli(&pc, ssrc, &stats).await;
                });
            }
        }
    }
}

async fn send_pli(pc: &Weak<RTCPeerConnection>, media_ssrc: u32, stats: &MediaStats) {
    let Some(pc) = pc.upgrade() else {
        return;
    };
    let pli = PictureLossIndication {
        sender_ssrc: 0,
        media_ssrc,
    };
    match pc.write_rtcp(&[Box::new(pli)]).await {
        Ok(_) => {
            stats.keyframe_requests.fetch_add(1, Ordering::Relaxed);
        }
        Err(e) => debug!(error = %e, "keyframe request not sent"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn keyframe_requests_are_throttled_per_stream_but_never_lost() {
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let mut t = Throttle::default();
        assert_eq!(t.decide(ms(0)), Decision::Now);
        // Sooner than 350 ms: sent when the interval ends, once however many ask.
        assert_eq!(t.decide(ms(50)), Decision::At(ms(350)));
        assert_eq!(t.decide(ms(100)), Decision::Coalesced);
        assert_eq!(t.decide(ms(349)), Decision::Coalesced);
        // Its timer is late (a loaded machine): still one request, not a second one now.
        assert_eq!(t.decide(ms(380)), Decision::Coalesced);
        t.sent_deferred(ms(410));
        assert_eq!(t.decide(ms(500)), Decision::At(ms(760)));
        t.sent_deferred(ms(760));
        assert_eq!(t.decide(ms(800)), Decision::At(ms(1110)));
        t.sent_deferred(ms(1110));
        assert_eq!(t.decide(ms(1500)), Decision::Now);
        // Another stream has its own budget.
        assert_eq!(Throttle::default().decide(ms(1500)), Decision::Now);
    }
}
