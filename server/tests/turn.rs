//! TURN: the server hands each peer short-lived TURN credentials with `peerAccepted`; a peer
//! that may only use relayed candidates (as behind a strict firewall) still gets media both ways,
//! through a real coturn on loopback that checks those credentials (`use-auth-secret`).

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{room, start, video_flowing};
use testkit::{PeerOptions, TestPeer};
use webrtc::peer_connection::peer_connection_state::RTCPeerConnectionState;

const SECRET: &str = "a turn secret shared with coturn";

/// coturn on 127.0.0.1, killed on drop; its log lines are kept for assertions.
struct Coturn {
    child: Child,
    port: u16,
    log: Arc<Mutex<Vec<String>>>,
}

impl Coturn {
    fn start() -> Option<Coturn> {
        if Command::new("turnserver")
            .arg("--version")
            .output()
            .is_err()
        {
            eprintln!(
                "SKIPPED: `turnserver` (Debian's coturn) is not installed; `cargo xtask test` \
                 installs it"
            );
            return None;
        }
        let port = std::net::UdpSocket::bind("127.0.0.1:0")
            .and_then(|s| s.local_addr())
            .map(|a| a.port())
            .expect("a free UDP port");
        // Relay ports from a block picked by the process id, away from the ephemeral range.
        let relay_min = 20_000 + (std::process::id() % 400) as u16 * 100;
        let mut child = Command::new("turnserver")
            .args([
                "-n",
                "--no-cli",
                "--no-tls",
                "--no-dtls",
                "--listening-ip=127.0.0.1",
                "--relay-ip=127.0.0.1",
                "--allow-loopback-peers",
                "--use-auth-secret",
                "--realm=videoroom.test",
                "--log-file=stdout",
                "--simple-log",
                "--verbose",
            ])
            .arg(format!("--static-auth-secret={SECRET}"))
            .arg(format!("--listening-port={port}"))
            .arg(format!("--min-port={relay_min}"))
            .arg(format!("--max-port={}", relay_min + 99))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("coturn starts");
        let log = Arc::new(Mutex::new(Vec::new()));
        let stdout = child.stdout.take().expect("piped stdout");
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Ok(mut l) = sink.lock() {
                    l.push(line);
                }
            }
        });
        Some(Coturn { child, port, log })
    }

    fn url(&self) -> String {
        format!("turn:127.0.0.1:{}?transport=udp", self.port)
    }

    fn logged(&self, needle: &str) -> bool {
        self.log
            .lock()
            .map(|l| l.iter().any(|line| line.contains(needle)))
            .unwrap_or(false)
    }

    async fn wait_ready(&self) {
        for _ in 0..100 {
            if self.logged("Total UDP servers") || self.logged("listener opened on") {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Coturn {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_only_peer_gets_media_through_turn() {
    let Some(coturn) = Coturn::start() else {
        return;
    };
    coturn.wait_ready().await;
    let server = start(|c| {
        c.turn_urls = vec![coturn.url()];
        c.turn_secret = Some(SECRET.into());
    })
    .await;
    let room = room("turn");
    let relayed = PeerOptions {
        relay_only: true,
        ..PeerOptions::default()
    };
    let ada = TestPeer::join(&server.socket_url(), &room, "Ada", relayed)
        .await
        .expect("Ada joins");
    let bob = common::peer(&server, &room, "Bob").await;
    video_flowing(&bob, &ada).await;
    video_flowing(&ada, &bob).await;
    // coturn accepted the credential the server minted for Ada, and relayed her media.
    assert!(
        coturn.logged(&format!(":{}", ada.id)) && coturn.logged("ALLOCATE processed, success"),
        "coturn saw no allocation for Ada's credential; log:\n{}",
        coturn.log.lock().map(|l| l.join("\n")).unwrap_or_default()
    );
    println!(
        "through TURN: Bob got {} video packets from Ada, Ada {} from Bob",
        bob.state().packets_from(&ada.id, "video"),
        ada.state().packets_from(&bob.id, "video")
    );
    ada.leave().await;
    bob.leave().await;
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_from_another_secret_get_no_relay() {
    let Some(coturn) = Coturn::start() else {
        return;
    };
    coturn.wait_ready().await;
    let server = start(|c| {
        c.turn_urls = vec![coturn.url()];
        c.turn_secret = Some("not the secret coturn has".into());
    })
    .await;
    let room = room("turn-bad");
    let ada = TestPeer::join(
        &server.socket_url(),
        &room,
        "Ada",
        PeerOptions {
            relay_only: true,
            ..PeerOptions::default()
        },
    )
    .await
    .expect("Ada joins");
    // With only a relay to go through and no valid credential, media never connects.
    let connected = ada
        .wait_for("a connection", Duration::from_secs(6), |s| {
            s.connection == Some(RTCPeerConnectionState::Connected)
        })
        .await;
    assert!(
        connected.is_err(),
        "connected without a valid TURN credential"
    );
    assert!(!coturn.logged("ALLOCATE processed, success"));
    ada.vanish().await;
    server.shutdown().await.unwrap();
}
