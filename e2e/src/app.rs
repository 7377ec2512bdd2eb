//! The app under test: the real server, in process, serving the built client.

use anyhow::{bail, Result};
use server::{Config, RunningServer};

use crate::workspace_root;

/// The app under test: the real server serving the built client from `dist/`.
pub struct App {
    /// The running server.
    pub server: RunningServer,
    /// `http://127.0.0.1:<port>` (`https:` when the server has TLS on).
    pub base: String,
}

impl App {
    /// Starts the server on a free loopback port; `tweak` adjusts the configuration.
    pub async fn start(tweak: impl FnOnce(&mut Config)) -> Result<App> {
        let dist = workspace_root().join("dist");
        if !dist.join("index.html").exists() {
            bail!(
                "no built client in {}: run `cargo xtask test` (or `cargo xtask build-client`)",
                dist.display()
            );
        }
        // The server's log, when asked for (`RUST_LOG=server=debug`): on stderr, with the test's.
        if std::env::var_os("RUST_LOG").is_some() {
            server::logging::init(std::io::stderr);
        }
        let mut config = Config::for_tests();
        config.static_dir = dist;
        tweak(&mut config);
        let server = server::start(config).await?;
        let base = server.url();
        Ok(App { server, base })
    }
}
