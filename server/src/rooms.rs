//! The registry of rooms: created on first join, dropped when the last peer leaves, with a cap
//! per room and one for the whole server.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use protocol::{PeerId, PeerMetadata};

use crate::room::{JoinDenied, MemberHandle, Room, Snapshot};

/// Every room on this server.
pub struct Rooms {
    rooms: Mutex<HashMap<String, Arc<Room>>>,
    per_room: usize,
    total_cap: usize,
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
        }
    }

    fn map(&self) -> MutexGuard<'_, HashMap<String, Arc<Room>>> {
        self.rooms.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Puts a peer in the named room, creating it if needed.
    pub fn join(
        &self,
        room: &str,
        id: PeerId,
        metadata: PeerMetadata,
        handle: MemberHandle,
    ) -> Result<(Arc<Room>, Snapshot), JoinDenied> {
        // The registry lock is held across the room's join so that a room cannot be dropped as
        // empty between being found and being joined.
        let mut map = self.map();
        let peers: usize = map.values().map(|r| r.len()).sum();
        if peers >= self.total_cap {
            return Err(JoinDenied::ServerFull);
        }
        let r = map
            .entry(room.to_owned())
            .or_insert_with(|| Arc::new(Room::new(room.to_owned())))
            .clone();
        match r.join(id, metadata, handle, self.per_room) {
            Ok(snapshot) => Ok((r, snapshot)),
            Err(denied) => {
                if r.is_empty() {
                    map.remove(room);
                }
                Err(denied)
            }
        }
    }

    /// Takes a peer out of its room; drops the room when it empties.
    pub fn leave(&self, room: &Room, id: &str) {
        let mut map = self.map();
        if room.leave(id) {
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
        let (room, snap) = rooms.join("r", "a".into(), meta("A"), a).unwrap();
        assert!(snap.peers.is_empty());
        assert_eq!(
            rooms.census(),
            Census {
                rooms: 1,
                peers: 1,
                tracks: 0
            }
        );
        rooms.leave(&room, "a");
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
        rooms.join("r", "a".into(), meta("A"), a).unwrap();
        let (_, snap) = rooms.join("r", "b".into(), meta("B"), b).unwrap();
        assert_eq!(snap.peers.len(), 1);
        assert!(matches!(
            ra.try_recv(),
            Ok(PeerCommand::Send(ServerMediaEvent::PeerJoined { .. }))
        ));
        let denied = rooms.join("r", "c".into(), meta("C"), c).err().unwrap();
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
        rooms.join("r1", "a".into(), meta("A"), a).unwrap();
        rooms.join("r2", "b".into(), meta("B"), b).unwrap();
        assert_eq!(
            rooms.join("r3", "c".into(), meta("C"), c).err(),
            Some(JoinDenied::ServerFull)
        );
        assert_eq!(rooms.census().rooms, 2);
    }

    #[test]
    fn a_peer_whose_queue_is_full_is_disconnected_not_waited_for() {
        let rooms = Rooms::new(5, 10);
        let (slow, _slow_rx) = member(1);
        let kill = slow.kill.clone();
        rooms.join("r", "slow".into(), meta("S"), slow).unwrap();
        for i in 0..3 {
            let (h, _r) = member(8);
            rooms.join("r", format!("p{i}"), meta("P"), h).unwrap();
        }
        assert!(kill.is_cancelled());
    }

    #[test]
    fn leaving_tells_the_others() {
        let rooms = Rooms::new(5, 10);
        let (a, mut ra) = member(8);
        let (b, _rb) = member(8);
        let (room, _) = rooms.join("r", "a".into(), meta("A"), a).unwrap();
        rooms.join("r", "b".into(), meta("B"), b).unwrap();
        let _ = ra.try_recv();
        rooms.leave(&room, "b");
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
