//! The HTTP side: the built client at `/` and `/room/<name>`, assets, `/healthz`.

mod common;

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut buf = String::new();
    s.read_to_string(&mut buf).await.unwrap();
    let status = buf
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = buf.split("\r\n\r\n").nth(1).unwrap_or_default().to_owned();
    (status, body)
}

#[tokio::test]
async fn serves_the_client_the_room_route_and_health() {
    let dir = std::env::temp_dir().join(format!("videoroom-static-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("index.html"),
        "<!doctype html><title>Videoroom</title>",
    )
    .unwrap();
    std::fs::write(dir.join("client.js"), "export default 1;").unwrap();
    let server = common::start(|c| c.static_dir = dir.clone()).await;

    let (status, body) = get(server.addr, "/").await;
    assert_eq!(status, 200);
    assert!(body.contains("<title>Videoroom</title>"));
    let (status, body) = get(server.addr, "/room/standup").await;
    assert_eq!(status, 200, "the room page is the app");
    assert!(body.contains("<title>Videoroom</title>"));
    let (status, body) = get(server.addr, "/client.js").await;
    assert_eq!(status, 200);
    assert!(body.contains("export default"));
    let (status, _) = get(server.addr, "/nope.wasm").await;
    assert_eq!(status, 404, "missing assets are 404, not the app");

    let (status, body) = get(server.addr, "/healthz").await;
    assert_eq!(status, 200);
    let health: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(health["status"], "ok");
    assert_eq!(health["rooms"], 0);
    assert_eq!(health["peers"], 0);

    server.shutdown().await.unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `metric` parsed from an OpenMetrics text body.
fn metric(body: &str, name: &str) -> Option<f64> {
    body.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_rooms_peers_and_media() {
    let server = common::start(|_| {}).await;
    let room = common::room("metrics");
    let ada = common::peer(&server, &room, "Ada").await;
    let bob = common::peer(&server, &room, "Bob").await;
    common::video_flowing(&bob, &ada).await;
    common::video_flowing(&ada, &bob).await;
    // Two refused frames.
    ada.send_raw("{not json");
    ada.send_raw(r#"{"type":"noSuchThing"}"#);
    ada.wait_for("two error replies", common::WAIT, |s| s.errors.len() >= 2)
        .await
        .unwrap();

    let mut s = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let req = format!(
        "GET /metrics HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
        server.addr
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).await.unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: application/openmetrics-text"),
        "{head}"
    );
    println!("{body}");
    assert_eq!(metric(body, "videoroom_rooms"), Some(1.0));
    assert_eq!(metric(body, "videoroom_peers"), Some(2.0));
    assert_eq!(metric(body, "videoroom_tracks"), Some(4.0));
    assert_eq!(metric(body, "videoroom_sessions"), Some(2.0));
    let received = metric(body, "videoroom_rtp_received_packets_total").unwrap();
    let forwarded = metric(body, "videoroom_rtp_forwarded_packets_total").unwrap();
    assert!(
        received > 40.0 && forwarded > 40.0,
        "{received} in, {forwarded} out"
    );
    assert!(metric(body, "videoroom_rtp_forwarded_bytes_total").unwrap() > 40_000.0);
    assert_eq!(metric(body, "videoroom_signaling_errors_total"), Some(2.0));
    for name in [
        "videoroom_keyframe_requests_total",
        "videoroom_nack_requested_packets_total",
        "videoroom_nack_resent_packets_total",
    ] {
        assert!(metric(body, name).is_some(), "{name} missing");
    }
    assert!(body.trim_end().ends_with("# EOF"));

    ada.leave().await;
    bob.leave().await;
    server.shutdown().await.unwrap();
}
