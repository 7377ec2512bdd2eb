//! `cargo xtask run` and `cargo xtask test`: the README's two commands. Each installs what it
//! needs (wasm target, wasm-bindgen-cli at the pinned version, wasm-opt; for the tests also
//! trunk, browsers and drivers), from crates.io, npm and Debian only, then does its job.
//! `cargo xtask serve` is the front-end developer's loop (`trunk serve` beside a server). `cargo xtask check` is the
//! inner loop (lint and unit tests, minutes); `cargo xtask fuzz` the bounded fuzzing run
//! (`fuzz.rs`).

mod bench;
mod fuzz;
mod glue;
mod layers;
mod page;
mod tools;

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use tools::Tools;

const USAGE: &str = "\
usage: cargo xtask <command>

  run [SERVER FLAGS]   install the client toolchain, build the client and the server (release),
                       and start the server at http://localhost:4000 (flags go to
                       videoroom-server; see --help)
  serve [SERVER FLAGS] front-end work: the server on :4000 and `trunk serve` on :8080, which
                       rebuilds the client on every change (installs trunk, once)
  check                the inner loop (under 3 minutes warm): no import cycles, formatting,
                       clippy on the host and on wasm32, and the fast unit tests (every crate's
                       own, plus the protocol's goldens and codec checks); no browsers, no
                       servers, nothing installed but the wasm32 target
  test                 install everything the tests need, then run every test: formatting, clippy,
                       unit and integration tests, and the client's tests in headless Chromium
                       and Firefox against a real server
  build-client         build the client into dist/ (release, as `run` does)
  fuzz [--seconds N] [--sanitizer none|address] [TARGET...]
                       run each cargo-fuzz target in fuzz/ for N seconds (default 60; targets:
                       protocol_decode, sdp_answer, sdp_answer_apply); an input that breaks one
                       is copied to fuzz/regressions/<target>/ and the command fails
  bench [--quick|--full] [FLAGS]
                       benchmark the SFU against Janus in network namespaces (root; installs
                       janus from Debian if missing) and weigh the client; writes
                       target/bench/report.{md,json} and plot.svg (quick < 5 min, full < 30 min)
";

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let root = workspace_root()?;
    std::env::set_current_dir(&root)?;
    match args.next().as_deref() {
        Some("run") => run(&root, args.collect()),
        Some("check") => check(),
        Some("test") => test(&root),
        Some("serve") => serve(&root, args.collect()),
        Some("build-client") => {
            let tools = Tools::ensure_client(&root)?;
            page::build(&tools, &root).map(drop)
        }
        Some("fuzz") => fuzz::fuzz(&root, args.collect()),
        Some("bench") => bench::bench(&root, args.collect()),
        Some("help" | "--help" | "-h") | None => {
            print!("{USAGE}");
            Ok(())
        }
        Some(other) => bail!("unknown command {other:?}\n\n{USAGE}"),
    }
}

fn workspace_root() -> Result<PathBuf> {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    Ok(manifest
        .parent()
        .context("xtask lives inside the workspace")?
        .to_path_buf())
}

/// Runs a command, echoing it, and fails with its status.
pub fn sh(cmd: &mut Command) -> Result<()> {
    eprintln!("$ {}", describe(cmd));
    let status = cmd
        .status()
        .with_context(|| format!("starting {}", describe(cmd)))?;
    if !status.success() {
        bail!("`{}` failed with {status}", describe(cmd));
    }
    Ok(())
}

fn describe(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|s| s.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

/// trunk's release build of the client into `dist` (with the glue minified, as ours): the
/// front-end developer's path, which the tests hold to `page.rs`'s.
fn build_client_with_trunk(tools: &Tools, dist: &Path) -> Result<()> {
    // Only the wasm build sees these flags (the host's and the tests' builds stay as they are).
    sh(tools
        .command("trunk")
        .args(["build", "--release", "--dist"])
        .arg(dist)
        .env("CARGO_ENCODED_RUSTFLAGS", tools::registry_remaps()?))?;
    glue::minify_trunk_dist(tools, dist)
}

/// `cargo xtask run`: what a newcomer runs first. wasm-bindgen-cli (the one long install)
/// compiles on a thread of its own while cargo builds the client and the server; each step
/// says what it is and whether it is a first-run cost.
fn run(root: &Path, server_args: Vec<String>) -> Result<()> {
    let started = Instant::now();
    let tools = Tools::locate(root)?;
    step("wasm32 target", tools::ensure_wasm_target)?;
    step("wasm-opt (binaryen 123 from npm)", || {
        tools.ensure_wasm_opt(root)
    })?;
    let log = root.join("target/xtask/install-wasm-bindgen.log");
    std::thread::scope(|s| -> Result<()> {
        let bindgen = s.spawn(|| tools.ensure_wasm_bindgen(root, Some(&log)));
        let built = (|| {
            let first = once_note(
                root.join("target/wasm32-unknown-unknown").exists(),
                "~1 min",
            );
            step(&format!("build the client (wasm32){first}"), || {
                page::compile_client(root)
            })?;
            let first = once_note(
                root.join("target/release/videoroom-server").exists(),
                "~3.5 min",
            );
            step(&format!("build the server (release){first}"), || {
                sh(cargo().args(["build", "--release", "-p", "server"]))
            })
        })();
        let bindgen = step("wait for wasm-bindgen-cli", || {
            bindgen
                .join()
                .map_err(|_| anyhow::anyhow!("the wasm-bindgen-cli install panicked"))?
        });
        built.and(bindgen)
    })?;
    step("the page (wasm-bindgen, wasm-opt, dist/)", || {
        page::build(&tools, root).map(drop)
    })?;
    let mut cmd = Command::new(root.join("target/release/videoroom-server"));
    if !server_args.iter().any(|a| a.starts_with("--static-dir")) {
        cmd.args(["--static-dir", "dist"]);
    }
    cmd.args(&server_args);
    eprintln!(
        "\nReady in {:.0?}. Starting Videoroom: open http://localhost:4000 (Ctrl-C stops it)",
        started.elapsed()
    );
    sh(&mut cmd)
}

/// ", first run only, ~N" for a build whose output is not there yet.
fn once_note(built_before: bool, cost: &str) -> String {
    if built_before {
        String::new()
    } else {
        format!(", first run only, {cost}")
    }
}

/// `cargo xtask serve`: the server on :4000 accepting trunk's origin, and `trunk serve` on
/// :8080 (its proxy forwards `/socket`), which rebuilds the client on every change.
fn serve(root: &Path, server_args: Vec<String>) -> Result<()> {
    let tools = Tools::ensure_client(root)?;
    tools.ensure_trunk()?;
    sh(cargo().args(["build", "--release", "-p", "server"]))?;
    let mut server = Command::new(root.join("target/release/videoroom-server"));
    if !server_args
        .iter()
        .any(|a| a.starts_with("--allowed-origins"))
    {
        server.args([
            "--allowed-origins",
            "http://127.0.0.1:8080,http://localhost:8080",
        ]);
    }
    server.args(&server_args);
    eprintln!("$ {} &", describe(&server));
    let server = KillOnDrop(server.spawn().context("starting the server")?);
    eprintln!("Front-end loop: open http://127.0.0.1:8080 (trunk rebuilds on every change; Ctrl-C stops both)");
    let served = sh(tools.command("trunk").arg("serve"));
    drop(server);
    served
}

/// A child process killed when this goes out of scope.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn step<T>(name: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
    eprintln!("\n=== {name}");
    let t = Instant::now();
    let r = f().with_context(|| format!("step failed: {name}"));
    eprintln!(
        "=== {name}: {} in {:.0?}",
        if r.is_ok() { "ok" } else { "FAILED" },
        t.elapsed()
    );
    r
}

/// Layering, formatting and clippy on both targets: the first steps of `check` and of `test`.
fn lint() -> Result<()> {
    step("modules only look down (no import cycles)", || {
        layers::check(Path::new("."))
    })?;
    step("cargo fmt --check", || {
        sh(cargo().args(["fmt", "--all", "--check"]))
    })?;
    step("clippy (host)", || {
        sh(cargo().args([
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ]))
    })?;
    step("clippy (client, wasm32)", || {
        sh(cargo().args([
            "clippy",
            "-p",
            "client",
            "--all-targets",
            "--target",
            "wasm32-unknown-unknown",
            "--",
            "-D",
            "warnings",
        ]))
    })
}

/// `cargo xtask check`: what to run before every commit. The integration, end-to-end and
/// browser tests stay in `test`, which CI runs.
fn check() -> Result<()> {
    let started = Instant::now();
    step("wasm32 target", tools::ensure_wasm_target)?;
    lint()?;
    step(
        "unit tests (every crate) and the protocol's goldens",
        || {
            // `--lib --bins` is each crate's own tests, next to the code; the protocol's `tests/`
            // (goldens, both codecs on every frame) take seconds and guard the wire.
            sh(cargo().args(["test", "--workspace", "--lib", "--bins"]))?;
            sh(cargo().args(["test", "-p", "protocol", "--tests"]))
        },
    )?;
    eprintln!("\nChecks passed in {:.0?}.", started.elapsed());
    Ok(())
}

fn test(root: &Path) -> Result<()> {
    let started = Instant::now();
    let tools = step("install tools", || Tools::ensure_all(root))?;
    lint()?;
    step(
        "build the client into dist/ (as `cargo xtask run` does)",
        || page::build(&tools, root).map(drop),
    )?;
    step(
        "trunk build --release into target/trunk-dist (the front-end path, held to ours)",
        || {
            let trunk_dist = root.join("target/trunk-dist");
            build_client_with_trunk(&tools, &trunk_dist)?;
            page::same_bundle(&root.join("dist"), &trunk_dist)
        },
    )?;
    step(
        "cargo test: unit, integration and end-to-end (real browsers)",
        || {
            // One invocation for every host test, so dependencies are built once with one feature
            // set. The e2e scenarios serialise themselves; --nocapture shows the measured figures.
            // trunk on PATH, and the flags of its wasm build, for the front-end tests.
            sh(cargo()
                .args(["test", "--workspace", "--", "--nocapture"])
                .env("PATH", tools.path())
                .env("VIDEOROOM_WASM_RUSTFLAGS", tools::registry_remaps()?)
                .env("VIDEOROOM_GECKODRIVER", &tools.geckodriver)
                .env("VIDEOROOM_CHROMEDRIVER", &tools.chromedriver))
        },
    )?;
    step("client tests in headless Chromium and Firefox", || {
        client_browser_tests(&tools)
    })?;
    eprintln!("\nAll tests passed in {:.0?}.", started.elapsed());
    Ok(())
}

/// A server for the browser tests, on a free loopback port, ICE on 127.0.0.1 only.
struct TestServer {
    child: Child,
    addr: SocketAddr,
}

impl TestServer {
    fn start(extra: &[&str]) -> Result<TestServer> {
        // `cargo test --workspace` built it; building it alone would resolve other features.
        if !Path::new("target/debug/videoroom-server").exists() {
            sh(cargo().args(["build", "--workspace", "--bins"]))?;
        }
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let bin = Path::new("target/debug/videoroom-server");
        let mut cmd = Command::new(bin);
        cmd.args([
            "--bind",
            &addr.to_string(),
            "--ice-ips",
            "127.0.0.1",
            "--udp-port",
            "0",
            "--static-dir",
            "dist",
            // The test runner serves its page from another origin.
            "--allowed-origins",
            "*",
            // Every browser test joins from 127.0.0.1, many times a minute.
            "--joins-per-minute-per-ip",
            "100000",
            "--max-connecting-per-ip",
            "4096",
            "--max-connections-per-ip",
            "4096",
        ])
        .args(extra)
        .env(
            "RUST_LOG",
            std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()),
        );
        eprintln!("$ {} &", describe(&cmd));
        let child = cmd.spawn().context("starting the test server")?;
        let mut server = TestServer { child, addr };
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(addr).is_err() {
            if let Some(status) = server.child.try_wait()? {
                bail!("test server exited early: {status}");
            }
            if Instant::now() > deadline {
                bail!("test server did not listen on {addr} within 30 s");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(server)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn client_browser_tests(tools: &Tools) -> Result<()> {
    // A small cap keeps the room-full test cheap; the tests are told it at build time.
    const CAP: &str = "3";
    // Simulcast on: the tile sizes and layer encodings are tested in both browsers.
    let server = TestServer::start(&["--max-peers-per-room", CAP, "--simulcast"])?;
    let addr = server.addr.to_string();
    let browsers = [
        ("Chromium", "CHROMEDRIVER", tools.chromedriver.clone()),
        ("Firefox", "GECKODRIVER", tools.geckodriver.clone()),
    ];
    // The browsers' settings are in client/webdriver.json; JSON has no comments, so
    // ARCHITECTURE.md says why the loopback ones are there.
    for (name, var, driver) in browsers {
        step(&format!("client tests in {name}"), || {
            let mut cmd = tools.command("cargo");
            cmd.args(["test", "-p", "client", "--target", "wasm32-unknown-unknown"])
                .env("VIDEOROOM_TEST_SERVER", &addr)
                .env("VIDEOROOM_TEST_MAX_PEERS_PER_ROOM", CAP)
                .env_remove("CHROMEDRIVER")
                .env_remove("GECKODRIVER")
                .env_remove("SAFARIDRIVER")
                .env(var, &driver)
                .env("WASM_BINDGEN_TEST_TIMEOUT", "120");
            sh(&mut cmd)
        })?;
    }
    drop(server);
    Ok(())
}
