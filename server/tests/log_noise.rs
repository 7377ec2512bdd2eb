//! The server's log stays readable under a misbehaving peer: the `webrtc` stack's warning
//! repeated every 200 ms for a peer that answered without candidates is dropped, and the
//! server says once what became of that peer (issue 49). Its own binary: the log is global.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Everything logged, in memory.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_never_connects_is_logged_once_not_every_200_ms() {
    let log = Captured::default();
    let writer = log.clone();
    // The production log set-up, writing here (before common::start's own, which then yields).
    std::env::remove_var("RUST_LOG");
    server::logging::init(move || writer.clone());
    let server = common::start(|c| c.ice_connect_timeout_secs = 3).await;
    let room = common::room("quiet");
    let stuck = common::stuck_peer(&server, &room, "Stuck").await;
    stuck
        .wait_for("the server to give up", Duration::from_secs(15), |s| {
            s.closed.is_some()
        })
        .await
        .unwrap();
    // Let the crate's agent tick a few more times if it were still going.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let text = String::from_utf8_lossy(&log.0.lock().unwrap()).into_owned();
    let repeats = text.matches("pingAllCandidates").count();
    assert_eq!(
        repeats, 0,
        "the repeated ICE warning was logged {repeats} times"
    );
    let removals = text.matches("removing peer").count();
    assert_eq!(removals, 1, "the peer's end is said once:\n{text}");
    assert!(
        text.contains("media connection not established in time"),
        "{text}"
    );
    stuck.vanish().await;
    server.shutdown().await.unwrap();
}
