//! The uplink: one recvonly transceiver per track the client may send, and what is published
//! from it (a track id, metadata, a forwarder, voice activity). `plan` is the pure rule for when
//! a track is published, withdrawn or published again.

mod plan;

use std::sync::Arc;

use protocol::{TrackId, TrackMetadata, TrackSource};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, Instrument};
use webrtc::peer_connection::RTCPeerConnection;
use webrtc::rtp_transceiver::rtp_codec::RTPCodecType;
use webrtc::rtp_transceiver::rtp_transceiver_direction::RTCRtpTransceiverDirection;
use webrtc::rtp_transceiver::{RTCRtpTransceiver, RTCRtpTransceiverInit};
use webrtc::track::track_remote::TrackRemote;

use super::dynacast::Dynacast;
use super::{Peer, PeerError};
use crate::forwarder::{self, PublishedTrack};
use crate::room::NotYours;
use crate::voice::{self, VoiceDetector, VoiceWatch};
use plan::Plan;

/// A recvonly transceiver for what the client sends, and what became of it.
pub(super) struct UplinkSlot {
    pub(super) transceiver: Arc<RTCRtpTransceiver>,
    pub(super) kind: RTPCodecType,
    /// What the client sends on it, one stream per simulcast layer (one without), set as
    /// each starts (`on_track`); kept for publishing again after a stop.
    pub(super) layers: Vec<Arc<TrackRemote>>,
    pub(super) published: Option<Published>,
}

/// A published uplink track and its forwarder.
pub(super) struct Published {
    pub(super) track: Arc<PublishedTrack>,
    /// The client's own id for it, when the client named it in an answer.
    pub(super) local_id: Option<String>,
    /// Stops this track's forwarder only (a stop and restart gets a fresh one).
    pub(super) forwarder: CancellationToken,
    /// Which of its layers the client was told to send.
    pub(super) dynacast: Dynacast,
}

impl Peer {
    /// Brings what is published in line with the uplinks' RTP and the latest answer.
    pub(super) fn reconcile(&mut self) {
        for i in 0..self.uplinks.len() {
            let slot = &mut self.uplinks[i];
            let Some(mid) = slot.transceiver.mid() else {
                continue;
            };
            let mapped = self.mid_to_local.get(mid.as_str()).cloned();
            let published = slot.published.as_ref().map(|p| p.local_id.as_deref());
            match plan::plan(
                !slot.layers.is_empty(),
                self.uses_mid_map,
                mapped.as_deref(),
                published,
            ) {
                Plan::Keep => {
                    if let Some(p) = &mut slot.published {
                        if p.local_id.is_none() {
                            p.local_id = mapped;
                        }
                    }
                }
                Plan::Publish => self.publish(i, mapped),
                Plan::Unpublish => self.unpublish(i),
                Plan::Republish => {
                    self.unpublish(i);
                    self.publish(i, mapped);
                }
            }
        }
    }

    /// Changes the metadata of one of this peer's tracks, named by the server's id or by the
    /// client's own (its key in `sdpAnswer.trackIdToTrackMetadata`). A track not published
    /// yet keeps it for when it is; the others hear of a published one.
    pub fn update_track_metadata(
        &mut self,
        track_id: &str,
        metadata: TrackMetadata,
    ) -> Result<(), NotYours> {
        let by_server_id = self
            .uplinks
            .iter()
            .filter_map(|u| u.published.as_ref())
            .find(|p| p.track.id == track_id);
        let server_id = if let Some(p) = by_server_id {
            if let Some(local) = &p.local_id {
                self.local_metadata.insert(local.clone(), metadata.clone());
            }
            track_id.to_owned()
        } else if self.local_metadata.contains_key(track_id)
            || self.mid_to_local.values().any(|l| l == track_id)
        {
            self.local_metadata
                .insert(track_id.to_owned(), metadata.clone());
            let published = self
                .uplinks
                .iter()
                .filter_map(|u| u.published.as_ref())
                .find(|p| p.local_id.as_deref() == Some(track_id));
            match published {
                Some(p) => p.track.id.clone(),
                None => return Ok(()),
            }
        } else {
            // Someone else's track, or nothing at all: the room refuses it.
            track_id.to_owned()
        };
        self.room.update_track(&self.id, &server_id, metadata)
    }

    /// A stream started on uplink `i`: kept (replacing one of the same RID, which a
    /// restarted stream is), forwarded at once if the track is published, else published when
    /// the plan says so.
    pub(super) fn add_remote(&mut self, i: usize, remote: Arc<TrackRemote>) {
        debug!(parent: &self.span, rid = remote.rid(), ssrc = remote.ssrc(), "stream started");
        let slot = &mut self.uplinks[i];
        match slot.layers.iter().position(|l| l.rid() == remote.rid()) {
            Some(j) => slot.layers[j] = remote.clone(),
            None => slot.layers.push(remote.clone()),
        }
        match &slot.published {
            Some(p) => {
                let (track, cancel) = (p.track.clone(), p.forwarder.clone());
                self.start_layer(remote, track, cancel);
            }
            None => self.reconcile(),
        }
    }

    /// Starts the task that forwards one layer of `track`.
    fn start_layer(
        &self,
        remote: Arc<TrackRemote>,
        track: Arc<PublishedTrack>,
        cancel: CancellationToken,
    ) {
        let layer = track.add_layer(&remote);
        let voice = self.voice_watch(&remote, &track);
        tokio::spawn(
            forwarder::forward(remote, track, layer, self.stats.clone(), cancel, voice)
                .instrument(self.span.clone()),
        );
    }

    /// Publishes what uplink `i` receives under a new track id, with a fresh forwarder.
    pub(super) fn publish(&mut self, i: usize, local_id: Option<String>) {
        let layers = self.uplinks[i].layers.clone();
        let Some(remote) = layers.first().cloned() else {
            return;
        };
        let kind = remote.kind();
        let metadata = local_id
            .as_ref()
            .and_then(|l| self.local_metadata.get(l).cloned())
            .unwrap_or(TrackMetadata {
                source: if kind == RTPCodecType::Audio {
                    TrackSource::Microphone
                } else {
                    TrackSource::Camera
                },
                muted: false,
            });
        let track_id: TrackId = format!("{}:{}", self.id, uuid::Uuid::new_v4());
        let track = Arc::new(PublishedTrack::new(
            track_id,
            self.id.clone(),
            metadata,
            &remote,
            Arc::downgrade(&self.pc),
            self.stats.clone(),
            self.fanout_shards,
        ));
        info!(parent: &self.span, track = %track.id, %kind, ?local_id, layers = layers.len(), "publishing");
        let cancel = self.tasks.child_token();
        for remote in layers {
            self.start_layer(remote, track.clone(), cancel.clone());
        }
        self.uplinks[i].published = Some(Published {
            track: track.clone(),
            local_id,
            forwarder: cancel,
            dynacast: Dynacast::default(),
        });
        self.room.publish(&self.id, self.session, vec![track]);
    }

    /// Voice activity for an audio track whose connection negotiated the audio level.
    pub(super) fn voice_watch(
        &self,
        remote: &TrackRemote,
        track: &PublishedTrack,
    ) -> Option<VoiceWatch> {
        if remote.kind() != RTPCodecType::Audio {
            return None;
        }
        let ext_id = remote
            .params()
            .header_extensions
            .iter()
            .find(|e| e.uri == voice::AUDIO_LEVEL_URI)
            .and_then(|e| u8::try_from(e.id).ok())?;
        // Weak: the room outlives no forwarder on its account.
        let room = Arc::downgrade(&self.room);
        let (publisher, track_id) = (self.id.clone(), track.id.clone());
        Some(VoiceWatch {
            ext_id,
            detector: VoiceDetector::default(),
            report: Box::new(move |speaking| {
                debug!(track = %track_id, speaking, "voice activity");
                if let Some(room) = room.upgrade() {
                    room.voice_activity(&publisher, &track_id, speaking);
                }
            }),
        })
    }

    /// Withdraws uplink `i`'s track: its forwarder stops, subscribers drop it.
    pub(super) fn unpublish(&mut self, i: usize) {
        let Some(p) = self.uplinks[i].published.take() else {
            return;
        };
        info!(parent: &self.span, track = %p.track.id, "unpublishing");
        p.forwarder.cancel();
        self.room
            .unpublish(&self.id, std::slice::from_ref(&p.track.id));
    }
}

/// A recvonly transceiver for one more track from the client.
pub(super) async fn add_uplink(
    pc: &RTCPeerConnection,
    kind: RTPCodecType,
) -> Result<UplinkSlot, PeerError> {
    let transceiver = pc
        .add_transceiver_from_kind(
            kind,
            Some(RTCRtpTransceiverInit {
                direction: RTCRtpTransceiverDirection::Recvonly,
                send_encodings: vec![],
            }),
        )
        .await?;
    Ok(UplinkSlot {
        transceiver,
        kind,
        layers: Vec::new(),
        published: None,
    })
}
