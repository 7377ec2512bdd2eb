//! Soak: many join/leave cycles with media, then every resource is back to its baseline —
//! rooms, peers, sessions, file descriptors, tokio tasks — and memory is reported.

mod common;

use std::time::{Duration, Instant};

use common::WAIT;
use testkit::{PeerOptions, TestPeer};

const CYCLES: usize = 200;

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .map(|d| d.count())
        .unwrap_or(0)
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn tasks() -> usize {
    tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks()
}

#[derive(Debug, Clone, Copy)]
struct Figures {
    fds: usize,
    tasks: usize,
    rss_kib: u64,
}

fn figures() -> Figures {
    Figures {
        fds: open_fds(),
        tasks: tasks(),
        rss_kib: rss_kib(),
    }
}

/// One visitor joins, exchanges media with the host, and leaves.
async fn cycle(url: &str, room: &str, host: &TestPeer, i: usize) {
    let v = TestPeer::join(url, room, &format!("Visitor {i}"), PeerOptions::default())
        .await
        .unwrap();
    v.wait_for("video from the host", WAIT, |s| {
        s.packets_from(&host.id, "video") > 0
    })
    .await
    .unwrap();
    host.wait_for("video from the visitor", WAIT, |s| {
        s.packets_from(&v.id, "video") > 0
    })
    .await
    .unwrap();
    let id = v.id.clone();
    v.leave().await;
    host.wait_for("the visitor gone", WAIT, |s| !s.peers.contains_key(&id))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn join_leave_cycles_return_every_resource() {
    let server = common::start(|_| {}).await;
    let url = server.socket_url();
    let room = common::room("soak");
    let host = TestPeer::join(&url, &room, "Host", PeerOptions::default())
        .await
        .unwrap();
    // Warm up (lazy statics, allocator pools), then take the baseline.
    for i in 0..10 {
        cycle(&url, &room, &host, i).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let base = figures();
    let base_health = server.state.health();

    let started = Instant::now();
    for i in 0..CYCLES {
        cycle(&url, &room, &host, i).await;
    }
    let took = started.elapsed();

    // Let closing connections finish their teardown, then compare.
    let deadline = Instant::now() + Duration::from_secs(15);
    let after = loop {
        let f = figures();
        let h = server.state.health();
        let settled = h.census == base_health.census
            && h.sessions == base_health.sessions
            && f.fds <= base.fds + 2
            && f.tasks <= base.tasks + 10;
        if settled || Instant::now() > deadline {
            break (f, h);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let (f, h) = after;
    println!(
        "soak: {CYCLES} join/leave cycles with media in {took:?} ({:?} each); \
         fds {} → {}, tasks {} → {}, RSS {} KiB → {} KiB ({:+} KiB), sessions {} → {}, {:?}",
        took / CYCLES as u32,
        base.fds,
        f.fds,
        base.tasks,
        f.tasks,
        base.rss_kib,
        f.rss_kib,
        f.rss_kib as i64 - base.rss_kib as i64,
        base_health.sessions,
        h.sessions,
        h.census,
    );
    assert_eq!(h.census, base_health.census, "rooms/peers leaked");
    assert_eq!(h.sessions, base_health.sessions, "sessions leaked");
    assert!(
        f.fds <= base.fds + 2,
        "file descriptors leaked: {} → {}",
        base.fds,
        f.fds
    );
    assert!(
        f.tasks <= base.tasks + 10,
        "tasks leaked: {} → {}",
        base.tasks,
        f.tasks
    );
    // Memory is noisy (allocator caches); a leak of the ~1 MB a peer connection costs would
    // show as hundreds of MB over 200 cycles.
    assert!(
        f.rss_kib < base.rss_kib + 64 * 1024,
        "RSS grew by {} KiB",
        f.rss_kib - base.rss_kib
    );
    host.leave().await;
    server.shutdown().await.unwrap();
}
