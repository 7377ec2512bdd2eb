//! Several nodes acting as one service (`--redis-url`; issue 40). The shared state lives in
//! Redis, not in a protocol of our own:
//!
//! - **Registry.** Each node writes `vr:node:<id>` (its URL and load, JSON) with a TTL that its
//!   heartbeat renews; a node that stops renewing drops out of the list by itself.
//! - **Room leases.** A room belongs to one node at a time: `vr:room:<name>` holds the owner's
//!   id, claimed with `SET NX PX` (so two nodes claiming at the same instant get one owner),
//!   renewed with the heartbeat by a script that also re-claims a lease a Redis restart lost,
//!   and released by compare-and-delete.
//!
//! Only Redis's clock judges a TTL, so the nodes' clocks need not agree. Redis lost while
//! running: the node keeps serving its rooms (and takes new ones, claimed when Redis is back),
//! logs it once, and registers again when Redis returns.
//!
//! Invariant: only this module speaks to Redis; without `--redis-url` there is no `Cluster`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use serde::{Deserialize, Serialize};
use tokio::time::Instant;
use tracing::{info, warn};

use crate::AppState;

/// Prefix of node registrations.
pub const NODE_PREFIX: &str = "vr:node:";
/// Prefix of room leases.
pub const ROOM_PREFIX: &str = "vr:room:";

/// How long one Redis command may take before it counts as Redis lost.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(1);
/// How long the first connection may take before the node refuses to start.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Renews a lease held by `ARGV[1]` for `ARGV[2]` ms: 1 kept, 2 claimed again (the key was
/// gone: a Redis restart, or a pause longer than the lease), -1 held by another node.
const RENEW: &str = r"
local v = redis.call('GET', KEYS[1])
if v == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if not v then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 2
end
return -1
";

/// Deletes a lease only if `ARGV[1]` holds it.
const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
";

/// What went wrong talking to Redis.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// The first connection failed.
    #[error("Redis at {url} is unreachable")]
    Unreachable {
        /// The URL, without any password.
        url: String,
        /// Why.
        source: redis::RedisError,
    },
    /// The first connection did not answer in time.
    #[error("Redis at {url} did not answer within {} s", CONNECT_TIMEOUT.as_secs())]
    ConnectTimeout {
        /// The URL, without any password.
        url: String,
    },
    /// A command failed.
    #[error("Redis: {0}")]
    Redis(#[from] redis::RedisError),
    /// A command did not answer within [`COMMAND_TIMEOUT`].
    #[error("Redis did not answer within {} s", COMMAND_TIMEOUT.as_secs())]
    Timeout,
    /// The settings cannot work.
    #[error("{0}")]
    Settings(String),
}

/// A node as the registry lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeInfo {
    /// Its id (`--node-id`).
    pub id: String,
    /// Where other nodes reach it (`--advertise-url`).
    pub url: String,
    /// Rooms it serves.
    pub rooms: usize,
    /// Participants in them.
    pub peers: usize,
    /// RTP packets it has forwarded since it started.
    pub packets_forwarded: u64,
}

/// A live node and the rooms it holds, for `/cluster`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeView {
    /// What the node registered.
    #[serde(flatten)]
    pub info: NodeInfo,
    /// The rooms whose lease it holds.
    pub rooms_owned: Vec<String>,
}

/// What `/cluster` shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterView {
    /// The node answering.
    pub this_node: String,
    /// Every live node, by id.
    pub nodes: Vec<NodeView>,
    /// Leases held by nodes no longer registered (they lapse within a lease time).
    pub orphaned_rooms: BTreeMap<String, String>,
}

/// Who holds a room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Owner {
    /// This node.
    Me,
    /// Another node, by id, and its URL if it is registered.
    Other {
        /// Its id.
        node: String,
        /// Its URL, when it is live.
        url: Option<String>,
    },
}

/// What renewing a lease found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Renewal {
    /// Still ours.
    Kept,
    /// It had lapsed (a Redis restart): ours again.
    Reclaimed,
    /// Another node holds it now.
    Lost,
}

impl Renewal {
    /// The renew script's answer, read.
    pub fn from_reply(reply: i64) -> Option<Renewal> {
        match reply {
            1 => Some(Renewal::Kept),
            2 => Some(Renewal::Reclaimed),
            -1 => Some(Renewal::Lost),
            _ => None,
        }
    }
}

/// A node's place in the cluster.
pub struct Cluster {
    /// This node's id.
    pub node_id: String,
    /// Where other nodes reach it.
    pub url: String,
    conn: ConnectionManager,
    heartbeat: Duration,
    lease: Duration,
    /// How long a claimed room may stay empty here before its lease is let go (a joiner
    /// claims at `channelJoin` and joins the room a moment later).
    claim_grace: Duration,
    /// Rooms this node holds, and when each was last claimed or found in use.
    claimed: Mutex<HashMap<String, Instant>>,
    redis_up: AtomicBool,
    renew: redis::Script,
    release: redis::Script,
}

/// `url` without a password, for messages.
fn redacted(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}***{}", &url[..scheme + 3], &url[at..])
        }
        _ => url.to_owned(),
    }
}

fn node_key(id: &str) -> String {
    format!("{NODE_PREFIX}{id}")
}

fn room_key(room: &str) -> String {
    format!("{ROOM_PREFIX}{room}")
}

fn millis(d: Duration) -> u64 {
    d.as_millis().try_into().unwrap_or(u64::MAX)
}

impl Cluster {
    /// Connects to Redis at `redis_url`. `heartbeat` is how often the node renews; `lease` how
    /// long its registration and leases live without renewal (at least three heartbeats).
    pub async fn connect(
        redis_url: &str,
        node_id: String,
        url: String,
        heartbeat: Duration,
        lease: Duration,
        claim_grace: Duration,
    ) -> Result<Cluster, ClusterError> {
        if lease < heartbeat * 3 {
            return Err(ClusterError::Settings(format!(
                "the cluster lease ({} ms) must be at least three heartbeats ({} ms each)",
                lease.as_millis(),
                heartbeat.as_millis()
            )));
        }
        let shown = redacted(redis_url);
        let client =
            redis::Client::open(redis_url).map_err(|source| ClusterError::Unreachable {
                url: shown.clone(),
                source,
            })?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(COMMAND_TIMEOUT))
            .set_response_timeout(Some(COMMAND_TIMEOUT))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_millis(500));
        let conn = tokio::time::timeout(
            CONNECT_TIMEOUT,
            ConnectionManager::new_with_config(client, config),
        )
        .await
        .map_err(|_| ClusterError::ConnectTimeout { url: shown.clone() })?
        .map_err(|source| ClusterError::Unreachable {
            url: shown.clone(),
            source,
        })?;
        let cluster = Cluster {
            node_id,
            url,
            conn,
            heartbeat,
            lease,
            claim_grace,
            claimed: Mutex::default(),
            redis_up: AtomicBool::new(true),
            renew: redis::Script::new(RENEW),
            release: redis::Script::new(RELEASE),
        };
        // A node that cannot even answer a PING is not started.
        let pong: String = cluster
            .run(&redis::cmd("PING"))
            .await
            .map_err(|e| match e {
                ClusterError::Redis(source) => ClusterError::Unreachable { url: shown, source },
                other => other,
            })?;
        debug_assert_eq!(pong, "PONG");
        Ok(cluster)
    }

    async fn run<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> Result<T, ClusterError> {
        let mut conn = self.conn.clone();
        tokio::time::timeout(COMMAND_TIMEOUT, cmd.query_async(&mut conn))
            .await
            .map_err(|_| ClusterError::Timeout)?
            .map_err(ClusterError::from)
    }

    async fn invoke(
        &self,
        script: &redis::Script,
        key: &str,
        args: &[&str],
    ) -> Result<i64, ClusterError> {
        let mut conn = self.conn.clone();
        let mut call = script.key(key);
        for a in args {
            call.arg(*a);
        }
        tokio::time::timeout(COMMAND_TIMEOUT, call.invoke_async(&mut conn))
            .await
            .map_err(|_| ClusterError::Timeout)?
            .map_err(ClusterError::from)
    }

    /// Whether Redis answered the last heartbeat.
    pub fn redis_up(&self) -> bool {
        self.redis_up.load(Ordering::Relaxed)
    }

    /// Rooms this node holds a lease on (or will, once Redis is back).
    pub fn rooms_claimed(&self) -> usize {
        self.claimed.lock().map_or(0, |c| c.len())
    }

    fn note_claimed(&self, room: &str) {
        if let Ok(mut c) = self.claimed.lock() {
            c.insert(room.to_owned(), Instant::now());
        }
    }

    /// Takes `room` for this node unless another holds it. Redis unreachable: the room is
    /// served here (and claimed when Redis is back), not refused.
    pub async fn claim(&self, room: &str) -> Owner {
        match self.try_claim(room).await {
            Ok(owner) => owner,
            Err(e) => {
                warn!(room, error = %e, "room not claimed in Redis: served here");
                self.note_claimed(room);
                Owner::Me
            }
        }
    }

    async fn try_claim(&self, room: &str) -> Result<Owner, ClusterError> {
        let key = room_key(room);
        // The holder may let go between our SET and GET: look again a couple of times.
        for _ in 0..3 {
            let set: Option<String> = self
                .run(
                    redis::cmd("SET")
                        .arg(&key)
                        .arg(&self.node_id)
                        .arg("NX")
                        .arg("PX")
                        .arg(millis(self.lease)),
                )
                .await?;
            let holder: Option<String> = if set.is_some() {
                Some(self.node_id.clone())
            } else {
                self.run(redis::cmd("GET").arg(&key)).await?
            };
            match holder {
                Some(h) if h == self.node_id => {
                    self.note_claimed(room);
                    return Ok(Owner::Me);
                }
                Some(node) => {
                    let info: Option<String> =
                        self.run(redis::cmd("GET").arg(node_key(&node))).await?;
                    let url = info
                        .and_then(|j| serde_json::from_str::<NodeInfo>(&j).ok())
                        .map(|i| i.url);
                    return Ok(Owner::Other { node, url });
                }
                None => continue,
            }
        }
        Err(ClusterError::Settings(format!(
            "the lease of room {room} changed hands three times while it was claimed"
        )))
    }

    /// One heartbeat: registers `info`, renews the leases of the rooms in `local` (and of
    /// rooms claimed within the grace), lets the others go.
    pub async fn tick(&self, info: &NodeInfo, local: &HashSet<String>) {
        let json = serde_json::to_string(info).unwrap_or_default();
        let registered: Result<(), ClusterError> = self
            .run(
                redis::cmd("SET")
                    .arg(node_key(&self.node_id))
                    .arg(json)
                    .arg("PX")
                    .arg(millis(self.lease)),
            )
            .await;
        if let Err(e) = registered {
            if self.redis_up.swap(false, Ordering::Relaxed) {
                warn!(error = %e, "Redis lost: serving the rooms here until it is back");
            }
            return;
        }
        if !self.redis_up.swap(true, Ordering::Relaxed) {
            info!("Redis is back: registered again");
        }
        let now = Instant::now();
        let rooms: Vec<(String, bool)> = {
            let Ok(mut claimed) = self.claimed.lock() else {
                return;
            };
            // A room made while Redis was away, or whose claim failed: claimed now.
            for room in local {
                claimed.insert(room.clone(), now);
            }
            claimed
                .iter()
                .map(|(room, &at)| {
                    let keep = local.contains(room) || now.duration_since(at) < self.claim_grace;
                    (room.clone(), keep)
                })
                .collect()
        };
        let lease = millis(self.lease).to_string();
        for (room, keep) in rooms {
            let key = room_key(&room);
            if !keep {
                if let Err(e) = self.invoke(&self.release, &key, &[&self.node_id]).await {
                    warn!(room, error = %e, "room lease not released");
                    return;
                }
                if let Ok(mut claimed) = self.claimed.lock() {
                    claimed.remove(&room);
                }
                continue;
            }
            match self
                .invoke(&self.renew, &key, &[&self.node_id, &lease])
                .await
                .map(Renewal::from_reply)
            {
                Ok(Some(Renewal::Kept)) => {}
                Ok(Some(Renewal::Reclaimed)) => info!(room, "room lease had lapsed: claimed again"),
                Ok(Some(Renewal::Lost)) => {
                    warn!(room, "room lease is held by another node now")
                }
                Ok(None) => warn!(room, "unexpected answer from the lease script"),
                Err(e) => {
                    // Redis went away mid-beat: the next beat tries them all again.
                    warn!(room, error = %e, "room lease not renewed");
                    return;
                }
            }
        }
    }

    /// Leaves the cluster: the registration and every lease go at once.
    pub async fn leave(&self) {
        let rooms: Vec<String> = self
            .claimed
            .lock()
            .map(|mut c| c.drain().map(|(r, _)| r).collect())
            .unwrap_or_default();
        for room in rooms {
            if let Err(e) = self
                .invoke(&self.release, &room_key(&room), &[&self.node_id])
                .await
            {
                // Redis is away: the rest lapse with their TTL rather than each wait its turn.
                warn!(room, error = %e, "room leases not released at shutdown");
                break;
            }
        }
        let gone: Result<i64, ClusterError> = self
            .run(redis::cmd("DEL").arg(node_key(&self.node_id)))
            .await;
        match gone {
            Ok(_) => info!(node = %self.node_id, "left the cluster"),
            Err(e) => warn!(error = %e, "node registration not removed at shutdown"),
        }
    }

    async fn scan(&self, prefix: &str) -> Result<Vec<String>, ClusterError> {
        let mut keys = Vec::new();
        let mut cursor = 0u64;
        loop {
            let (next, batch): (u64, Vec<String>) = self
                .run(
                    redis::cmd("SCAN")
                        .arg(cursor)
                        .arg("MATCH")
                        .arg(format!("{prefix}*"))
                        .arg("COUNT")
                        .arg(200),
                )
                .await?;
            keys.extend(batch);
            if next == 0 {
                return Ok(keys);
            }
            cursor = next;
        }
    }

    async fn values(&self, keys: &[String]) -> Result<Vec<Option<String>>, ClusterError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        self.run(redis::cmd("MGET").arg(keys)).await
    }

    /// Every live node with the rooms it holds.
    pub async fn view(&self) -> Result<ClusterView, ClusterError> {
        let node_keys = self.scan(NODE_PREFIX).await?;
        let room_keys = self.scan(ROOM_PREFIX).await?;
        let infos = self.values(&node_keys).await?;
        let owners = self.values(&room_keys).await?;
        let mut nodes: BTreeMap<String, NodeView> = infos
            .into_iter()
            .flatten()
            .filter_map(|j| serde_json::from_str::<NodeInfo>(&j).ok())
            .map(|info| {
                (
                    info.id.clone(),
                    NodeView {
                        info,
                        rooms_owned: Vec::new(),
                    },
                )
            })
            .collect();
        let mut orphaned_rooms = BTreeMap::new();
        for (key, owner) in room_keys.iter().zip(owners) {
            let (Some(room), Some(owner)) = (key.strip_prefix(ROOM_PREFIX), owner) else {
                continue;
            };
            match nodes.get_mut(&owner) {
                Some(n) => n.rooms_owned.push(room.to_owned()),
                None => {
                    orphaned_rooms.insert(room.to_owned(), owner);
                }
            }
        }
        for n in nodes.values_mut() {
            n.rooms_owned.sort();
        }
        Ok(ClusterView {
            this_node: self.node_id.clone(),
            nodes: nodes.into_values().collect(),
            orphaned_rooms,
        })
    }
}

/// This node's registration as of now.
fn node_info(app: &AppState, cluster: &Cluster) -> NodeInfo {
    let census = app.rooms.census();
    NodeInfo {
        id: cluster.node_id.clone(),
        url: cluster.url.clone(),
        rooms: census.rooms,
        peers: census.peers,
        packets_forwarded: app.stats.packets_out.load(Ordering::Relaxed),
    }
}

/// Registers the node and renews it and its leases every heartbeat until the server stops;
/// then leaves the cluster.
pub async fn run_heartbeat(app: Arc<AppState>, cluster: Arc<Cluster>) {
    loop {
        let local: HashSet<String> = app.rooms.names().into_iter().collect();
        cluster.tick(&node_info(&app, &cluster), &local).await;
        tokio::select! {
            _ = tokio::time::sleep(cluster.heartbeat) => {}
            _ = app.shutdown.cancelled() => break,
        }
    }
    cluster.leave().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renew_replies_are_read_and_nothing_else() {
        assert_eq!(Renewal::from_reply(1), Some(Renewal::Kept));
        assert_eq!(Renewal::from_reply(2), Some(Renewal::Reclaimed));
        assert_eq!(Renewal::from_reply(-1), Some(Renewal::Lost));
        assert_eq!(Renewal::from_reply(0), None);
    }

    #[test]
    fn passwords_stay_out_of_messages() {
        assert_eq!(
            redacted("redis://user:secret@10.0.0.2:6379/0"),
            "redis://***@10.0.0.2:6379/0"
        );
        assert_eq!(redacted("redis://127.0.0.1:6379"), "redis://127.0.0.1:6379");
    }
}
