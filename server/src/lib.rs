//! Videoroom's server: signaling over WebSocket, a Selective Forwarding Unit built on the
//! `webrtc` crate, and the static files of the wasm client.
//!
//! Codemap: [`config`] flags → [`rtc`] the WebRTC API → [`signaling`] one task per WebSocket
//! → [`rooms`] / [`room`] membership → [`peer`] one peer connection per participant →
//! [`forwarder`] RTP from a publisher to its subscribers.

pub mod access;
pub mod allocator;
pub mod bwe;
pub mod chat;
pub mod cluster;
pub mod config;
pub mod forwarder;
pub mod http;
pub mod keyframes;
pub mod layers;
pub mod logging;
pub mod media_stats;
pub mod metrics;
pub mod nack;
pub mod outbox;
pub mod peer;
pub mod rate_limit;
pub mod reconnect;
pub mod reconnect_token;
pub mod room;
pub mod rooms;
pub mod rtc;
pub mod sdp_answer;
pub mod signaling;
pub mod simulcast;
pub mod static_files;
pub mod tls;
pub mod transport_cc;
pub mod turn;
pub mod voice;
pub mod vp8;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower_http::services::{ServeDir, ServeFile};
use tower_http::trace::TraceLayer;
use tracing::{info, warn};

pub use config::Config;
use forwarder::MediaStats;
use rooms::{Census, Rooms};

/// What every request handler and session shares.
pub struct AppState {
    /// The settings.
    pub config: Config,
    /// Makes peer connections.
    pub rtc: rtc::Rtc,
    /// Every room.
    pub rooms: Rooms,
    /// Media counters.
    pub stats: Arc<MediaStats>,
    /// Cancelled once to stop everything.
    pub shutdown: CancellationToken,
    /// Every live WebSocket session.
    pub sessions: TaskTracker,
    /// The join-token key, when rooms require tokens.
    pub tokens: Option<access::TokenKey>,
    /// Error replies sent to clients.
    pub signaling_errors: AtomicU64,
    /// Open connections against their caps.
    pub connections: Arc<http::Gate>,
    /// Room joins per source address.
    pub joins: rate_limit::PerSource,
    /// Participants per source address whose media is not up yet.
    pub connecting: Arc<http::Gate>,
    /// This node's place among several (`--redis-url`); `None` alone.
    pub cluster: Option<Arc<cluster::Cluster>>,
}

/// The HTTP routes: `/socket`, `/healthz`, `/metrics`, the client at `/` and `/room/<name>`;
/// every response carries the security headers.
pub fn router(state: Arc<AppState>) -> Router {
    let dir = &state.config.static_dir;
    let index = ServeFile::new(dir.join("index.html"));
    let headers = static_files::SecurityHeaders::for_page(dir);
    Router::new()
        .route("/socket", get(signaling::handler))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/cluster", get(cluster_view))
        // The room page is the client's own route: serve the app and let it read the path.
        .route_service("/room/{name}", index)
        .fallback_service(ServeDir::new(dir))
        .layer(axum::middleware::from_fn(
            static_files::refuse_impossible_paths,
        ))
        .layer(axum::middleware::from_fn_with_state(
            headers,
            static_files::add_headers,
        ))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

/// Health and load, as JSON.
#[derive(Debug, serde::Serialize)]
pub struct Health {
    /// Always "ok" when the server answers.
    pub status: &'static str,
    /// Rooms and peers.
    #[serde(flatten)]
    pub census: Census,
    /// Live WebSocket sessions.
    pub sessions: usize,
    /// RTP packets received from publishers.
    pub packets_in: u64,
    /// RTP packets sent to subscribers.
    pub packets_out: u64,
    /// Packets handed to another core's fan-out shard.
    pub shard_handoffs: u64,
}

async fn healthz(
    State(app): State<Arc<AppState>>,
    headers: axum::http::HeaderMap,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    if metrics::authorized(&app.config, &headers) {
        Json(app.health()).into_response()
    } else {
        // Up or not, for a load balancer; the figures are the operator's.
        Json(serde_json::json!({ "status": "ok" })).into_response()
    }
}

/// The live nodes, their load and the rooms each holds (404 without `--redis-url`; the
/// operator's figures, behind `--metrics-token` like `/metrics`).
async fn cluster_view(
    State(app): State<Arc<AppState>>,
    headers: axum::http::HeaderMap,
) -> axum::response::Response {
    use axum::http::StatusCode;
    use axum::response::IntoResponse;
    if !metrics::authorized(&app.config, &headers) {
        return token_needed("/cluster");
    }
    let Some(cluster) = &app.cluster else {
        return (
            StatusCode::NOT_FOUND,
            "this server runs alone: start it with --redis-url to join a cluster\n",
        )
            .into_response();
    };
    match cluster.view().await {
        Ok(view) => Json(view).into_response(),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("the cluster cannot be listed: {e}\n"),
        )
            .into_response(),
    }
}

/// 401 for an operator's page (`path`) asked for without `--metrics-token`.
fn token_needed(path: &str) -> axum::response::Response {
    use axum::response::IntoResponse;
    (
        axum::http::StatusCode::UNAUTHORIZED,
        [(axum::http::header::WWW_AUTHENTICATE, "Bearer")],
        format!("{path} needs Authorization: Bearer <--metrics-token>\n"),
    )
        .into_response()
}

async fn metrics(
    State(app): State<Arc<AppState>>,
    headers: axum::http::HeaderMap,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    if !metrics::authorized(&app.config, &headers) {
        return token_needed("/metrics");
    }
    match metrics::render(&app) {
        Ok(body) => (
            [(axum::http::header::CONTENT_TYPE, metrics::CONTENT_TYPE)],
            body,
        )
            .into_response(),
        Err(_) => axum::http::StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

impl AppState {
    /// Current health figures.
    pub fn health(&self) -> Health {
        Health {
            status: "ok",
            census: self.rooms.census(),
            sessions: self.sessions.len(),
            packets_in: self.stats.packets_in.load(Ordering::Relaxed),
            packets_out: self.stats.packets_out.load(Ordering::Relaxed),
            shard_handoffs: self.stats.shard_handoffs.load(Ordering::Relaxed),
        }
    }
}

/// A server started by [`start`].
pub struct RunningServer {
    /// The HTTP address it listens on.
    pub addr: SocketAddr,
    /// Shared state (for tests and health).
    pub state: Arc<AppState>,
    /// Whether it serves HTTPS (and `wss:`).
    pub tls: bool,
    task: JoinHandle<anyhow::Result<()>>,
}

impl RunningServer {
    /// The WebSocket URL of the signaling endpoint.
    pub fn socket_url(&self) -> String {
        let scheme = if self.tls { "wss" } else { "ws" };
        format!("{scheme}://{}/socket", self.addr)
    }

    /// The app's URL.
    pub fn url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    /// Tells every peer, stops, and waits for every session to end.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        self.state.shutdown.cancel();
        self.task.await.context("server task")?
    }

    /// Waits until the server stops by itself (its shutdown token was cancelled elsewhere).
    pub async fn wait(self) -> anyhow::Result<()> {
        self.task.await.context("server task")?
    }
}

/// Kernel send buffer of every accepted connection (inherited from the listener). A fixed
/// size turns autotuning off, so a client that stops reading holds at most this much kernel
/// memory and fills its session's queue quickly — which disconnects it — instead of megabytes
/// later. Signaling frames are at most 64 KiB; static files still stream at ~buffer/RTT.
pub const SOCKET_SEND_BUFFER: u32 = 128 * 1024;

fn listen(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let socket = match addr {
        SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    // Restarting on the same port must not wait for old connections' TIME_WAIT.
    socket.set_reuseaddr(true)?;
    socket.set_send_buffer_size(SOCKET_SEND_BUFFER)?;
    socket.bind(addr)?;
    socket.listen(1024)
}

/// Signaling frames are small and latency-bound (a chat line, a voice-activity flip): without
/// this, Nagle's algorithm holds a frame back while an earlier one is unacknowledged, and the
/// peer's delayed ACK makes that ~40 ms.
pub(crate) fn set_nodelay(tcp: &mut tokio::net::TcpStream) {
    if let Err(e) = tcp.set_nodelay(true) {
        tracing::debug!(error = %e, "TCP_NODELAY not set");
    }
}

/// Binds and starts serving; returns once the server accepts connections.
pub async fn start(config: Config) -> anyhow::Result<RunningServer> {
    let tokens = config
        .join_token_secret
        .as_deref()
        .map(access::TokenKey::new)
        .transpose()
        .map_err(anyhow::Error::msg)?;
    let tls = config
        .cert_source()
        .map(|source| tls::server_config(&source))
        .transpose()?;
    let rtc = rtc::build(&config).await?;
    if let Some(udp) = rtc.udp_addr {
        info!(%udp, "media port");
    }
    info!(addresses = %rtc::advertised(&config), "ICE candidates offered");
    if !config.static_dir.join("index.html").exists() {
        warn!(dir = %config.static_dir.display(), "no built client here: build it with `cargo xtask run` or `trunk build`");
    }
    let listener = listen(config.bind).with_context(|| format!("binding {}", config.bind))?;
    let connections = http::Gate::new(
        config.max_connections as usize,
        config.max_connections_per_ip as usize,
    );
    let joins = rate_limit::PerSource::per_minute(config.joins_per_minute_per_ip);
    let connecting = http::Gate::new(usize::MAX, config.max_connecting_per_ip as usize);
    let addr = listener.local_addr()?;
    let cluster = match &config.redis_url {
        None => None,
        Some(url) => {
            let node_id = config
                .node_id
                .clone()
                .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
            let scheme = if tls.is_some() { "https" } else { "http" };
            let advertise = config
                .advertise_url
                .clone()
                .unwrap_or_else(|| format!("{scheme}://{addr}"));
            let c = cluster::Cluster::connect(
                url,
                node_id,
                advertise,
                Duration::from_millis(config.cluster_heartbeat_ms),
                Duration::from_millis(config.cluster_lease_ms),
                config.join_timeout() + Duration::from_secs(1),
            )
            .await?;
            info!(node = %c.node_id, url = %c.url, "joined the cluster");
            Some(Arc::new(c))
        }
    };
    let state = Arc::new(AppState {
        rooms: Rooms::new(
            usize::from(config.max_peers_per_room),
            config.max_peers as usize,
        ),
        config,
        rtc,
        stats: Arc::new(MediaStats::default()),
        shutdown: CancellationToken::new(),
        sessions: TaskTracker::new(),
        tokens,
        signaling_errors: AtomicU64::new(0),
        connections,
        joins,
        connecting,
        cluster,
    });
    let heartbeat = state
        .cluster
        .clone()
        .map(|c| tokio::spawn(cluster::run_heartbeat(state.clone(), c)));
    let app = router(state.clone());
    let shutdown = state.shutdown.clone();
    let sessions = state.sessions.clone();
    let https = tls.is_some();
    let gate = state.connections.clone();
    let header_timeout = state.config.header_timeout();
    let task = tokio::spawn(async move {
        match tls {
            Some(tls) => {
                let listener = tls::TlsListener::new(listener, tls)?;
                http::serve(listener, app, gate, header_timeout, shutdown).await
            }
            None => {
                use axum::serve::ListenerExt;
                let listener = listener.tap_io(set_nodelay);
                http::serve(listener, app, gate, header_timeout, shutdown).await
            }
        };
        // Sessions saw the same token and are closing their peers; give them a bound.
        sessions.close();
        if tokio::time::timeout(Duration::from_secs(5), sessions.wait())
            .await
            .is_err()
        {
            warn!(left = sessions.len(), "sessions still running at shutdown");
        }
        // The registration and leases go before the process does.
        if let Some(h) = heartbeat {
            let _ = h.await;
        }
        Ok(())
    });
    info!(%addr, https, "listening");
    Ok(RunningServer {
        addr,
        state,
        tls: https,
        task,
    })
}
