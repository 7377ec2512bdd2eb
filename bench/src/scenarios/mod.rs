//! The scenarios, run inside the generator process (in the load namespace, pinned to its own
//! core): A fan-out, B mesh, C churn, D simulcast on constrained downlinks. Each joins its participants through the adapter for the
//! server under test, lets media settle, then measures over a window: packets and bytes
//! delivered, loss against what the publishers sent, one-way delay, the server's and the
//! generator's CPU time, and the server's memory.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};
use tokio::task::JoinHandle;
use webrtc::api::API;

use crate::load::{self, Pacing, Participant, PublishSpec};
use crate::media;
use crate::procfs;
use crate::stats::{p50_p99, percentile};

mod churn;
mod fan_out;
mod mesh;
mod simulcast;
mod window;

use churn::churn;
use fan_out::fan_out;
use mesh::mesh;
pub use simulcast::GroupFigures;

/// Fan-out publisher video rate (issue 7: ~1.5 Mbit/s).
pub const FANOUT_VIDEO_BPS: u32 = 1_450_000;
/// Mesh publisher video rate (issue 7: ~500 kbit/s with audio).
pub const MESH_VIDEO_BPS: u32 = 460_000;
/// Frames per second of every publisher.
pub const FPS: u32 = 30;
/// How long one subscriber may take to get its first packet before it counts as failed.
const FIRST_RTP_TIMEOUT: Duration = Duration::from_secs(10);
/// Steady subscribers in the churn scenario (their loss and delay are measured).
const CHURN_STEADY: u32 = 4;
/// How long a churning subscriber stays.
const CHURN_STAY: u64 = 3;

/// Which server the generator talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ServerKind {
    /// Videoroom.
    Ours,
    /// Janus's videoroom plugin.
    Janus,
}

impl ServerKind {
    /// Its name in reports.
    pub fn name(self) -> &'static str {
        match self {
            ServerKind::Ours => "ours",
            ServerKind::Janus => "janus",
        }
    }
}

/// Which scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
pub enum Scenario {
    /// 1 publisher → N subscribers.
    A,
    /// N publishers, each subscribed to all others.
    B,
    /// A join and a leave every second for N seconds.
    C,
    /// Three simulcast cameras, N viewers, a third of them with a capped downlink.
    D,
}

impl Scenario {
    /// Its title in reports.
    pub fn title(self) -> &'static str {
        match self {
            Scenario::A => "A fan-out (1 publisher, 1.5 Mbit/s → N subscribers)",
            Scenario::B => "B mesh (N publishers at 0.5 Mbit/s, all subscribed to all)",
            Scenario::C => "C churn (a join and a leave every second for N s)",
            Scenario::D => {
                "D simulcast (3 simulcast cameras, N viewers, a third capped at 1 Mbit/s)"
            }
        }
    }
}

/// One point for the generator to run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GenSpec {
    /// The server.
    pub server: ServerKind,
    /// Its signaling URL.
    pub url: String,
    /// The scenario.
    pub scenario: Scenario,
    /// Subscribers (A), members (B) or seconds of churn (C).
    pub n: u32,
    /// The server's pid, for /proc.
    pub server_pid: u32,
    /// Seconds of media before measuring.
    pub warmup_s: f64,
    /// Seconds measured (A, B).
    pub measure_s: f64,
    /// Subscribers joining at once (A).
    pub join_concurrency: usize,
    /// Trickle the generator's ICE candidates to our server instead of putting them in the
    /// answer (Janus always gets them in the SDP).
    #[serde(default)]
    pub trickle: bool,
    /// How publishers send a video frame's packets.
    #[serde(default)]
    pub pacing: Pacing,
}

/// The figures of one point, one server, one repeat.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PointResult {
    /// Server name.
    pub server: String,
    /// Scenario letter.
    pub scenario: String,
    /// N.
    pub n: u32,
    /// Repeat number (set by the orchestrator).
    pub repeat: u32,
    /// Participants that joined and received media.
    pub participants: u32,
    /// Participants that failed to join or never received media.
    pub join_failures: u32,
    /// The first failure, for the report.
    pub first_error: Option<String>,
    /// Length of the measurement window.
    pub window_s: f64,
    /// Packets delivered to subscribers in the window (= packets the server forwarded).
    pub packets: u64,
    /// Payload bytes delivered in the window.
    pub bytes: u64,
    /// Packets the subscribers should have got in the window.
    pub expected: u64,
    /// Forward jumps in packet numbers seen in the window's streams (all time).
    pub gaps: u64,
    /// Loss in %, 100 × (1 − packets/expected).
    pub loss_pct: f64,
    /// Forwarded packets per second.
    pub pps: f64,
    /// Packets per second the publishers sent in the window (all streams, counted once).
    pub offered_pps: f64,
    /// Forwarded payload Mbit/s.
    pub mbps: f64,
    /// One-way added delay percentiles (ms) over every packet in the window.
    pub latency_p50_ms: Option<f64>,
    /// p99 of the same.
    pub latency_p99_ms: Option<f64>,
    /// Signaling start → ICE+DTLS connected, p50 (ms).
    pub connect_p50_ms: Option<f64>,
    /// Signaling start → first RTP, p50 (ms).
    pub join_p50_ms: Option<f64>,
    /// p99 of the same.
    pub join_p99_ms: Option<f64>,
    /// Signaling start → first keyframe, p50 (ms).
    pub keyframe_p50_ms: Option<f64>,
    /// p99 of the same.
    pub keyframe_p99_ms: Option<f64>,
    /// Server CPU in the window, % of one core.
    pub server_cpu_pct: f64,
    /// Server CPU µs per forwarded packet.
    pub server_us_per_pkt: Option<f64>,
    /// Generator CPU in the window, % of one core.
    pub gen_cpu_pct: f64,
    /// Generator CPU µs per packet it received.
    pub gen_us_per_pkt: Option<f64>,
    /// Server RSS before anyone joined (MB).
    pub rss_base_mb: f64,
    /// Server RSS at the end of the window (MB).
    pub rss_mb: f64,
    /// (RSS − base) per participant (KB); for churn, growth per churned peer.
    pub rss_per_peer_kb: Option<f64>,
    /// Keyframe requests the publishers received.
    pub keyframe_requests: u64,
    /// Of those, the ones the publishers ignored (too soon after the last, as libwebrtc does).
    #[serde(default)]
    pub keyframe_requests_ignored: u64,
    /// 1-minute load average when the point ended (the machine is shared).
    pub loadavg: f64,
    /// Scenario D: the figures of each group of viewers.
    #[serde(default)]
    pub groups: Vec<GroupFigures>,
}

/// Runs one point (in the generator process) and returns its figures.
pub async fn run(spec: &GenSpec) -> anyhow::Result<PointResult> {
    // One API for every peer connection, as one browser process has.
    let api = Arc::new(testkit::api(crate::netns::LOAD_IP.into())?);
    wait_for_server(&spec.url).await?;
    let mut ctx = Ctx {
        api,
        spec: spec.clone(),
        result: PointResult {
            server: spec.server.name().into(),
            scenario: format!("{:?}", spec.scenario),
            n: spec.n,
            ..Default::default()
        },
        errors: Vec::new(),
    };
    ctx.result.rss_base_mb = procfs::rss_bytes(spec.server_pid)? as f64 / 1e6;
    match spec.scenario {
        Scenario::A => fan_out(&mut ctx).await?,
        Scenario::B => mesh(&mut ctx).await?,
        Scenario::C => churn(&mut ctx).await?,
        Scenario::D => simulcast::simulcast(&mut ctx).await?,
    }
    ctx.result.first_error = ctx.errors.first().cloned();
    ctx.result.loadavg = loadavg();
    Ok(ctx.result)
}

struct Ctx {
    api: Arc<API>,
    spec: GenSpec,
    result: PointResult,
    errors: Vec<String>,
}

/// The server listens once Janus/ours are up; both take a moment.
async fn wait_for_server(url: &str) -> anyhow::Result<()> {
    let hostport = url
        .trim_start_matches("ws://")
        .split('/')
        .next()
        .unwrap_or_default()
        .to_owned();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if tokio::net::TcpStream::connect(&hostport).await.is_ok() {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("server at {hostport} not listening after 20 s");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn loadavg() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(f64::NAN)
}

/// Joins one participant through the right adapter.
async fn join(
    api: &API,
    spec: &GenSpec,
    name: &str,
    publish: Option<PublishSpec>,
    feeds: &[u64],
    recv: Option<Arc<load::Receiver>>,
) -> anyhow::Result<Participant> {
    match spec.server {
        ServerKind::Ours => {
            crate::ours::join(api, &spec.url, "bench", name, publish, spec.trickle).await
        }
        ServerKind::Janus => crate::janus::join(api, &spec.url, name, publish, feeds, recv).await,
    }
}

/// Waits until `p` has received its first packet (or fails after the timeout).
async fn first_rtp(p: &Participant) -> anyhow::Result<()> {
    let deadline = Instant::now() + FIRST_RTP_TIMEOUT;
    while p.recv.with(|s| s.times.first_rtp.is_none()) {
        if Instant::now() > deadline {
            bail!("{}: no media within {FIRST_RTP_TIMEOUT:?}", p.name);
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(())
}

/// Waits until `p`'s first connection is up.
async fn connected(p: &Participant) -> anyhow::Result<()> {
    let deadline = Instant::now() + FIRST_RTP_TIMEOUT;
    while p.recv.with(|s| s.times.connected.is_none()) {
        if Instant::now() > deadline {
            bail!("{}: not connected within {FIRST_RTP_TIMEOUT:?}", p.name);
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(())
}

/// Joins a subscriber and waits for its first packet, as one task.
fn spawn_subscriber(
    api: Arc<API>,
    spec: GenSpec,
    name: String,
    feeds: Vec<u64>,
) -> JoinHandle<anyhow::Result<Participant>> {
    tokio::spawn(async move {
        let p = join(&api, &spec, &name, None, &feeds, None)
            .await
            .with_context(|| format!("{name}: join"))?;
        if let Err(e) = first_rtp(&p).await {
            p.close().await;
            return Err(e);
        }
        Ok(p)
    })
}

/// Join figures over participants that joined.
fn join_figures(r: &mut PointResult, ps: &[&Participant]) {
    let mut connect = Vec::new();
    let mut rtp = Vec::new();
    let mut key = Vec::new();
    for p in ps {
        let t = p.recv.with(|s| s.times);
        let ms = |x: Option<u64>| x.map(|x| x.saturating_sub(t.started) as f64 / 1e6);
        connect.extend(ms(t.connected));
        rtp.extend(ms(t.first_rtp));
        key.extend(ms(t.first_keyframe));
    }
    r.connect_p50_ms = percentile(&mut connect, 50.0);
    (r.join_p50_ms, r.join_p99_ms) = p50_p99(&mut rtp);
    (r.keyframe_p50_ms, r.keyframe_p99_ms) = p50_p99(&mut key);
}

fn streams_of(publisher: u32) -> [u32; 2] {
    [
        media::stream_id(publisher, false),
        media::stream_id(publisher, true),
    ]
}

async fn close_all(ps: Vec<Participant>) {
    futures_util::future::join_all(ps.into_iter().map(Participant::close)).await;
}

/// The one publisher of fan-out and churn (1.5 Mbit/s), connected; with its feed id on Janus.
async fn start_publisher(ctx: &Ctx) -> anyhow::Result<(Participant, Vec<u64>)> {
    let pub_spec = PublishSpec {
        index: 0,
        video_bps: FANOUT_VIDEO_BPS,
        fps: FPS,
        pacing: ctx.spec.pacing,
    };
    let publisher = join(&ctx.api, &ctx.spec, "pub0", Some(pub_spec), &[], None)
        .await
        .context("publisher join")?;
    connected(&publisher).await?;
    let feeds = publisher.feed.into_iter().collect();
    Ok((publisher, feeds))
}
