//! Several nodes sharing one Redis (issue 40, step 1): they list each other, a room belongs to
//! one node at a time, a graceful stop lets go of everything, and a Redis restart is survived.
//! Each test starts its own `redis-server` on a free loopback port (skipped, loudly, when
//! Debian's redis-server is missing: `cargo xtask test` installs it).

mod common;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{channel_join, RawClient};
use protocol::ServerMessage;
use server::cluster::ClusterView;
use server::RunningServer;
use tokio::sync::Mutex;

/// The tests share the two cores with media: one at a time keeps lease timing honest.
static ONE_AT_A_TIME: Mutex<()> = Mutex::const_new(());

const WAIT: Duration = Duration::from_secs(15);

/// A throwaway Redis on 127.0.0.1, killed on drop; nothing written to disk.
struct Redis {
    child: Option<Child>,
    port: u16,
    dir: std::path::PathBuf,
}

impl Redis {
    fn start() -> Option<Redis> {
        if Command::new("redis-server")
            .arg("--version")
            .output()
            .is_err()
        {
            eprintln!(
                "SKIPPED: `redis-server` (Debian's redis-server) is not installed; \
                 `cargo xtask test` installs it"
            );
            return None;
        }
        // `--port 0` makes redis-server exit: pick a free port ourselves.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free TCP port");
        let dir =
            std::env::temp_dir().join(format!("videoroom-redis-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a directory for redis");
        let mut r = Redis {
            child: None,
            port,
            dir,
        };
        r.run();
        Some(r)
    }

    fn run(&mut self) {
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .arg("--port")
            .arg(self.port.to_string())
            .arg("--dir")
            .arg(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server starts");
        self.child = Some(child);
        // Ready in ~30 ms here; wait for the port rather than guess.
        for _ in 0..200 {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("redis-server did not listen on {}", self.port);
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    async fn get(&self, key: &str) -> Option<String> {
        let client = redis::Client::open(self.url()).ok()?;
        let mut conn = client.get_multiplexed_async_connection().await.ok()?;
        redis::cmd("GET")
            .arg(key)
            .query_async(&mut conn)
            .await
            .ok()?
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A node of the cluster on `redis`, named `id`.
async fn node(redis: &Redis, id: &str) -> RunningServer {
    common::start(|c| {
        c.redis_url = Some(redis.url());
        c.node_id = Some(id.to_owned());
        c.cluster_heartbeat_ms = 200;
        c.cluster_lease_ms = 1000;
        // An empty room's lease is let go a join timeout (+1 s) after its last member.
        c.join_timeout_secs = 3;
    })
    .await
}

async fn view(server: &RunningServer) -> ClusterView {
    let body = reqwest_free_get(server, "/cluster").await;
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("/cluster: {e}: {body}"))
}

/// A plain HTTP GET over a TCP stream (the tests need no HTTP client crate for one page).
async fn reqwest_free_get(server: &RunningServer, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    tcp.write_all(
        format!(
            "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            server.addr
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let mut raw = Vec::new();
    tcp.read_to_end(&mut raw).await.unwrap();
    let text = String::from_utf8_lossy(&raw).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    assert!(head.starts_with("HTTP/1.1 200"), "GET {path}: {head}");
    body.to_owned()
}

/// Waits until `check` holds of `server`'s `/cluster`.
async fn wait_view(
    server: &RunningServer,
    what: &str,
    check: impl Fn(&ClusterView) -> bool,
) -> ClusterView {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let v = view(server).await;
        if check(&v) {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}; /cluster: {v:#?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn owns(v: &ClusterView, node: &str, room: &str) -> bool {
    v.nodes
        .iter()
        .any(|n| n.info.id == node && n.rooms_owned.iter().any(|r| r == room))
}

/// What a raw client gets for `channelJoin` to `room`: the refusal's reason, if refused.
async fn channel_join_on(server: &RunningServer, room: &str) -> (RawClient, Result<(), String>) {
    let mut c = RawClient::connect(server).await;
    c.send(&channel_join(room)).await;
    let answer = match c.read_message().await {
        ServerMessage::ChannelJoined { .. } => Ok(()),
        ServerMessage::ChannelJoinError { reason } => Err(reason),
        other => panic!("expected channelJoined or channelJoinError, got {other:?}"),
    };
    (c, answer)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_list_each_other_and_a_room_is_served_by_its_owner_only() {
    let _one = ONE_AT_A_TIME.lock().await;
    let Some(redis) = Redis::start() else { return };
    let a = node(&redis, "node-a").await;
    let b = node(&redis, "node-b").await;
    let v = wait_view(&b, "both nodes listed", |v| v.nodes.len() == 2).await;
    assert_eq!(v.this_node, "node-b");
    let a_url = &v
        .nodes
        .iter()
        .find(|n| n.info.id == "node-a")
        .unwrap()
        .info
        .url;
    assert_eq!(
        a_url,
        &a.url(),
        "a node is listed at the address it listens on"
    );

    // Ada takes the room on A; Bob, sent to B, is told where it is served.
    let room = common::room("cluster");
    let ada = common::peer(&a, &room, "Ada").await;
    wait_view(&b, "the room owned by A", |v| owns(v, "node-a", &room)).await;
    let (_c, refused) = channel_join_on(&b, &room).await;
    let reason = refused.expect_err("B serves no room A owns");
    assert!(
        reason.contains("node-a") && reason.contains(&format!("{}/room/{room}", a.url())),
        "the refusal names the owner and where to open the room: {reason}"
    );

    // On the owner, the two see and hear each other, and B forwards nothing.
    let bob = common::peer(&a, &room, "Bob").await;
    common::video_flowing(&bob, &ada).await;
    common::video_flowing(&ada, &bob).await;
    assert_eq!(b.state.health().packets_out, 0);
    assert!(a.state.health().packets_out > 0);
    let metrics = reqwest_free_get(&a, "/metrics").await;
    assert!(
        metrics.contains("videoroom_cluster_redis_up 1")
            && metrics.contains("videoroom_cluster_rooms_claimed 1"),
        "cluster gauges: {metrics}"
    );
    for p in [ada, bob] {
        p.leave().await;
    }
    // An empty room's lease goes with the claim grace (join timeout + 1 s).
    wait_view(&b, "the empty room let go", |v| {
        v.nodes.iter().all(|n| n.rooms_owned.is_empty())
    })
    .await;
    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_join_at_the_same_instant_on_two_nodes_makes_one_room() {
    let _one = ONE_AT_A_TIME.lock().await;
    let Some(redis) = Redis::start() else { return };
    let a = node(&redis, "node-a").await;
    let b = node(&redis, "node-b").await;
    for round in 0..5 {
        let room = common::room("race");
        let ((_ca, on_a), (_cb, on_b)) =
            tokio::join!(channel_join_on(&a, &room), channel_join_on(&b, &room));
        assert!(
            on_a.is_ok() != on_b.is_ok(),
            "round {round}: exactly one node takes {room}: A {on_a:?}, B {on_b:?}"
        );
        let owner = if on_a.is_ok() { "node-a" } else { "node-b" };
        let refused = on_a.err().or(on_b.err()).unwrap();
        assert!(refused.contains(owner), "{refused}");
        assert_eq!(
            redis.get(&format!("vr:room:{room}")).await.as_deref(),
            Some(owner)
        );
    }
    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graceful_stop_releases_the_node_and_its_rooms() {
    let _one = ONE_AT_A_TIME.lock().await;
    let Some(redis) = Redis::start() else { return };
    let a = node(&redis, "node-a").await;
    let room = common::room("stop");
    let (_client, _id) = RawClient::join(&a, &room, "Ada").await;
    assert_eq!(
        redis.get(&format!("vr:room:{room}")).await.as_deref(),
        Some("node-a")
    );
    assert!(redis.get("vr:node:node-a").await.is_some());
    a.shutdown().await.unwrap();
    // Gone at once, not after the lease: another node may take the room right away.
    assert_eq!(redis.get(&format!("vr:room:{room}")).await, None);
    assert_eq!(redis.get("vr:node:node-a").await, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_redis_restart_the_owner_claims_its_room_again() {
    let _one = ONE_AT_A_TIME.lock().await;
    let Some(mut redis) = Redis::start() else {
        return;
    };
    let a = node(&redis, "node-a").await;
    let room = common::room("restart");
    let ada = common::peer(&a, &room, "Ada").await;
    let bob = common::peer(&a, &room, "Bob").await;
    common::video_flowing(&bob, &ada).await;
    let key = format!("vr:room:{room}");
    assert_eq!(redis.get(&key).await.as_deref(), Some("node-a"));

    // Redis goes away: the room carries on, and the node says Redis is down.
    redis.kill();
    common::video_keeps_flowing(&bob, &ada).await;
    let deadline = tokio::time::Instant::now() + WAIT;
    while a.state.cluster.as_ref().unwrap().redis_up() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "Redis loss not noticed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Back empty (nothing was saved): the node registers again and re-claims its room.
    redis.run();
    let deadline = tokio::time::Instant::now() + WAIT;
    while redis.get(&key).await.as_deref() != Some("node-a")
        || redis.get("vr:node:node-a").await.is_none()
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the room and the node were not registered again after Redis came back"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(a.state.cluster.as_ref().unwrap().redis_up());
    common::video_keeps_flowing(&bob, &ada).await;
    for p in [ada, bob] {
        p.leave().await;
    }
    a.shutdown().await.unwrap();
}

#[tokio::test]
async fn an_unreachable_redis_stops_the_node_with_its_url() {
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap();
    let mut config = server::Config::for_tests();
    config.redis_url = Some(format!("redis://127.0.0.1:{port}/"));
    let err = match server::start(config).await {
        Ok(_) => panic!("a node without its Redis must not start"),
        Err(e) => format!("{e:#}"),
    };
    assert!(
        err.contains(&format!(
            "Redis at redis://127.0.0.1:{port}/ is unreachable"
        )),
        "{err}"
    );
    // And settings that cannot work are refused as clearly.
    let mut config = server::Config::for_tests();
    config.redis_url = Some(format!("redis://127.0.0.1:{port}/"));
    config.cluster_heartbeat_ms = 1000;
    config.cluster_lease_ms = 2000;
    let err = match server::start(config).await {
        Ok(_) => panic!("a lease shorter than three heartbeats must be refused"),
        Err(e) => format!("{e:#}"),
    };
    assert!(err.contains("at least three heartbeats"), "{err}");
}
