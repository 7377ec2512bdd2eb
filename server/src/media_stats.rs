//! Server-wide media counters, shared by everything that moves or asks for media and read by
//! `/metrics`.

use std::sync::atomic::AtomicU64;

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
    /// Packets handed to another fan-out shard's task (one per shard with subscribers).
    pub shard_handoffs: AtomicU64,
    /// Packets a fan-out shard's task could not take because its queue was full.
    pub shard_drops: AtomicU64,
    /// Times a subscriber of a simulcast track moved to a bigger layer.
    pub layer_switches_up: AtomicU64,
    /// Times a subscriber of a simulcast track moved to a smaller layer.
    pub layer_switches_down: AtomicU64,
    /// Of those up and down, the ones a subscriber's downlink estimate caused.
    pub layer_switches_bandwidth: AtomicU64,
    /// Times a simulcast video was paused for a subscriber whose link had no room for it.
    pub video_pauses: AtomicU64,
    /// Times such a paused video came back.
    pub video_resumes: AtomicU64,
}
