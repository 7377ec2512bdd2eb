//! Finding, and when missing installing, every tool the commands need. Installs come only from
//! registries (rustup's wasm target, crates.io, npm, Debian), never from a prebuilt download.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::{describe, sh};

/// trunk 0.22 needs a newer rustc than we pin; 0.21.14 builds on Rust 1.85+. Only the
/// front-end developer's `cargo xtask serve` and the test of trunk's build need it.
const TRUNK_VERSION: &str = "0.21.14";
/// Debian's binaryen (108) produces wasm that fails in browsers; npm's 123 works offline.
const BINARYEN_VERSION: &str = "123.0.0";
/// Browsers for the client's and end-to-end tests; coturn for the TURN tests; Xvfb for the
/// Firefox that shares its screen (headless Firefox has no screen to capture).
const APT_PACKAGES: &[&str] = &[
    "chromium",
    "chromium-driver",
    "firefox-esr",
    "coturn",
    "redis-server",
    "xvfb",
];
/// The cargo-fuzz that `cargo xtask fuzz` drives (its flags and folder layout are pinned by it).
const CARGO_FUZZ_VERSION: &str = "0.13.2";

/// Paths of the tools, and the PATH that puts them first.
pub struct Tools {
    path: String,
    /// chromedriver.
    pub chromedriver: PathBuf,
    /// geckodriver.
    pub geckodriver: PathBuf,
}

impl Tools {
    /// The PATH that puts the tools first.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// A command with the tools on PATH.
    pub fn command(&self, program: &str) -> Command {
        let mut c = Command::new(program);
        c.env("PATH", &self.path);
        c
    }

    /// Where the tools are (or will be installed), without installing anything.
    pub fn locate(root: &Path) -> Result<Tools> {
        let cargo_bin = cargo_bin()?;
        let binaryen_bin = root.join(".tools/binaryen/node_modules/.bin");
        let path = format!(
            "{}:{}:{}",
            binaryen_bin.display(),
            cargo_bin.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        Ok(Tools {
            path,
            chromedriver: PathBuf::from("/usr/bin/chromedriver"),
            geckodriver: cargo_bin.join("geckodriver"),
        })
    }

    /// What `cargo xtask fuzz` needs: cargo-fuzz, and a C++ compiler for libFuzzer, which
    /// `libfuzzer-sys` builds from source.
    pub fn ensure_fuzz(root: &Path) -> Result<Tools> {
        let tools = Tools::locate(root)?;
        let has_cxx = ["c++", "g++", "clang++"]
            .iter()
            .any(|cxx| Command::new(cxx).arg("--version").output().is_ok());
        if !has_cxx {
            apt_install(&["g++"])?;
        }
        tools.cargo_install(
            "cargo-fuzz",
            "cargo-fuzz",
            CARGO_FUZZ_VERSION,
            "~3 min",
            None,
        )?;
        Ok(tools)
    }

    /// What building the client needs: the wasm target, wasm-bindgen-cli and wasm-opt (no
    /// trunk: `page.rs` builds the page).
    pub fn ensure_client(root: &Path) -> Result<Tools> {
        let tools = Tools::locate(root)?;
        ensure_wasm_target()?;
        tools.ensure_wasm_bindgen(root, None)?;
        tools.ensure_wasm_opt(root)?;
        Ok(tools)
    }

    /// wasm-bindgen-cli at the version Cargo.lock pins; with `log`, cargo's output goes there
    /// instead of the terminal (the run command compiles the server meanwhile).
    pub fn ensure_wasm_bindgen(&self, root: &Path, log: Option<&Path>) -> Result<()> {
        let version = wasm_bindgen_version(root)?;
        self.cargo_install(
            "wasm-bindgen",
            "wasm-bindgen-cli",
            &version,
            "~2.5 min",
            log,
        )
    }

    /// trunk, for the front-end developer's `trunk serve` and the test that keeps its build
    /// equal to ours; nothing that runs the app needs it.
    pub fn ensure_trunk(&self) -> Result<()> {
        self.cargo_install("trunk", "trunk", TRUNK_VERSION, "~8 min", None)
    }

    /// Everything, including trunk, browsers and drivers for the tests.
    pub fn ensure_all(root: &Path) -> Result<Tools> {
        let tools = Tools::ensure_client(root)?;
        tools.ensure_trunk()?;
        ensure_apt_packages()?;
        tools.cargo_install("geckodriver", "geckodriver", "", "~6 min", None)?;
        Ok(tools)
    }

    /// Installs `krate` unless `bin --version` already reports `version` (any, if empty),
    /// saying first what it is and roughly how long it takes (`cost`) on a 2-core machine.
    fn cargo_install(
        &self,
        bin: &str,
        krate: &str,
        version: &str,
        cost: &str,
        log: Option<&Path>,
    ) -> Result<()> {
        let have = self
            .command(bin)
            .arg("--version")
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned());
        let ok = have
            .as_deref()
            .is_some_and(|v| version.is_empty() || v.split_whitespace().any(|w| w == version));
        if ok {
            return Ok(());
        }
        let log_note = log.map_or(String::new(), |l| format!("; log: {}", l.display()));
        eprintln!("compiling {krate} {version} from crates.io (first run only, {cost}{log_note})");
        let install = |locked: bool| -> Result<()> {
            let mut cmd = self.command("cargo");
            cmd.args(["install", krate]);
            if locked {
                cmd.arg("--locked");
            }
            if !version.is_empty() {
                cmd.args(["--version", version]);
            }
            match log {
                None => sh(&mut cmd),
                Some(log) => sh_logged(&mut cmd, log),
            }
        };
        if install(true).is_ok() {
            return Ok(());
        }
        // The crates mirror can lag: the lock file may name a version it lacks.
        eprintln!("retrying {krate} without --locked");
        install(false)
    }

    /// wasm-opt from binaryen on npm (seconds).
    pub fn ensure_wasm_opt(&self, root: &Path) -> Result<()> {
        let want = format!(
            "version {}",
            BINARYEN_VERSION.split('.').next().unwrap_or_default()
        );
        let have = self
            .command("wasm-opt")
            .arg("--version")
            .output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        if have.contains(&want) {
            return Ok(());
        }
        if Command::new("npm").arg("--version").output().is_err() {
            apt_install(&["npm"])?;
        }
        let prefix = root.join(".tools/binaryen");
        std::fs::create_dir_all(&prefix)?;
        sh(self.command("npm").args([
            "install",
            "--no-audit",
            "--no-fund",
            "--prefix",
            &prefix.to_string_lossy(),
            &format!("binaryen@{BINARYEN_VERSION}"),
        ]))
    }
}

/// The wasm32 target, for building (and linting) the client: all `cargo xtask check` installs.
pub fn ensure_wasm_target() -> Result<()> {
    let rustup = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .context("running rustup (the Rust toolchain installer)")?;
    if !String::from_utf8_lossy(&rustup.stdout).contains("wasm32-unknown-unknown") {
        sh(Command::new("rustup").args(["target", "add", "wasm32-unknown-unknown"]))?;
    }
    Ok(())
}

/// `--remap-path-prefix` flags that drop this machine's crate-source folders from the bundle's
/// panic locations: the bundle then weighs the same wherever `CARGO_HOME` is (75 B gzip here).
pub fn registry_remaps() -> Result<String> {
    let src = cargo_bin()?.with_file_name("registry").join("src");
    // One folder per registry index (`index.crates.io-<hash>`). Before the first build unpacks
    // them there is none, and only the folder above is dropped.
    let mut flags = vec![format!("--remap-path-prefix={}/=", src.display())];
    for entry in std::fs::read_dir(&src).into_iter().flatten().flatten() {
        flags.push(format!("--remap-path-prefix={}/=", entry.path().display()));
    }
    Ok(flags.join("\x1f"))
}

fn cargo_bin() -> Result<PathBuf> {
    if let Ok(home) = std::env::var("CARGO_HOME") {
        return Ok(PathBuf::from(home).join("bin"));
    }
    let home = std::env::var("HOME").context("HOME is not set")?;
    Ok(PathBuf::from(home).join(".cargo/bin"))
}

/// The wasm-bindgen version Cargo.lock pins; the CLI must match it exactly.
fn wasm_bindgen_version(root: &Path) -> Result<String> {
    let lock = std::fs::read_to_string(root.join("Cargo.lock")).context("reading Cargo.lock")?;
    let mut lines = lock.lines();
    while let Some(line) = lines.next() {
        if line.trim() == "name = \"wasm-bindgen\"" {
            if let Some(v) = lines
                .next()
                .and_then(|l| l.trim().strip_prefix("version = \""))
                .and_then(|v| v.strip_suffix('"'))
            {
                return Ok(v.to_owned());
            }
        }
    }
    bail!("Cargo.lock has no wasm-bindgen entry")
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

fn apt_install(packages: &[&str]) -> Result<()> {
    if !is_root() {
        bail!(
            "these Debian packages are needed: {0}\nrun this once as root, then run the command again:\n  sudo apt-get update && sudo apt-get install -y {0}",
            packages.join(" ")
        );
    }
    sh(Command::new("apt-get").arg("update"))?;
    sh(Command::new("apt-get")
        .args(["install", "-y"])
        .args(packages)
        .env("DEBIAN_FRONTEND", "noninteractive"))
}

fn ensure_apt_packages() -> Result<()> {
    let missing: Vec<&str> = APT_PACKAGES
        .iter()
        .copied()
        .filter(|p| {
            !Command::new("dpkg-query")
                .args(["-W", "-f=${Status}", p])
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
                .unwrap_or(false)
        })
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    apt_install(&missing)
}

/// Runs a command with its output appended to `log`; a failure quotes the log's last lines.
fn sh_logged(cmd: &mut Command, log: &Path) -> Result<()> {
    if let Some(dir) = log.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .with_context(|| format!("opening {}", log.display()))?;
    let status = cmd
        .stdout(file.try_clone()?)
        .stderr(file)
        .status()
        .with_context(|| format!("starting {}", describe(cmd)))?;
    if !status.success() {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(20).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        bail!(
            "`{}` failed with {status}; the end of {}:\n{}",
            describe(cmd),
            log.display(),
            tail.join("\n")
        );
    }
    Ok(())
}
