//! The end-to-end harness: the real server (in process, ICE on 127.0.0.1) serving the built
//! client, and real headless Chromium and Firefox driven over WebDriver (chromedriver,
//! geckodriver) with fake camera and microphone — used exactly as a person would: the landing
//! form, the Join button, the Disconnect button, the page's own text and video elements.

use std::net::TcpListener;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;

mod app;
mod display;
mod driver;
mod page;

pub use app::App;
pub use display::VirtualDisplay;
pub use driver::Driver;
pub use page::{OutboundVideo, Page, VideoState};

/// How long a page may take to show its form or its room. Generous: with four browsers, a
/// TURN relay and the server on two cores, a page has taken over 20 s to load (a readiness
/// wait, not a speed check: a working page passes at once).
pub const PAGE_WAIT: Duration = Duration::from_secs(60);

/// A browser we support.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Browser {
    /// Debian's Chromium through chromedriver.
    Chromium,
    /// Firefox ESR through geckodriver.
    Firefox,
}

impl std::fmt::Display for Browser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Browser::Chromium => "Chromium",
            Browser::Firefox => "Firefox",
        })
    }
}

/// Whether the browser grants camera and microphone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Media {
    /// Fake devices, granted without a prompt.
    Granted,
    /// Permission refused.
    Refused,
}

fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// A room name no other test (in this process or another) uses: `<tag>-<pid>-<n>`.
pub fn unique_room(tag: &str) -> String {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{tag}-{}-{n}", std::process::id())
}

/// Ends every page's browser session, ignoring sessions already gone.
pub async fn close_all(pages: Vec<Page>) {
    for p in pages {
        let _ = p.close().await;
    }
}

/// The workspace root (the built client is in `dist/` there).
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(PathBuf::from)
        .unwrap_or_default()
}

/// Where screenshots and other artefacts go.
pub fn artefacts_dir() -> PathBuf {
    workspace_root().join("target/e2e")
}
