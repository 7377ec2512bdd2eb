//! Room membership: who is in a room, what each publishes, and telling the others when that
//! changes. Peers are reached only through their bounded command queues, never awaited: a peer
//! whose queue is full is too slow to keep up and is disconnected, so it cannot stall the room.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use protocol::{
    ChatMessage, PeerId, PeerInfo, PeerMetadata, ServerMediaEvent, TrackId, TrackMetadata,
};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn, Span};

use crate::chat::{self, ChatLog};
use crate::forwarder::PublishedTrack;
use crate::reconnect_token;

/// What a room asks of one peer's session.
#[derive(Clone)]
pub enum PeerCommand {
    /// Send this event to the client.
    Send(ServerMediaEvent),
    /// Start forwarding this track to the peer.
    Subscribe(Arc<PublishedTrack>),
    /// Stop forwarding this track to the peer.
    Unsubscribe(TrackId),
}

/// How the room reaches a member's session.
#[derive(Clone)]
pub struct MemberHandle {
    /// The session's command queue (bounded).
    pub commands: mpsc::Sender<PeerCommand>,
    /// Cancelled to disconnect the member.
    pub kill: CancellationToken,
    /// Set (before `kill`) when a reconnect took this member over: the session ends without
    /// leaving the room.
    pub replaced: Arc<AtomicBool>,
}

impl MemberHandle {
    fn deliver(&self, peer: &str, cmd: PeerCommand) {
        if let Err(e) = self.commands.try_send(cmd) {
            if matches!(e, mpsc::error::TrySendError::Full(_)) {
                warn!(peer, "peer's queue is full; disconnecting it");
            }
            self.kill.cancel();
        }
    }
}

/// A peer as recorded in its room.
struct Member {
    id: PeerId,
    metadata: PeerMetadata,
    tracks: Vec<Arc<PublishedTrack>>,
    /// None while away: the session was lost and the member awaits a reconnect.
    handle: Option<MemberHandle>,
    /// The session that holds the member; a reconnect gets a new one, so the old session's
    /// late leave or publish does not touch the new one's state.
    session: u64,
    /// The reconnect token of the latest admission.
    token: String,
}

impl Member {
    fn deliver(&self, cmd: PeerCommand) {
        if let Some(h) = &self.handle {
            h.deliver(&self.id, cmd);
        }
    }

    /// Takes the member's tracks away, telling the others (`tracksRemoved`, unsubscribe).
    fn withdraw_tracks(members: &mut [Member], i: usize) {
        let gone = std::mem::take(&mut members[i].tracks);
        if gone.is_empty() {
            return;
        }
        let track_ids: Vec<TrackId> = gone.iter().map(|t| t.id.clone()).collect();
        let removed = ServerMediaEvent::TracksRemoved {
            peer_id: members[i].id.clone(),
            track_ids: track_ids.clone(),
        };
        for (_, m) in members.iter().enumerate().filter(|(j, _)| *j != i) {
            for t in &track_ids {
                m.deliver(PeerCommand::Unsubscribe(t.clone()));
            }
            m.deliver(PeerCommand::Send(removed.clone()));
        }
    }

    fn info(&self) -> PeerInfo {
        PeerInfo {
            id: self.id.clone(),
            metadata: self.metadata.clone(),
            track_id_to_metadata: track_map(&self.tracks),
        }
    }
}

fn track_map(tracks: &[Arc<PublishedTrack>]) -> BTreeMap<TrackId, TrackMetadata> {
    tracks
        .iter()
        .map(|t| (t.id.clone(), t.metadata()))
        .collect()
}

/// Why a join was refused; the text is shown to the person.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JoinDenied {
    /// The room has reached its cap.
    #[error("room is full ({0} participants)")]
    RoomFull(usize),
    /// The server has reached its cap.
    #[error("server is full, try again later")]
    ServerFull,
    /// This source address has this many participants still connecting
    /// (`--max-connecting-per-ip`).
    #[error(
        "too many joins from your address are still connecting (at most {0}): try again shortly"
    )]
    TooManyConnecting(u32),
    /// This source address joined too often (`--joins-per-minute-per-ip`).
    #[error("too many joins from your address (at most {0} a minute): try again shortly")]
    TooManyJoins(u32),
}

/// A peer tried to act on something that is not its own.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("track {0} is not one of yours")]
pub struct NotYours(pub TrackId);

/// A successful join.
pub struct Admission {
    /// The peer's id: new, or the same as before for a reconnect.
    pub id: PeerId,
    /// The session number holding the member (for leave and publish).
    pub session: u64,
    /// The token for the next reconnect.
    pub token: String,
    /// Whether this took over a member through its reconnect token.
    pub reconnected: bool,
    /// What the peer finds in the room.
    pub snapshot: Snapshot,
}

/// What a newcomer finds in the room.
pub struct Snapshot {
    /// Everyone else, in joining order.
    pub peers: Vec<PeerInfo>,
    /// Every track they publish.
    pub tracks: Vec<Arc<PublishedTrack>>,
    /// The room's recent chat, oldest first.
    pub chat: Vec<ChatMessage>,
    /// Who is speaking now: a `voiceActivity` for each, as the others had it.
    pub speaking: Vec<ServerMediaEvent>,
}

/// One room: its members and their tracks.
pub struct Room {
    /// The room's name.
    pub name: String,
    /// The room's tracing span; every peer span is its child.
    pub span: Span,
    members: Mutex<Vec<Member>>,
    /// Locked only while holding `members` (that order), so joins and messages interleave
    /// exactly.
    chat: Mutex<ChatLog>,
}

impl Room {
    pub(crate) fn new(name: String) -> Self {
        let span = tracing::info_span!("room", room = %name);
        Room {
            name,
            span,
            members: Mutex::new(Vec::new()),
            chat: Mutex::new(ChatLog::default()),
        }
    }

    fn chat_log(&self) -> MutexGuard<'_, ChatLog> {
        self.chat.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn members(&self) -> MutexGuard<'_, Vec<Member>> {
        // A panic while holding the lock leaves plain data that is still consistent enough to
        // tear down; never let it take the room with it.
        self.members.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// How many peers are in the room.
    pub fn len(&self) -> usize {
        self.members().len()
    }

    /// How many tracks the room's peers publish.
    pub fn track_count(&self) -> usize {
        self.members().iter().map(|m| m.tracks.len()).sum()
    }

    /// Every track the room's peers publish (for inspection: tests, diagnostics).
    pub fn tracks(&self) -> Vec<Arc<PublishedTrack>> {
        self.members()
            .iter()
            .flat_map(|m| m.tracks.iter().cloned())
            .collect()
    }

    /// Whether the room is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Adds a peer, or with a valid reconnect token gives a member back to a new session
    /// (the others hear of a name change only); tells the others. The registry passes
    /// `server_full` (a reconnect is still let in) and a fresh session number.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn join(
        &self,
        id: PeerId,
        metadata: PeerMetadata,
        handle: MemberHandle,
        cap: usize,
        server_full: bool,
        reconnect_token: Option<&str>,
        session: u64,
    ) -> Result<Admission, JoinDenied> {
        let mut members = self.members();
        let token = reconnect_token::new_token();
        let returning = reconnect_token.and_then(|t| {
            members
                .iter()
                .position(|m| reconnect_token::tokens_match(&m.token, t))
        });
        if let Some(i) = returning {
            // Still connected as far as we know (the drop is not noticed yet): that session
            // ends without leaving.
            if let Some(old) = members[i].handle.take() {
                old.replaced.store(true, Ordering::SeqCst);
                old.kill.cancel();
            }
            Member::withdraw_tracks(&mut members, i);
            let me = &mut members[i];
            me.handle = Some(handle);
            me.session = session;
            me.token = token.clone();
            let renamed = me.metadata != metadata;
            me.metadata = metadata;
            let (id, info) = (me.id.clone(), me.info());
            if renamed {
                let event = ServerMediaEvent::PeerUpdated {
                    peer_id: id.clone(),
                    metadata: info.metadata,
                };
                for m in members.iter().filter(|m| m.id != id) {
                    m.deliver(PeerCommand::Send(event.clone()));
                }
            }
            info!(parent: &self.span, peer = %id, "peer reconnected");
            let snapshot = self.snapshot(&members, Some(&id));
            return Ok(Admission {
                id,
                session,
                token,
                reconnected: true,
                snapshot,
            });
        }
        if server_full {
            return Err(JoinDenied::ServerFull);
        }
        if members.len() >= cap {
            return Err(JoinDenied::RoomFull(cap));
        }
        let snapshot = self.snapshot(&members, None);
        let newcomer = Member {
            id: id.clone(),
            metadata,
            tracks: Vec::new(),
            handle: Some(handle),
            session,
            token: token.clone(),
        };
        let joined = ServerMediaEvent::PeerJoined {
            peer: newcomer.info(),
        };
        for m in members.iter() {
            m.deliver(PeerCommand::Send(joined.clone()));
        }
        info!(parent: &self.span, peer = %newcomer.id, size = members.len() + 1, "peer joined");
        members.push(newcomer);
        Ok(Admission {
            id,
            session,
            token,
            reconnected: false,
            snapshot,
        })
    }

    /// Everyone but `except`, their tracks and the chat.
    fn snapshot(&self, members: &[Member], except: Option<&str>) -> Snapshot {
        let others = || members.iter().filter(|m| Some(m.id.as_str()) != except);
        let tracks: Vec<Arc<PublishedTrack>> =
            others().flat_map(|m| m.tracks.iter().cloned()).collect();
        let speaking = tracks
            .iter()
            .filter(|t| t.speaking.load(Ordering::Relaxed))
            .map(|t| ServerMediaEvent::VoiceActivity {
                peer_id: t.publisher.clone(),
                track_id: t.id.clone(),
                speaking: true,
            })
            .collect();
        Snapshot {
            peers: others().map(Member::info).collect(),
            tracks,
            chat: self.chat_log().history(),
            speaking,
        }
    }

    /// Removes a peer (if `session` still holds it) and tells the others; true when the room
    /// is now empty.
    pub(crate) fn leave(&self, id: &str, session: u64) -> bool {
        let mut members = self.members();
        let Some(pos) = members
            .iter()
            .position(|m| m.id == id && m.session == session)
        else {
            return members.is_empty();
        };
        Member::withdraw_tracks(&mut members, pos);
        let gone = members.remove(pos);
        for m in members.iter() {
            m.deliver(PeerCommand::Send(ServerMediaEvent::PeerLeft {
                peer_id: gone.id.clone(),
            }));
        }
        info!(parent: &self.span, peer = %gone.id, size = members.len(), "peer left");
        members.is_empty()
    }

    /// The session lost its connection: the member stays (listed, counted) without tracks —
    /// the others get `tracksRemoved` now, `peerLeft` only if it does not come back. False
    /// when `session` no longer holds the member.
    pub(crate) fn detach(&self, id: &str, session: u64) -> bool {
        let mut members = self.members();
        let Some(pos) = members
            .iter()
            .position(|m| m.id == id && m.session == session && m.handle.is_some())
        else {
            return false;
        };
        members[pos].handle = None;
        Member::withdraw_tracks(&mut members, pos);
        info!(parent: &self.span, peer = %id, "peer away, awaiting a reconnect");
        true
    }

    /// Records tracks `publisher` started publishing and has every other member subscribe
    /// (nothing when `session` no longer holds the member: a replaced session's late track).
    pub fn publish(&self, publisher: &str, session: u64, tracks: Vec<Arc<PublishedTrack>>) {
        let mut members = self.members();
        let Some(owner) = members
            .iter_mut()
            .find(|m| m.id == publisher && m.session == session)
        else {
            return;
        };
        owner.tracks.extend(tracks.iter().cloned());
        let added = ServerMediaEvent::TracksAdded {
            peer_id: publisher.to_owned(),
            track_id_to_metadata: track_map(&tracks),
        };
        for m in members.iter().filter(|m| m.id != publisher) {
            m.deliver(PeerCommand::Send(added.clone()));
            for t in &tracks {
                m.deliver(PeerCommand::Subscribe(t.clone()));
            }
        }
    }

    /// Withdraws tracks `publisher` stopped sending: the others drop them (`tracksRemoved`,
    /// and their downlink slots go idle for reuse).
    pub fn unpublish(&self, publisher: &str, track_ids: &[TrackId]) {
        let mut members = self.members();
        let Some(owner) = members.iter_mut().find(|m| m.id == publisher) else {
            return;
        };
        owner.tracks.retain(|t| !track_ids.contains(&t.id));
        let removed = ServerMediaEvent::TracksRemoved {
            peer_id: publisher.to_owned(),
            track_ids: track_ids.to_vec(),
        };
        for m in members.iter().filter(|m| m.id != publisher) {
            for t in track_ids {
                m.deliver(PeerCommand::Unsubscribe(t.clone()));
            }
            m.deliver(PeerCommand::Send(removed.clone()));
        }
    }

    /// Tells every member, `publisher` included, that one of its audio tracks started or
    /// stopped carrying speech (ignored for a track it no longer publishes).
    pub fn voice_activity(&self, publisher: &str, track_id: &str, speaking: bool) {
        let members = self.members();
        let track = members
            .iter()
            .find(|m| m.id == publisher)
            .and_then(|m| m.tracks.iter().find(|t| t.id == track_id));
        let Some(track) = track else {
            return;
        };
        // Under the members lock, as snapshots read it: a newcomer gets either the state or
        // the event.
        track.speaking.store(speaking, Ordering::Relaxed);
        let event = ServerMediaEvent::VoiceActivity {
            peer_id: publisher.to_owned(),
            track_id: track_id.to_owned(),
            speaking,
        };
        for m in members.iter() {
            m.deliver(PeerCommand::Send(event.clone()));
        }
    }

    /// Changes a member's metadata and tells the others.
    pub fn update_peer(&self, id: &str, metadata: PeerMetadata) {
        let mut members = self.members();
        let Some(me) = members.iter_mut().find(|m| m.id == id) else {
            return;
        };
        me.metadata = metadata.clone();
        let event = ServerMediaEvent::PeerUpdated {
            peer_id: id.to_owned(),
            metadata,
        };
        for m in members.iter().filter(|m| m.id != id) {
            m.deliver(PeerCommand::Send(event.clone()));
        }
    }

    /// Relays a chat message from `id` to every member, `id` included, and keeps it.
    pub fn chat(&self, id: &str, text: String) {
        let members = self.members();
        let Some(me) = members.iter().find(|m| m.id == id) else {
            return;
        };
        let msg = self.chat_log().post(
            id.to_owned(),
            me.metadata.display_name.clone(),
            text,
            chat::now_ms(),
        );
        let event = ServerMediaEvent::ChatMessage(msg);
        for m in members.iter() {
            m.deliver(PeerCommand::Send(event.clone()));
        }
    }

    /// Changes the metadata of one of `id`'s own tracks and tells the others.
    pub fn update_track(
        &self,
        id: &str,
        track_id: &str,
        metadata: TrackMetadata,
    ) -> Result<(), NotYours> {
        let members = self.members();
        let track = members
            .iter()
            .find(|m| m.id == id)
            .and_then(|m| m.tracks.iter().find(|t| t.id == track_id))
            .ok_or_else(|| NotYours(track_id.to_owned()))?;
        track.set_metadata(metadata.clone());
        // Muting ends speech at once, for everyone; the forwarder sees the cleared flag and
        // starts its detector afresh, so unmuting reports speech again.
        let silenced = metadata.muted && track.speaking.swap(false, Ordering::Relaxed);
        let event = ServerMediaEvent::TrackUpdated {
            peer_id: id.to_owned(),
            track_id: track_id.to_owned(),
            track_metadata: metadata,
        };
        for m in members.iter().filter(|m| m.id != id) {
            m.deliver(PeerCommand::Send(event.clone()));
        }
        if silenced {
            let quiet = ServerMediaEvent::VoiceActivity {
                peer_id: id.to_owned(),
                track_id: track_id.to_owned(),
                speaking: false,
            };
            for m in members.iter() {
                m.deliver(PeerCommand::Send(quiet.clone()));
            }
        }
        Ok(())
    }
}
