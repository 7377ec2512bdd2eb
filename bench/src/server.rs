//! Starting and stopping the server under test: inside the servers' namespace, pinned to its
//! core with taskset, output to a log file. `ip netns exec` and `taskset` both exec, so the
//! child's pid is the server's (what /proc is read for).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::Context;
use tokio::process::{Child, Command};
use tracing::info;

use crate::janus;
use crate::netns::{Netns, SERVER_IP};
use crate::scenarios::ServerKind;

/// Our server's ports inside its namespace (HTTP/WebSocket on TCP, media on UDP).
const OURS_PORT: u16 = 4000;

/// A running server; killed on drop.
pub struct ServerProc {
    child: Child,
    /// Its pid.
    pub pid: u32,
    /// Its signaling URL.
    pub url: String,
}

/// Paths the servers need.
#[derive(Debug, Clone)]
pub struct ServerPaths {
    /// `videoroom-server` (release build).
    pub ours_bin: PathBuf,
    /// The built client, served as ours always does.
    pub static_dir: PathBuf,
    /// Where logs and Janus's configuration go.
    pub work: PathBuf,
}

impl ServerProc {
    /// Starts `kind` in `ns`'s server namespace on `cpu`; `tag` names its log; ours asks
    /// cameras for layers when `simulcast`.
    pub fn start(
        kind: ServerKind,
        ns: &Netns,
        paths: &ServerPaths,
        cpu: &str,
        tag: &str,
        simulcast: bool,
    ) -> anyhow::Result<ServerProc> {
        let log_path = paths.work.join(format!("logs/{tag}-{}.log", kind.name()));
        std::fs::create_dir_all(log_path.parent().unwrap_or(Path::new(".")))?;
        let log = std::fs::File::create(&log_path)?;
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &ns.server, "taskset", "-c", cpu]);
        let url = match kind {
            ServerKind::Ours => {
                cmd.arg(&paths.ours_bin).args([
                    "--bind",
                    &format!("{SERVER_IP}:{OURS_PORT}"),
                    "--ice-ips",
                    &SERVER_IP.to_string(),
                    "--udp-port",
                    &OURS_PORT.to_string(),
                    "--max-peers-per-room",
                    &protocol::MAX_PEERS_LISTED.to_string(),
                    "--max-peers",
                    "4096",
                    // Every simulated person comes from the generator's one address.
                    "--max-connections",
                    "16384",
                    "--max-connections-per-ip",
                    "16384",
                    "--joins-per-minute-per-ip",
                    "100000",
                    "--allowed-origins",
                    "*",
                    "--static-dir",
                ]);
                cmd.arg(&paths.static_dir);
                if simulcast {
                    cmd.arg("--simulcast");
                }
                format!("ws://{SERVER_IP}:{OURS_PORT}/socket")
            }
            ServerKind::Janus => {
                let conf = paths.work.join("janus-conf");
                janus::write_config(&conf, &SERVER_IP.to_string(), &ns.server_dev)?;
                cmd.arg("janus")
                    .arg("-F")
                    .arg(&conf)
                    .arg("-C")
                    .arg(conf.join("janus.jcfg"))
                    .args(["-o", "-D", "-E", &ns.server_dev]);
                format!("ws://{SERVER_IP}:{}/", janus::WS_PORT)
            }
        };
        cmd.stdout(log.try_clone()?)
            .stderr(log)
            .stdin(Stdio::null())
            .kill_on_drop(true);
        let child = cmd
            .spawn()
            .with_context(|| format!("starting {}", kind.name()))?;
        let pid = child.id().context("server exited at once")?;
        info!(server = kind.name(), pid, log = %log_path.display(), "server started");
        Ok(ServerProc { child, pid, url })
    }

    /// Stops it and waits until it is gone (so the next one can bind the same ports).
    pub async fn stop(mut self) {
        let _ = self.child.start_kill();
        let _ = tokio::time::timeout(Duration::from_secs(5), self.child.wait()).await;
    }
}
