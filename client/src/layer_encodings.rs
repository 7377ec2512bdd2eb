//! How this client publishes simulcast layers. The server asks for three RIDs
//! ([`protocol::SIMULCAST_RIDS`]); how many of them a camera sends, and at which sizes, depends
//! on the size it captures at:
//! - Chromium limits the layers by the captured size (`media/engine/simulcast.cc`: three from
//!   960×540, two from 480×270, else one) and drops the *last* encodings of the list, so a
//!   640×360 camera asked for ¼, ½ and full size would send 160×90 and 320×180 and never its
//!   full picture;
//! - Firefox sends whatever it is asked, and once sent every layer at full size unless told
//!   (w3c/webrtc-pc#2535).
//!
//! So in both browsers the first `n` RIDs carry the `n` layers that size allows, halving from
//! the full picture down (640×360: `q` 320×180 and `h` 640×360; 1280×720: `q` 320×180, `h`
//! 640×360, `f` 1280×720), each with a bitrate cap for its size, and the rest are off. The
//! names promise nothing: the server ranks layers by the size of their keyframes. The browser
//! side (`getParameters`/`setParameters`) is in `endpoint::encodings`.

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

/// How many layers a picture of `width`×`height` is sent in: Chromium's rule (by area: three
/// from 960×540, two from 480×270, else one), in every browser.
pub fn layer_count(width: u32, height: u32) -> usize {
    let area = u64::from(width) * u64::from(height);
    if area >= 960 * 540 {
        3
    } else if area >= 480 * 270 {
        2
    } else {
        1
    }
}

/// A bitrate cap for a layer `height` pixels high: about what Chromium's own table allows
/// that size (`simulcast.cc`), enough for a sharp picture, little enough that a weak uplink
/// still carries every layer.
fn max_bitrate(height: u32) -> u32 {
    match height {
        0..=120 => 150_000,
        121..=240 => 400_000,
        241..=400 => 1_000_000,
        401..=600 => 1_500_000,
        _ => 2_500_000,
    }
}

/// The encoding of the layer `rid` of a camera capturing `width`×`height` (`screen` false),
/// or of a screen share that landed on a simulcast m-line: a screen stays one layer at full
/// size (text needs every pixel, and more encodings of a screen would cost its sharer's CPU
/// for nothing). `wanted`: whether anyone receives the layer (the server says, see
/// dynacast); an unwanted layer is not encoded. `None` for a RID the server never asks for.
pub fn encoding_for(
    rid: &str,
    (width, height): (u32, u32),
    screen: bool,
    wanted: bool,
) -> Option<Encoding> {
    let i = SIMULCAST_RIDS.iter().position(|r| *r == rid)?;
    let n = if screen {
        1
    } else {
        layer_count(width, height)
    };
    // Layer i of n: the full picture halved (n - 1 - i) times; past n, off.
    let halvings = (n - 1).saturating_sub(i);
    let scale = (1u32 << halvings) as f32;
    Some(Encoding {
        scale,
        max_bitrate: max_bitrate(height >> halvings),
        active: wanted && i < n,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(size: (u32, u32), screen: bool) -> Vec<(f32, bool)> {
        SIMULCAST_RIDS
            .iter()
            .map(|rid| {
                let e = encoding_for(rid, size, screen, true).unwrap();
                (e.scale, e.active)
            })
            .collect()
    }

    #[test]
    fn the_layers_follow_chromiums_count_from_the_full_picture_down() {
        // 720p: 320×180, 640×360, 1280×720.
        assert_eq!(
            all((1280, 720), false),
            [(4.0, true), (2.0, true), (1.0, true)]
        );
        // The tutorial's 640×360: 320×180 and the full picture, no third.
        assert_eq!(
            all((640, 360), false),
            [(2.0, true), (1.0, true), (1.0, false)]
        );
        assert_eq!(layer_count(640, 480), 2);
        // A small camera: one layer, full size.
        assert_eq!(
            all((320, 240), false),
            [(1.0, true), (1.0, false), (1.0, false)]
        );
    }

    #[test]
    fn bigger_layers_get_bigger_caps() {
        let cap = |rid| {
            encoding_for(rid, (1280, 720), false, true)
                .unwrap()
                .max_bitrate
        };
        assert!(cap("q") < cap("h") && cap("h") < cap("f"));
        let top_of_360p = encoding_for("h", (640, 360), false, true).unwrap();
        assert_eq!(top_of_360p.max_bitrate, 1_000_000);
    }

    #[test]
    fn a_screen_is_one_full_size_layer() {
        assert_eq!(
            all((1920, 1080), true),
            [(1.0, true), (1.0, false), (1.0, false)]
        );
    }

    #[test]
    fn an_unwanted_layer_is_off_and_an_unknown_rid_untouched() {
        assert!(!encoding_for("q", (1280, 720), false, false).unwrap().active);
        assert_eq!(encoding_for("x", (1280, 720), false, true), None);
    }
}
