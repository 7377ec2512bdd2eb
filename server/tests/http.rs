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
