//! The `videoroom-server` binary itself: flags, and a graceful stop on SIGTERM that tells every
//! connected peer before exiting.

use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use protocol::{topic_for_room, ClientMessage, PROTOCOL_VERSION};
use tokio_tungstenite::tungstenite::Message;

#[tokio::test]
async fn sigterm_closes_every_socket_with_1001_and_exits_promptly() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_videoroom-server"))
        .args(["--bind", &format!("127.0.0.1:{port}")])
        .args(["--ice-ips", "127.0.0.1", "--udp-port", "0"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let url = format!("ws://127.0.0.1:{port}/socket");
    let deadline = Instant::now() + Duration::from_secs(20);
    let (mut ws, _) = loop {
        match tokio_tungstenite::connect_async(&url).await {
            Ok(ok) => break ok,
            Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await
            }
            Err(e) => panic!("server did not come up: {e}"),
        }
    };
    let join = ClientMessage::ChannelJoin {
        topic: topic_for_room("bye"),
        protocol_version: PROTOCOL_VERSION,
        token: None,
    };
    ws.send(Message::Text(join.encode().into())).await.unwrap();
    assert!(matches!(ws.next().await, Some(Ok(Message::Text(_)))));

    let stopped_at = Instant::now();
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let close = loop {
        match tokio::time::timeout(Duration::from_secs(5), ws.next()).await {
            Ok(Some(Ok(Message::Close(c)))) => break c.map(|c| u16::from(c.code)),
            Ok(Some(Ok(_))) => continue,
            other => panic!("expected a close frame, got {other:?}"),
        }
    };
    assert_eq!(close, Some(1001));
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "exit status {status}");
            break;
        }
        assert!(
            stopped_at.elapsed() < Duration::from_secs(5),
            "still running 5 s after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    println!("SIGTERM → exit in {:?}", stopped_at.elapsed());
}
