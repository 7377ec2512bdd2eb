//! Answering the server's offers as a browser does: the SDP answer plus which of our own
//! tracks each uplink m-line carries, and the SDP line surgery a peer without ICE needs.

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::{anyhow, bail};
use protocol::{
    ClientMediaEvent, ClientMessage, SdpType, SessionDescription, TrackId, TrackMetadata,
};
use webrtc::peer_connection::sdp::session_description::RTCSessionDescription;
use webrtc::peer_connection::RTCPeerConnection;

/// The client's own tracks by local id, with their metadata: what the answers announce and
/// map. A stopped track is not in it, so the next answer leaves its m-line unmapped.
pub(crate) type LocalTracks = Arc<std::sync::Mutex<BTreeMap<String, TrackMetadata>>>;

/// The SDP lines that carry ICE candidates, for a peer that exchanges none.
pub(crate) const CANDIDATE_LINES: &[&str] = &["a=candidate", "a=end-of-candidates"];

/// `sdp` without the lines starting with any of `prefixes` (for malformed-SDP tests too).
pub fn strip_sdp_lines(sdp: &str, prefixes: &[&str]) -> String {
    sdp.split_inclusive("\r\n")
        .filter(|l| !prefixes.iter().any(|p| l.starts_with(p)))
        .collect()
}

/// The answer with every ICE candidate line removed.
pub(crate) fn without_candidates(msg: ClientMessage) -> ClientMessage {
    match msg {
        ClientMessage::MediaEvent {
            data:
                ClientMediaEvent::SdpAnswer {
                    mut sdp_answer,
                    track_id_to_track_metadata,
                    mid_to_track_id,
                },
        } => {
            sdp_answer.sdp = strip_sdp_lines(&sdp_answer.sdp, CANDIDATE_LINES);
            ClientMessage::MediaEvent {
                data: ClientMediaEvent::SdpAnswer {
                    sdp_answer,
                    track_id_to_track_metadata,
                    mid_to_track_id,
                },
            }
        }
        other => other,
    }
}

/// The SDP lines of a simulcast answer.
const SIMULCAST_LINES: &[&str] = &["a=rid:", "a=simulcast:"];

/// An answer made by this crate (which echoes the offer's rids even for the one plain stream
/// it sends: the server would then wait for RID-tagged packets and never publish it) with
/// the simulcast the offer asked for declined.
pub fn decline_simulcast(sdp: &str) -> String {
    strip_sdp_lines(sdp, SIMULCAST_LINES)
}

/// Applies `offer` and answers it, mapping each uplink m-line to the local track it sends.
/// Unless the peer sends `layers`, the answer declines any simulcast the offer asks for.
pub(crate) async fn answer(
    pc: &RTCPeerConnection,
    offer: SessionDescription,
    mid_to_track_id: &BTreeMap<String, TrackId>,
    local: &LocalTracks,
    layers: bool,
) -> anyhow::Result<ClientMessage> {
    if offer.kind != SdpType::Offer {
        bail!("sdpOffer carried an {:?}", offer.kind);
    }
    pc.set_remote_description(RTCSessionDescription::offer(offer.sdp)?)
        .await?;
    let answer = pc.create_answer(None).await?;
    pc.set_local_description(answer).await?;
    let mut sdp = pc
        .local_description()
        .await
        .ok_or_else(|| anyhow!("no local description"))?
        .sdp;
    if !layers {
        sdp = decline_simulcast(&sdp);
    }
    let mut sending = Vec::new();
    for t in pc.get_transceivers().await {
        let (Some(mid), Some(track)) = (t.mid(), t.sender().await.track().await) else {
            continue;
        };
        if !mid_to_track_id.contains_key(mid.as_str()) {
            sending.push((mid.to_string(), track.id().to_owned()));
        }
    }
    // Only tracks we still have: a stopped one's m-line goes unmapped, as a browser's does.
    let track_meta = local.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let uplink_mids: BTreeMap<String, String> = sending
        .into_iter()
        .filter(|(_, id)| track_meta.contains_key(id))
        .collect();
    Ok(ClientMessage::MediaEvent {
        data: ClientMediaEvent::SdpAnswer {
            sdp_answer: SessionDescription {
                kind: SdpType::Answer,
                sdp,
            },
            track_id_to_track_metadata: track_meta,
            mid_to_track_id: uplink_mids,
        },
    })
}
