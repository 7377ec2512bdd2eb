//! What the client sends: when a track on an uplink m-line is published, unpublished or
//! published again. Pure, so the rules are unit-tested apart from any connection.
//!
//! A track is published when its m-line has RTP (the `webrtc` crate's `on_track`) and — for a
//! client that has ever sent a mid map in `sdpAnswer.midToTrackId` — the latest answer maps the
//! m-line. A browser that stops a screen share calls `replaceTrack(null)` and answers without
//! the mid; when it shares again it reuses the transceiver and its SSRC, so `on_track` does
//! not fire a second time: the answer's map is the only signal, and the stored `TrackRemote`
//! is published again under a new id. Clients that never send a map (bare test peers) get the
//! old rule: published on first RTP, for good.

/// What to do with one uplink m-line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plan {
    /// Nothing changes.
    Keep,
    /// Publish the m-line's track under a new id.
    Publish,
    /// Withdraw the published track.
    Unpublish,
    /// The m-line now carries another of the client's tracks: withdraw, publish anew.
    Republish,
}

/// The plan for one m-line.
///
/// `has_remote`: RTP has arrived on it. `uses_mid_map`: the client has sent a non-empty mid
/// map in some answer. `mapped`: the client's local track id for this mid in the latest answer.
/// `published`: `None` when not published, else the local id it was published under (`None`
/// inside when it was published before the client named it).
pub fn plan(
    has_remote: bool,
    uses_mid_map: bool,
    mapped: Option<&str>,
    published: Option<Option<&str>>,
) -> Plan {
    let wanted = has_remote && (!uses_mid_map || mapped.is_some());
    match (wanted, published) {
        (false, None) => Plan::Keep,
        (false, Some(_)) => Plan::Unpublish,
        (true, None) => Plan::Publish,
        // Published under one local track and now mapped to another: a different track (a new
        // screen share on a freed m-line), so a new id and the new metadata.
        (true, Some(Some(before))) if uses_mid_map && Some(before) != mapped => Plan::Republish,
        (true, Some(_)) => Plan::Keep,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_a_mid_map_rtp_alone_publishes_for_good() {
        assert_eq!(plan(false, false, None, None), Plan::Keep);
        assert_eq!(plan(true, false, None, None), Plan::Publish);
        assert_eq!(plan(true, false, None, Some(None)), Plan::Keep);
    }

    #[test]
    fn with_a_mid_map_the_latest_answer_decides() {
        // Mapped but no RTP yet: wait for on_track.
        assert_eq!(plan(false, true, Some("screen1"), None), Plan::Keep);
        assert_eq!(plan(true, true, Some("screen1"), None), Plan::Publish);
        // RTP on an m-line the answer does not map (stopped before the first packet came).
        assert_eq!(plan(true, true, None, None), Plan::Keep);
        // Stopped: the answer no longer maps it.
        assert_eq!(
            plan(true, true, None, Some(Some("screen1"))),
            Plan::Unpublish
        );
        // Shared again on the same transceiver: no on_track, the map alone brings it back.
        assert_eq!(plan(true, true, Some("screen2"), None), Plan::Publish);
        assert_eq!(
            plan(true, true, Some("screen2"), Some(Some("screen1"))),
            Plan::Republish
        );
        assert_eq!(
            plan(true, true, Some("screen1"), Some(Some("screen1"))),
            Plan::Keep
        );
        // Published before the client named it (first answer had no map): adopt the name.
        assert_eq!(plan(true, true, Some("cam"), Some(None)), Plan::Keep);
    }
}
