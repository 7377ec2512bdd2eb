//! Reading the little of VP8 an SFU needs without decoding: whether an RTP payload starts a
//! keyframe, and that keyframe's picture size (RFC 7741 for the payload descriptor, RFC 6386
//! §9.1 for the frame header). Simulcast ranks a camera's layers by this size.

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
}
