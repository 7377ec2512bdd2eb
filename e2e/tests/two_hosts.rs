//! Beyond localhost: the server and the browsers on two different hosts — two network
//! namespaces this test creates, joined by a veth pair — as on a LAN, and as behind a network
//! that blocks UDP to the server so media must go through TURN (coturn beside the server).
//!
//! Topology (addresses only inside the namespaces):
//! ```text
//!   [vr-e2e-cli-<pid>] 10.201.0.2  ==veth==  10.201.0.1 (web, TURN) + 10.201.0.3 (ICE) [vr-e2e-srv-<pid>]
//! ```
//! For the TURN case the client namespace has no route to 10.201.0.3: the page and the socket
//! reach the server, its media address does not, so the only path for media is the relay.
//!
//! Needs root (network namespaces); `cargo xtask test` runs as root in CI.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, ensure, Context, Result};
use e2e::{workspace_root, Browser, Media, Page};

const WEB_IP: &str = "10.201.0.1";
const ICE_IP: &str = "10.201.0.3";
const CLIENT_IP: &str = "10.201.0.2";
const PORT: u16 = 4000;
const TURN_PORT: u16 = 3478;
const TURN_SECRET: &str = "a two-host e2e turn secret";
const MEDIA_WAIT: Duration = Duration::from_secs(40);

fn ip(args: &[&str]) -> Result<()> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .context("running ip")?;
    if !out.status.success() {
        bail!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// The two namespaces and their veth pair; deleted on drop.
struct Hosts {
    server: String,
    client: String,
}

impl Hosts {
    fn create(tag: &str, turn_only: bool) -> Result<Hosts> {
        // SAFETY: geteuid has no preconditions.
        ensure!(
            unsafe { libc::geteuid() } == 0,
            "this test creates network namespaces and needs root"
        );
        let pid = std::process::id();
        let hosts = Hosts {
            server: format!("vr-e2e-srv-{tag}-{pid}"),
            client: format!("vr-e2e-cli-{tag}-{pid}"),
        };
        // Interface names are at most 15 bytes.
        let (sdev, cdev) = (format!("vrs{tag}{pid}"), format!("vrc{tag}{pid}"));
        let _ = ip(&["netns", "del", &hosts.server]);
        let _ = ip(&["netns", "del", &hosts.client]);
        ip(&["netns", "add", &hosts.server])?;
        ip(&["netns", "add", &hosts.client])?;
        ip(&[
            "link",
            "add",
            &sdev,
            "netns",
            &hosts.server,
            "type",
            "veth",
            "peer",
            "name",
            &cdev,
            "netns",
            &hosts.client,
        ])?;
        for (ns, dev, addrs) in [
            (&hosts.server, &sdev, vec![WEB_IP, ICE_IP]),
            (&hosts.client, &cdev, vec![CLIENT_IP]),
        ] {
            ip(&["-n", ns, "link", "set", "lo", "up"])?;
            for a in addrs {
                ip(&["-n", ns, "addr", "add", &format!("{a}/24"), "dev", dev])?;
            }
            ip(&["-n", ns, "link", "set", dev, "up"])?;
        }
        if turn_only {
            ip(&[
                "-n",
                &hosts.client,
                "route",
                "add",
                "unreachable",
                &format!("{ICE_IP}/32"),
            ])?;
        }
        Ok(hosts)
    }
}

impl Drop for Hosts {
    fn drop(&mut self) {
        let _ = ip(&["netns", "del", &self.server]);
        let _ = ip(&["netns", "del", &self.client]);
    }
}

/// A process in a namespace, its output kept for failure messages; killed on drop.
struct Process {
    child: Child,
    log: Arc<Mutex<Vec<String>>>,
    name: &'static str,
}

impl Process {
    fn start(name: &'static str, ns: &str, program: &str, args: &[String]) -> Result<Process> {
        let mut child = Command::new("ip")
            .args(["netns", "exec", ns, program])
            .args(args)
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {program}"))?;
        let log = Arc::new(Mutex::new(Vec::new()));
        for out in [
            child
                .stdout
                .take()
                .map(|o| Box::new(o) as Box<dyn std::io::Read + Send>),
            child
                .stderr
                .take()
                .map(|o| Box::new(o) as Box<dyn std::io::Read + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let sink = log.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(out).lines().map_while(Result::ok) {
                    if let Ok(mut l) = sink.lock() {
                        l.push(line);
                    }
                }
            });
        }
        Ok(Process { child, log, name })
    }

    fn tail(&self) -> String {
        let log = self.log.lock().map(|l| l.clone()).unwrap_or_default();
        let start = log.len().saturating_sub(30);
        format!(
            "--- {} (last lines) ---\n{}",
            self.name,
            log[start..].join("\n")
        )
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `f` on a thread inside namespace `ns` (with its own runtime), so that every socket it
/// opens and every process it starts (the browser and its driver) live in that namespace.
fn in_netns<F, Fut, T>(ns: &str, f: F) -> Result<T>
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Result<T>>,
    T: Send + 'static,
{
    let path = format!("/var/run/netns/{ns}");
    std::thread::spawn(move || -> Result<T> {
        let file = std::fs::File::open(&path).with_context(|| format!("opening {path}"))?;
        // SAFETY: setns on a valid namespace fd affects only this thread.
        let rc = unsafe { libc::setns(std::os::fd::AsRawFd::as_raw_fd(&file), libc::CLONE_NEWNET) };
        ensure!(rc == 0, "setns: {}", std::io::Error::last_os_error());
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
            .block_on(f())
    })
    .join()
    .map_err(|_| anyhow!("the namespace thread panicked"))?
}

fn server_bin() -> std::path::PathBuf {
    std::env::var_os("VIDEOROOM_SERVER_BIN")
        .map(Into::into)
        .unwrap_or_else(|| workspace_root().join("target/debug/videoroom-server"))
}

/// The selected candidate pair's local candidate type ("host", "prflx", "srflx", "relay").
async fn local_candidate_type(page: &Page) -> Result<String> {
    let v = page
        .with_stats(
            "let pair = null;
             stats.forEach(s => {
               if (s.type === 'transport' && s.selectedCandidatePairId) pair = stats.get(s.selectedCandidatePairId);
             });
             if (!pair) stats.forEach(s => {
               if (s.type === 'candidate-pair' && (s.selected || s.nominated) && s.state === 'succeeded') pair = s;
             });
             const local = pair && stats.get(pair.localCandidateId);
             done(local ? local.candidateType : null);",
        )
        .await?;
    v.as_str()
        .map(str::to_owned)
        .ok_or_else(|| anyhow!("{}: no selected candidate pair", page.label))
}

fn two_people_across_hosts(browser: Browser, turn_only: bool) -> Result<()> {
    let tag = if turn_only { "t" } else { "d" };
    let hosts = Hosts::create(tag, turn_only)?;
    let relay_min = 30_000 + (std::process::id() % 200) as u16 * 100;
    let _turn = if turn_only {
        Some(Process::start(
            "coturn",
            &hosts.server,
            "turnserver",
            &[
                "-n",
                "--no-cli",
                "--no-tls",
                "--no-dtls",
                "--use-auth-secret",
                "--realm=videoroom.test",
                "--log-file=stdout",
                "--simple-log",
            ]
            .iter()
            .map(|s| s.to_string())
            .chain([
                format!("--listening-ip={WEB_IP}"),
                format!("--relay-ip={WEB_IP}"),
                format!("--listening-port={TURN_PORT}"),
                format!("--static-auth-secret={TURN_SECRET}"),
                format!("--min-port={relay_min}"),
                format!("--max-port={}", relay_min + 99),
            ])
            .collect::<Vec<_>>(),
        )?)
    } else {
        None
    };
    let bin = server_bin();
    ensure!(
        bin.exists(),
        "no server binary at {} (run `cargo xtask test`, which builds it)",
        bin.display()
    );
    // Another host is not a secure context over plain HTTP (no camera): HTTPS, with the
    // development certificate a LAN set-up would use.
    let tls_dir =
        std::env::temp_dir().join(format!("videoroom-e2e-hosts-{tag}-{}", std::process::id()));
    let mut args = vec![
        "--tls-self-signed".to_owned(),
        "--tls-dir".into(),
        tls_dir.display().to_string(),
        "--bind".into(),
        format!("{WEB_IP}:{PORT}"),
        "--ice-ips".into(),
        ICE_IP.into(),
        "--udp-port".into(),
        "0".into(),
        "--static-dir".into(),
        std::env::var("VIDEOROOM_DIST")
            .unwrap_or_else(|_| workspace_root().join("dist").display().to_string()),
    ];
    if turn_only {
        args.extend([
            "--turn-urls".into(),
            format!("turn:{WEB_IP}:{TURN_PORT}?transport=udp"),
            "--turn-secret".into(),
            TURN_SECRET.into(),
        ]);
    }
    let server = Process::start("server", &hosts.server, &bin.display().to_string(), &args)?;
    let server_ns = hosts.server.clone();

    let room = format!("hosts-{tag}-{}", std::process::id());
    let result =
        in_netns(&hosts.client, move || async move {
            let base = format!("https://{WEB_IP}:{PORT}");
            // The server is up once its port answers (from this host's side of the link).
            let deadline = Instant::now() + Duration::from_secs(20);
            while tokio::net::TcpStream::connect((WEB_IP, PORT))
                .await
                .is_err()
            {
                ensure!(
                    Instant::now() < deadline,
                    "the server did not listen on {base}"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            let ada = Page::open(browser, "Ada", Media::Granted).await?;
            let bob = Page::open(browser, "Bob", Media::Granted).await?;
            let started = Instant::now();
            ada.join(&base, &room, "Ada").await?;
            ada.wait_in_room().await?;
            bob.join(&base, &room, "Bob").await?;
            ada.wait_remote_playing(1, MEDIA_WAIT).await?;
            bob.wait_remote_playing(1, MEDIA_WAIT).await?;
            let mut kinds = Vec::new();
            for p in [&ada, &bob] {
                kinds.push(local_candidate_type(p).await?);
            }
            println!(
            "[{browser}] across hosts ({}): both playing after {:?}; local candidates {kinds:?}",
            if turn_only { "UDP blocked, TURN" } else { "direct" },
            started.elapsed()
        );
            let _ = ada.close().await;
            let _ = bob.close().await;
            Ok(kinds)
        });
    let kinds = result.map_err(|e| anyhow!("{e:#}\n{}", server.tail()))?;
    let expected_relay = turn_only;
    for k in &kinds {
        ensure!(
            (k == "relay") == expected_relay,
            "[{browser}] media path {k:?}, expected {} (server ns {server_ns})\n{}",
            if expected_relay { "relay" } else { "direct" },
            server.tail()
        );
    }
    drop(server);
    drop(hosts);
    let _ = std::fs::remove_dir_all(&tls_dir);
    Ok(())
}

/// One scenario at a time: each runs two browsers, and the namespaces' names are per process.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner())
}

mod chromium {
    use super::*;

    #[test]
    fn h1_lan_direct() -> Result<()> {
        let _one = one_at_a_time();
        two_people_across_hosts(Browser::Chromium, false)
    }

    #[test]
    fn h2_udp_blocked_through_turn() -> Result<()> {
        let _one = one_at_a_time();
        two_people_across_hosts(Browser::Chromium, true)
    }
}

mod firefox {
    use super::*;

    #[test]
    fn h1_lan_direct() -> Result<()> {
        let _one = one_at_a_time();
        two_people_across_hosts(Browser::Firefox, false)
    }

    #[test]
    fn h2_udp_blocked_through_turn() -> Result<()> {
        let _one = one_at_a_time();
        two_people_across_hosts(Browser::Firefox, true)
    }
}
