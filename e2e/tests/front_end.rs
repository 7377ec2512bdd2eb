//! The front-end developer's path, trunk, kept working beside the run command's own page build
//! (`xtask/src/page.rs`): trunk's release build loads and joins a room, and `trunk serve`'s
//! proxy carries the signaling of a room, with the repository's own `Trunk.toml`.
//!
//! Run through `cargo xtask test`: it installs trunk, puts it on PATH, builds
//! `target/trunk-dist` with `trunk build --release` and passes the wasm build's flags in
//! `VIDEOROOM_WASM_RUSTFLAGS`.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use e2e::{close_all, unique_room, workspace_root, App, Browser, Media, Page};

const MEDIA_WAIT: Duration = Duration::from_secs(30);
/// `trunk serve` compiles nothing new (the release client is built), but runs wasm-bindgen
/// and wasm-opt before it answers.
const SERVE_WAIT: Duration = Duration::from_secs(300);

static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Two people on the page at `base` see each other's video and each other in the list.
async fn two_people_meet(base: &str, browser: Browser, tag: &str) -> Result<()> {
    let room = unique_room(tag);
    let ada = Page::open(browser, "Ada", Media::Granted).await?;
    let bob = Page::open(browser, "Bob", Media::Granted).await?;
    ada.join(base, &room, "Ada").await?;
    ada.wait_in_room().await?;
    bob.join(base, &room, "Bob").await?;
    let met = async {
        bob.wait_remote_playing(1, MEDIA_WAIT).await?;
        ada.wait_remote_playing(1, MEDIA_WAIT).await?;
        for p in [&ada, &bob] {
            p.wait_participants(&["Ada", "Bob"], Duration::from_secs(5))
                .await?;
        }
        anyhow::Ok(())
    }
    .await;
    close_all(vec![ada, bob]).await;
    met
}

/// `trunk build --release`'s page (the build `cargo xtask test` made in target/trunk-dist,
/// glue minified as ours) loads and two people meet in it.
async fn trunk_build_page_joins(browser: Browser) -> Result<()> {
    let _one = ONE_AT_A_TIME.lock().await;
    let dist = workspace_root().join("target/trunk-dist");
    ensure!(
        dist.join("index.html").exists(),
        "no trunk build in {}: run `cargo xtask test`",
        dist.display()
    );
    let app = App::start(|c| c.static_dir = dist).await?;
    let met = two_people_meet(&app.base, browser, "trunk-build").await;
    app.server.shutdown().await?;
    met
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trunk_build_page_joins_a_room_in_chromium() -> Result<()> {
    trunk_build_page_joins(Browser::Chromium).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trunk_build_page_joins_a_room_in_firefox() -> Result<()> {
    trunk_build_page_joins(Browser::Firefox).await
}

/// `trunk serve` with the repository's Trunk.toml, its proxy pointed at the test's server
/// instead of :4000: the page it serves joins a room through the proxied `/socket`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trunk_serve_proxies_a_room() -> Result<()> {
    let _one = ONE_AT_A_TIME.lock().await;
    let root = workspace_root();
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let trunk_origin = format!("http://127.0.0.1:{port}");
    let origin = trunk_origin.clone();
    let app = App::start(move |c| c.allowed_origins = vec![origin]).await?;
    let backend = app
        .base
        .strip_prefix("http://")
        .context("the test server speaks http")?
        .to_owned();
    // The repository's Trunk.toml, with only the proxy's backend moved (and the build's paths
    // made absolute, as the copy lives elsewhere).
    let config = std::fs::read_to_string(root.join("Trunk.toml"))?;
    let ours = "ws://127.0.0.1:4000/socket";
    ensure!(
        config.contains(ours),
        "Trunk.toml no longer proxies {ours}: README's front-end section and this test must follow"
    );
    let dir = root.join("target/trunk-serve");
    std::fs::create_dir_all(&dir)?;
    let config = config
        .replace(ours, &format!("ws://{backend}/socket"))
        .replace(
            "target = \"index.html\"",
            &format!("target = {:?}", root.join("index.html")),
        )
        .replace("dist = \"dist\"", &format!("dist = {:?}", dir.join("dist")));
    std::fs::write(dir.join("Trunk.toml"), config)?;
    let mut cmd = Command::new("trunk");
    cmd.current_dir(&root)
        .args(["serve", "--release", "--address", "127.0.0.1", "--port"])
        .arg(port.to_string())
        .arg("--config")
        .arg(dir.join("Trunk.toml"))
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null());
    // The same wasm build flags as `cargo xtask test`'s trunk build: nothing to recompile.
    if let Ok(flags) = std::env::var("VIDEOROOM_WASM_RUSTFLAGS") {
        cmd.env("CARGO_ENCODED_RUSTFLAGS", flags);
    }
    let mut trunk = Trunk(cmd.spawn().context(
        "starting `trunk serve` (run through `cargo xtask test`, which installs trunk)",
    )?);
    let result = async {
        trunk.wait_answering(port).await?;
        two_people_meet(&trunk_origin, Browser::Chromium, "trunk-serve").await
    }
    .await;
    drop(trunk);
    app.server.shutdown().await?;
    result
}

/// A running `trunk serve`, stopped when dropped.
struct Trunk(Child);

impl Trunk {
    /// Waits until trunk has built the page and serves it (its index names the wasm).
    async fn wait_answering(&mut self, port: u16) -> Result<()> {
        let started = Instant::now();
        loop {
            if let Ok(page) = get_index(port).await {
                if page.contains("_bg.wasm") {
                    println!("trunk serve answered after {:?}", started.elapsed());
                    return Ok(());
                }
            }
            if let Some(status) = self.0.try_wait()? {
                bail!("trunk serve exited before serving the page: {status}");
            }
            if started.elapsed() > SERVE_WAIT {
                bail!("trunk serve did not serve the page within {SERVE_WAIT:?}");
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}

/// `GET /` over plain HTTP/1.0: the whole answer, headers and body.
async fn get_index(port: u16) -> Result<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    stream
        .write_all(format!("GET / HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\r\n").as_bytes())
        .await?;
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer)).await??;
    Ok(String::from_utf8_lossy(&answer).into_owned())
}

impl Drop for Trunk {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
