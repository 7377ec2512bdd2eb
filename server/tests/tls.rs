//! HTTPS: a self-signed development certificate made once and reused, certificate files, the
//! WebSocket over TLS (`wss:`), and clear errors for bad files.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use protocol::{ServerMessage, PROTOCOL_VERSION};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("videoroom-tls-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// A TLS connection to `server` that trusts only `cert` and checks it is valid for `name`.
async fn connect(
    server: &server::RunningServer,
    cert: &Path,
    name: &str,
) -> std::io::Result<TlsStream<TcpStream>> {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(cert).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = TcpStream::connect(server.addr).await?;
    tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from(name.to_owned()).unwrap(), tcp)
        .await
}

async fn https_get(stream: &mut TlsStream<TcpStream>, path: &str) -> String {
    let req = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    stream.write_all(req.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    // A TLS peer may close without close_notify after the response; what was read is enough.
    let _ = stream.read_to_end(&mut out).await;
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn self_signed_https_and_wss() {
    let dir = temp_dir("self-signed");
    let server = common::start(|c| {
        c.tls_self_signed = true;
        c.tls_dir = dir.clone();
    })
    .await;
    assert!(server.url().starts_with("https://"));
    assert!(server.socket_url().starts_with("wss://"));
    let cert = dir.join("cert.pem");
    assert!(cert.exists() && dir.join("key.pem").exists());

    // Valid for the names a LAN user would type: localhost and the loopback address.
    for name in ["localhost", "127.0.0.1"] {
        let mut tls = connect(&server, &cert, name).await.expect("TLS handshake");
        let reply = https_get(&mut tls, "/healthz").await;
        assert!(reply.starts_with("HTTP/1.1 200"), "{name}: {reply}");
        assert!(reply.contains("\"status\":\"ok\""));
    }
    assert!(
        connect(&server, &cert, "example.com").await.is_err(),
        "the certificate must not be valid for other names"
    );

    // Plain HTTP to the TLS port gets no page.
    let mut plain = TcpStream::connect(server.addr).await.unwrap();
    plain
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        plain.read_to_end(&mut buf),
    )
    .await;
    assert!(!String::from_utf8_lossy(&buf).contains("200 OK"));

    // The signaling WebSocket over TLS.
    let tls = connect(&server, &cert, "localhost").await.unwrap();
    let url = format!("wss://localhost:{}/socket", server.addr.port());
    let (mut ws, _) = tokio_tungstenite::client_async(url, tls)
        .await
        .expect("wss upgrade");
    use futures_util::{SinkExt, StreamExt};
    let join = protocol::ClientMessage::ChannelJoin {
        topic: protocol::topic_for_room("tls"),
        protocol_version: PROTOCOL_VERSION,
        token: None,
    };
    ws.send(tokio_tungstenite::tungstenite::Message::Text(
        join.encode().into(),
    ))
    .await
    .unwrap();
    let reply = loop {
        match ws.next().await.unwrap().unwrap() {
            tokio_tungstenite::tungstenite::Message::Text(t) => break t,
            _ => continue,
        }
    };
    assert!(matches!(
        ServerMessage::decode(reply.as_str()).unwrap(),
        ServerMessage::ChannelJoined { .. }
    ));
    drop(ws);
    server.shutdown().await.unwrap();

    // A restart keeps the certificate, so browsers' exceptions stay valid.
    let before = std::fs::read(&cert).unwrap();
    let again = common::start(|c| {
        c.tls_self_signed = true;
        c.tls_dir = dir.clone();
    })
    .await;
    assert_eq!(std::fs::read(&cert).unwrap(), before, "certificate reused");
    again.shutdown().await.unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificate_files_and_their_errors() {
    let dir = temp_dir("files");
    std::fs::create_dir_all(&dir).unwrap();
    let made = rcgen::generate_simple_self_signed(vec!["videoroom.test".to_owned()]).unwrap();
    let (cert, key) = (dir.join("c.pem"), dir.join("k.pem"));
    std::fs::write(&cert, made.cert.pem()).unwrap();
    std::fs::write(&key, made.key_pair.serialize_pem()).unwrap();
    let server = common::start(|c| {
        c.tls_cert = Some(cert.clone());
        c.tls_key = Some(key.clone());
    })
    .await;
    let mut tls = connect(&server, &cert, "videoroom.test")
        .await
        .expect("TLS handshake");
    assert!(https_get(&mut tls, "/healthz")
        .await
        .starts_with("HTTP/1.1 200"));
    server.shutdown().await.unwrap();

    // A missing key and a key that is not PEM are refused at start, naming the file.
    let mut config = server::Config::for_tests();
    config.tls_cert = Some(cert.clone());
    config.tls_key = Some(dir.join("missing.pem"));
    let e = server::start(config.clone()).await.err().expect("refused");
    assert!(format!("{e:#}").contains("missing.pem"), "{e:#}");
    std::fs::write(dir.join("junk.pem"), "not a key").unwrap();
    config.tls_key = Some(dir.join("junk.pem"));
    let e = server::start(config).await.err().expect("refused");
    assert!(format!("{e:#}").contains("junk.pem"), "{e:#}");
    std::fs::remove_dir_all(&dir).unwrap();
}
