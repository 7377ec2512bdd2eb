//! One WebDriver process per browser (chromedriver, geckodriver), with the flags and prefs
//! that make each usable here: loopback ICE, fake media, no background networking.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

use crate::display::VirtualDisplay;
use crate::{free_port, Browser, Media};

/// A WebDriver process, killed on drop.
pub struct Driver {
    child: Child,
    /// Its WebDriver endpoint.
    pub(crate) url: String,
    /// Which browser it drives.
    pub browser: Browser,
    /// The X display its browser shows on; headless when None.
    display: Option<String>,
}

impl Driver {
    /// Starts chromedriver or geckodriver on a free loopback port.
    pub async fn start(browser: Browser) -> Result<Driver> {
        Driver::start_on(browser, None).await
    }

    /// As [`start`](Self::start), with Firefox shown on `display` instead of headless.
    pub async fn start_on(browser: Browser, display: Option<&VirtualDisplay>) -> Result<Driver> {
        let display = display
            .filter(|_| browser == Browser::Firefox)
            .map(|d| d.name.clone());
        let port = free_port()?;
        let mut cmd = match browser {
            Browser::Chromium => {
                let bin = std::env::var("VIDEOROOM_CHROMEDRIVER")
                    .unwrap_or_else(|_| "/usr/bin/chromedriver".into());
                let mut c = Command::new(bin);
                c.arg(format!("--port={port}"));
                c
            }
            Browser::Firefox => {
                let bin = std::env::var("VIDEOROOM_GECKODRIVER").unwrap_or_else(|_| {
                    let home = std::env::var("HOME").unwrap_or_default();
                    format!("{home}/.cargo/bin/geckodriver")
                });
                let mut c = Command::new(bin);
                c.args(["--port", &port.to_string()])
                    .args(["--websocket-port", &free_port()?.to_string()]);
                match &display {
                    Some(d) => c.env("DISPLAY", d),
                    None => c.env("MOZ_HEADLESS", "1"),
                };
                c
            }
        };
        // Its own process group, so that dropping the driver also ends the browsers it started,
        // even when a test fails before closing its sessions.
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        if std::env::var_os("VIDEOROOM_E2E_DRIVER_LOGS").is_none() {
            cmd.stdout(Stdio::null()).stderr(Stdio::null());
        }
        let child = cmd.spawn().with_context(|| {
            format!("starting the {browser} driver (run `cargo xtask test`, which installs it)")
        })?;
        let driver = Driver {
            child,
            url: format!("http://127.0.0.1:{port}"),
            browser,
            display,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            if Instant::now() > deadline {
                bail!("{browser} driver did not listen within 20 s");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(driver)
    }

    pub(crate) fn capabilities(&self, media: Media) -> serde_json::Map<String, Value> {
        let caps = match self.browser {
            Browser::Chromium => {
                let mut args = vec![
                    "--headless=new",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-dev-shm-usage",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    "--no-first-run",
                    "--disable-quic",
                    // Three fake cameras (the second, a depth format, sent no video here), so that
                    // choosing and switching devices can be exercised.
                    "--use-fake-device-for-media-stream=device-count=3",
                    "--autoplay-policy=no-user-gesture-required",
                    "--window-size=1280,800",
                    // The test server is confined to 127.0.0.1: give it a loopback candidate.
                    "--allow-loopback-in-peer-connection",
                ];
                args.push(match media {
                    Media::Granted => "--use-fake-ui-for-media-stream",
                    Media::Refused => "--use-fake-ui-for-media-stream=deny",
                });
                json!({
                    "browserName": "chrome",
                    "goog:chromeOptions": {
                        "binary": std::env::var("VIDEOROOM_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into()),
                        "args": args,
                    }
                })
            }
            Browser::Firefox => {
                let granted = media == Media::Granted;
                json!({
                    "browserName": "firefox",
                    "moz:firefoxOptions": {
                        "args": if self.display.is_some() {
                            vec!["-width=1280", "-height=800"]
                        } else {
                            vec!["-headless", "-width=1280", "-height=800"]
                        },
                        "prefs": {
                            "media.navigator.streams.fake": true,
                            "media.navigator.permission.disabled": granted,
                            // Granted also matters to ICE: without a camera/microphone
                            // permission Firefox gathers on the default-route interface only,
                            // never on loopback.
                            "permissions.default.camera": if granted { 1 } else { 2 },
                            "permissions.default.microphone": if granted { 1 } else { 2 },
                            // The test server offers only 127.0.0.1 candidates.
                            "media.peerconnection.ice.loopback": true,
                            "media.peerconnection.ice.obfuscate_host_addresses": false,
                            "media.autoplay.default": 0,
                            "media.autoplay.blocking_policy": 0,
                            // Keep Firefox off the network.
                            "app.update.enabled": false,
                            "browser.shell.checkDefaultBrowser": false,
                            "datareporting.policy.dataSubmissionEnabled": false,
                            "network.captive-portal-service.enabled": false,
                            "network.connectivity-service.enabled": false,
                            "services.settings.server": "data:,#remote-settings-off/v1",
                            "browser.safebrowsing.update.enabled": false,
                            "extensions.update.enabled": false,
                            "media.gmp-manager.updateEnabled": false,
                            "network.dns.disablePrefetch": true,
                            "network.prefetch-next": false,
                        }
                    }
                })
            }
        };
        match caps {
            Value::Object(mut m) => {
                // The HTTPS scenario serves a self-signed development certificate.
                m.insert("acceptInsecureCerts".into(), Value::Bool(true));
                m
            }
            _ => serde_json::Map::new(),
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        if let Ok(pid) = i32::try_from(self.child.id()) {
            // SAFETY: kill(2) with a negative pid signals the process group we created.
            unsafe {
                libc::kill(-pid, libc::SIGKILL);
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
