//! Answering the server's offers (the server makes every offer; the client never does).

use std::collections::BTreeMap;

use js_sys::Reflect;
use protocol::{ClientMediaEvent, SessionDescription, TrackId};
use wasm_bindgen::JsValue;
use wasm_bindgen_futures::JsFuture;
use web_sys::{RtcSdpType, RtcSessionDescriptionInit};

use super::ice::add_candidate;
use super::Inner;
use crate::log;

impl Inner {
    /// Answers an offer: apply it, put the local tracks on the uplink m-lines the first time,
    /// answer, and send the answer with the uplink's mid → track map.
    pub(super) async fn answer(
        &self,
        offer: SessionDescription,
        mid_to_track_id: BTreeMap<String, TrackId>,
    ) -> Result<(), JsValue> {
        let (pc, session) = {
            let mut s = self.state.borrow_mut();
            let Some(pc) = s.pc.as_ref().map(|p| p.pc.clone()) else {
                return Err(JsValue::from_str("an offer arrived before peerAccepted"));
            };
            s.negotiation.offer_sdp(&offer.sdp);
            log::info(&format!(
                "offer {} ({} remote tracks)",
                s.negotiation.offers_received() + 1,
                mid_to_track_id.len()
            ));
            // Recorded before applying: ontrack fires during setRemoteDescription.
            s.negotiation.offer_received(mid_to_track_id);
            (pc, s.session)
        };
        let remote = RtcSessionDescriptionInit::new(RtcSdpType::Offer);
        remote.set_sdp(&offer.sdp);
        JsFuture::from(pc.set_remote_description(&remote)).await?;

        let waiting = self
            .state
            .borrow_mut()
            .negotiation
            .remote_description_applied();
        for c in &waiting {
            add_candidate(&pc, c).await;
        }

        self.attach_uplink(&pc).await?;

        let answer = JsFuture::from(pc.create_answer()).await?;
        let sdp = Reflect::get(&answer, &JsValue::from_str("sdp"))?
            .as_string()
            .ok_or_else(|| JsValue::from_str("createAnswer gave no SDP"))?;
        let local = RtcSessionDescriptionInit::new(RtcSdpType::Answer);
        local.set_sdp(&sdp);
        JsFuture::from(pc.set_local_description(&local)).await?;
        if self.has_left() || self.state.borrow().session != session {
            // Left, or rejoined meanwhile: this answer belongs to a connection that is gone.
            return Ok(());
        }
        let sdp = pc.local_description().map(|d| d.sdp()).unwrap_or(sdp);
        // The layers exist once the answer is applied.
        self.set_encodings(&pc).await;

        let (track_id_to_track_metadata, mid_to_track_id) = {
            let mut s = self.state.borrow_mut();
            let maps = s.negotiation.answer_maps(|id| {
                s.local_tracks
                    .iter()
                    .find(|t| t.id == id)
                    .map(|t| t.metadata.clone())
            });
            for t in s.local_tracks.iter_mut().filter(|t| t.mid.is_some()) {
                t.announced = true;
            }
            maps
        };
        self.callbacks
            .on_send_media_event(ClientMediaEvent::SdpAnswer {
                sdp_answer: SessionDescription {
                    kind: protocol::SdpType::Answer,
                    sdp,
                },
                track_id_to_track_metadata,
                mid_to_track_id,
            });
        Ok(())
    }
}
