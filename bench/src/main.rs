//! `videoroom-bench`: our SFU side by side with Janus on the same machine and network, under the
//! same synthetic load, and the client's weight (issue 7).
//!
//! `run` orchestrates: it creates two network namespaces joined by a veth pair, and for every
//! point (scenario, N, repeat, server in alternating order) starts the server pinned to one core
//! and a generator process (this binary's `gen`) pinned to the other, then writes the report.
//! Benchmarks print figures; nothing here is a timed assertion.

mod janus;
mod load;
mod media;
mod netns;
mod ours;
mod procfs;
mod report;
mod scenarios;
mod server;
mod stats;
mod weight;
mod ws;

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use tokio::io::AsyncReadExt;
use tracing::{info, warn};
use tracing_subscriber::EnvFilter;

use load::Pacing;
use scenarios::{GenSpec, PointResult, Scenario, ServerKind};
use server::{ServerPaths, ServerProc};

#[derive(Parser)]
#[command(about = "Benchmark Videoroom's SFU against Janus, and weigh the client")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the benchmark and write the report (needs root: it creates network namespaces).
    Run(Box<RunArgs>),
    /// Rewrite report.md and plot.svg from a run's report.json (e.g. after changing the report).
    Report {
        /// The run's report.json.
        json: PathBuf,
    },
    /// Internal: run one point as the load generator and print its figures as JSON.
    Gen {
        /// The point, as JSON.
        spec: String,
    },
}

#[derive(clap::Args, Debug)]
struct RunArgs {
    /// The full run (< 30 min): every N, churn for a minute, 3 repeats.
    #[arg(long, conflicts_with = "quick")]
    full: bool,
    /// The quick run (< 5 min), the default.
    #[arg(long)]
    quick: bool,
    /// Servers to compare.
    #[arg(long, value_delimiter = ',', default_value = "ours,janus")]
    servers: Vec<String>,
    /// Scenarios to run (A, B, C, D).
    #[arg(long, value_delimiter = ',')]
    scenarios: Option<Vec<String>>,
    /// Subscriber counts for scenario A (overrides the mode's).
    #[arg(long, value_delimiter = ',')]
    fanout: Option<Vec<u32>>,
    /// Member counts for scenario B (overrides the mode's).
    #[arg(long, value_delimiter = ',')]
    mesh: Option<Vec<u32>>,
    /// Seconds of churn in scenario C (overrides the mode's).
    #[arg(long)]
    churn_secs: Option<u32>,
    /// Viewer counts for scenario D (overrides the mode's).
    #[arg(long, value_delimiter = ',')]
    viewers: Option<Vec<u32>>,
    /// Repeats of every point (overrides the mode's).
    #[arg(long)]
    repeats: Option<u32>,
    /// Seconds measured per point (overrides the mode's).
    #[arg(long)]
    measure_secs: Option<f64>,
    /// Where the report goes.
    #[arg(long, default_value = "target/bench")]
    out: PathBuf,
    /// Our server's release binary.
    #[arg(long, default_value = "target/release/videoroom-server")]
    server_bin: PathBuf,
    /// The built client (served by our server; weighed for the report).
    #[arg(long, default_value = "dist")]
    static_dir: PathBuf,
    /// Cores for the server under test, as taskset takes them (`0`, or `0,1` to let a server
    /// use both cores, sharing one with the generator).
    #[arg(long, default_value = "0")]
    server_cpu: String,
    /// Core for the load generator.
    #[arg(long, default_value_t = 1)]
    gen_cpu: usize,
    /// Trickle ICE candidates to our server, as browsers do, instead of sending them in the
    /// answer as the Janus adapter does (shows the cost of late candidates on join time).
    #[arg(long)]
    trickle: bool,
    /// How publishers send each video frame's packets: spread out as browsers' pacers do, or
    /// back to back (the fan-out's worst case).
    #[arg(long, value_enum, default_value_t = Pacing::Browser)]
    pacing: Pacing,
}

/// What a run covers.
#[derive(Debug, Clone)]
struct Plan {
    mode: &'static str,
    points: Vec<(Scenario, u32)>,
    repeats: u32,
    warmup_s: f64,
    measure_s: f64,
    servers: Vec<ServerKind>,
}

impl Plan {
    fn from_args(a: &RunArgs) -> anyhow::Result<Plan> {
        let (mode, fanout, mesh, churn, viewers, repeats, measure) = if a.full {
            (
                "full",
                vec![1, 10, 50, 100, 200],
                vec![2, 4, 6, 8, 10, 12],
                60,
                vec![6, 12],
                3,
                6.0,
            )
        } else {
            ("quick", vec![1, 10, 50], vec![2, 6], 15, vec![6], 1, 5.0)
        };
        let fanout = a.fanout.clone().unwrap_or(fanout);
        let mesh = a.mesh.clone().unwrap_or(mesh);
        let churn = a.churn_secs.unwrap_or(churn);
        let wanted = a
            .scenarios
            .clone()
            .unwrap_or_else(|| vec!["A".into(), "B".into(), "C".into(), "D".into()]);
        let mut points = Vec::new();
        for s in &wanted {
            match s.to_ascii_uppercase().as_str() {
                "A" => points.extend(fanout.iter().map(|n| (Scenario::A, *n))),
                "B" => points.extend(mesh.iter().map(|n| (Scenario::B, *n))),
                "C" => points.push((Scenario::C, churn)),
                "D" => points.extend(
                    a.viewers
                        .clone()
                        .unwrap_or(viewers.clone())
                        .iter()
                        .map(|n| (Scenario::D, *n)),
                ),
                other => bail!("unknown scenario {other:?} (A, B, C or D)"),
            }
        }
        let servers = a
            .servers
            .iter()
            .map(|s| match s.as_str() {
                "ours" => Ok(ServerKind::Ours),
                "janus" => Ok(ServerKind::Janus),
                other => bail!("unknown server {other:?} (ours or janus)"),
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(Plan {
            mode,
            points,
            repeats: a.repeats.unwrap_or(repeats).max(1),
            warmup_s: 2.0,
            measure_s: a.measure_secs.unwrap_or(measure),
            servers,
        })
    }

    /// Servers in the order for this point and repeat: alternating, so neither always runs
    /// first on a machine that warms up or whose neighbours' load changes. Scenario D is ours
    /// only (see `scenarios/simulcast.rs`).
    fn order(&self, point: usize, repeat: u32) -> Vec<ServerKind> {
        let mut v = self.servers.clone();
        if self
            .points
            .get(point)
            .is_some_and(|(s, _)| *s == Scenario::D)
        {
            v.retain(|s| *s == ServerKind::Ours);
        }
        if (point + repeat as usize) % 2 == 1 {
            v.reverse();
        }
        v
    }
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let default_filter = match cli.command {
        Cmd::Run(_) => "info,webrtc=error,webrtc_ice=error,webrtc_dtls=error,webrtc_srtp=error",
        Cmd::Gen { .. } | Cmd::Report { .. } => {
            "warn,webrtc=error,webrtc_ice=error,webrtc_dtls=error,webrtc_srtp=error,dtls=error"
        }
    };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter)),
        )
        .init();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match cli.command {
        // Interrupted, the run future is dropped: its guards stop the servers and generator and
        // delete the namespaces.
        Cmd::Run(args) => rt.block_on(async {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
            tokio::select! {
                r = run(*args) => r,
                _ = tokio::signal::ctrl_c() => bail!("interrupted (namespaces and servers removed)"),
                _ = term.recv() => bail!("terminated (namespaces and servers removed)"),
            }
        }),
        Cmd::Report { json } => rewrite_report(&json),
        Cmd::Gen { spec } => {
            let spec: GenSpec = serde_json::from_str(&spec).context("bad point spec")?;
            let result = rt.block_on(scenarios::run(&spec))?;
            println!("{}", serde_json::to_string(&result)?);
            // Peer connections' background tasks need not wind down: the process ends here.
            rt.shutdown_timeout(Duration::from_millis(100));
            Ok(())
        }
    }
}

fn now_utc() -> String {
    std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

fn loadavg() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(f64::NAN)
}

/// Installs Debian's janus when it is missing (we are root here) and returns its version.
fn ensure_janus() -> anyhow::Result<String> {
    let version = || {
        std::process::Command::new("janus")
            .arg("--version")
            .output()
            .ok()
            // `janus --version` exits 1 after printing it.
            .and_then(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .lines()
                    .find(|l| l.starts_with("Janus version"))
                    .map(|l| l.trim_start_matches("Janus version:").trim().to_owned())
            })
    };
    if let Some(v) = version() {
        return Ok(v);
    }
    info!("janus is missing: apt-get install -y janus");
    let install = || {
        std::process::Command::new("apt-get")
            .args(["install", "-y", "janus"])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    };
    if !install() {
        // A fresh machine may not have package lists yet.
        let _ = std::process::Command::new("apt-get").arg("update").status();
        if !install() {
            bail!("could not install janus with apt-get");
        }
    }
    version().context("janus installed but `janus --version` fails")
}

async fn run(args: RunArgs) -> anyhow::Result<()> {
    if !netns::is_root() {
        println!(
            "benchmark skipped: it creates network namespaces (ip netns) and pins processes, \
             which needs root; run it as root"
        );
        return Ok(());
    }
    let plan = Plan::from_args(&args)?;
    if !args.server_bin.exists() && plan.servers.contains(&ServerKind::Ours) {
        bail!(
            "{} is missing: build it with `cargo build --release -p server` (cargo xtask bench does)",
            args.server_bin.display()
        );
    }
    let janus_version = if plan.servers.contains(&ServerKind::Janus) {
        ensure_janus()?
    } else {
        "not run".into()
    };
    let started = Instant::now();
    let started_utc = now_utc();
    let loadavg_start = loadavg();
    std::fs::create_dir_all(&args.out)?;
    let out = std::fs::canonicalize(&args.out)?;
    let paths = ServerPaths {
        ours_bin: std::fs::canonicalize(&args.server_bin).unwrap_or(args.server_bin.clone()),
        static_dir: std::fs::canonicalize(&args.static_dir).unwrap_or(args.static_dir.clone()),
        work: out.clone(),
    };
    let ns = netns::Netns::create()?;
    let buffers = socket_buffers(&ns.server);
    let total = plan.points.len() * plan.repeats as usize * plan.servers.len();
    let mut done = 0;
    let mut results: Vec<PointResult> = Vec::new();
    for repeat in 0..plan.repeats {
        for (pi, (scenario, n)) in plan.points.iter().enumerate() {
            for server in plan.order(pi, repeat) {
                done += 1;
                let spec = GenSpec {
                    server,
                    url: String::new(),
                    scenario: *scenario,
                    n: *n,
                    server_pid: 0,
                    warmup_s: plan.warmup_s,
                    measure_s: plan.measure_s,
                    join_concurrency: 5,
                    trickle: args.trickle,
                    pacing: args.pacing,
                };
                let tag = format!("{scenario:?}{n}-r{repeat}");
                let mut r = match run_point(&ns, &paths, &args, spec, &tag).await {
                    Ok(r) => r,
                    Err(e) => {
                        warn!(%tag, server = server.name(), error = %format!("{e:#}"), "point failed");
                        PointResult {
                            server: server.name().into(),
                            scenario: format!("{scenario:?}"),
                            n: *n,
                            loss_pct: 100.0,
                            join_failures: *n,
                            first_error: Some(format!("{e:#}")),
                            ..Default::default()
                        }
                    }
                };
                r.repeat = repeat;
                eprintln!(
                    "[{done}/{total}] {scenario:?} N={n} {:<5} srv {:.1} µs/pkt, {:.0} pkt/s, loss {:.2}%, delay p50/p99 {}/{} ms, join p50 {} ms, srv CPU {:.0}%, gen CPU {:.0}%, load {:.1}{}",
                    r.server,
                    r.server_us_per_pkt.unwrap_or(f64::NAN),
                    r.pps,
                    r.loss_pct,
                    opt(r.latency_p50_ms),
                    opt(r.latency_p99_ms),
                    opt(r.join_p50_ms),
                    r.server_cpu_pct,
                    r.gen_cpu_pct,
                    r.loadavg,
                    r.first_error
                        .as_deref()
                        .map(|e| format!(" — {} failed: {e}", r.join_failures))
                        .unwrap_or_default(),
                );
                results.push(r);
            }
        }
    }
    drop(ns);
    let weight = weight::measure(&args.static_dir);
    let meta = report::Meta {
        mode: plan.mode.into(),
        started: started_utc,
        minutes: started.elapsed().as_secs_f64() / 60.0,
        loadavg_start,
        janus_version,
        cpus: format!(
            "server on cpu {}, generator on cpu {}",
            args.server_cpu, args.gen_cpu
        ),
        ice: if args.trickle {
            "generator ICE candidates trickled to ours, in the SDP to Janus".into()
        } else {
            "generator ICE candidates in the SDP for both servers".into()
        },
        buffers,
        pacing: match args.pacing {
            Pacing::Browser => format!(
                "video frames paced as browsers do ({}× the bit rate)",
                load::BROWSER_PACE_MULTIPLIER
            ),
            Pacing::Burst => {
                "video frames sent in bursts (each frame's packets back to back)".into()
            }
        },
    };
    let summaries = report::summarise(&results);
    let md = report::markdown(&meta, &summaries, &results, &weight);
    std::fs::write(out.join("report.md"), &md)?;
    std::fs::write(
        out.join("report.json"),
        serde_json::to_string_pretty(&report::json(&meta, &results, &summaries, &weight))?,
    )?;
    std::fs::write(out.join("plot.svg"), report::svg(&summaries))?;
    println!("{md}");
    println!(
        "Wrote {0}/report.md, {0}/report.json and {0}/plot.svg ({1:.1} min).",
        out.display(),
        meta.minutes
    );
    Ok(())
}

/// The socket buffer sizes both servers get: neither sets its own, so the server namespace's
/// defaults apply to each alike.
fn socket_buffers(server_ns: &str) -> String {
    let read = |key: &str| {
        std::process::Command::new("ip")
            .args([
                "netns",
                "exec",
                server_ns,
                "cat",
                &format!("/proc/sys/net/core/{key}"),
            ])
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .unwrap_or_else(|| "?".into())
    };
    format!(
        "socket buffers: the namespace's defaults for both servers (rmem_default {} B, wmem_default {} B)",
        read("rmem_default"),
        read("wmem_default")
    )
}

/// Re-renders the Markdown and SVG of a finished run from its JSON.
fn rewrite_report(json: &std::path::Path) -> anyhow::Result<()> {
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(json)?)?;
    let points: Vec<PointResult> = serde_json::from_value(v["points"].clone())?;
    let meta: report::Meta = serde_json::from_value(v["meta"].clone())?;
    let weight: weight::ClientWeight = serde_json::from_value(v["client_weight"].clone())?;
    let summaries = report::summarise(&points);
    let dir = json.parent().unwrap_or(std::path::Path::new("."));
    let md = report::markdown(&meta, &summaries, &points, &weight);
    std::fs::write(dir.join("report.md"), &md)?;
    std::fs::write(dir.join("plot.svg"), report::svg(&summaries))?;
    println!("{md}");
    Ok(())
}

fn opt(v: Option<f64>) -> String {
    v.map(|v| format!("{v:.1}")).unwrap_or_else(|| "–".into())
}

/// One server, one scenario point: start the server, run the generator, stop the server.
async fn run_point(
    ns: &netns::Netns,
    paths: &ServerPaths,
    args: &RunArgs,
    mut spec: GenSpec,
    tag: &str,
) -> anyhow::Result<PointResult> {
    let simulcast = spec.scenario == Scenario::D;
    let srv = ServerProc::start(spec.server, ns, paths, &args.server_cpu, tag, simulcast)?;
    spec.url = srv.url.clone();
    spec.server_pid = srv.pid;
    let budget = Duration::from_secs(90 + u64::from(spec.n) / 2)
        + Duration::from_secs_f64(spec.measure_s + spec.warmup_s);
    let result = generate(ns, args.gen_cpu, &spec, budget).await;
    srv.stop().await;
    result
}

async fn generate(
    ns: &netns::Netns,
    cpu: usize,
    spec: &GenSpec,
    budget: Duration,
) -> anyhow::Result<PointResult> {
    let exe = std::env::current_exe()?;
    let mut child = tokio::process::Command::new("ip")
        .args(["netns", "exec", &ns.load, "taskset", "-c", &cpu.to_string()])
        .arg(exe)
        .arg("gen")
        .arg(serde_json::to_string(spec)?)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .context("starting the generator")?;
    let mut stdout = child.stdout.take().context("generator stdout")?;
    let mut text = String::new();
    let waited = tokio::time::timeout(budget, async {
        stdout.read_to_string(&mut text).await?;
        child.wait().await
    })
    .await;
    let status = match waited {
        Ok(s) => s?,
        Err(_) => {
            let _ = child.kill().await;
            bail!("generator did not finish within {budget:?}");
        }
    };
    let last = text.lines().last().unwrap_or_default();
    if !status.success() || last.is_empty() {
        bail!("generator failed ({status})");
    }
    serde_json::from_str(last).with_context(|| format!("generator output: {last}"))
}
