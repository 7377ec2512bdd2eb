//! HTTPS. Browsers grant camera and microphone only to a secure origin (https, or localhost), so
//! a room joined from another machine needs TLS: a real certificate from files, or, for a LAN,
//! a self-signed development certificate for this machine's names and addresses, kept on disk
//! so browsers' exceptions survive restarts. The WebSocket follows (`wss:`).

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;
use tracing::{debug, info};

/// A TLS handshake that takes longer than this is dropped (it holds a socket and a task).
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A certificate or key file could not be read or parsed.
    #[error("{path}: {message}")]
    File {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// The development certificate could not be made.
    #[error("generating the development certificate: {0}")]
    Generate(#[from] rcgen::Error),
    /// rustls refused the certificate and key.
    #[error("certificate and key do not make a TLS configuration: {0}")]
    Config(#[from] rustls::Error),
}

/// Where the certificate comes from.
#[derive(Debug, Clone)]
pub enum CertSource {
    /// PEM files (e.g. from Let's Encrypt).
    Files {
        /// The certificate chain.
        cert: PathBuf,
        /// Its private key.
        key: PathBuf,
    },
    /// A self-signed certificate for this machine, made once and kept in `dir`.
    SelfSigned {
        /// Where `cert.pem` and `key.pem` are kept.
        dir: PathBuf,
    },
}

/// The rustls server configuration for `source`.
pub fn server_config(source: &CertSource) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let (cert_path, key_path) = match source {
        CertSource::Files { cert, key } => (cert.clone(), key.clone()),
        CertSource::SelfSigned { dir } => ensure_dev_certificate(dir)?,
    };
    let file_error = |path: &Path, e: &dyn std::fmt::Display| TlsError::File {
        path: path.to_owned(),
        message: e.to_string(),
    };
    let certs = CertificateDer::pem_file_iter(&cert_path)
        .map_err(|e| file_error(&cert_path, &e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_error(&cert_path, &e))?;
    if certs.is_empty() {
        return Err(file_error(&cert_path, &"no certificate in the file"));
    }
    let key = PrivateKeyDer::from_pem_file(&key_path).map_err(|e| file_error(&key_path, &e))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The names and addresses a development certificate covers: localhost, the host name, and
/// every local interface address.
pub fn dev_certificate_names() -> Vec<String> {
    let mut names = vec!["localhost".to_owned()];
    if let Ok(host) = std::fs::read_to_string("/etc/hostname") {
        let host = host.trim();
        if !host.is_empty() && host != "localhost" {
            names.push(host.to_owned());
            names.push(format!("{host}.local"));
        }
    }
    let mut ips: Vec<IpAddr> = vec![
        std::net::Ipv4Addr::LOCALHOST.into(),
        std::net::Ipv6Addr::LOCALHOST.into(),
    ];
    if let Ok(ifaces) = webrtc::util::ifaces::ifaces() {
        for i in ifaces {
            if let Some(addr) = i.addr {
                let ip = addr.ip();
                // Link-local IPv6 needs a zone, which a certificate cannot name.
                let link_local_v6 =
                    matches!(ip, IpAddr::V6(v6) if (v6.segments()[0] & 0xffc0) == 0xfe80);
                if !ips.contains(&ip) && !link_local_v6 {
                    ips.push(ip);
                }
            }
        }
    }
    names.extend(ips.iter().map(IpAddr::to_string));
    names
}

/// `dir/cert.pem` and `dir/key.pem`, made now if missing.
fn ensure_dev_certificate(dir: &Path) -> Result<(PathBuf, PathBuf), TlsError> {
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    if cert.exists() && key.exists() {
        info!(cert = %cert.display(), "using the development certificate made earlier");
        return Ok((cert, key));
    }
    let names = dev_certificate_names();
    let made = rcgen::generate_simple_self_signed(names.clone())?;
    let write = |path: &Path, text: &str| {
        std::fs::create_dir_all(dir)
            .and_then(|_| std::fs::write(path, text))
            .map_err(|e| TlsError::File {
                path: path.to_owned(),
                message: e.to_string(),
            })
    };
    write(&cert, &made.cert.pem())?;
    write(&key, &made.key_pair.serialize_pem())?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600));
    }
    info!(cert = %cert.display(), names = ?names, "made a self-signed development certificate; browsers will ask to accept it once");
    Ok((cert, key))
}

/// A TCP listener whose connections are TLS streams. Handshakes run in their own tasks, so a
/// slow or silent client delays nobody else's.
pub struct TlsListener {
    accepted: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
    acceptor: JoinHandle<()>,
}

impl TlsListener {
    /// Serves TLS with `config` on `listener`.
    pub fn new(listener: TcpListener, config: Arc<rustls::ServerConfig>) -> io::Result<Self> {
        let local = listener.local_addr()?;
        let (tx, accepted) = mpsc::channel(64);
        let tls = TlsAcceptor::from(config);
        let acceptor = tokio::spawn(async move {
            loop {
                let (mut tcp, peer) = match listener.accept().await {
                    Ok(c) => c,
                    Err(e) => {
                        // Out of file descriptors and the like: back off, as axum does.
                        debug!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                crate::set_nodelay(&mut tcp);
                let tls = tls.clone();
                let tx = tx.clone();
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, tls.accept(tcp)).await {
                        Ok(Ok(stream)) => {
                            let _ = tx.send((stream, peer)).await;
                        }
                        Ok(Err(e)) => debug!(%peer, error = %e, "TLS handshake failed"),
                        Err(_) => debug!(%peer, "TLS handshake timed out"),
                    }
                });
            }
        });
        Ok(TlsListener {
            accepted,
            local,
            acceptor,
        })
    }
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        self.acceptor.abort();
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.accepted.recv().await {
            Some(c) => c,
            // The acceptor task only ends when aborted, with the listener.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.local)
    }
}
