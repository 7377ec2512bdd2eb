//! The others in the room: who joined and left, and their tracks as the callbacks see them.

use protocol::{PeerInfo, TrackId};

use super::{announced, Inner, RemotePeer, TrackContext};
use crate::log;

impl Inner {
    pub(super) fn peer_joined(&self, peer: PeerInfo) {
        {
            let mut s = self.state.borrow_mut();
            if s.local_peer_id.as_deref() == Some(peer.id.as_str()) {
                return;
            }
            if let Some(known) = s.peers.get_mut(&peer.id) {
                // Announced twice: keep its stream (re-attaching would blank its video).
                log::warn(&format!("peerJoined again for {}", peer.id));
                known.info = peer.clone();
            } else {
                s.peers
                    .insert(peer.id.clone(), RemotePeer::new(peer.clone()));
            }
        }
        self.callbacks.on_peer_joined(&peer);
        for ctx in announced(&peer.id, &peer.track_id_to_metadata) {
            self.callbacks.on_track_added(&ctx);
        }
    }

    pub(super) fn peer_left(&self, peer_id: &str) {
        let (info, removed) = {
            let mut s = self.state.borrow_mut();
            let Some(peer) = s.peers.remove(peer_id) else {
                return;
            };
            let gone: Vec<TrackId> = s
                .ready_tracks
                .iter()
                .filter(|(_, ctx)| ctx.peer_id == peer_id)
                .map(|(id, _)| id.clone())
                .collect();
            let removed: Vec<TrackContext> = gone
                .iter()
                .filter_map(|id| s.ready_tracks.remove(id))
                .collect();
            (peer.info, removed)
        };
        for ctx in &removed {
            self.callbacks.on_track_removed(ctx);
        }
        self.callbacks.on_peer_left(&info);
    }
}
