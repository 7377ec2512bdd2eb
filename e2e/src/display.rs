//! The virtual display a screen-sharing Firefox runs on.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};

/// An X server without a screen (Xvfb, unix socket only), killed on drop: headless Firefox has
/// nothing for `getDisplayMedia` to capture, a Firefox on this display has.
pub struct VirtualDisplay {
    child: Child,
    /// `:<n>`, for `DISPLAY`.
    pub name: String,
}

impl VirtualDisplay {
    /// Starts Xvfb on the first free display number from 90.
    pub async fn start() -> Result<VirtualDisplay> {
        let n = (90..190)
            .find(|n| {
                !std::path::Path::new(&format!("/tmp/.X11-unix/X{n}")).exists()
                    && !std::path::Path::new(&format!("/tmp/.X{n}-lock")).exists()
            })
            .ok_or_else(|| anyhow!("no free X display number"))?;
        let name = format!(":{n}");
        let child = Command::new("Xvfb")
            .args([&name, "-screen", "0", "1280x800x24", "-nolisten", "tcp"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting Xvfb (run `cargo xtask test`, which installs it)")?;
        let display = VirtualDisplay { child, name };
        let socket = format!("/tmp/.X11-unix/X{n}");
        let deadline = Instant::now() + Duration::from_secs(10);
        while !std::path::Path::new(&socket).exists() {
            if Instant::now() > deadline {
                bail!("Xvfb {} did not start within 10 s", display.name);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(display)
    }
}

impl Drop for VirtualDisplay {
    fn drop(&mut self) {
        // SIGTERM, so that Xvfb removes its socket and lock file.
        if let Ok(pid) = i32::try_from(self.child.id()) {
            // SAFETY: kill(2) on our own child's pid.
            unsafe {
                libc::kill(pid, libc::SIGTERM);
            }
        }
        let _ = self.child.wait();
    }
}
