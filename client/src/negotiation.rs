//! Negotiation bookkeeping for the endpoint, free of the browser so it is tested on the host:
//! which mid carries which server track, which mids carry the local uplink, and the ICE
//! candidates that wait for a remote description.
//!
//! The server makes every offer. Its first offer has one recvonly m-line per local source (the
//! uplink; those mids are absent from `midToTrackId`) and one sendonly m-line per track of the
//! others (present in `midToTrackId`). A later offer may point an old mid at a new track.

use std::collections::BTreeMap;

use protocol::{IceCandidate, TrackId, TrackMetadata};

/// Most candidates kept while no remote description is set; a server sending more is broken.
pub const MAX_PENDING_CANDIDATES: usize = 256;

/// The peer publishing a server track id `<peerId>:<uuid>`: the part before the first ':'.
pub fn publisher_of(track_id: &str) -> Option<&str> {
    track_id
        .split_once(':')
        .map(|(peer, _)| peer)
        .filter(|peer| !peer.is_empty())
}

/// What became of a candidate from the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CandidateFate {
    /// A remote description is set: add it now.
    AddNow(IceCandidate),
    /// Kept until the first remote description is set.
    Queued,
    /// Dropped: too many are already waiting.
    Dropped,
}

/// The state of the offer/answer exchange with the server.
#[derive(Debug, Default)]
pub struct Negotiation {
    remote_mids: BTreeMap<String, TrackId>,
    /// Mids the latest offer says the server only receives on (`a=recvonly`): the uplink
    /// m-lines. Idle downlink slots are `a=inactive` and must not be taken for the uplink.
    recvonly_mids: Option<Vec<String>>,
    uplink: BTreeMap<String, String>,
    remote_description_set: bool,
    pending_candidates: Vec<IceCandidate>,
    offers: u32,
}

impl Negotiation {
    /// Records a new offer's mid → track map; it replaces the previous one.
    pub fn offer_received(&mut self, mid_to_track_id: BTreeMap<String, TrackId>) {
        self.remote_mids = mid_to_track_id;
        self.offers += 1;
    }

    /// Records the offer's SDP: which of its m-lines the server only receives on.
    pub fn offer_sdp(&mut self, sdp: &str) {
        self.recvonly_mids = Some(recvonly_mids(sdp));
    }

    /// Forgets that `mid` carries a local track (it stopped: a screen share ended); the
    /// m-line may carry another local track later.
    pub fn release_uplink(&mut self, mid: &str) {
        self.uplink.remove(mid);
    }

    /// How many offers have been received.
    pub fn offers_received(&self) -> u32 {
        self.offers
    }

    /// The server track received on `mid`, per the latest offer.
    pub fn remote_track(&self, mid: &str) -> Option<&TrackId> {
        self.remote_mids.get(mid)
    }

    /// Whether `mid` may carry a local track: the server does not send on it and no local
    /// track uses it yet.
    pub fn is_free_uplink(&self, mid: &str) -> bool {
        let receives = self
            .recvonly_mids
            .as_ref()
            .is_none_or(|mids| mids.iter().any(|m| m == mid));
        receives && !self.remote_mids.contains_key(mid) && !self.uplink.contains_key(mid)
    }

    /// Records that the local track `local_track_id` is sent on `mid`.
    pub fn assign_uplink(&mut self, mid: &str, local_track_id: &str) {
        self.uplink
            .insert(mid.to_owned(), local_track_id.to_owned());
    }

    /// The uplink: mid → local track id (sent with every answer).
    pub fn uplink(&self) -> &BTreeMap<String, String> {
        &self.uplink
    }

    /// Decides what to do with a candidate from the server.
    pub fn candidate(&mut self, candidate: IceCandidate) -> CandidateFate {
        if self.remote_description_set {
            CandidateFate::AddNow(candidate)
        } else if self.pending_candidates.len() < MAX_PENDING_CANDIDATES {
            self.pending_candidates.push(candidate);
            CandidateFate::Queued
        } else {
            CandidateFate::Dropped
        }
    }

    /// Notes that a remote description is set; returns the candidates that waited for it.
    pub fn remote_description_applied(&mut self) -> Vec<IceCandidate> {
        self.remote_description_set = true;
        std::mem::take(&mut self.pending_candidates)
    }

    /// The two maps of an `sdpAnswer`: metadata of each local track sent, and mid → local
    /// track id. `metadata` gives a local track's metadata by its id.
    pub fn answer_maps(
        &self,
        metadata: impl Fn(&str) -> Option<TrackMetadata>,
    ) -> (BTreeMap<String, TrackMetadata>, BTreeMap<String, String>) {
        let mut track_metadata = BTreeMap::new();
        let mut mids = BTreeMap::new();
        for (mid, track_id) in &self.uplink {
            if let Some(m) = metadata(track_id) {
                track_metadata.insert(track_id.clone(), m);
                mids.insert(mid.clone(), track_id.clone());
            }
        }
        (track_metadata, mids)
    }
}

/// The mids of an SDP's m-sections marked `a=recvonly`.
pub fn recvonly_mids(sdp: &str) -> Vec<String> {
    let mut out = Vec::new();
    // Each m-section: its mid and whether it is recvonly, pushed when the next one starts.
    let mut section: Option<(Option<String>, bool)> = None;
    let mut flush = |section: &mut Option<(Option<String>, bool)>| {
        if let Some((Some(mid), true)) = section.take() {
            out.push(mid);
        }
    };
    for line in sdp.lines().map(str::trim_end) {
        if line.starts_with("m=") {
            flush(&mut section);
            section = Some((None, false));
        } else if let Some((mid, recvonly)) = section.as_mut() {
            if let Some(m) = line.strip_prefix("a=mid:") {
                *mid = Some(m.to_owned());
            } else if line == "a=recvonly" {
                *recvonly = true;
            }
        }
    }
    flush(&mut section);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::TrackSource;

    fn cand(n: u32) -> IceCandidate {
        IceCandidate {
            candidate: format!("candidate:{n} 1 udp 1 127.0.0.1 {n} typ host"),
            sdp_mid: Some("0".into()),
            sdp_m_line_index: Some(0),
            username_fragment: None,
        }
    }

    #[test]
    fn publisher_is_the_part_before_the_first_colon() {
        assert_eq!(publisher_of("p1:t1"), Some("p1"));
        assert_eq!(publisher_of("p1:t1:x"), Some("p1"));
        assert_eq!(publisher_of("no-colon"), None);
        assert_eq!(publisher_of(":t"), None);
    }

    #[test]
    fn uplink_mids_are_those_the_server_does_not_send_on() {
        let mut n = Negotiation::default();
        n.offer_received(BTreeMap::from([("2".into(), "p1:a".into())]));
        assert!(n.is_free_uplink("0"));
        assert!(n.is_free_uplink("1"));
        assert!(!n.is_free_uplink("2"));
        n.assign_uplink("0", "local-audio");
        assert!(!n.is_free_uplink("0"));
        assert_eq!(n.remote_track("2").map(String::as_str), Some("p1:a"));

        // A later offer re-points mid 2 at another publisher's track; the uplink stays.
        n.offer_received(BTreeMap::from([("2".into(), "p2:b".into())]));
        assert_eq!(n.remote_track("2").map(String::as_str), Some("p2:b"));
        assert_eq!(n.offers_received(), 2);
        assert_eq!(n.uplink().get("0").map(String::as_str), Some("local-audio"));
    }

    #[test]
    fn only_recvonly_m_lines_are_uplink() {
        let sdp = "v=0\r\nm=audio 9 UDP 111\r\na=mid:0\r\na=recvonly\r\nm=video 9 UDP 96\r\n\
                   a=mid:1\r\na=recvonly\r\nm=video 9 UDP 96\r\na=mid:2\r\na=inactive\r\n\
                   m=audio 9 UDP 111\r\na=sendonly\r\na=mid:3\r\n";
        assert_eq!(recvonly_mids(sdp), vec!["0", "1"]);
        let mut n = Negotiation::default();
        n.offer_received(BTreeMap::from([("3".into(), "p1:a".into())]));
        n.offer_sdp(sdp);
        assert!(n.is_free_uplink("1"));
        assert!(!n.is_free_uplink("2"), "an idle downlink slot is not ours");
        n.assign_uplink("1", "screen");
        assert!(!n.is_free_uplink("1"));
        n.release_uplink("1");
        assert!(n.is_free_uplink("1"), "a stopped share frees its m-line");
    }

    #[test]
    fn candidates_wait_for_the_remote_description() {
        let mut n = Negotiation::default();
        assert_eq!(n.candidate(cand(1)), CandidateFate::Queued);
        assert_eq!(n.candidate(cand(2)), CandidateFate::Queued);
        assert_eq!(n.remote_description_applied(), vec![cand(1), cand(2)]);
        assert_eq!(n.candidate(cand(3)), CandidateFate::AddNow(cand(3)));
        assert!(n.remote_description_applied().is_empty());
    }

    #[test]
    fn candidate_queue_is_bounded() {
        let mut n = Negotiation::default();
        for i in 0..MAX_PENDING_CANDIDATES as u32 {
            assert_eq!(n.candidate(cand(i)), CandidateFate::Queued);
        }
        assert_eq!(n.candidate(cand(9999)), CandidateFate::Dropped);
    }

    #[test]
    fn answer_maps_list_only_tracks_sent() {
        let mut n = Negotiation::default();
        n.assign_uplink("0", "mic");
        n.assign_uplink("1", "cam");
        let meta = |id: &str| {
            let source = match id {
                "mic" => TrackSource::Microphone,
                "cam" => TrackSource::Camera,
                _ => return None,
            };
            Some(TrackMetadata {
                source,
                muted: false,
            })
        };
        let (tracks, mids) = n.answer_maps(meta);
        assert_eq!(tracks.len(), 2);
        assert_eq!(tracks["cam"].source, TrackSource::Camera);
        assert_eq!(mids["0"], "mic");
        assert_eq!(mids["1"], "cam");
    }
}
