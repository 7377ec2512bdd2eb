//! Synthetic payloads that prove integrity end to end: a counter, then bytes derived from it.

use bytes::Bytes;

/// A payload of `size` bytes (at least 4) for packet number `counter`.
pub fn make_payload(counter: u32, size: usize) -> Bytes {
    let size = size.max(4);
    let mut v = Vec::with_capacity(size);
    v.extend_from_slice(&counter.to_be_bytes());
    v.extend((4..size).map(|i| pattern(counter, i)));
    Bytes::from(v)
}

/// Whether a payload is exactly what [`make_payload`] wrote for its counter.
pub fn check_payload(p: &[u8]) -> bool {
    let Some(head) = p.get(..4) else {
        return false;
    };
    let counter = u32::from_be_bytes([head[0], head[1], head[2], head[3]]);
    p.iter()
        .enumerate()
        .skip(4)
        .all(|(i, &b)| b == pattern(counter, i))
}

/// The VP8 bytes before a [`make_vp8_payload`]'s counter: payload descriptor (5) and frame
/// header (10).
pub const VP8_PREFIX: usize = 15;

/// The PictureID a [`make_vp8_payload`] carries for `counter`: one more per packet (each is a
/// frame), from a start of each layer's own, as browsers number their simulcast layers.
pub fn picture_id_of(counter: u32) -> u16 {
    let layer = (counter >> 24) as u16;
    (counter as u16).wrapping_add(layer.wrapping_mul(4099)) & 0x7fff
}

/// A VP8-shaped payload of `size` bytes for packet `counter`: a payload descriptor starting a
/// frame (with a 15-bit PictureID and a TL0PICIDX, as browsers send), then a keyframe header of `keyframe`'s size (start code, width, height) or an
/// interframe header, then [`make_payload`]'s bytes. An SFU reads it as VP8; [`read_payload`]
/// checks it.
pub fn make_vp8_payload(counter: u32, size: usize, keyframe: Option<(u16, u16)>) -> Bytes {
    let mut v = Vec::with_capacity(size.max(VP8_PREFIX + 4));
    // Descriptor: X and S; I and L; PictureID (M set: 15 bits); TL0PICIDX.
    let picture_id = picture_id_of(counter);
    v.extend_from_slice(&[
        0x90,
        0xc0,
        0x80 | (picture_id >> 8) as u8,
        picture_id as u8,
        counter as u8,
    ]);
    match keyframe {
        Some((w, h)) => {
            // Frame tag: P=0 (key), show_frame; start code; width and height.
            v.extend_from_slice(&[0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a]);
            v.extend_from_slice(&w.to_le_bytes());
            v.extend_from_slice(&h.to_le_bytes());
        }
        // P=1 (interframe), show_frame.
        None => v.extend_from_slice(&[0x11, 0x02, 0x00, 0, 0, 0, 0, 0, 0, 0]),
    }
    v.extend_from_slice(&make_payload(counter, size.saturating_sub(VP8_PREFIX)));
    Bytes::from(v)
}

/// What a payload from [`make_payload`] or [`make_vp8_payload`] says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Payload {
    /// The publisher's counter (its top byte marks a simulcast layer).
    pub counter: u32,
    /// A VP8-shaped keyframe.
    pub keyframe: bool,
    /// A VP8-shaped payload's PictureID, as received (an SFU may renumber it).
    pub picture_id: Option<u16>,
}

/// Reads and checks a payload of either kind; `None` if it is not what was written. The two
/// are told apart by the first byte: a plain payload's counter starts with a layer mark (< 16),
/// a VP8-shaped one with the descriptor's X and S bits (0x90).
pub fn read_payload(p: &[u8]) -> Option<Payload> {
    let (keyframe, body, picture_id) = match p.first() {
        Some(0x90) => (
            p.get(5)? & 0x01 == 0,
            p.get(VP8_PREFIX..)?,
            Some(u16::from_be_bytes([p.get(2)? & 0x7f, *p.get(3)?])),
        ),
        _ => (false, p, None),
    };
    if !check_payload(body) {
        return None;
    }
    let counter = u32::from_be_bytes([body[0], body[1], body[2], body[3]]);
    Some(Payload {
        counter,
        keyframe,
        picture_id,
    })
}

fn pattern(counter: u32, i: usize) -> u8 {
    (counter as usize).wrapping_mul(31).wrapping_add(i) as u8
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_corruption() {
        let p = make_payload(7, 100);
        assert_eq!(p.len(), 100);
        assert!(check_payload(&p));
        let mut bad = p.to_vec();
        bad[50] ^= 1;
        assert!(!check_payload(&bad));
        assert!(!check_payload(&[1, 2]));
    }

    #[test]
    fn vp8_shaped_payloads_read_back() {
        let key = make_vp8_payload(3 << 24 | 9, 200, Some((1280, 720)));
        assert_eq!(key.len(), 200);
        assert_eq!(
            read_payload(&key),
            Some(Payload {
                counter: 3 << 24 | 9,
                keyframe: true,
                picture_id: Some(picture_id_of(3 << 24 | 9)),
            })
        );
        let inter = make_vp8_payload(10, 200, None);
        assert_eq!(read_payload(&inter).map(|p| p.keyframe), Some(false));
        assert_eq!(
            read_payload(&make_payload(1 << 24 | 5, 100)),
            Some(Payload {
                counter: 1 << 24 | 5,
                keyframe: false,
                picture_id: None,
            })
        );
        let mut bad = key.to_vec();
        bad[150] ^= 1;
        assert_eq!(read_payload(&bad), None);
        assert_eq!(read_payload(&key[..12]), None);
    }
}
