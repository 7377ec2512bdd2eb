//! The downlink: one sendonly transceiver ("slot") per forwarded track, reused when idle so
//! churn does not grow the SDP, its lease on a fan-out shard, and the subscriber's RTCP (PLI/FIR
//! turned into keyframe requests to the publisher).

use std::sync::{Arc, Mutex};

use tracing::Instrument;
use webrtc::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
use webrtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use webrtc::rtp_transceiver::rtp_codec::RTPCodecType;
use webrtc::rtp_transceiver::rtp_sender::RTCRtpSender;
use webrtc::rtp_transceiver::rtp_transceiver_direction::RTCRtpTransceiverDirection;
use webrtc::rtp_transceiver::{RTCRtpTransceiver, RTCRtpTransceiverInit};
use webrtc::track::track_local::TrackLocal;

use super::{Peer, PeerError};
use crate::forwarder::{PublishedTrack, ShardLease};
use crate::simulcast::Cap;
use protocol::TileSize;

/// A downlink transceiver and the track it currently carries (None: idle, reusable).
pub(super) struct Slot {
    pub(super) transceiver: Arc<RTCRtpTransceiver>,
    pub(super) sender: Arc<RTCRtpSender>,
    pub(super) kind: RTPCodecType,
    pub(super) track: Arc<Mutex<Option<Arc<PublishedTrack>>>>,
    /// The sender's place in one of the track's fan-out shards (none while idle).
    pub(super) lease: Option<ShardLease>,
    /// The SSRC the subscriber receives on this slot (simulcast caps are set by it).
    pub(super) ssrc: Option<u32>,
    /// What the allocator last let this slot's track send (see `allocation`).
    pub(super) cap: Cap,
    /// How big the page shows this slot's video, if it said (`setTileSizes`).
    pub(super) tile: Option<TileSize>,
}

impl Slot {
    pub(super) fn current(&self) -> Option<Arc<PublishedTrack>> {
        self.track.lock().ok().and_then(|t| t.clone())
    }

    pub(super) fn set(&self, track: Option<Arc<PublishedTrack>>) {
        if let Ok(mut t) = self.track.lock() {
            *t = track;
        }
    }
}

impl Peer {
    /// Starts forwarding a track to this peer.
    pub async fn subscribe(&mut self, track: Arc<PublishedTrack>) -> Result<(), PeerError> {
        if self.bind(track).await? {
            self.negotiate().await?;
        }
        Ok(())
    }

    /// Binds a track to a slot (reusing an idle one of its kind); false if nothing changed.
    pub(super) async fn bind(&mut self, track: Arc<PublishedTrack>) -> Result<bool, PeerError> {
        if track.publisher == self.id
            || self
                .slots
                .iter()
                .any(|s| s.current().is_some_and(|t| t.id == track.id))
        {
            return Ok(false);
        }
        let lease = track.lease();
        let local: Arc<dyn TrackLocal + Send + Sync> = lease.local();
        let idle = self
            .slots
            .iter_mut()
            .find(|s| s.kind == track.kind && s.current().is_none());
        if let Some(slot) = idle {
            // Reuse the m-line of a departed track, so churn does not grow the SDP forever.
            slot.sender.replace_track(Some(local)).await?;
            slot.transceiver
                .set_direction(RTCRtpTransceiverDirection::Sendonly)
                .await;
            slot.set(Some(track.clone()));
            slot.lease = Some(lease);
            slot.cap = Cap::Auto;
            slot.tile = None;
        } else {
            let transceiver = self
                .pc
                .add_transceiver_from_track(
                    local,
                    Some(RTCRtpTransceiverInit {
                        direction: RTCRtpTransceiverDirection::Sendonly,
                        send_encodings: vec![],
                    }),
                )
                .await?;
            // When the slot is later reused for another publisher's track, `nack` keeps its
            // sequence numbers continuing where the last track left off.
            let sender = transceiver.sender().await;
            let ssrc = sender
                .get_parameters()
                .await
                .encodings
                .first()
                .map(|e| e.ssrc);
            let slot = Slot {
                transceiver,
                sender: sender.clone(),
                kind: track.kind,
                track: Arc::new(Mutex::new(Some(track.clone()))),
                lease: Some(lease),
                ssrc,
                cap: Cap::Auto,
                tile: None,
            };
            self.spawn_rtcp_reader(sender, slot.track.clone());
            self.slots.push(slot);
        }
        if track.kind == RTPCodecType::Video {
            self.fresh_video.push(track);
        }
        Ok(true)
    }

    /// Reads the subscriber's RTCP for one sender: keeps the NACK responder running and turns
    /// PLI/FIR into a keyframe request to the publisher of whatever the slot now carries.
    pub(super) fn spawn_rtcp_reader(
        &self,
        sender: Arc<RTCRtpSender>,
        current: Arc<Mutex<Option<Arc<PublishedTrack>>>>,
    ) {
        let cancel = self.tasks.clone();
        tokio::spawn(
            async move {
                loop {
                    let packets = tokio::select! {
                        _ = cancel.cancelled() => break,
                        r = sender.read_rtcp() => match r {
                            Ok((packets, _)) => packets,
                            Err(_) => break,
                        },
                    };
                    // The SSRC the subscriber receives: a simulcast track asks for a keyframe of
                    // the layer that subscriber is on.
                    let wants_keyframe = packets.iter().find_map(|p| {
                        let any = p.as_any();
                        if let Some(pli) = any.downcast_ref::<PictureLossIndication>() {
                            Some(pli.media_ssrc)
                        } else {
                            any.downcast_ref::<FullIntraRequest>()
                                .map(|fir| fir.fir.first().map_or(fir.media_ssrc, |e| e.ssrc))
                        }
                    });
                    if let Some(ssrc) = wants_keyframe {
                        let track = current.lock().ok().and_then(|t| t.clone());
                        if let Some(track) = track {
                            track.request_keyframe_for(Some(ssrc)).await;
                        }
                    }
                }
            }
            .instrument(self.span.clone()),
        );
    }

    /// Stops forwarding a track to this peer; its slot becomes idle.
    pub async fn unsubscribe(&mut self, track_id: &str) -> Result<(), PeerError> {
        let Some(slot) = self
            .slots
            .iter_mut()
            .find(|s| s.current().is_some_and(|t| t.id == track_id))
        else {
            return Ok(());
        };
        slot.lease = None;
        slot.set(None);
        let transceiver = slot.transceiver.clone();
        self.forget_tile(track_id);
        transceiver
            .set_direction(RTCRtpTransceiverDirection::Inactive)
            .await;
        self.fresh_video.retain(|t| t.id != track_id);
        self.negotiate().await
    }

    pub(super) async fn request_fresh_keyframes(&mut self) {
        for track in std::mem::take(&mut self.fresh_video) {
            track.request_keyframe().await;
        }
    }
}
