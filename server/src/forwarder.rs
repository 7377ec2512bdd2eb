//! Moving RTP: one published track, read from its publisher and written, untouched but for
//! SSRC and payload type, to every subscriber bound to its local track. Also keyframe requests
//! (PLI) from subscribers back to the publisher, throttled.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use protocol::{PeerId, TrackId, TrackMetadata};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::nack::SourceTag;
use webrtc::peer_connection::RTCPeerConnection;
use webrtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use webrtc::rtp_transceiver::rtp_codec::RTPCodecType;
use webrtc::track::track_local::track_local_static_rtp::TrackLocalStaticRTP;
use webrtc::track::track_local::TrackLocalWriter;
use webrtc::track::track_remote::TrackRemote;

/// Keyframe requests to one publisher stream are sent at most this often.
pub const KEYFRAME_REQUEST_INTERVAL: Duration = Duration::from_millis(200);

/// Server-wide media counters.
#[derive(Debug, Default)]
pub struct MediaStats {
    /// RTP packets received from publishers.
    pub packets_in: AtomicU64,
    /// RTP packets written to subscribers (one per subscriber per packet).
    pub packets_out: AtomicU64,
    /// RTP payload bytes received from publishers.
    pub bytes_in: AtomicU64,
    /// RTP payload bytes written to subscribers.
    pub bytes_out: AtomicU64,
    /// Keyframe requests sent to publishers.
    pub keyframe_requests: AtomicU64,
}

/// A track a participant publishes, as the room and its subscribers see it.
pub struct PublishedTrack {
    /// `<publisherId>:<uuid>`.
    pub id: TrackId,
    /// Who publishes it.
    pub publisher: PeerId,
    /// Audio or video.
    pub kind: RTPCodecType,
    /// The fan-out point: every subscriber's sender is bound to it.
    pub local: Arc<TrackLocalStaticRTP>,
    /// How many subscribers' senders currently carry it.
    pub subscribers: AtomicU64,
    metadata: Mutex<TrackMetadata>,
    keyframes: KeyframeRequester,
    source: SourceTag,
}

impl PublishedTrack {
    /// The published form of `remote`, a track `publisher` sends through `publisher_pc`.
    ///
    /// Its stream id is the publisher's id, so subscribers get one MediaStream per participant.
    pub fn new(
        id: TrackId,
        publisher: PeerId,
        metadata: TrackMetadata,
        remote: &TrackRemote,
        publisher_pc: Weak<RTCPeerConnection>,
        stats: Arc<MediaStats>,
    ) -> Self {
        let local = Arc::new(TrackLocalStaticRTP::new(
            remote.codec().capability,
            id.clone(),
            publisher.clone(),
        ));
        PublishedTrack {
            id,
            publisher,
            kind: remote.kind(),
            local,
            subscribers: AtomicU64::new(0),
            metadata: Mutex::new(metadata),
            source: SourceTag::new(),
            keyframes: KeyframeRequester {
                pc: publisher_pc,
                media_ssrc: remote.ssrc(),
                last: Mutex::new(None),
                stats,
            },
        }
    }

    /// The track's current metadata.
    pub fn metadata(&self) -> TrackMetadata {
        self.metadata
            .lock()
            .map(|m| m.clone())
            .unwrap_or_else(|poisoned| poisoned.into_inner().clone())
    }

    /// Replaces the track's metadata.
    pub fn set_metadata(&self, metadata: TrackMetadata) {
        match self.metadata.lock() {
            Ok(mut m) => *m = metadata,
            Err(poisoned) => *poisoned.into_inner() = metadata,
        }
    }

    /// Asks the publisher for a keyframe (video only; throttled per stream).
    pub async fn request_keyframe(&self) {
        if self.kind == RTPCodecType::Video {
            self.keyframes.request().await;
        }
    }
}

struct KeyframeRequester {
    pc: Weak<RTCPeerConnection>,
    media_ssrc: u32,
    last: Mutex<Option<Instant>>,
    stats: Arc<MediaStats>,
}

impl KeyframeRequester {
    /// Whether a request may go out now; records it if so.
    fn admit(&self, now: Instant) -> bool {
        let Ok(mut last) = self.last.lock() else {
            return false;
        };
        match *last {
            Some(t) if now.duration_since(t) < KEYFRAME_REQUEST_INTERVAL => false,
            _ => {
                *last = Some(now);
                true
            }
        }
    }

    async fn request(&self) {
        if !self.admit(Instant::now()) {
            return;
        }
        let Some(pc) = self.pc.upgrade() else {
            return;
        };
        let pli = PictureLossIndication {
            sender_ssrc: 0,
            media_ssrc: self.media_ssrc,
        };
        match pc.write_rtcp(&[Box::new(pli)]).await {
            Ok(_) => {
                self.stats.keyframe_requests.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => debug!(error = %e, "keyframe request not sent"),
        }
    }
}

/// Forwards `remote` into `track.local` until the publisher's track ends or `cancel` fires.
pub async fn forward(
    remote: Arc<TrackRemote>,
    track: Arc<PublishedTrack>,
    stats: Arc<MediaStats>,
    cancel: CancellationToken,
) {
    let mut write_errors = 0u64;
    loop {
        let read = tokio::select! {
            _ = cancel.cancelled() => break,
            r = remote.read_rtp() => r,
        };
        let mut packet = match read {
            Ok((packet, _)) => packet,
            Err(e) => {
                debug!(track = %track.id, error = %e, "publisher track ended");
                break;
            }
        };
        let bytes = packet.payload.len() as u64;
        stats.packets_in.fetch_add(1, Ordering::Relaxed);
        stats.bytes_in.fetch_add(bytes, Ordering::Relaxed);
        // The publisher's header extensions carry ids negotiated with the publisher; the
        // subscribers' senders add their own.
        packet.header.extension = false;
        packet.header.extensions.clear();
        packet.header.extension_profile = 0;
        // One subscriber's failure must not stop the others: write_rtp has already delivered to
        // every other binding when it reports an error, so log and go on.
        // The source tag tells each subscriber's `nack` stream whose numbering this is.
        match track
            .local
            .write_rtp_with_attributes(&packet, track.source.attributes())
            .await
        {
            Ok(_) => {
                let n = track.subscribers.load(Ordering::Relaxed);
                stats.packets_out.fetch_add(n, Ordering::Relaxed);
                stats.bytes_out.fetch_add(n * bytes, Ordering::Relaxed);
            }
            Err(webrtc::Error::ErrClosedPipe) => {}
            Err(e) => {
                write_errors += 1;
                if write_errors.is_power_of_two() {
                    warn!(track = %track.id, error = %e, count = write_errors, "forwarding to a subscriber failed");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn requester() -> KeyframeRequester {
        KeyframeRequester {
            pc: Weak::new(),
            media_ssrc: 1,
            last: Mutex::new(None),
            stats: Arc::new(MediaStats::default()),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn keyframe_requests_are_throttled_per_stream() {
        let k = requester();
        assert!(k.admit(Instant::now()));
        assert!(!k.admit(Instant::now()));
        tokio::time::advance(Duration::from_millis(199)).await;
        assert!(!k.admit(Instant::now()));
        tokio::time::advance(Duration::from_millis(1)).await;
        assert!(k.admit(Instant::now()));
        // Another stream has its own budget.
        assert!(requester().admit(Instant::now()));
    }
}
