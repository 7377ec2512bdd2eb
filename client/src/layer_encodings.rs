//! How this client publishes simulcast layers: each RID the server asks for
//! ([`protocol::SIMULCAST_RIDS`]) gets a fixed downscale and bitrate cap, so the layers are
//! the sizes their names promise in both browsers (a browser left to itself may send every
//! layer at full size, as Firefox did: w3c/webrtc-pc#2535, or pick its own sizes). The
//! browser side (`getParameters`/`setParameters` after each answer) is in
//! `endpoint::encodings`.

use protocol::SIMULCAST_RIDS;

/// What one layer's encoding is set to.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Encoding {
    /// `scaleResolutionDownBy`: the camera's size divided by this.
    pub scale: f32,
    /// `maxBitrate` in bits per second.
    pub max_bitrate: u32,
    /// `active`: whether the browser encodes it at all.
    pub active: bool,
}

/// Quarter, half and full size: the server's three names.
const SCALES: [f32; 3] = [4.0, 2.0, 1.0];

/// Caps for the tutorial's 640×360 camera at 24 fps (160×90, 320×180, 640×360), about what
/// Chromium's own table allows those sizes (`simulcast.cc`): enough for a sharp picture,
/// little enough that a weak uplink still carries all three.
const MAX_BITRATES: [u32; 3] = [150_000, 400_000, 1_200_000];

/// The encoding of the layer `rid` of a camera (`screen` false) or of a screen share that
/// landed on a simulcast m-line: a screen stays one layer, the full-size one (text needs
/// every pixel, and three encodings of a screen would cost its sharer's CPU for nothing).
/// `wanted`: whether anyone receives the layer (the server says, see dynacast); an
/// unwanted layer is not encoded. `None` for a RID the server never asks for.
pub fn encoding_for(rid: &str, screen: bool, wanted: bool) -> Option<Encoding> {
    let i = SIMULCAST_RIDS.iter().position(|r| *r == rid)?;
    let top = i + 1 == SIMULCAST_RIDS.len();
    Some(Encoding {
        scale: if screen { 1.0 } else { SCALES[i] },
        max_bitrate: if screen {
            MAX_BITRATES[MAX_BITRATES.len() - 1]
        } else {
            MAX_BITRATES[i]
        },
        active: wanted && (top || !screen),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_camera_sends_quarter_half_and_full_size() {
        let e = |rid| encoding_for(rid, false, true).unwrap();
        assert_eq!((e("q").scale, e("h").scale, e("f").scale), (4.0, 2.0, 1.0));
        assert!(e("q").max_bitrate < e("h").max_bitrate);
        assert!(e("h").max_bitrate < e("f").max_bitrate);
        assert!(e("q").active && e("h").active && e("f").active);
    }

    #[test]
    fn a_screen_is_one_full_size_layer() {
        let e = |rid| encoding_for(rid, true, true).unwrap();
        assert!(!e("q").active && !e("h").active);
        assert!(e("f").active);
        assert_eq!(e("f").scale, 1.0);
    }

    #[test]
    fn an_unwanted_layer_is_off_and_an_unknown_rid_untouched() {
        assert!(!encoding_for("h", false, false).unwrap().active);
        assert!(!encoding_for("f", true, false).unwrap().active);
        assert_eq!(encoding_for("x", false, true), None);
    }
}
