//! Server media events, one at a time in arrival order: the dispatch, and `peerAccepted`.

use std::collections::BTreeMap;
use std::rc::Rc;

use protocol::{ClientMediaEvent, PeerId, PeerInfo, ServerMediaEvent};

use super::ice::add_candidate;
use super::{announced, track_counts, IceServer, Inner, PeerConnection, RemotePeer, TrackContext};
use crate::log;
use crate::negotiation::CandidateFate;

impl Inner {
    /// Handles one event. No `RefCell` borrow is held across an await or a callback.
    pub(super) async fn handle(this: &Rc<Inner>, event: ServerMediaEvent) {
        if this.has_left() {
            return;
        }
        match event {
            ServerMediaEvent::PeerAccepted {
                id,
                peers_in_room,
                ice_servers,
                chat_history,
                reconnect_token,
            } => {
                this.state.borrow_mut().reconnect_token = reconnect_token;
                Inner::accepted(this, id, peers_in_room, ice_servers);
                for m in &chat_history {
                    this.callbacks.on_chat_message(m, true);
                }
            }
            ServerMediaEvent::PeerDenied { reason } => this.callbacks.on_join_error(&reason),
            ServerMediaEvent::PeerJoined { peer } => this.peer_joined(peer),
            ServerMediaEvent::PeerLeft { peer_id } => this.peer_left(&peer_id),
            ServerMediaEvent::PeerUpdated { peer_id, metadata } => {
                let info = {
                    let mut s = this.state.borrow_mut();
                    s.peers.get_mut(&peer_id).map(|p| {
                        p.info.metadata = metadata;
                        p.info.clone()
                    })
                };
                if let Some(info) = info {
                    this.callbacks.on_peer_updated(&info);
                }
            }
            ServerMediaEvent::TracksAdded {
                peer_id,
                track_id_to_metadata,
            } => {
                let contexts = {
                    let mut s = this.state.borrow_mut();
                    let Some(peer) = s.peers.get_mut(&peer_id) else {
                        log::warn(&format!("tracksAdded for unknown peer {peer_id}"));
                        return;
                    };
                    peer.info
                        .track_id_to_metadata
                        .extend(track_id_to_metadata.clone());
                    announced(&peer_id, &track_id_to_metadata)
                };
                for ctx in contexts {
                    this.callbacks.on_track_added(&ctx);
                }
            }
            ServerMediaEvent::TracksRemoved { peer_id, track_ids } => {
                let contexts: Vec<TrackContext> = {
                    let mut s = this.state.borrow_mut();
                    let s = &mut *s;
                    let mut metadata = BTreeMap::new();
                    if let Some(peer) = s.peers.get_mut(&peer_id) {
                        for id in &track_ids {
                            peer.screens.retain(|(t, _)| t != id);
                            if let Some(m) = peer.info.track_id_to_metadata.remove(id) {
                                metadata.insert(id.clone(), m);
                            }
                        }
                    }
                    track_ids
                        .iter()
                        .map(|id| {
                            s.ready_tracks.remove(id).unwrap_or_else(|| TrackContext {
                                peer_id: peer_id.clone(),
                                track_id: id.clone(),
                                metadata: metadata.get(id).cloned(),
                                track: None,
                                stream: None,
                            })
                        })
                        .collect()
                };
                for ctx in contexts {
                    this.callbacks.on_track_removed(&ctx);
                }
            }
            ServerMediaEvent::TrackUpdated {
                peer_id,
                track_id,
                track_metadata,
            } => {
                let ctx = {
                    let mut s = this.state.borrow_mut();
                    let s = &mut *s;
                    if let Some(peer) = s.peers.get_mut(&peer_id) {
                        peer.info
                            .track_id_to_metadata
                            .insert(track_id.clone(), track_metadata.clone());
                    }
                    let ctx = s.ready_tracks.get_mut(&track_id).map(|ctx| {
                        ctx.metadata = Some(track_metadata.clone());
                        ctx.clone()
                    });
                    ctx.unwrap_or(TrackContext {
                        peer_id,
                        track_id,
                        metadata: Some(track_metadata),
                        track: None,
                        stream: None,
                    })
                };
                this.callbacks.on_track_updated(&ctx);
            }
            ServerMediaEvent::ChatMessage(m) => this.callbacks.on_chat_message(&m, false),
            ServerMediaEvent::VoiceActivity {
                peer_id,
                track_id,
                speaking,
            } => this
                .callbacks
                .on_voice_activity(&peer_id, &track_id, speaking),
            ServerMediaEvent::Downlink {
                estimate,
                paused_track_ids,
            } => this.callbacks.on_downlink(estimate, &paused_track_ids),
            ServerMediaEvent::LayersWanted { track_id, rids } => {
                this.set_wanted_layers(&track_id, rids).await
            }
            ServerMediaEvent::SdpOffer {
                sdp_offer,
                mid_to_track_id,
            } => {
                if let Err(e) = this.answer(sdp_offer, mid_to_track_id).await {
                    if !this.has_left() {
                        this.callbacks.on_connection_error(&format!(
                            "Negotiation with the server failed: {}",
                            log::describe(&e)
                        ));
                    }
                }
            }
            ServerMediaEvent::Candidate(candidate) => {
                let (fate, pc) = {
                    let mut s = this.state.borrow_mut();
                    let pc = s.pc.as_ref().map(|p| p.pc.clone());
                    (s.negotiation.candidate(candidate), pc)
                };
                match (fate, pc) {
                    (CandidateFate::AddNow(c), Some(pc)) => add_candidate(&pc, &c).await,
                    (CandidateFate::Dropped, _) => {
                        log::warn("too many ICE candidates before the first offer; dropped one")
                    }
                    _ => {}
                }
            }
            ServerMediaEvent::Error { message } => this.callbacks.on_connection_error(&message),
        }
    }

    pub(super) fn accepted(
        this: &Rc<Inner>,
        id: PeerId,
        peers_in_room: Vec<PeerInfo>,
        ice_servers: Vec<IceServer>,
    ) {
        if this.state.borrow().local_peer_id.is_some() {
            log::warn("ignoring a second peerAccepted");
            return;
        }
        this.state.borrow_mut().accepted_ice_servers = ice_servers;
        let pc = match PeerConnection::new(this) {
            Ok(pc) => pc,
            Err(e) => {
                this.callbacks.on_connection_error(&format!(
                    "Cannot create the peer connection: {}",
                    log::describe(&e)
                ));
                return;
            }
        };
        let gone: Vec<PeerInfo> = {
            let mut s = this.state.borrow_mut();
            s.pc = Some(pc);
            s.local_peer_id = Some(id.clone());
            // After a rejoin: those no longer there left meanwhile; everyone's media comes anew.
            let old = std::mem::take(&mut s.peers);
            for p in &peers_in_room {
                s.peers.insert(p.id.clone(), RemotePeer::new(p.clone()));
            }
            old.into_values()
                .filter(|p| !s.peers.contains_key(&p.info.id))
                .map(|p| p.info)
                .collect()
        };
        for p in &gone {
            this.callbacks.on_peer_left(p);
        }
        this.callbacks.on_join_success(&id, &peers_in_room);
        // Back after a reconnect while sharing a screen: the first offer has m-lines for a
        // microphone and a camera only; ask for the rest.
        let counts = track_counts(&this.state.borrow().local_tracks);
        if counts.audio > 1 || counts.video > 1 {
            this.callbacks
                .on_send_media_event(ClientMediaEvent::RenegotiateTracks {
                    tracks: Some(counts),
                    ice_restart: false,
                });
        }
        for p in &peers_in_room {
            for ctx in announced(&p.id, &p.track_id_to_metadata) {
                this.callbacks.on_track_added(&ctx);
            }
        }
    }
}
