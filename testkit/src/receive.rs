//! What arrives at a test peer: every received RTP packet checked and counted per track, and
//! the keyframe requests the server sends back for our own video.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use protocol::TrackId;
use tokio::sync::watch;
use webrtc::rtp_transceiver::rtp_sender::RTCRtpSender;
use webrtc::track::track_remote::TrackRemote;

use crate::audio_level::AUDIO_LEVEL_URI;
use crate::media_source::SimulcastControl;
use crate::payload::read_payload;
use crate::state::{PeerState, Received, TrackStats};

/// Counts what `track` delivers on the transceiver `mid`, attributed through the latest
/// offer's mid → track map, until the track ends; with `record`, logs every packet too.
pub(crate) async fn receive(
    track: Arc<TrackRemote>,
    mid: String,
    state: Arc<watch::Sender<PeerState>>,
    record: bool,
) {
    /// What one track has delivered on this transceiver: for distinct counts and freezes.
    #[derive(Default)]
    struct Seen {
        counters: HashSet<u32>,
        last: Option<tokio::time::Instant>,
        /// The last packet's sequence number and PictureID.
        last_picture: Option<(u16, u16)>,
    }
    let kind = track.kind().to_string();
    let level_id = track
        .params()
        .header_extensions
        .iter()
        .find(|e| e.uri == AUDIO_LEVEL_URI)
        .and_then(|e| u8::try_from(e.id).ok());
    let mut seen: HashMap<TrackId, Seen> = HashMap::new();
    loop {
        let packet = match track.read_rtp().await {
            Ok((packet, _)) => packet,
            Err(e) => {
                tracing::debug!(mid, ssrc = track.ssrc(), "track read ended: {e}");
                break;
            }
        };
        let now = tokio::time::Instant::now();
        let payload = read_payload(&packet.payload);
        let ok = payload.is_some();
        let counter = payload.map(|p| p.counter);
        let picture_id = payload.and_then(|p| p.picture_id);
        let len = packet.payload.len() as u64;
        let has_level = level_id.is_some_and(|id| packet.header.get_extension(id).is_some());
        state.send_modify(|s| {
            let Some(id) = s.mid_to_track.get(&mid).cloned() else {
                s.unmapped_packets += 1;
                return;
            };
            let seen = seen.entry(id.clone()).or_default();
            let t = s.received.entry(id.clone()).or_insert_with(|| TrackStats {
                publisher: id.split(':').next().unwrap_or_default().to_owned(),
                kind: kind.clone(),
                ..Default::default()
            });
            t.packets += 1;
            t.bytes += len;
            t.ssrc = packet.header.ssrc;
            if record {
                t.log.push(Received {
                    at: now,
                    sequence_number: packet.header.sequence_number,
                    timestamp: packet.header.timestamp,
                    layer: counter.map_or(0, |c| (c >> 24) as u8),
                    counter: counter.map_or(0, |c| c & 0x00ff_ffff),
                    keyframe: payload.is_some_and(|p| p.keyframe),
                });
            }
            t.with_audio_level += u64::from(has_level);
            if !ok {
                t.corrupt += 1;
            }
            if let (true, Some(c)) = (ok, counter) {
                let layer = t.by_layer.entry((c >> 24) as u8).or_default();
                layer.packets += 1;
                layer.counters = Some(match layer.counters {
                    Some((lo, hi)) => (lo.min(c), hi.max(c)),
                    None => (c, c),
                });
                if seen.counters.insert(c) {
                    t.distinct += 1;
                    layer.distinct += 1;
                }
                t.counters = Some(match t.counters {
                    Some((lo, hi)) => (lo.min(c), hi.max(c)),
                    None => (c, c),
                });
            }
            if let Some(last) = seen.last {
                t.longest_gap = t.longest_gap.max(now - last);
            }
            if let Some(pid) = picture_id {
                let seq = packet.header.sequence_number;
                if let Some((last_seq, last_pid)) = seen.last_picture {
                    if seq == last_seq.wrapping_add(1) && pid != (last_pid + 1) & 0x7fff {
                        t.picture_id_jumps += 1;
                    }
                }
                seen.last_picture = Some((seq, pid));
            }
            seen.last = Some(now);
        });
    }
}

/// Adds the PLIs and FIRs that arrive for `sender`'s track to the peer's
/// `keyframe_requests`, until the sender or the peer goes. With `rid`, reads only that
/// simulcast layer's RTCP and counts it under its RID too.
pub(crate) async fn count_keyframe_requests(
    sender: Arc<RTCRtpSender>,
    layer: Option<(String, Option<Arc<SimulcastControl>>)>,
    state: std::sync::Weak<watch::Sender<PeerState>>,
) {
    let (rid, control) = match layer {
        Some((rid, control)) => (Some(rid), control),
        None => (None, None),
    };
    use webrtc::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
    use webrtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
    loop {
        let read = match &rid {
            Some(rid) => sender.read_rtcp_simulcast(rid).await,
            None => sender.read_rtcp().await,
        };
        let Ok((packets, _)) = read else { return };
        let n = packets
            .iter()
            .filter(|p| {
                let any = p.as_any();
                any.is::<PictureLossIndication>() || any.is::<FullIntraRequest>()
            })
            .count() as u64;
        if n > 0 {
            if let Some(c) = &control {
                c.request_keyframe();
            }
            let Some(state) = state.upgrade() else { return };
            state.send_modify(|s| {
                s.keyframe_requests += n;
                if let Some(rid) = &rid {
                    *s.keyframe_requests_by_rid.entry(rid.clone()).or_default() += n;
                }
            });
        }
    }
}
