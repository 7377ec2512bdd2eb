//! The scenarios, run inside the generator process (in the load namespace, pinned to its own
//! core): A fan-out, B mesh, C churn. Each joins its participants through the adapter for the
//! server under test, lets media settle, then measures over a window: packets and bytes
//! delivered, loss against what the publishers sent, one-way delay, the server's and the
//! generator's CPU time, and the server's memory.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};
use tokio::task::JoinHandle;
use tracing::{info, warn};
use webrtc::api::API;

use crate::load::{self, Pacing, Participant, PublishSpec, StreamCount};
use crate::media;
use crate::procfs;
use crate::stats::{p50_p99, percentile};

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
}

impl Scenario {
    /// Its title in reports.
    pub fn title(self) -> &'static str {
        match self {
            Scenario::A => "A fan-out (1 publisher, 1.5 Mbit/s → N subscribers)",
            Scenario::B => "B mesh (N publishers at 0.5 Mbit/s, all subscribed to all)",
            Scenario::C => "C churn (a join and a leave every second for N s)",
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

/// What the window measures: receivers with the streams each should get, and the publishers.
struct Window<'a> {
    receivers: Vec<(&'a Participant, Vec<u32>)>,
    publishers: Vec<&'a Participant>,
}

struct Snap {
    at: Instant,
    counts: Vec<HashMap<u32, StreamCount>>,
    bytes: Vec<u64>,
    server_cpu: Duration,
    gen_cpu: Duration,
}

impl Window<'_> {
    fn snap(&self, server_pid: u32) -> anyhow::Result<Snap> {
        Ok(Snap {
            at: Instant::now(),
            counts: self
                .receivers
                .iter()
                .map(|(p, _)| p.recv.snapshot())
                .collect(),
            bytes: self
                .receivers
                .iter()
                .map(|(p, _)| p.recv.with(|s| s.bytes))
                .collect(),
            server_cpu: procfs::cpu_time(server_pid)?,
            gen_cpu: procfs::cpu_time(std::process::id())?,
        })
    }

    /// Measures for `secs` while `during` runs (churn), then fills the window's figures.
    async fn measure(
        &self,
        ctx: &mut Ctx,
        secs: f64,
        during: impl std::future::Future<Output = ()>,
    ) -> anyhow::Result<()> {
        // Drop anything left from the joins, then collect only the window's delays.
        for (p, _) in &self.receivers {
            p.recv.with(|s| s.latency_us.clear());
        }
        let pid = ctx.spec.server_pid;
        let a = self.snap(pid)?;
        load::set_measuring(true);
        let sleep = tokio::time::sleep(Duration::from_secs_f64(secs));
        tokio::join!(sleep, during);
        load::set_measuring(false);
        let b = self.snap(pid)?;
        let r = &mut ctx.result;
        let wall = b.at.duration_since(a.at).as_secs_f64();
        r.window_s = wall;
        // What each stream's publisher sent in the window: the highest number any receiver saw.
        let sent = |snap: &Snap| {
            let mut m: HashMap<u32, u64> = HashMap::new();
            for c in &snap.counts {
                for (s, sc) in c {
                    let e = m.entry(*s).or_default();
                    *e = (*e).max(sc.sent_upto);
                }
            }
            m
        };
        let (sent_a, sent_b) = (sent(&a), sent(&b));
        let offered: u64 = sent_b
            .iter()
            .map(|(s, n)| n.saturating_sub(sent_a.get(s).copied().unwrap_or_default()))
            .sum();
        r.offered_pps = offered as f64 / wall;
        let mut latencies = Vec::new();
        for (i, (p, streams)) in self.receivers.iter().enumerate() {
            for s in streams {
                let before = a.counts[i].get(s).copied().unwrap_or_default();
                let after = b.counts[i].get(s).copied().unwrap_or_default();
                r.packets += after.received - before.received;
                r.gaps += after.gaps - before.gaps;
                let sa = sent_a.get(s).copied().unwrap_or_default();
                let sb = sent_b.get(s).copied().unwrap_or_default();
                r.expected += sb.saturating_sub(sa);
            }
            r.bytes += b.bytes[i] - a.bytes[i];
            p.recv.with(|s| latencies.append(&mut s.latency_us));
        }
        r.loss_pct = if r.expected == 0 {
            100.0
        } else {
            100.0 * (1.0 - (r.packets as f64 / r.expected as f64)).max(0.0)
        };
        r.pps = r.packets as f64 / wall;
        r.mbps = r.bytes as f64 * 8.0 / wall / 1e6;
        let (p50, p99) = p50_p99(&mut latencies);
        r.latency_p50_ms = p50.map(|v| v / 1000.0);
        r.latency_p99_ms = p99.map(|v| v / 1000.0);
        let scpu = (b.server_cpu - a.server_cpu).as_secs_f64();
        let gcpu = (b.gen_cpu - a.gen_cpu).as_secs_f64();
        r.server_cpu_pct = 100.0 * scpu / wall;
        r.gen_cpu_pct = 100.0 * gcpu / wall;
        if r.packets > 0 {
            r.server_us_per_pkt = Some(scpu * 1e6 / r.packets as f64);
            r.gen_us_per_pkt = Some(gcpu * 1e6 / r.packets as f64);
        }
        r.rss_mb = procfs::rss_bytes(pid)? as f64 / 1e6;
        let media = || self.publishers.iter().filter_map(|p| p.media.as_ref());
        let load = |c: &std::sync::atomic::AtomicU64| c.load(std::sync::atomic::Ordering::Relaxed);
        r.keyframe_requests = media().map(|m| load(&m.keyframe_requests)).sum();
        r.keyframe_requests_ignored = media().map(|m| load(&m.keyframe_requests_ignored)).sum();
        Ok(())
    }
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

async fn fan_out(ctx: &mut Ctx) -> anyhow::Result<()> {
    let spec = ctx.spec.clone();
    let (publisher, feeds) = start_publisher(ctx).await?;
    let api = ctx.api.clone();
    let mut subs = Vec::new();
    let mut next = 0u32;
    while next < spec.n {
        let wave: Vec<_> = (next..(next + spec.join_concurrency as u32).min(spec.n))
            .map(|i| spawn_subscriber(api.clone(), spec.clone(), format!("sub{i}"), feeds.clone()))
            .collect();
        next += wave.len() as u32;
        for h in wave {
            match h.await? {
                Ok(p) => subs.push(p),
                Err(e) => {
                    ctx.result.join_failures += 1;
                    ctx.errors.push(format!("{e:#}"));
                }
            }
        }
    }
    ctx.result.participants = subs.len() as u32 + 1;
    info!(subscribers = subs.len(), "fan-out joined");
    tokio::time::sleep(Duration::from_secs_f64(spec.warmup_s)).await;
    let window = Window {
        receivers: subs.iter().map(|p| (p, streams_of(0).to_vec())).collect(),
        publishers: vec![&publisher],
    };
    window.measure(ctx, spec.measure_s, async {}).await?;
    // After the window: a first keyframe may come well after the first (audio) packet.
    join_figures(&mut ctx.result, &subs.iter().collect::<Vec<_>>());
    let base = ctx.result.rss_base_mb;
    ctx.result.rss_per_peer_kb =
        Some((ctx.result.rss_mb - base) * 1000.0 / f64::from(ctx.result.participants.max(1)));
    close_all(subs).await;
    publisher.close().await;
    Ok(())
}

async fn mesh(ctx: &mut Ctx) -> anyhow::Result<()> {
    let spec = ctx.spec.clone();
    let mut members = Vec::new();
    for i in 0..spec.n {
        let ps = PublishSpec {
            index: i,
            video_bps: MESH_VIDEO_BPS,
            fps: FPS,
            pacing: spec.pacing,
        };
        match join(&ctx.api, &spec, &format!("m{i}"), Some(ps), &[], None).await {
            Ok(p) => {
                if let Err(e) = connected(&p).await {
                    ctx.errors.push(format!("{e:#}"));
                }
                members.push(p);
            }
            Err(e) => {
                ctx.result.join_failures += 1;
                ctx.errors.push(format!("m{i}: {e:#}"));
            }
        }
    }
    // On Janus each member subscribes to the others' feeds on a second connection (its API
    // has publishers and subscribers apart); on ours the room subscribes everyone already.
    let mut extra = Vec::new();
    if spec.server == ServerKind::Janus {
        for (i, m) in members.iter().enumerate() {
            let feeds: Vec<u64> = members
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != i)
                .filter_map(|(_, o)| o.feed)
                .collect();
            match join(
                &ctx.api,
                &spec,
                &format!("m{i}-sub"),
                None,
                &feeds,
                Some(m.recv.clone()),
            )
            .await
            {
                Ok(p) => extra.push(p),
                Err(e) => {
                    ctx.result.join_failures += 1;
                    ctx.errors.push(format!("m{i} subscribe: {e:#}"));
                }
            }
        }
    }
    for m in &members {
        if let Err(e) = first_rtp(m).await {
            ctx.errors.push(format!("{e:#}"));
        }
    }
    ctx.result.participants = members.len() as u32;
    tokio::time::sleep(Duration::from_secs_f64(spec.warmup_s)).await;
    let n = members.len() as u32;
    let window = Window {
        receivers: members
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let streams = (0..n)
                    .filter(|j| *j != i as u32)
                    .flat_map(streams_of)
                    .collect();
                (p, streams)
            })
            .collect(),
        publishers: members.iter().collect(),
    };
    window.measure(ctx, spec.measure_s, async {}).await?;
    join_figures(&mut ctx.result, &members.iter().collect::<Vec<_>>());
    ctx.result.rss_per_peer_kb =
        Some((ctx.result.rss_mb - ctx.result.rss_base_mb) * 1000.0 / f64::from(n.max(1)));
    close_all(extra).await;
    close_all(members).await;
    Ok(())
}

async fn churn(ctx: &mut Ctx) -> anyhow::Result<()> {
    let spec = ctx.spec.clone();
    let (publisher, feeds) = start_publisher(ctx).await?;
    let api = ctx.api.clone();
    let mut steady = Vec::new();
    for i in 0..CHURN_STEADY {
        steady.push(
            spawn_subscriber(
                api.clone(),
                spec.clone(),
                format!("steady{i}"),
                feeds.clone(),
            )
            .await??,
        );
    }
    tokio::time::sleep(Duration::from_secs_f64(spec.warmup_s)).await;
    let rss_before = procfs::rss_bytes(spec.server_pid)? as f64 / 1e6;
    let churned: tokio::sync::Mutex<Vec<Participant>> = Default::default();
    let errors: std::sync::Mutex<Vec<String>> = Default::default();
    let during = async {
        let mut live: VecDeque<JoinHandle<anyhow::Result<Participant>>> = VecDeque::new();
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        for i in 0..spec.n {
            tick.tick().await;
            live.push_back(spawn_subscriber(
                api.clone(),
                spec.clone(),
                format!("churn{i}"),
                feeds.clone(),
            ));
            if live.len() as u64 > CHURN_STAY {
                if let Some(h) = live.pop_front() {
                    leave(h, &churned, &errors).await;
                }
            }
        }
        while let Some(h) = live.pop_front() {
            leave(h, &churned, &errors).await;
        }
    };
    let window = Window {
        receivers: steady.iter().map(|p| (p, streams_of(0).to_vec())).collect(),
        publishers: vec![&publisher],
    };
    // The window is the churn itself; it ends when the last churner has left.
    window.measure(ctx, spec.n as f64, during).await?;
    // Let the server finish tearing the last ones down before reading its memory.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_after = procfs::rss_bytes(spec.server_pid)? as f64 / 1e6;
    ctx.result.rss_mb = rss_after;
    ctx.errors
        .extend(errors.into_inner().unwrap_or_else(|e| e.into_inner()));
    ctx.result.join_failures = ctx.errors.len() as u32;
    let joined = churned.into_inner();
    ctx.result.participants = joined.len() as u32;
    ctx.result.rss_per_peer_kb = Some((rss_after - rss_before) * 1000.0 / f64::from(spec.n.max(1)));
    join_figures(&mut ctx.result, &joined.iter().collect::<Vec<_>>());
    close_all(steady).await;
    publisher.close().await;
    Ok(())
}

/// Ends a churning subscriber: records its figures (kept as closed participants) and leaves.
async fn leave(
    h: JoinHandle<anyhow::Result<Participant>>,
    churned: &tokio::sync::Mutex<Vec<Participant>>,
    errors: &std::sync::Mutex<Vec<String>>,
) {
    match h.await {
        Ok(Ok(p)) => {
            // Keep the receive side for the join figures; close the connections now.
            let kept = Participant {
                name: p.name.clone(),
                feed: None,
                recv: p.recv.clone(),
                pcs: Vec::new(),
                cancel: tokio_util::sync::CancellationToken::new(),
                media: None,
            };
            p.close().await;
            churned.lock().await.push(kept);
        }
        Ok(Err(e)) => {
            warn!(error = %e, "churn join failed");
            errors
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(format!("{e:#}"));
        }
        Err(e) => errors
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(format!("join task: {e}")),
    }
}
