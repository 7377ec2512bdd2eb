//! The network the benchmark runs on: two namespaces it creates itself joined by a veth pair,
//! the servers on one side (10.200.0.1), the load generator on the other (10.200.0.2). Janus
//! never gathers loopback candidates, so both servers get a real interface, and the same one.
//! Dropping [`Netns`] deletes both namespaces (and with them their devices), also on error.

use std::net::Ipv4Addr;
use std::process::Command;

use tracing::{info, warn};

/// The servers' address.
pub const SERVER_IP: Ipv4Addr = Ipv4Addr::new(10, 200, 0, 1);
/// The load generator's address.
pub const LOAD_IP: Ipv4Addr = Ipv4Addr::new(10, 200, 0, 2);
/// Prefix of every namespace this tool creates (stale ones from killed runs are removed).
const PREFIX: &str = "vrbench-";

/// Why the network could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum NetnsError {
    /// `ip` failed.
    #[error("`ip {args}` failed: {stderr}")]
    Ip {
        /// Its arguments.
        args: String,
        /// What it said.
        stderr: String,
    },
    /// `ip` could not be started.
    #[error("running `ip`: {0}")]
    Spawn(#[from] std::io::Error),
}

/// Two namespaces and the veth pair between them; removed on drop.
#[derive(Debug)]
pub struct Netns {
    /// The servers' namespace.
    pub server: String,
    /// The load generator's namespace.
    pub load: String,
    /// The servers' veth device (Janus's `ice_enforce_list`).
    pub server_dev: String,
}

fn ip(args: &[&str]) -> Result<(), NetnsError> {
    let out = Command::new("ip").args(args).output()?;
    if !out.status.success() {
        return Err(NetnsError::Ip {
            args: args.join(" "),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        });
    }
    Ok(())
}

impl Netns {
    /// Creates the pair of namespaces for this process.
    pub fn create() -> Result<Netns, NetnsError> {
        remove_stale();
        let pid = std::process::id();
        let ns = Netns {
            server: format!("{PREFIX}srv-{pid}"),
            load: format!("{PREFIX}load-{pid}"),
            server_dev: format!("vrbs{pid}"),
        };
        let load_dev = format!("vrbl{pid}");
        // From here on a failure still deletes whatever was made.
        ip(&["netns", "add", &ns.server])?;
        ip(&["netns", "add", &ns.load])?;
        ip(&[
            "link",
            "add",
            &ns.server_dev,
            "netns",
            &ns.server,
            "type",
            "veth",
            "peer",
            "name",
            &load_dev,
            "netns",
            &ns.load,
        ])?;
        for (name, dev, addr) in [
            (&ns.server, &ns.server_dev, SERVER_IP),
            (&ns.load, &load_dev, LOAD_IP),
        ] {
            ip(&["-n", name, "link", "set", "lo", "up"])?;
            ip(&["-n", name, "addr", "add", &format!("{addr}/24"), "dev", dev])?;
            ip(&["-n", name, "link", "set", dev, "up"])?;
        }
        info!(server = %ns.server, load = %ns.load, "network namespaces ready");
        Ok(ns)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        for name in [&self.server, &self.load] {
            if let Err(e) = ip(&["netns", "del", name]) {
                warn!(%name, error = %e, "could not delete namespace");
            }
        }
    }
}

/// Deletes namespaces left by runs whose process is gone (killed before their guard ran).
fn remove_stale() {
    let Ok(out) = Command::new("ip").args(["netns", "list"]).output() else {
        return;
    };
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let name = line.split_whitespace().next().unwrap_or_default();
        let Some(pid) = name
            .strip_prefix(PREFIX)
            .and_then(|r| r.rsplit('-').next())
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            let _ = ip(&["netns", "del", name]);
        }
    }
}

/// Whether we may create namespaces (root).
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}
