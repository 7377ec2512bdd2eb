//! What this client publishes: its local tracks, muting, device switches, screen shares, and
//! putting them on the uplink m-lines of an offer.

use protocol::{ClientMediaEvent, TrackMetadata, TrackSource};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{
    MediaStream, MediaStreamTrack, RtcPeerConnection, RtcRtpTransceiver, RtcRtpTransceiverDirection,
};

use super::{
    track_counts, transceiver_by_mid, Inner, LocalTrack, SenderExt, State, WebRtcEndpoint,
};
use crate::log;

impl WebRtcEndpoint {
    /// Sets a local track's `muted` (by its id, see [`local_track_id`](Self::local_track_id))
    /// and tells the server once it knows the track (until then the next answer carries it).
    pub fn set_track_muted(&self, local_id: &str, muted: bool) {
        let update = {
            let mut s = self.inner.state.borrow_mut();
            let Some(t) = s.local_tracks.iter_mut().find(|t| t.id == local_id) else {
                return;
            };
            t.metadata.muted = muted;
            t.announced.then(|| t.metadata.clone())
        };
        if let Some(track_metadata) = update {
            self.inner
                .callbacks
                .on_send_media_event(ClientMediaEvent::UpdateTrackMetadata {
                    track_id: local_id.to_owned(),
                    track_metadata,
                });
        }
    }

    /// The id of our published track from `source`, if any.
    pub fn local_track_id(&self, source: TrackSource) -> Option<String> {
        let s = self.inner.state.borrow();
        s.local_tracks
            .iter()
            .find(|t| t.metadata.source == source)
            .map(|t| t.id.clone())
    }

    /// The metadata of our published track `local_id`.
    pub fn local_track_metadata(&self, local_id: &str) -> Option<TrackMetadata> {
        let s = self.inner.state.borrow();
        s.local_tracks
            .iter()
            .find(|t| t.id == local_id)
            .map(|t| t.metadata.clone())
    }

    /// Publishes a screen track: asks the server for one more video m-line
    /// (`renegotiateTracks {tracks}`); the next offer's free one carries it. Returns its id.
    pub fn add_screen_track(&self, track: &MediaStreamTrack, stream: &MediaStream) -> String {
        let counts = {
            let mut s = self.inner.state.borrow_mut();
            s.local_tracks.push(LocalTrack {
                id: track.id(),
                track: Clone::clone(track),
                stream: Clone::clone(stream),
                metadata: TrackMetadata {
                    source: TrackSource::Screen,
                    muted: false,
                },
                mid: None,
                announced: false,
                wanted_layers: None,
            });
            track_counts(&s.local_tracks)
        };
        self.inner
            .callbacks
            .on_send_media_event(ClientMediaEvent::RenegotiateTracks {
                tracks: Some(counts),
                ice_restart: false,
            });
        track.id()
    }

    /// Stops publishing a local track (a screen share): its sender sends nothing, its m-line
    /// is free again, and the next answer no longer maps it, so the server unpublishes it.
    pub fn remove_track(&self, local_id: &str) {
        let (mid, pc) = {
            let mut s = self.inner.state.borrow_mut();
            let Some(i) = s.local_tracks.iter().position(|t| t.id == local_id) else {
                return;
            };
            let removed = s.local_tracks.remove(i);
            if let Some(mid) = &removed.mid {
                s.negotiation.release_uplink(mid);
            }
            (removed.mid, s.pc.as_ref().map(|p| p.pc.clone()))
        };
        if let (Some(mid), Some(pc)) = (&mid, &pc) {
            if let Some(t) = transceiver_by_mid(pc, mid) {
                // Resolves at once for a null track; nothing to wait for.
                let _ = t.sender().replace_track(None);
            }
        }
        if mid.is_some() {
            self.inner
                .callbacks
                .on_send_media_event(ClientMediaEvent::RenegotiateTracks {
                    tracks: None,
                    ice_restart: false,
                });
        }
    }

    /// Sends `track` instead of the local track `local_id` (another camera or microphone),
    /// without renegotiating: the server keeps seeing the same track.
    pub async fn replace_track(
        &self,
        local_id: &str,
        track: &MediaStreamTrack,
        stream: &MediaStream,
    ) -> Result<(), JsValue> {
        let (mid, pc) = {
            let mut s = self.inner.state.borrow_mut();
            let Some(t) = s.local_tracks.iter_mut().find(|t| t.id == local_id) else {
                return Err(JsValue::from_str("no such local track"));
            };
            t.track = Clone::clone(track);
            t.stream = Clone::clone(stream);
            (t.mid.clone(), s.pc.as_ref().map(|p| p.pc.clone()))
        };
        if let (Some(mid), Some(pc)) = (mid, pc) {
            if let Some(t) = transceiver_by_mid(&pc, &mid) {
                JsFuture::from(t.sender().replace_track(Some(track))).await?;
            }
            // Another camera may capture at another size: its layers follow.
            self.inner.set_encodings(&pc).await;
        }
        Ok(())
    }
    /// Publishes a local track. Tracks added before the server's first offer ride on it;
    /// a later one asks the server for a new offer.
    pub fn add_track(
        &self,
        track: &MediaStreamTrack,
        stream: &MediaStream,
        metadata: TrackMetadata,
    ) {
        let renegotiate = {
            let mut s = self.inner.state.borrow_mut();
            if s.left || s.local_tracks.iter().any(|t| t.track.id() == track.id()) {
                return;
            }
            s.local_tracks.push(LocalTrack {
                id: track.id(),
                // `Clone::clone`: web-sys's inherent `clone()` would make a new MediaStream(Track).
                track: Clone::clone(track),
                stream: Clone::clone(stream),
                metadata,
                mid: None,
                announced: false,
                wanted_layers: None,
            });
            s.negotiation.offers_received() > 0
        };
        if renegotiate {
            self.inner
                .callbacks
                .on_send_media_event(ClientMediaEvent::RenegotiateTracks {
                    tracks: None,
                    ice_restart: false,
                });
        }
    }
}

impl Inner {
    /// Puts every local track not yet sent on a free uplink transceiver of its kind (one the
    /// server receives on: its mid is not in the offer's `midToTrackId`).
    pub(super) async fn attach_uplink(&self, pc: &RtcPeerConnection) -> Result<(), JsValue> {
        let plan: Vec<(RtcRtpTransceiver, MediaStreamTrack, MediaStream)> = {
            let mut s = self.state.borrow_mut();
            let State {
                local_tracks,
                negotiation,
                ..
            } = &mut *s;
            let transceivers: Vec<RtcRtpTransceiver> = pc
                .get_transceivers()
                .iter()
                .filter_map(|t| t.dyn_into().ok())
                .collect();
            let mut plan = Vec::new();
            for local in local_tracks.iter_mut().filter(|t| t.mid.is_none()) {
                let kind = local.track.kind();
                let slot = transceivers.iter().find_map(|t| {
                    let mid = t.mid()?;
                    let usable = t.direction() != RtcRtpTransceiverDirection::Stopped
                        && negotiation.is_free_uplink(&mid)
                        && t.receiver().track().kind() == kind;
                    usable.then(|| (t.clone(), mid))
                });
                match slot {
                    Some((t, mid)) => {
                        negotiation.assign_uplink(&mid, &local.id);
                        local.mid = Some(mid);
                        plan.push((t, Clone::clone(&local.track), Clone::clone(&local.stream)));
                    }
                    None => log::warn(&format!(
                        "the server offered no m-line for the local {kind} track"
                    )),
                }
            }
            plan
        };
        for (transceiver, track, stream) in plan {
            let sender = transceiver.sender();
            JsFuture::from(sender.replace_track(Some(&track))).await?;
            transceiver.set_direction(RtcRtpTransceiverDirection::Sendonly);
            // One msid for our audio and video; missing in older browsers, and only cosmetic.
            if let Err(e) = sender.unchecked_ref::<SenderExt>().set_streams(&stream) {
                log::info_failed("setStreams unavailable", &e);
            }
        }
        Ok(())
    }
}
