//! What this client receives: the others' tracks as they arrive (`ontrack`), into one stream
//! per peer (camera and microphone) and one per screen share.

use protocol::TrackSource;
use wasm_bindgen::JsCast;
use web_sys::{MediaStream, RtcTrackEvent};

use super::{Inner, TrackContext};
use crate::log;
use crate::negotiation::publisher_of;

impl Inner {
    pub(super) fn on_track(&self, event: RtcTrackEvent) {
        let ctx = {
            let mut s = self.state.borrow_mut();
            let s = &mut *s;
            let mid = event.transceiver().mid();
            let Some(track_id) = mid
                .as_deref()
                .and_then(|m| s.negotiation.remote_track(m))
                .cloned()
            else {
                log::warn(&format!(
                    "media on unknown mid {}",
                    mid.as_deref().unwrap_or("(none)")
                ));
                return;
            };
            let Some(peer_id) = publisher_of(&track_id).map(str::to_owned) else {
                log::warn(&format!("malformed track id {track_id}"));
                return;
            };
            let track = event.track();
            let metadata = s
                .peers
                .get(&peer_id)
                .and_then(|p| p.info.track_id_to_metadata.get(&track_id).cloned());
            let is_screen = metadata
                .as_ref()
                .is_some_and(|m| m.source == TrackSource::Screen);
            // The browser's stream is the publisher's when the offer's msid says so; a reused
            // transceiver may still carry an older publisher's msid, so then (or with no msid)
            // the peer's tracks are gathered in a stream of our own.
            let given = event
                .streams()
                .get(0)
                .dyn_into::<MediaStream>()
                .ok()
                .filter(|s| s.id() == peer_id);
            let peer = s.peers.get(&peer_id);
            // Once a peer has a stream it keeps it: re-attaching would blank its video. A
            // screen gets a stream of its own, never the camera's.
            let existing = peer.and_then(|p| {
                if is_screen {
                    p.screens
                        .iter()
                        .find(|(t, _)| *t == track_id)
                        .map(|(_, s)| Clone::clone(s))
                } else {
                    p.stream.clone()
                }
            });
            let stream = match (existing, given) {
                (Some(existing), _) => existing,
                (None, Some(given)) if !is_screen => given,
                _ => match MediaStream::new() {
                    Ok(s) => s,
                    Err(_) => return,
                },
            };
            // A reused receiver track leaves the stream it was in before.
            for other in s.peers.values() {
                for old in other
                    .stream
                    .iter()
                    .chain(other.screens.iter().map(|(_, s)| s))
                {
                    if !js_sys::Object::is(old, &stream) {
                        old.remove_track(&track);
                    }
                }
            }
            if stream.get_track_by_id(&track.id()).is_none() {
                stream.add_track(&track);
            }
            if let Some(p) = s.peers.get_mut(&peer_id) {
                if is_screen {
                    p.screens.retain(|(t, _)| *t != track_id);
                    p.screens.push((track_id.clone(), Clone::clone(&stream)));
                } else {
                    p.stream = Some(Clone::clone(&stream));
                }
            }
            log::info(&format!(
                "media of {track_id} ({}) on mid {}, stream {}",
                track.kind(),
                mid.as_deref().unwrap_or("?"),
                stream.id()
            ));
            let ctx = TrackContext {
                peer_id,
                track_id: track_id.clone(),
                metadata,
                track: Some(track),
                stream: Some(stream),
            };
            s.ready_tracks.insert(track_id, ctx.clone());
            ctx
        };
        self.callbacks.on_track_ready(&ctx);
    }
}
