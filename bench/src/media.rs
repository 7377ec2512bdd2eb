//! The synthetic media the load generator publishes: RTP payloads shaped like VP8 (so a server
//! that inspects them, as Janus does for keyframes, sees real descriptors) and Opus, each ending
//! in a trailer that identifies the stream, numbers the packet and carries its send time. Built
//! once per packet by copying a template, never encoded: the generator must not pay for codecs.

use bytes::{BufMut, Bytes, BytesMut};

/// Marks a trailer as ours (so stray packets are not misread).
const MAGIC: u32 = 0x5652_424e; // "VRBN"
/// Trailer: magic, stream, counter, flags (u32 each), send time (u64 ns).
pub const TRAILER_BYTES: usize = 24;
/// Flag bit: this packet starts a keyframe.
const FLAG_KEYFRAME: u32 = 1;
/// RTP payload bytes per video packet (below a 1200-byte MTU budget once SRTP adds its tag).
pub const VIDEO_PACKET_PAYLOAD: usize = 1100;
/// Opus at ~40 kbit/s in 20 ms frames.
pub const AUDIO_PAYLOAD: usize = 100;
/// Audio packets per second (20 ms frames).
pub const AUDIO_PPS: u32 = 50;

/// What a receiver learns from one payload's trailer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Trailer {
    /// Which published stream (publisher index × 2, +1 for video).
    pub stream: u32,
    /// Packet number within the stream, from 0, without gaps at the sender.
    pub counter: u32,
    /// Whether the packet is the first of a keyframe.
    pub keyframe: bool,
    /// Send time in ns since the generator's epoch.
    pub sent_ns: u64,
}

/// Stream id of a publisher's audio or video.
pub fn stream_id(publisher: u32, video: bool) -> u32 {
    publisher * 2 + u32::from(video)
}

/// A VP8 RTP payload of `size` bytes (at least the headers and trailer).
///
/// `first` packets of a frame carry the VP8 payload descriptor's S bit and a frame header: a
/// keyframe header (P bit clear, start code, 640×360) when `keyframe`, an interframe one else.
pub fn vp8_payload(size: usize, first: bool, keyframe: bool, t: Trailer) -> Bytes {
    let size = size.max(11 + TRAILER_BYTES);
    let mut b = BytesMut::with_capacity(size);
    // Payload descriptor: X=0, N=0, S=first, PID=0.
    b.put_u8(if first { 0x10 } else { 0x00 });
    if first {
        if keyframe {
            // Frame tag: P=0 (key), version 0, show_frame=1; then start code and 640x360.
            b.put_slice(&[0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a, 0x80, 0x02, 0x68, 0x01]);
        } else {
            // P=1 (interframe), show_frame=1.
            b.put_slice(&[0x11, 0x02, 0x00, 0, 0, 0, 0, 0, 0, 0]);
        }
    }
    b.resize(size - TRAILER_BYTES, 0x5a);
    put_trailer(&mut b, t);
    b.freeze()
}

/// An Opus-labelled payload (contents are opaque to an SFU).
pub fn opus_payload(size: usize, t: Trailer) -> Bytes {
    let size = size.max(1 + TRAILER_BYTES);
    let mut b = BytesMut::with_capacity(size);
    // TOC byte: CELT FB 20 ms, mono, one frame.
    b.put_u8(0xfc);
    b.resize(size - TRAILER_BYTES, 0xa5);
    put_trailer(&mut b, t);
    b.freeze()
}

fn put_trailer(b: &mut BytesMut, t: Trailer) {
    b.put_u32(MAGIC);
    b.put_u32(t.stream);
    b.put_u32(t.counter);
    b.put_u32(if t.keyframe { FLAG_KEYFRAME } else { 0 });
    b.put_u64(t.sent_ns);
}

/// The trailer of a payload this generator made, or `None` for anything else.
pub fn parse_trailer(p: &[u8]) -> Option<Trailer> {
    let start = p.len().checked_sub(TRAILER_BYTES)?;
    let t = &p[start..];
    let u32_at = |i: usize| u32::from_be_bytes([t[i], t[i + 1], t[i + 2], t[i + 3]]);
    if u32_at(0) != MAGIC {
        return None;
    }
    let mut ns = [0u8; 8];
    ns.copy_from_slice(&t[16..24]);
    Some(Trailer {
        stream: u32_at(4),
        counter: u32_at(8),
        keyframe: u32_at(12) & FLAG_KEYFRAME != 0,
        sent_ns: u64::from_be_bytes(ns),
    })
}

/// Whether a VP8 payload starts a keyframe, read as an SFU would (descriptor, then P bit).
pub fn vp8_is_keyframe(p: &[u8]) -> bool {
    let Some(&d) = p.first() else { return false };
    if d & 0x10 == 0 || d & 0x80 != 0 {
        // Not a partition start, or an extended descriptor we never send.
        return false;
    }
    p.get(1).is_some_and(|h| h & 0x01 == 0) && p.get(4..7) == Some(&[0x9d, 0x01, 0x2a][..])
}

/// Packets per frame and payload bytes per packet for `bits_per_second` of video at `fps`.
pub fn video_shape(bits_per_second: u32, fps: u32) -> (usize, usize) {
    let frame_bytes = (bits_per_second / 8 / fps.max(1)) as usize;
    let packets = frame_bytes.div_ceil(VIDEO_PACKET_PAYLOAD).max(1);
    (packets, (frame_bytes / packets).max(11 + TRAILER_BYTES))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trailer_round_trips_on_both_kinds() {
        let t = Trailer {
            stream: 7,
            counter: 123_456,
            keyframe: true,
            sent_ns: 9_876_543_210,
        };
        let v = vp8_payload(1100, true, true, t);
        assert_eq!(v.len(), 1100);
        assert_eq!(parse_trailer(&v), Some(t));
        assert!(vp8_is_keyframe(&v));
        let a = opus_payload(
            100,
            Trailer {
                keyframe: false,
                ..t
            },
        );
        assert_eq!(a.len(), 100);
        assert_eq!(parse_trailer(&a).map(|t| t.keyframe), Some(false));
        assert_eq!(parse_trailer(b"short"), None);
        assert_eq!(parse_trailer(&[0u8; 40]), None);
    }

    #[test]
    fn only_first_packets_of_keyframes_look_like_keyframes() {
        let t = Trailer {
            stream: 1,
            counter: 0,
            keyframe: false,
            sent_ns: 0,
        };
        assert!(!vp8_is_keyframe(&vp8_payload(500, true, false, t)));
        assert!(!vp8_is_keyframe(&vp8_payload(500, false, true, t)));
    }

    #[test]
    fn video_shape_matches_the_bitrate() {
        // 1.5 Mbit/s at 30 fps: 6250 bytes a frame in 6 packets.
        let (n, size) = video_shape(1_500_000, 30);
        assert_eq!(n, 6);
        assert!((n * size) as i64 - 6250 < 8);
        let (n, _) = video_shape(450_000, 30);
        assert_eq!(n, 2);
    }
}
