//! Video tracks added after joining (screen shares): adding, pausing, stopping and sharing
//! again on a stopped track's sender, each followed by the renegotiation a browser asks for.
//! A child of [`super`] so it can reach the peer's private parts; the parent imports nothing
//! from here.

use std::sync::Arc;

use anyhow::{anyhow, Context};
use protocol::{ClientMediaEvent, ClientMessage, TrackCounts, TrackMetadata};
use tokio::task::JoinHandle;
use webrtc::track::track_local::track_local_static_rtp::TrackLocalStaticRTP;
use webrtc::track::track_local::TrackLocal;

use super::{ExtraTrack, TestPeer};
use crate::media_source::{publish, vp8_track, Numbering};
use crate::receive::count_keyframe_requests;

impl TestPeer {
    /// Asks for enough uplink m-lines for every track we have, as a browser does after adding
    /// one (`renegotiateTracks {tracks}`).
    fn ask_for_m_lines(&self) {
        let video = u8::from(self.video) + self.extras().len() as u8;
        self.send(&ClientMessage::MediaEvent {
            data: ClientMediaEvent::RenegotiateTracks {
                tracks: Some(TrackCounts {
                    audio: u8::from(self.audio),
                    video,
                }),
                ice_restart: false,
            },
        });
    }

    /// Adds a video track after joining (a screen share), as a browser does: a new sender
    /// whose m-line comes with the next offer, asked for with `renegotiateTracks {tracks}`.
    /// Sends media when `sending`, else once [`TestPeer::resume_track`] is called. Returns
    /// its local id.
    pub async fn add_video_track(
        &self,
        name: &str,
        metadata: TrackMetadata,
        sending: bool,
    ) -> anyhow::Result<String> {
        let track = vp8_track(&self.id, name);
        let local_id = track.id().to_owned();
        let sender = self
            .pc
            .add_track(track.clone() as Arc<dyn TrackLocal + Send + Sync>)
            .await
            .context("adding a video track")?;
        self.local_tracks().insert(local_id.clone(), metadata);
        // Counted with the camera's in `keyframe_requests`; ends with the connection.
        tokio::spawn(count_keyframe_requests(
            sender.clone(),
            None,
            self.state_tx.clone(),
        ));
        let publishing = sending.then(|| self.start_publishing(track.clone()));
        self.extras().push(ExtraTrack {
            sender,
            track,
            local_id: local_id.clone(),
            publishing,
        });
        self.ask_for_m_lines();
        Ok(local_id)
    }

    fn start_publishing(&self, track: Arc<TrackLocalStaticRTP>) -> JoinHandle<()> {
        tokio::spawn(publish(
            track,
            self.video_packets_per_second,
            self.video_payload_bytes,
            Numbering::default(),
            None,
            None,
        ))
    }

    /// Starts sending on an added track created with `sending: false`.
    pub async fn resume_track(&self, local_id: &str) -> anyhow::Result<()> {
        let track = self
            .extras()
            .iter()
            .find(|e| e.local_id == local_id)
            .map(|e| e.track.clone())
            .ok_or_else(|| anyhow!("no added track {local_id}"))?;
        let handle = self.start_publishing(track);
        if let Some(e) = self.extras().iter_mut().find(|e| e.local_id == local_id) {
            if let Some(old) = e.publishing.replace(handle) {
                old.abort();
            }
        }
        Ok(())
    }

    /// Stops an added track as a browser stops a screen share: nothing more is sent on it
    /// (`replaceTrack(null)`), the next answer no longer maps its m-line, and a renegotiation
    /// is asked for. The sender and its m-line stay for the next share.
    pub fn stop_track(&self, local_id: &str) {
        if let Some(e) = self.extras().iter_mut().find(|e| e.local_id == local_id) {
            if let Some(p) = e.publishing.take() {
                p.abort();
            }
        }
        self.local_tracks().remove(local_id);
        self.send(&ClientMessage::MediaEvent {
            data: ClientMediaEvent::RenegotiateTracks {
                tracks: None,
                ice_restart: false,
            },
        });
    }

    /// Shares again on a stopped track's sender, as a browser does with
    /// `replaceTrack(newTrack)`: a new local track (id `<peer>-<name>`) on the same m-line and
    /// SSRC, so the server sees no new track arrive, only the answer mapping the m-line again.
    /// Returns the new local id.
    pub async fn restart_track(
        &self,
        stopped: &str,
        name: &str,
        metadata: TrackMetadata,
    ) -> anyhow::Result<String> {
        let sender = self
            .extras()
            .iter()
            .find(|e| e.local_id == stopped)
            .map(|e| e.sender.clone())
            .ok_or_else(|| anyhow!("no added track {stopped}"))?;
        let track = vp8_track(&self.id, name);
        let local_id = track.id().to_owned();
        // (This crate cannot replace a null track, so stopping only stopped the writes.)
        sender
            .replace_track(Some(track.clone() as Arc<dyn TrackLocal + Send + Sync>))
            .await
            .context("replacing the track")?;
        self.local_tracks().insert(local_id.clone(), metadata);
        let handle = self.start_publishing(track.clone());
        if let Some(e) = self.extras().iter_mut().find(|e| e.local_id == stopped) {
            e.local_id = local_id.clone();
            e.track = track;
            e.publishing = Some(handle);
        }
        self.ask_for_m_lines();
        Ok(local_id)
    }
}
