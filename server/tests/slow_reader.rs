//! A client that stops reading cannot hold anyone else up: its bounded queue overflows, it is
//! disconnected, and the others' signaling latency stays where it was.

mod common;

use std::time::{Duration, Instant};

use common::{RawClient, WAIT};
use futures_util::{SinkExt, StreamExt};
use protocol::*;
use tokio_tungstenite::tungstenite::Message;

fn rename(name: String) -> ClientMessage {
    ClientMessage::MediaEvent {
        data: ClientMediaEvent::UpdatePeerMetadata {
            metadata: PeerMetadata { display_name: name },
        },
    }
}

/// One signaling round trip: `a` renames itself, `b` hears of it.
async fn round_trip(a: &mut RawClient, b: &mut RawClient, a_id: &str, n: usize) -> Duration {
    let name = format!("Ada {n}");
    let t = Instant::now();
    a.send(&rename(name.clone())).await;
    loop {
        if let ServerMessage::MediaEvent {
            data: ServerMediaEvent::PeerUpdated { peer_id, metadata },
        } = b.read_message().await
        {
            if peer_id == a_id && metadata.display_name == name {
                return t.elapsed();
            }
        }
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_is_disconnected_and_slows_nobody() {
    let server = common::start(|_| {}).await;
    let room = common::room("slow");
    let (mut ada, ada_id) = RawClient::join(&server, &room, "Ada").await;
    let (mut bob, _) = RawClient::join(&server, &room, "Bob").await;
    let mut before = Vec::new();
    // Half the rename burst: with one rename a round (each ≥ 200 ms, the 5/s refill) the
    // other half absorbs any jitter, so Ada's renames are never refused.
    for n in 0..(server::chat::CHAT_BURST as usize / 2) {
        before.push(round_trip(&mut ada, &mut bob, &ada_id, n).await);
    }

    // The slow one: a tiny receive buffer, and it never reads after joining.
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.set_recv_buffer_size(4096).unwrap();
    let stream = sock.connect(server.addr).await.unwrap();
    let (mut slow, _) = tokio_tungstenite::client_async(server.socket_url(), stream)
        .await
        .unwrap();
    slow.send(Message::Text(common::channel_join(&room).encode().into()))
        .await
        .unwrap();
    slow.send(Message::Text(common::room_join("Slow").encode().into()))
        .await
        .unwrap();
    let mut slow_id = None;
    while slow_id.is_none() {
        if let Some(Ok(Message::Text(t))) = slow.next().await {
            if let Ok(ServerMessage::MediaEvent {
                data: ServerMediaEvent::PeerAccepted { id, .. },
            }) = ServerMessage::decode(t.as_str())
            {
                slow_id = Some(id);
            }
        }
    }
    let slow_id = slow_id.unwrap();

    // Flood the room with events (within each flooder's rate limit) until the slow one is gone.
    let mut flooders = Vec::new();
    for i in 0..10 {
        flooders.push(
            RawClient::join(&server, &room, &format!("Flood {i}"))
                .await
                .0,
        );
    }
    let long_name = |i: usize, k: usize| format!("{}{i}-{k}", "🌊".repeat(56));
    // ~4 KB a line: four bytes a character.
    let long_line = |i: usize, k: usize| format!("{i}-{k} {}", "🌊".repeat(MAX_CHAT_CHARS - 20));
    let started = Instant::now();
    let mut during = Vec::new();
    let mut gone = false;
    // A rename and a 4 KB chat line per flooder per 200 ms: within the 5/s each of
    // renames and chat may have, so only the room's own fan-out is under test.
    for round in 0..150 {
        for (i, f) in flooders.iter_mut().enumerate() {
            f.send(&rename(long_name(i, round))).await;
            f.send(&ClientMessage::MediaEvent {
                data: ClientMediaEvent::SendChatMessage {
                    text: long_line(i, round),
                },
            })
            .await;
            f.drain().await;
        }
        during.push(round_trip(&mut ada, &mut bob, &ada_id, 100 + round).await);
        if !server
            .state
            .rooms
            .census()
            .peers
            .eq(&(2 + 1 + flooders.len()))
        {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(gone, "the slow client was never disconnected");
    let removed_after = started.elapsed();
    // Ada hears that Slow left (she reads everything, so the events are all there).
    loop {
        if let ServerMessage::MediaEvent {
            data: ServerMediaEvent::PeerLeft { peer_id },
        } = tokio::time::timeout(WAIT, ada.read_message())
            .await
            .unwrap()
        {
            if peer_id == slow_id {
                break;
            }
        }
    }
    let (before_ms, during_ms) = (median(before), median(during.clone()));
    println!(
        "slow reader: disconnected {removed_after:?} into the flood; signaling round trip \
         median {before_ms:?} before, {during_ms:?} during the flood (max {:?})",
        during.iter().max().unwrap()
    );
    // Not a timing assertion on a busy 2-core machine: just that nobody was held up for the
    // seconds a blocked room would take.
    assert!(
        during.iter().all(|d| *d < Duration::from_secs(2)),
        "{during:?}"
    );
    drop(slow);
    server.shutdown().await.unwrap();
}
