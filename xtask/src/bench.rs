//! `cargo xtask bench [--quick|--full] [FLAGS]`: our SFU against Janus on this machine, and the
//! client's weight (issue 7). Builds the release server and the load generator, builds the
//! client if dist/ has none, then runs `videoroom-bench run` (which installs Janus from Debian
//! when missing and needs root for its network namespaces).

use std::path::Path;
use std::process::Command;

use anyhow::Result;

use crate::tools::Tools;
use crate::{cargo, page, sh};

/// Runs the benchmark; `args` go to `videoroom-bench run` (`--quick` is its default).
pub fn bench(root: &Path, args: Vec<String>) -> Result<()> {
    // `cargo xtask bench -- --servers ours` reads naturally too: a lone `--` is no flag.
    let args: Vec<String> = args.into_iter().filter(|a| a != "--").collect();
    let root_user = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false);
    if !root_user {
        println!(
            "benchmark skipped: it creates network namespaces and installs Janus, which needs \
             root; run `cargo xtask bench` as root"
        );
        return Ok(());
    }
    let has_bundle = std::fs::read_dir(root.join("dist"))
        .map(|d| {
            d.filter_map(|e| e.ok())
                .any(|e| e.path().extension().is_some_and(|x| x == "wasm"))
        })
        .unwrap_or(false);
    if !has_bundle {
        let tools = Tools::ensure_client(root)?;
        page::build(&tools, root)?;
    }
    // `--server-bin` benches a given build of the server (e.g. an older one): build only the
    // generator then.
    if args.iter().any(|a| a.starts_with("--server-bin")) {
        sh(cargo().args(["build", "--release", "-p", "bench"]))?;
    } else {
        sh(cargo().args(["build", "--release", "-p", "server", "-p", "bench"]))?;
    }
    sh(Command::new(root.join("target/release/videoroom-bench"))
        .arg("run")
        .args(&args))
}
