//! The arithmetic of telling the server how big the page shows each remote video
//! (`setTileSizes`): a tile's size in device pixels, and which sizes changed since the server
//! was last told. The browser side (observers, debounce, sending) is `tile_observer`.

use std::collections::BTreeMap;

use protocol::{TileSize, TrackId, MAX_MIDS, MAX_TILE_PIXELS};

/// A tile's size in device pixels from its CSS size and the device pixel ratio (a 320 px tile
/// on a 2× screen needs 640 pixels of video); 0×0 when it is not `shown` (off screen, in a
/// hidden tab) or not rendered.
pub fn device_size(css_width: f64, css_height: f64, pixel_ratio: f64, shown: bool) -> TileSize {
    let ratio = if pixel_ratio.is_finite() && pixel_ratio > 0.0 {
        pixel_ratio
    } else {
        1.0
    };
    let side = |css: f64| -> u32 {
        let px = (css * ratio).round();
        if px.is_finite() && px > 0.0 {
            // The protocol's bound; `as` saturates what a float cannot hold.
            (px as u32).min(MAX_TILE_PIXELS)
        } else {
            0
        }
    };
    let (width, height) = (side(css_width), side(css_height));
    if !shown || width == 0 || height == 0 {
        return TileSize::default();
    }
    TileSize { width, height }
}

/// The sizes in `now` the server has not been told (a track never told counts as changed), at
/// most [`MAX_MIDS`] of them, the bound of one message (the rest go next time).
pub fn changes(
    told: &BTreeMap<TrackId, TileSize>,
    now: &BTreeMap<TrackId, TileSize>,
) -> BTreeMap<TrackId, TileSize> {
    now.iter()
        .filter(|(track, size)| told.get(*track) != Some(size))
        .take(MAX_MIDS)
        .map(|(track, size)| (track.clone(), *size))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn size(width: u32, height: u32) -> TileSize {
        TileSize { width, height }
    }

    #[test]
    fn css_pixels_become_device_pixels() {
        assert_eq!(device_size(320.0, 180.0, 1.0, true), size(320, 180));
        assert_eq!(device_size(320.0, 180.0, 2.0, true), size(640, 360));
        assert_eq!(device_size(333.3, 187.4, 1.5, true), size(500, 281));
        // A browser reporting no ratio counts as 1.
        assert_eq!(device_size(320.0, 180.0, 0.0, true), size(320, 180));
        assert_eq!(device_size(320.0, 180.0, f64::NAN, true), size(320, 180));
    }

    #[test]
    fn unseen_or_empty_tiles_are_zero_and_huge_ones_bounded() {
        assert_eq!(device_size(320.0, 180.0, 1.0, false), size(0, 0));
        assert_eq!(device_size(0.0, 180.0, 1.0, true), size(0, 0));
        assert_eq!(device_size(320.0, 0.2, 1.0, true), size(0, 0));
        assert_eq!(device_size(-5.0, 10.0, 1.0, true), size(0, 0));
        assert_eq!(
            device_size(1e9, 20_000.0, 1.0, true),
            size(MAX_TILE_PIXELS, MAX_TILE_PIXELS)
        );
        assert_eq!(device_size(f64::INFINITY, 10.0, 1.0, true), size(0, 0));
    }

    #[test]
    fn only_what_changed_is_told() {
        let told: BTreeMap<TrackId, TileSize> =
            [("a:1".into(), size(320, 180)), ("b:1".into(), size(0, 0))].into();
        let now: BTreeMap<TrackId, TileSize> = [
            ("a:1".into(), size(320, 180)),
            ("b:1".into(), size(640, 360)),
            ("c:1".into(), size(0, 0)),
        ]
        .into();
        let sent = changes(&told, &now);
        assert_eq!(
            sent,
            [("b:1".into(), size(640, 360)), ("c:1".into(), size(0, 0))].into()
        );
        assert!(changes(&now, &now).is_empty());
    }

    #[test]
    fn one_message_holds_at_most_max_mids() {
        let now: BTreeMap<TrackId, TileSize> = (0..MAX_MIDS + 5)
            .map(|i| (format!("p{i}:v"), size(10, 10)))
            .collect();
        assert_eq!(changes(&BTreeMap::new(), &now).len(), MAX_MIDS);
    }
}
