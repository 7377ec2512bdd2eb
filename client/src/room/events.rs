//! The endpoint's callbacks, acting on the room: tiles, the participants list, mute badges,
//! screen tiles, chat and speaking indicators.

use std::rc::Weak;

use protocol::{ChatMessage, ClientMediaEvent, ClientMessage, PeerId, PeerInfo, TrackSource};

use super::{RoomError, RoomInner};
use crate::consts::{LOCAL_PEER_ID, PEER_DENIED};
use crate::endpoint::{EndpointCallbacks, TrackContext};
use crate::log;
use crate::media;
use crate::room_ui::{screen_id, TileFlag};

impl RoomInner {
    /// The tile a peer id from the server is shown in (ours is the local tile).
    pub(super) fn tile_of(&self, peer_id: &str) -> String {
        if self.endpoint.local_peer_id().as_deref() == Some(peer_id) {
            LOCAL_PEER_ID.to_owned()
        } else {
            peer_id.to_owned()
        }
    }

    /// Shows a remote track's metadata on its peer's tile (mute badges, the screen tile).
    pub(super) fn show_track_state(&self, ctx: &TrackContext, present: bool) {
        let Some(meta) = &ctx.metadata else { return };
        match meta.source {
            TrackSource::Microphone => {
                self.ui
                    .set_tile_flag(&ctx.peer_id, TileFlag::MicMuted, present && meta.muted);
                if meta.muted || !present {
                    self.ui
                        .set_tile_flag(&ctx.peer_id, TileFlag::Speaking, false);
                }
            }
            TrackSource::Camera => {
                // No camera at all shows the placeholder too.
                self.ui
                    .set_tile_flag(&ctx.peer_id, TileFlag::CameraMuted, meta.muted || !present);
            }
            TrackSource::Screen => {
                if !present {
                    self.ui.remove_screen_tile(&ctx.peer_id);
                }
            }
        }
    }

    /// Watches a remote video's tile for its size (see `tile_observer`).
    fn watch_tile(&self, ctx: &TrackContext, tile: &str) {
        let is_video = ctx.track.as_ref().is_some_and(|t| t.kind() == "video");
        if let (true, Some(tiles)) = (is_video, self.tiles.borrow().as_ref()) {
            tiles.watch(&ctx.track_id, tile);
        }
    }

    pub(super) fn update_participants_list(&self) {
        // As the tutorial: the others in join order, then ourselves.
        let mut names: Vec<String> = self
            .peers
            .borrow()
            .iter()
            .map(|p| p.metadata.display_name.clone())
            .collect();
        names.push(self.display_name.clone());
        self.ui.set_participants_list(&names);
    }

    pub(super) fn display_name_of(&self, peer_id: &str) -> String {
        self.peers
            .borrow()
            .iter()
            .find(|p| p.id == peer_id)
            .map(|p| p.metadata.display_name.clone())
            .unwrap_or_default()
    }
}

/// The endpoint's callbacks, acting on the room (held weakly: the room owns the endpoint).
pub(super) struct RoomEvents {
    pub(super) room: Weak<RoomInner>,
}

impl EndpointCallbacks for RoomEvents {
    fn on_send_media_event(&self, event: ClientMediaEvent) {
        if let Some(r) = self.room.upgrade() {
            r.socket
                .borrow()
                .send(&ClientMessage::MediaEvent { data: event });
        }
    }

    fn on_connection_error(&self, message: &str) {
        log::error(message);
        if let Some(r) = self.room.upgrade() {
            r.ui.set_error_message(Some(message));
        }
    }

    fn on_join_success(&self, peer_id: &str, peers_in_room: &[PeerInfo]) {
        let Some(r) = self.room.upgrade() else {
            return;
        };
        if let Some(stream) = r.local_stream.borrow().as_ref() {
            for track in media::tracks(stream) {
                r.endpoint
                    .add_track(&track, stream, media::metadata_for(&track));
            }
        }
        // Back after a reconnect to a server that forgot us (it restarted, or our place timed
        // out): whoever is no longer listed left meanwhile, so their tiles go.
        let gone: Vec<PeerId> = r
            .peers
            .borrow()
            .iter()
            .filter(|known| !peers_in_room.iter().any(|p| p.id == known.id))
            .map(|known| known.id.clone())
            .collect();
        for id in &gone {
            r.ui.remove_video_element(id);
            r.ui.remove_screen_tile(id);
        }
        *r.peers.borrow_mut() = peers_in_room.to_vec();
        for peer in peers_in_room {
            r.ui.add_video_element(&peer.id, &peer.metadata.display_name, false);
            // Back after a reconnect: a share that ended meanwhile was never reported.
            let sharing = peer
                .track_id_to_metadata
                .values()
                .any(|m| m.source == TrackSource::Screen);
            if !sharing {
                r.ui.remove_screen_tile(&peer.id);
            }
        }
        r.update_participants_list();
        // A new session at the server (a rejoin): it knows no tile yet.
        if let Some(tiles) = r.tiles.borrow().as_ref() {
            tiles.tell_again(|track| {
                peers_in_room
                    .iter()
                    .any(|p| p.track_id_to_metadata.contains_key(track))
            });
        }
        r.finish_reconnect();
        r.reply_join(Ok(peer_id.to_owned()));
    }

    fn on_join_error(&self, reason: &str) {
        log::error(&format!("{PEER_DENIED} {reason}"));
        if let Some(r) = self.room.upgrade() {
            r.ui.set_error_message(Some(PEER_DENIED));
            r.ui.set_error_detail(Some(reason));
            r.reply_join(Err(RoomError::Denied(reason.to_owned())));
        }
    }

    fn on_track_ready(&self, ctx: &TrackContext) {
        let (Some(r), Some(stream)) = (self.room.upgrade(), ctx.stream.as_ref()) else {
            return;
        };
        if ctx
            .metadata
            .as_ref()
            .is_some_and(|m| m.source == TrackSource::Screen)
        {
            let name = r.display_name_of(&ctx.peer_id);
            let tile = screen_id(&ctx.peer_id);
            r.ui.add_screen_tile(&ctx.peer_id, &name);
            r.ui.attach_stream(stream, &tile);
            r.watch_tile(ctx, &tile);
            return;
        }
        if !r.ui.has_video_element(&ctx.peer_id) {
            let name = r.display_name_of(&ctx.peer_id);
            r.ui.add_video_element(&ctx.peer_id, &name, false);
        }
        r.ui.attach_stream(stream, &ctx.peer_id);
        r.watch_tile(ctx, &ctx.peer_id);
    }

    fn on_peer_joined(&self, peer: &PeerInfo) {
        let Some(r) = self.room.upgrade() else {
            return;
        };
        {
            let mut peers = r.peers.borrow_mut();
            peers.retain(|p| p.id != peer.id);
            peers.push(peer.clone());
        }
        r.update_participants_list();
        r.ui.add_video_element(&peer.id, &peer.metadata.display_name, false);
    }

    fn on_peer_left(&self, peer: &PeerInfo) {
        let Some(r) = self.room.upgrade() else {
            return;
        };
        r.peers.borrow_mut().retain(|p| p.id != peer.id);
        r.ui.remove_video_element(&peer.id);
        r.ui.remove_screen_tile(&peer.id);
        r.update_participants_list();
    }

    fn on_peer_updated(&self, peer: &PeerInfo) {
        let Some(r) = self.room.upgrade() else {
            return;
        };
        for p in r.peers.borrow_mut().iter_mut().filter(|p| p.id == peer.id) {
            p.metadata = peer.metadata.clone();
        }
        r.ui.add_video_element(&peer.id, &peer.metadata.display_name, false);
        if r.ui.has_video_element(&screen_id(&peer.id)) {
            r.ui.add_screen_tile(&peer.id, &peer.metadata.display_name);
        }
        r.update_participants_list();
    }

    fn on_track_added(&self, ctx: &TrackContext) {
        if let Some(r) = self.room.upgrade() {
            r.show_track_state(ctx, true);
        }
    }

    fn on_track_updated(&self, ctx: &TrackContext) {
        if let Some(r) = self.room.upgrade() {
            r.show_track_state(ctx, true);
        }
    }

    fn on_track_removed(&self, ctx: &TrackContext) {
        if let Some(r) = self.room.upgrade() {
            r.show_track_state(ctx, false);
            if let Some(tiles) = r.tiles.borrow().as_ref() {
                tiles.unwatch(&ctx.track_id);
            }
        }
    }

    fn on_chat_message(&self, message: &ChatMessage, history: bool) {
        let Some(r) = self.room.upgrade() else { return };
        let own = r.endpoint.local_peer_id().as_deref() == Some(message.peer_id.as_str());
        let chat = r.chat.borrow();
        if let Some(chat) = chat.as_ref() {
            chat.receive(message, own, !history);
        }
    }

    fn on_downlink(&self, estimate: Option<u64>, paused: &[String]) {
        let Some(r) = self.room.upgrade() else { return };
        // A paused video freezes on its last frame: the tile says why.
        for peer in r.endpoint.peers() {
            for (track_id, meta) in &peer.track_id_to_metadata {
                let tile = match meta.source {
                    TrackSource::Camera => peer.id.clone(),
                    TrackSource::Screen => screen_id(&peer.id),
                    TrackSource::Microphone => continue,
                };
                let on = paused.contains(track_id);
                r.ui.set_tile_flag(&tile, TileFlag::VideoPaused, on);
            }
        }
        let monitor = r.monitor.borrow();
        if let Some(monitor) = monitor.as_ref() {
            monitor.set_downlink(estimate, paused);
        }
    }

    fn on_voice_activity(&self, peer_id: &str, _track_id: &str, speaking: bool) {
        let Some(r) = self.room.upgrade() else { return };
        let tile = r.tile_of(peer_id);
        // A muted microphone may still report the tail of a word.
        let speaking = speaking && !(tile == LOCAL_PEER_ID && r.mic_muted.get());
        r.ui.set_tile_flag(&tile, TileFlag::Speaking, speaking);
    }
}
