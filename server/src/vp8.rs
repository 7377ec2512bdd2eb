//! Reading the little of VP8 an SFU needs without decoding: whether an RTP payload starts a
//! keyframe, and that keyframe's picture size (RFC 7741 for the payload descriptor, RFC 6386
//! §9.1 for the frame header). Simulcast ranks a camera's layers by this size.
//!
//! And rewriting the descriptor's numbering across a switch of simulcast layer: each layer
//! counts its PictureID, TL0PICIDX and KEYIDX on its own, and a receiver that sees them jump
//! (Chromium's VP8 reference finder drops or stashes frames whose PictureID is "older" than
//! the last) can freeze for seconds, until a keyframe of a later number comes. A subscriber
//! gets them continuing by one from the last it was sent, as Janus and LiveKit do.

/// A keyframe's picture size in pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Size {
    /// Width.
    pub width: u16,
    /// Height.
    pub height: u16,
}

impl Size {
    /// Pixels in the picture.
    pub fn area(self) -> u32 {
        u32::from(self.width) * u32::from(self.height)
    }
}

/// The picture size if `payload` (a VP8 RTP payload) is the first packet of a keyframe, else
/// `None` (an interframe, a later packet of a frame, or bytes that are not VP8).
pub fn keyframe_size(payload: &[u8]) -> Option<Size> {
    let (&d, _) = payload.split_first()?;
    // S (start of partition) with partition index 0: the frame header follows the descriptor.
    if d & 0x10 == 0 || d & 0x07 != 0 {
        return None;
    }
    let mut at = 1;
    if d & 0x80 != 0 {
        // X: an extension byte, then the fields it announces.
        let x = *payload.get(1)?;
        at = 2;
        if x & 0x80 != 0 {
            // I: PictureID, two bytes when its own top bit (M) is set.
            at += if payload.get(at)? & 0x80 != 0 { 2 } else { 1 };
        }
        if x & 0x40 != 0 {
            // L: TL0PICIDX.
            at += 1;
        }
        if x & 0x30 != 0 {
            // T and/or K share one byte (TID, Y, KEYIDX).
            at += 1;
        }
    }
    let frame = payload.get(at..at + 10)?;
    // Frame tag bit 0 is P: 0 for a keyframe, which carries the start code and the size.
    if frame[0] & 0x01 != 0 || frame[3..6] != [0x9d, 0x01, 0x2a] {
        return None;
    }
    let width = u16::from_le_bytes([frame[6], frame[7]]) & 0x3fff;
    let height = u16::from_le_bytes([frame[8], frame[9]]) & 0x3fff;
    (width > 0 && height > 0).then_some(Size { width, height })
}

/// The numbering fields of a VP8 payload descriptor, where present.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Numbers {
    /// PictureID and whether it is 15 bits long (else 7).
    pub picture_id: Option<(u16, bool)>,
    /// TL0PICIDX.
    pub tl0: Option<u8>,
    /// KEYIDX (5 bits).
    pub key_idx: Option<u8>,
}

/// Byte offsets of the numbering fields in a descriptor.
#[derive(Default)]
struct Fields {
    picture_id: Option<(usize, bool)>,
    tl0: Option<usize>,
    key_idx: Option<usize>,
}

fn fields(payload: &[u8]) -> Option<Fields> {
    let (&d, _) = payload.split_first()?;
    let mut f = Fields::default();
    if d & 0x80 == 0 {
        return Some(f);
    }
    let x = *payload.get(1)?;
    let mut at = 2;
    if x & 0x80 != 0 {
        let long = payload.get(at)? & 0x80 != 0;
        if long {
            payload.get(at + 1)?;
        }
        f.picture_id = Some((at, long));
        at += if long { 2 } else { 1 };
    }
    if x & 0x40 != 0 {
        payload.get(at)?;
        f.tl0 = Some(at);
        at += 1;
    }
    if x & 0x30 != 0 {
        payload.get(at)?;
        if x & 0x10 != 0 {
            f.key_idx = Some(at);
        }
    }
    Some(f)
}

/// The numbering fields of `payload`'s descriptor; `None` when it is cut short.
pub fn numbers(payload: &[u8]) -> Option<Numbers> {
    let f = fields(payload)?;
    Some(Numbers {
        picture_id: f.picture_id.map(|(at, long)| {
            if long {
                (
                    u16::from_be_bytes([payload[at] & 0x7f, payload[at + 1]]),
                    true,
                )
            } else {
                (u16::from(payload[at] & 0x7f), false)
            }
        }),
        tl0: f.tl0.map(|at| payload[at]),
        key_idx: f.key_idx.map(|at| payload[at] & 0x1f),
    })
}

/// What to add to a layer's numbering fields (each modulo its width) so a subscriber's
/// numbers continue across a switch. Zero: unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Renumber {
    /// Added to PictureID (modulo 2^15, or 2^7 for a short one).
    pub picture_id: u16,
    /// Added to TL0PICIDX.
    pub tl0: u8,
    /// Added to KEYIDX (modulo 32).
    pub key_idx: u8,
}

impl Renumber {
    /// The renumbering that makes `next` (a new layer's raw numbers) follow `last` (the last
    /// numbers the subscriber was sent) by one; fields either lacks are left as they are.
    pub fn continuing(last: &Numbers, next: &Numbers) -> Renumber {
        let mut r = Renumber::default();
        if let (Some((l, _)), Some((n, _))) = (last.picture_id, next.picture_id) {
            r.picture_id = l.wrapping_add(1).wrapping_sub(n) & 0x7fff;
        }
        if let (Some(l), Some(n)) = (last.tl0, next.tl0) {
            r.tl0 = l.wrapping_add(1).wrapping_sub(n);
        }
        if let (Some(l), Some(n)) = (last.key_idx, next.key_idx) {
            r.key_idx = l.wrapping_add(1).wrapping_sub(n) & 0x1f;
        }
        r
    }

    /// Whether it changes nothing.
    pub fn is_identity(&self) -> bool {
        *self == Renumber::default()
    }

    /// `numbers` renumbered.
    pub fn numbers(&self, numbers: &Numbers) -> Numbers {
        Numbers {
            picture_id: numbers.picture_id.map(|(id, long)| {
                let mask = if long { 0x7fff } else { 0x7f };
                (id.wrapping_add(self.picture_id) & mask, long)
            }),
            tl0: numbers.tl0.map(|t| t.wrapping_add(self.tl0)),
            key_idx: numbers.key_idx.map(|k| k.wrapping_add(self.key_idx) & 0x1f),
        }
    }

    /// Rewrites `payload`'s descriptor in place; a descriptor cut short is left alone.
    pub fn apply(&self, payload: &mut [u8]) {
        if self.is_identity() {
            return;
        }
        let (Some(f), Some(n)) = (fields(payload), numbers(payload)) else {
            return;
        };
        let out = self.numbers(&n);
        if let (Some((at, long)), Some((id, _))) = (f.picture_id, out.picture_id) {
            if long {
                payload[at] = 0x80 | (id >> 8) as u8;
                payload[at + 1] = id as u8;
            } else {
                payload[at] = id as u8 & 0x7f;
            }
        }
        if let (Some(at), Some(t)) = (f.tl0, out.tl0) {
            payload[at] = t;
        }
        if let (Some(at), Some(k)) = (f.key_idx, out.key_idx) {
            payload[at] = (payload[at] & 0xe0) | k;
        }
    }

    /// Packed into one word, for a packet attribute (the `nack` interceptor applies it).
    pub fn pack(&self) -> usize {
        usize::from(self.picture_id) | usize::from(self.tl0) << 16 | usize::from(self.key_idx) << 24
    }

    /// The inverse of [`Renumber::pack`].
    pub fn unpack(word: usize) -> Renumber {
        Renumber {
            picture_id: (word & 0x7fff) as u16,
            tl0: (word >> 16) as u8,
            key_idx: (word >> 24) as u8 & 0x1f,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A keyframe header of `w`×`h` after `descriptor`.
    fn keyframe(descriptor: &[u8], w: u16, h: u16) -> Vec<u8> {
        let mut p = descriptor.to_vec();
        p.extend_from_slice(&[0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a]);
        p.extend_from_slice(&w.to_le_bytes());
        p.extend_from_slice(&h.to_le_bytes());
        p.extend_from_slice(&[0x5a; 20]);
        p
    }

    #[test]
    fn reads_the_size_behind_every_descriptor_shape() {
        let size = |w, h| {
            Some(Size {
                width: w,
                height: h,
            })
        };
        // The short descriptor (testkit, bench).
        assert_eq!(keyframe_size(&keyframe(&[0x10], 640, 360)), size(640, 360));
        // What browsers send: X with a 15-bit PictureID, TL0PICIDX and TID/KEYIDX.
        assert_eq!(
            keyframe_size(&keyframe(&[0x90, 0xe0, 0x81, 0x23, 0x05, 0x40], 1280, 720)),
            size(1280, 720)
        );
        // A 7-bit PictureID only.
        assert_eq!(
            keyframe_size(&keyframe(&[0x90, 0x80, 0x11], 320, 180)),
            size(320, 180)
        );
        // The top two bits of each dimension are the scaling mode, not the size.
        assert_eq!(
            keyframe_size(&keyframe(&[0x10], 0xc000 | 640, 0x4000 | 480)),
            size(640, 480)
        );
    }

    #[test]
    fn anything_else_has_no_size() {
        let mut inter = keyframe(&[0x10], 640, 360);
        inter[1] |= 0x01;
        assert_eq!(keyframe_size(&inter), None, "an interframe");
        assert_eq!(
            keyframe_size(&keyframe(&[0x00], 640, 360)),
            None,
            "not a frame's first packet"
        );
        assert_eq!(
            keyframe_size(&keyframe(&[0x11], 640, 360)),
            None,
            "a later partition"
        );
        let mut no_code = keyframe(&[0x10], 640, 360);
        no_code[4] = 0;
        assert_eq!(keyframe_size(&no_code), None, "no start code");
        assert_eq!(keyframe_size(&keyframe(&[0x10], 0, 360)), None);
        // Cut short anywhere: never a panic, never a size.
        let full = keyframe(&[0x90, 0xe0, 0x81, 0x23, 0x05, 0x40], 1280, 720);
        for n in 0..16 {
            assert_eq!(keyframe_size(&full[..n]), None, "{n} bytes");
        }
        assert_eq!(keyframe_size(&[]), None);
    }

    #[test]
    fn numbers_are_read_and_rewritten_in_every_descriptor_shape() {
        // Browsers: X, a 15-bit PictureID, TL0PICIDX, and TID/Y/KEYIDX.
        let mut long = keyframe(&[0x90, 0xf0, 0x81, 0x23, 0x05, 0x4a], 1280, 720);
        let n = numbers(&long).unwrap();
        assert_eq!(
            n,
            Numbers {
                picture_id: Some((0x0123, true)),
                tl0: Some(5),
                key_idx: Some(0x0a),
            }
        );
        let r = Renumber {
            picture_id: 0x7f00,
            tl0: 0xff,
            key_idx: 0x1f,
        };
        r.apply(&mut long);
        assert_eq!(
            numbers(&long).unwrap(),
            Numbers {
                picture_id: Some((0x0023, true)),
                tl0: Some(4),
                key_idx: Some(0x09),
            },
            "each field wraps at its own width"
        );
        assert_eq!(long[5] & 0xe0, 0x40, "TID and Y are kept");
        assert_eq!(
            keyframe_size(&long),
            Some(Size {
                width: 1280,
                height: 720
            })
        );
        // A 7-bit PictureID wraps at 128; no descriptor extension: nothing to do.
        let mut short = keyframe(&[0x90, 0x80, 0x7e], 320, 180);
        Renumber {
            picture_id: 3,
            ..Renumber::default()
        }
        .apply(&mut short);
        assert_eq!(numbers(&short).unwrap().picture_id, Some((1, false)));
        let mut plain = keyframe(&[0x10], 320, 180);
        let before = plain.clone();
        r.apply(&mut plain);
        assert_eq!(plain, before);
        assert_eq!(numbers(&plain), Some(Numbers::default()));
        // Cut short: no numbers, and left alone.
        for n in 0..5 {
            let mut cut = long[..n].to_vec();
            let copy = cut.clone();
            r.apply(&mut cut);
            assert_eq!(cut, copy, "{n} bytes");
        }
    }

    #[test]
    fn a_new_layer_continues_the_numbers_by_one() {
        let last = Numbers {
            picture_id: Some((0x7fff, true)),
            tl0: Some(255),
            key_idx: Some(31),
        };
        let next = Numbers {
            picture_id: Some((0x1234, true)),
            tl0: Some(17),
            key_idx: Some(4),
        };
        let r = Renumber::continuing(&last, &next);
        assert_eq!(
            r.numbers(&next),
            Numbers {
                picture_id: Some((0, true)),
                tl0: Some(0),
                key_idx: Some(0),
            }
        );
        assert_eq!(Renumber::unpack(r.pack()), r);
        // A field only one side has is left alone.
        let r = Renumber::continuing(&Numbers::default(), &next);
        assert!(r.is_identity());
    }
}
