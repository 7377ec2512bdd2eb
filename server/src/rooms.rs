//! The registry of rooms: created on first join, dropped when the last peer leaves, with a cap
//! per room and one for the whole server.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use protocol::{PeerId, PeerMetadata};

use crate::room::{Admission, JoinDenied, MemberHandle, Room};

/// Every room on this server.
pub struct Rooms {
    rooms: Mutex<HashMap<String, Arc<Room>>>,
    per_room: usize,
    total_cap: usize,
    /// Numbers every admission (see `Room::join`).
    next_session: AtomicU64,
}

/// Room and peer counts, for health checks and leak tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Census {
    /// Rooms alive.
    pub rooms: usize,
    /// Peers in them.
    pub peers: usize,
    /// Tracks those peers publish.
    pub tracks: usize,
}

impl Rooms {
    /// An empty registry with these caps.
    pub fn new(per_room: usize, total_cap: usize) -> Self {
        Rooms {
            rooms: Mutex::new(HashMap::new()),
            per_room,
            total_cap,
            next_session: AtomicU64::new(1),
        }
    }

    fn map(&self) -> MutexGuard<'_, HashMap<String, Arc<Room>>> {
        self.rooms.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Puts a peer in the named room, creating it if needed.
    /// With a reconnect token of a member of that room, the member is given back (same id),
    /// even when the server is full.
    pub fn join(
        &self,
        room: &str,
        id: PeerId,
        metadata: PeerMetadata,
        handle: MemberHandle,
        reconnect_token: Option<&str>,
    ) -> Result<(Arc<Room>, Admission), JoinDenied> {
        // The registry lock is held across the room's join so that a room cannot be dropped as
        // empty between being found and being joined.
        let mut map = self.map();
        let peers: usize = map.values().map(|r| r.len()).sum();
        let server_full = peers >= self.total_cap;
        let r = match map.get(room) {
            Some(r) => r.clone(),
            None if server_full => return Err(JoinDenied::ServerFull),
            None => map
                .entry(room.to_owned())
                .or_insert_with(|| Arc::new(Room::new(room.to_owned())))
                .clone(),
        };
        let session = self.next_session.fetch_add(1, Ordering::Relaxed);
        match r.join(
            id,
            metadata,
            handle,
            self.per_room,
            server_full,
            reconnect_token,
            session,
        ) {
            Ok(admission) => Ok((r, admission)),
            Err(denied) => {
                if r.is_empty() {
                    map.remove(room);
                }
                Err(denied)
            }
        }
    }

    /// Takes a peer out of its room if `session` still holds it; drops the room when it
    /// empties.
    pub fn leave(&self, room: &Room, id: &str, session: u64) {
        let mut map = self.map();
        if room.leave(id, session) {
            // Only remove the entry if it is still this room (it always is while we hold the
            // lock, but be exact).
            if map
                .get(&room.name)
                .is_some_and(|r| std::ptr::eq(Arc::as_ptr(r), room))
            {
                map.remove(&room.name);
            }
        }
    }

    /// The named room, if it is alive.
    pub fn get(&self, room: &str) -> Option<Arc<Room>> {
        self.map().get(room).cloned()
    }

    /// The names of the rooms alive.
    pub fn names(&self) -> Vec<String> {
        self.map().keys().cloned().collect()
    }

    /// Current counts.
    pub fn census(&self) -> Census {
        let map = self.map();
        Census {
            rooms: map.len(),
            peers: map.values().map(|r| r.len()).sum(),
            tracks: map.values().map(|r| r.track_count()).sum(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::room::PeerCommand;
    use protocol::ServerMediaEvent;
    use tokio::sync::mpsc;
    use tokio_util::sync::CancellationToken;

    fn member(cap: usize) -> (MemberHandle, mpsc::Receiver<PeerCommand>) {
        let (tx, rx) = mpsc::channel(cap);
        (
            MemberHandle {
                commands: tx,
                kill: CancellationToken::new(),
                replaced: Default::default(),
            },
            rx,
        )
    }

    fn meta(name: &str) -> PeerMetadata {
        PeerMetadata {
            display_name: name.into(),
        }
    }

    #[test]
    fn rooms_are_created_on_join_and_dropped_when_empty() {
        let rooms = Rooms::new(2, 10);
        let (a, _ra) = member(8);
        let (room, adm) = rooms.join("r", "a".into(), meta("A"), a, None).unwrap();
        assert!(adm.snapshot.peers.is_empty());
        assert_eq!(
            rooms.census(),
            Census {
                rooms: 1,
                peers: 1,
                tracks: 0
            }
        );
        rooms.leave(&room, "a", adm.session);
        assert_eq!(
            rooms.census(),
            Census {
                rooms: 0,
                peers: 0,
                tracks: 0
            }
        );
    }

    #[test]
    fn room_cap_denies_without_telling_the_others() {
        let rooms = Rooms::new(2, 10);
        let (a, mut ra) = member(8);
        let (b, _rb) = member(8);
        let (c, _rc) = member(8);
        rooms.join("r", "a".into(), meta("A"), a, None).unwrap();
        let (_, adm) = rooms.join("r", "b".into(), meta("B"), b, None).unwrap();
        assert_eq!(adm.snapshot.peers.len(), 1);
        assert!(matches!(
            ra.try_recv(),
            Ok(PeerCommand::Send(ServerMediaEvent::PeerJoined { .. }))
        ));
        let denied = rooms
            .join("r", "c".into(), meta("C"), c, None)
            .err()
            .unwrap();
        assert_eq!(denied, JoinDenied::RoomFull(2));
        assert_eq!(denied.to_string(), "room is full (2 participants)");
        assert!(ra.try_recv().is_err(), "no peerJoined for a denied peer");
    }

    #[test]
    fn server_cap_counts_every_room() {
        let rooms = Rooms::new(5, 2);
        let (a, _ra) = member(8);
        let (b, _rb) = member(8);
        let (c, _rc) = member(8);
        rooms.join("r1", "a".into(), meta("A"), a, None).unwrap();
        rooms.join("r2", "b".into(), meta("B"), b, None).unwrap();
        assert_eq!(
            rooms.join("r3", "c".into(), meta("C"), c, None).err(),
            Some(JoinDenied::ServerFull)
        );
        assert_eq!(rooms.census().rooms, 2);
    }

    #[test]
    fn a_peer_whose_queue_is_full_is_disconnected_not_waited_for() {
        let rooms = Rooms::new(5, 10);
        let (slow, _slow_rx) = member(1);
        let kill = slow.kill.clone();
        rooms
            .join("r", "slow".into(), meta("S"), slow, None)
            .unwrap();
        for i in 0..3 {
            let (h, _r) = member(8);
            rooms
                .join("r", format!("p{i}"), meta("P"), h, None)
                .unwrap();
        }
        assert!(kill.is_cancelled());
    }

    #[test]
    fn a_reconnect_token_gives_the_member_back_once_and_old_sessions_are_ignored() {
        let rooms = Rooms::new(2, 10);
        let (a, mut ra) = member(8);
        let (b, _rb) = member(8);
        let (room, _) = rooms.join("r", "a".into(), meta("A"), a, None).unwrap();
        let (_, bob) = rooms.join("r", "b".into(), meta("B"), b, None).unwrap();
        let _ = ra.try_recv(); // peerJoined
        assert!(room.detach("b", bob.session));
        assert!(
            ra.try_recv().is_err(),
            "no peerLeft while away (and no tracks to remove)"
        );
        // Away members still count: the room (cap 2) is full for a newcomer.
        let (c, _rc) = member(8);
        assert_eq!(
            rooms.join("r", "c".into(), meta("C"), c, None).err(),
            Some(JoinDenied::RoomFull(2))
        );
        let (b2, _rb2) = member(8);
        let (_, back) = rooms
            .join("r", "b2".into(), meta("B"), b2, Some(&bob.token))
            .unwrap();
        assert!(back.reconnected);
        assert_eq!(back.id, "b");
        assert_ne!(back.token, bob.token, "a new token each time");
        assert!(ra.try_recv().is_err(), "no peerJoined, no peerUpdated");
        // The old session's late leave does nothing; the token was single use.
        rooms.leave(&room, "b", bob.session);
        assert_eq!(rooms.census().peers, 2);
        let (b3, _rb3) = member(8);
        assert!(rooms
            .join("r", "b3".into(), meta("B"), b3, Some(&bob.token))
            .is_err_and(|e| e == JoinDenied::RoomFull(2)));
        // A live member taken over by a reconnect: its session is told it was replaced.
        let (b4, _rb4) = member(8);
        let replaced = b4.replaced.clone();
        let kill = b4.kill.clone();
        let (b5, _rb5) = member(8);
        let (_, again) = rooms
            .join("r", "x".into(), meta("B"), b4, Some(&back.token))
            .unwrap();
        rooms
            .join("r", "y".into(), meta("Bea"), b5, Some(&again.token))
            .unwrap();
        assert!(replaced.load(Ordering::SeqCst) && kill.is_cancelled());
        assert!(matches!(
            ra.try_recv(),
            Ok(PeerCommand::Send(ServerMediaEvent::PeerUpdated { peer_id, .. })) if peer_id == "b"
        ));
        // The new session's leave removes it.
        rooms.leave(&room, "b", again.session + 1);
        assert!(matches!(
            ra.try_recv(),
            Ok(PeerCommand::Send(ServerMediaEvent::PeerLeft { peer_id })) if peer_id == "b"
        ));
    }

    #[test]
    fn leaving_tells_the_others() {
        let rooms = Rooms::new(5, 10);
        let (a, mut ra) = member(8);
        let (b, _rb) = member(8);
        let (room, _) = rooms.join("r", "a".into(), meta("A"), a, None).unwrap();
        let (_, bob) = rooms.join("r", "b".into(), meta("B"), b, None).unwrap();
        let _ = ra.try_recv();
        rooms.leave(&room, "b", bob.session);
        assert!(matches!(
            ra.try_recv(),
            Ok(PeerCommand::Send(ServerMediaEvent::PeerLeft { peer_id })) if peer_id == "b"
        ));
        assert_eq!(
            rooms.census(),
            Census {
                rooms: 1,
                peers: 1,
                tracks: 0
            }
        );
    }
}
