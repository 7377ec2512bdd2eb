//! One person's browser page and what a person does there: fill the landing form, join, read
//! the tiles, participants and errors, click, type, disconnect.

use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::Value;

use crate::display::VirtualDisplay;
use crate::driver::Driver;
use crate::{Browser, Media, PAGE_WAIT};

/// One person's browser: its own driver process (geckodriver serves one session only) and
/// its own fresh profile.
pub struct Page {
    /// The WebDriver session.
    pub client: Client,
    /// Which browser.
    pub browser: Browser,
    /// Who, for messages.
    pub label: String,
    // Dropped after the session, taking any leftover browser process with it.
    _driver: Driver,
    // Dropped last: the browser was shown on it.
    _display: Option<VirtualDisplay>,
}

/// A remote video tile's state.
#[derive(Debug, Clone, PartialEq)]
pub struct VideoState {
    /// The element id (`video-<peerId>`).
    pub id: String,
    /// `videoWidth`: > 0 once a frame was decoded.
    pub width: u64,
    /// `currentTime`.
    pub time: f64,
}

impl Page {
    /// Starts a browser for one person.
    pub async fn open(browser: Browser, label: &str, media: Media) -> Result<Page> {
        Page::open_on(browser, label, media, None).await
    }

    /// Starts a browser for one person who shares a screen: Firefox then runs on its own
    /// virtual display (headless Chromium captures a fake screen by itself).
    pub async fn open_with_screen(browser: Browser, label: &str, media: Media) -> Result<Page> {
        let display = match browser {
            Browser::Firefox => Some(VirtualDisplay::start().await?),
            Browser::Chromium => None,
        };
        Page::open_on(browser, label, media, display).await
    }

    async fn open_on(
        browser: Browser,
        label: &str,
        media: Media,
        display: Option<VirtualDisplay>,
    ) -> Result<Page> {
        let driver = Driver::start_on(browser, display.as_ref()).await?;
        let client = ClientBuilder::new(HttpConnector::new())
            .capabilities(driver.capabilities(media))
            .connect(&driver.url)
            .await
            .map_err(|e| anyhow!("opening a {browser} session: {e}"))?;
        Ok(Page {
            client,
            browser,
            label: label.to_owned(),
            _driver: driver,
            _display: display,
        })
    }

    fn name(&self) -> String {
        format!("{} ({})", self.label, self.browser)
    }

    /// Runs a script and returns its value.
    pub async fn js(&self, script: &str) -> Result<Value> {
        self.client
            .execute(script, vec![])
            .await
            .with_context(|| format!("{}: running script", self.name()))
    }

    /// Polls `script` until it returns something truthy; fails naming `what`.
    pub async fn wait_js(&self, what: &str, timeout: Duration, script: &str) -> Result<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let v = self.js(script).await?;
            let truthy = match &v {
                Value::Null => false,
                Value::Bool(b) => *b,
                Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
                Value::String(s) => !s.is_empty(),
                Value::Array(a) => !a.is_empty(),
                Value::Object(_) => true,
            };
            if truthy {
                return Ok(v);
            }
            if Instant::now() > deadline {
                let url = self
                    .client
                    .current_url()
                    .await
                    .map(|u| u.to_string())
                    .unwrap_or_default();
                let error = self.error_text().await.unwrap_or_default();
                bail!(
                    "{}: timed out after {timeout:?} waiting for {what} (at {url}; error area: {error:?}; participants: {:?})",
                    self.name(),
                    self.participants_text().await.unwrap_or_default()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Opens the landing page, fills the form and clicks Join. Returns when the click is done.
    pub async fn join(&self, base: &str, room: &str, display_name: &str) -> Result<Instant> {
        self.client.goto(&format!("{base}/")).await?;
        self.fill_and_click_join(room, display_name).await
    }

    /// Fills the landing form that is already shown, and clicks Join.
    pub async fn fill_and_click_join(&self, room: &str, display_name: &str) -> Result<Instant> {
        let room_input = self.wait_for_form().await?;
        room_input.clear().await?;
        room_input.send_keys(room).await?;
        let name_input = self.client.find(Locator::Css("#display_name")).await?;
        name_input.clear().await?;
        name_input.send_keys(display_name).await?;
        let join = self.client.find(Locator::Css("#join")).await?;
        let clicked = Instant::now();
        join.click().await?;
        Ok(clicked)
    }

    /// Waits for the landing form. On a closed network with two cores, a page load has been
    /// seen to stall on rare CI runs (the form never rendered, the server saw no request):
    /// what the page had loaded is printed, and it is reloaded, within `PAGE_WAIT` in all.
    async fn wait_for_form(&self) -> Result<fantoccini::elements::Element> {
        const TRIES: u32 = 3;
        let mut seen = String::new();
        for attempt in 1..=TRIES {
            match self
                .client
                .wait()
                .at_most(PAGE_WAIT / TRIES)
                .for_element(Locator::Css("#room_name"))
                .await
            {
                Ok(e) => return Ok(e),
                Err(e) => {
                    seen = self.load_state().await;
                    eprintln!(
                        "{}: no landing form after {:?} (try {attempt} of {TRIES}: {e}); the page had: {seen}",
                        self.name(),
                        PAGE_WAIT / TRIES
                    );
                    if attempt < TRIES {
                        self.client.refresh().await?;
                    }
                }
            }
        }
        bail!(
            "{}: no landing form within {PAGE_WAIT:?}; the page had: {seen}",
            self.name()
        )
    }

    /// What the page has loaded: URL, ready state, resources fetched and how long each took,
    /// and the start of its body.
    async fn load_state(&self) -> String {
        let script = "return JSON.stringify({url: location.href, ready: document.readyState,
            resources: performance.getEntriesByType('resource').map(r =>
                r.name + ' ' + Math.round(r.duration) + 'ms ' + r.transferSize + 'B'),
            body: (document.body ? document.body.innerHTML : '').slice(0, 300)});";
        match self.js(script).await {
            Ok(Value::String(s)) => s,
            Ok(other) => other.to_string(),
            Err(e) => format!("(could not read it: {e:#})"),
        }
    }

    /// Waits until the room page is up.
    pub async fn wait_in_room(&self) -> Result<()> {
        self.wait_js(
            "the room page",
            PAGE_WAIT,
            "return document.querySelector('#room') !== null",
        )
        .await
        .map(|_| ())
    }

    /// The remote video tiles (every video but the local one).
    pub async fn remote_videos(&self) -> Result<Vec<VideoState>> {
        let v = self
            .js("return [...document.querySelectorAll('#videos-grid video')]
                    .filter(v => v.id !== 'video-local-peer')
                    .map(v => [v.id, v.videoWidth, v.currentTime]);")
            .await?;
        let list = v.as_array().cloned().unwrap_or_default();
        Ok(list
            .iter()
            .filter_map(|e| {
                Some(VideoState {
                    id: e.get(0)?.as_str()?.to_owned(),
                    width: e.get(1)?.as_u64().unwrap_or(0),
                    time: e.get(2)?.as_f64().unwrap_or(0.0),
                })
            })
            .collect())
    }

    /// Waits until exactly `n` remote videos show frames and their playback advances.
    pub async fn wait_remote_playing(
        &self,
        n: usize,
        timeout: Duration,
    ) -> Result<Vec<VideoState>> {
        let script = format!(
            "const v = [...document.querySelectorAll('#videos-grid video')]
                .filter(v => v.id !== 'video-local-peer');
             return v.length === {n} && v.every(v => v.videoWidth > 0);"
        );
        self.wait_js(&format!("{n} remote videos with frames"), timeout, &script)
            .await?;
        let first = self.remote_videos().await?;
        // currentTime must advance: the video is playing, not frozen on one frame.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            tokio::time::sleep(Duration::from_millis(300)).await;
            let now = self.remote_videos().await?;
            let advancing = now.len() == n
                && now.iter().all(|v| {
                    first
                        .iter()
                        .find(|f| f.id == v.id)
                        .is_some_and(|f| v.time > f.time)
                });
            if advancing {
                return Ok(now);
            }
            if Instant::now() > deadline {
                bail!(
                    "{}: remote videos not advancing: before {first:?}, after {now:?}",
                    self.name()
                );
            }
        }
    }

    /// The participants list's text ("Participants: a, b").
    pub async fn participants_text(&self) -> Result<String> {
        let v = self
            .js("const e = document.querySelector('#participants-list'); return e ? e.textContent : '';")
            .await?;
        Ok(v.as_str().unwrap_or_default().to_owned())
    }

    /// Waits until the participants list names exactly these people (in any order).
    pub async fn wait_participants(&self, names: &[&str], timeout: Duration) -> Result<()> {
        let expected: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        let deadline = Instant::now() + timeout;
        loop {
            let text = self.participants_text().await?;
            let mut got: Vec<String> = text
                .trim()
                .strip_prefix("Participants:")
                .unwrap_or("")
                .split(',')
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .collect();
            got.sort();
            let mut want = expected.clone();
            want.sort();
            if got == want {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "{}: participants list is {text:?}, expected {want:?}",
                    self.name()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The visible error text, if any.
    pub async fn error_text(&self) -> Result<String> {
        let v = self
            .js("const e = document.querySelector('#videochat-error');
                 return e && !e.hidden ? e.textContent : '';")
            .await?;
        Ok(v.as_str().unwrap_or_default().trim().to_owned())
    }

    /// Waits until the error area shows exactly `text`.
    pub async fn wait_error(&self, text: &str, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            let got = self.error_text().await?;
            if got == text {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "{}: error area shows {got:?}, expected {text:?}",
                    self.name()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Runs `body` on the page's peer connection's `getStats()` report: JavaScript with the
    /// report as `stats`, answering with `done(value)`. Fails when the page has no connection or
    /// the value is `null`.
    pub async fn with_stats(&self, body: &str) -> Result<Value> {
        let script = format!(
            "const done = arguments[arguments.length - 1];
             const pc = window.videoroomPeerConnection;
             if (!pc) {{ done(null); return; }}
             pc.getStats().then(stats => {{ {body} }}, () => done(null));"
        );
        let v = self.client.execute_async(&script, vec![]).await?;
        if v.is_null() {
            bail!("{}: no peer connection statistics", self.name());
        }
        Ok(v)
    }

    /// Inbound RTP bytes per kind from the page's peer connection (via `getStats`).
    pub async fn inbound_bytes(&self) -> Result<(u64, u64)> {
        let v = self
            .with_stats(
                "let audio = 0, video = 0;
                 stats.forEach(s => {
                   if (s.type === 'inbound-rtp') {
                     if (s.kind === 'audio') audio += s.bytesReceived || 0;
                     if (s.kind === 'video') video += s.bytesReceived || 0;
                   }
                 });
                 done([audio, video]);",
            )
            .await?;
        let pair = v.as_array().map(Vec::as_slice).unwrap_or_default();
        Ok((
            pair.first().and_then(Value::as_u64).unwrap_or(0),
            pair.get(1).and_then(Value::as_u64).unwrap_or(0),
        ))
    }

    /// The page's outbound video streams (via `getStats`): one per simulcast layer, else one.
    pub async fn outbound_video(&self) -> Result<Vec<OutboundVideo>> {
        let v = self
            .with_stats(
                "const out = [];
                 stats.forEach(s => {
                   if (s.type === 'outbound-rtp' && s.kind === 'video') {
                     out.push([s.rid || '', s.bytesSent || 0, s.frameWidth || 0,
                               s.frameHeight || 0]);
                   }
                 });
                 done(out);",
            )
            .await?;
        let rows = v.as_array().map(Vec::as_slice).unwrap_or_default();
        Ok(rows
            .iter()
            .filter_map(Value::as_array)
            .map(|r| OutboundVideo {
                rid: r
                    .first()
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
                bytes_sent: r.get(1).and_then(Value::as_u64).unwrap_or(0),
                width: r.get(2).and_then(Value::as_u64).unwrap_or(0),
                height: r.get(3).and_then(Value::as_u64).unwrap_or(0),
            })
            .collect())
    }

    /// The frame height of the video received from each remote camera, per `inbound-rtp`
    /// stream that has decoded a frame (via `getStats`).
    pub async fn inbound_video_heights(&self) -> Result<Vec<u64>> {
        let v = self
            .with_stats(
                "const out = [];
                 stats.forEach(s => {
                   if (s.type === 'inbound-rtp' && s.kind === 'video' && s.frameHeight) {
                     out.push(s.frameHeight);
                   }
                 });
                 done(out);",
            )
            .await?;
        let rows = v.as_array().map(Vec::as_slice).unwrap_or_default();
        Ok(rows.iter().filter_map(Value::as_u64).collect())
    }

    /// The height of the frames the tile of peer `peer_id` shows (its `<video>`'s
    /// `videoHeight`: the layer this page receives), 0 before the first frame.
    pub async fn video_height_of(&self, peer_id: &str) -> Result<u64> {
        let v = self
            .client
            .execute(
                "const v = document.getElementById('video-' + arguments[0]);
                 return v ? v.videoHeight : 0;",
                vec![Value::from(peer_id)],
            )
            .await?;
        Ok(v.as_u64().unwrap_or(0))
    }

    /// Frames decoded of peer `peer_id`'s video so far: `framesDecoded` of the receiver of
    /// the video its tile plays (0 before any).
    pub async fn frames_of(&self, peer_id: &str) -> Result<u64> {
        let v = self
            .client
            .execute_async(
                "const [id, done] = arguments;
                 const v = document.getElementById('video-' + id);
                 const track = v && v.srcObject && v.srcObject.getVideoTracks()[0];
                 const pc = window.videoroomPeerConnection;
                 const receiver = track && pc &&
                   pc.getReceivers().find(r => r.track && r.track.id === track.id);
                 if (!receiver) { done(0); return; }
                 receiver.getStats().then(stats => {
                   let frames = 0;
                   stats.forEach(s => {
                     if (s.type === 'inbound-rtp' && s.kind === 'video') {
                       frames = Math.max(frames, s.framesDecoded || 0);
                     }
                   });
                   done(frames);
                 }, () => done(0));",
                vec![Value::from(peer_id)],
            )
            .await?;
        Ok(v.as_u64().unwrap_or(0))
    }

    /// The camera's simulcast encodings: each RID and whether it is `active`.
    pub async fn camera_encodings(&self) -> Result<Vec<(String, bool)>> {
        let v = self
            .client
            .execute(
                "const pc = window.videoroomPeerConnection;
                 const sender = pc && pc.getSenders()
                   .find(s => s.track && s.track.kind === 'video');
                 if (!sender) return [];
                 return (sender.getParameters().encodings || [])
                   .map(e => [e.rid || '', e.active !== false]);",
                vec![],
            )
            .await?;
        let rows = v.as_array().map(Vec::as_slice).unwrap_or_default();
        Ok(rows
            .iter()
            .filter_map(Value::as_array)
            .map(|r| {
                (
                    r.first()
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_owned(),
                    r.get(1).and_then(Value::as_bool).unwrap_or(true),
                )
            })
            .collect())
    }

    /// Resizes the browser window, as a person does.
    pub async fn set_window_size(&self, width: u32, height: u32) -> Result<()> {
        self.client
            .set_window_size(width, height)
            .await
            .with_context(|| format!("{}: resizing the window", self.name()))
    }

    /// Turns the camera's simulcast encoding `rid` on or off, as a page may with
    /// `RTCRtpSender.setParameters` (and browsers do by themselves under load).
    pub async fn set_encoding_active(&self, rid: &str, active: bool) -> Result<()> {
        let v = self
            .client
            .execute_async(
                "const [rid, active, done] = arguments;
                 const pc = window.videoroomPeerConnection;
                 const sender = pc && pc.getSenders()
                   .find(s => s.track && s.track.kind === 'video');
                 if (!sender) { done('no video sender'); return; }
                 const p = sender.getParameters();
                 const e = (p.encodings || []).find(e => e.rid === rid);
                 if (!e) { done('no encoding ' + rid + ' in ' + JSON.stringify(p.encodings)); return; }
                 e.active = active;
                 sender.setParameters(p).then(() => done(''), err => done(String(err)));",
                vec![Value::from(rid), Value::from(active)],
            )
            .await?;
        match v.as_str() {
            Some("") => Ok(()),
            other => bail!("{}: setParameters: {other:?}", self.name()),
        }
    }

    /// Clicks the element matching `css`.
    pub async fn click(&self, css: &str) -> Result<()> {
        self.client
            .find(Locator::Css(css))
            .await
            .with_context(|| format!("{}: no {css}", self.name()))?
            .click()
            .await?;
        Ok(())
    }

    /// Types `text` into the element matching `css` (WebDriver key events, as a person types).
    pub async fn type_into(&self, css: &str, text: &str) -> Result<()> {
        self.client
            .find(Locator::Css(css))
            .await
            .with_context(|| format!("{}: no {css}", self.name()))?
            .send_keys(text)
            .await?;
        Ok(())
    }

    /// Presses one key on the page body (keyboard shortcuts).
    pub async fn press_key(&self, key: &str) -> Result<()> {
        self.client
            .find(Locator::Css("body"))
            .await?
            .send_keys(key)
            .await?;
        Ok(())
    }

    /// The peer id behind the remote tile labelled `name` (tiles are `feed-<peerId>`).
    pub async fn peer_id_of(&self, name: &str, timeout: Duration) -> Result<String> {
        let script = format!(
            "const f = [...document.querySelectorAll('#videos-grid > [id^=feed-]')]
                .find(f => !f.id.startsWith('feed-screen-') && f.id !== 'feed-local-peer'
                    && f.querySelector('[data-role=video-label]')?.textContent === {name});
             return f ? f.id.slice('feed-'.length) : null;",
            name = serde_json::to_string(name)?
        );
        let v = self
            .wait_js(&format!("a tile for {name}"), timeout, &script)
            .await?;
        Ok(v.as_str().unwrap_or_default().to_owned())
    }

    /// Waits until the element with id `id` has attribute `attr` equal to `value`.
    pub async fn wait_attr(
        &self,
        id: &str,
        attr: &str,
        value: &str,
        timeout: Duration,
    ) -> Result<()> {
        let script = format!(
            "const e = document.getElementById({id}); return !!e && e.getAttribute({attr}) === {value};",
            id = serde_json::to_string(id)?,
            attr = serde_json::to_string(attr)?,
            value = serde_json::to_string(value)?,
        );
        self.wait_js(&format!("#{id}[{attr}={value}]"), timeout, &script)
            .await
            .map(|_| ())
    }

    /// Waits until the video element with id `id` shows frames and its playback advances.
    pub async fn wait_video_playing(&self, id: &str, timeout: Duration) -> Result<()> {
        let id = serde_json::to_string(id)?;
        let script = format!(
            "const v = document.getElementById({id});
             if (!v || v.videoWidth === 0) return false;
             const seen = v.dataset.e2eSeen ? Number(v.dataset.e2eSeen) : -1;
             v.dataset.e2eSeen = String(v.currentTime);
             return seen >= 0 && v.currentTime > seen;"
        );
        let deadline = Instant::now() + timeout;
        loop {
            if self.js(&script).await? == Value::Bool(true) {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("{}: video {id} not playing within {timeout:?}", self.name());
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }

    /// Clicks Disconnect.
    pub async fn disconnect(&self) -> Result<()> {
        self.client
            .find(Locator::Css("#disconnect"))
            .await?
            .click()
            .await?;
        Ok(())
    }

    /// Saves a PNG screenshot.
    pub async fn screenshot(&self, path: &std::path::Path) -> Result<()> {
        let png = self.client.screenshot().await?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(path, png)?;
        Ok(())
    }

    /// Ends the browser session (as closing the window).
    pub async fn close(self) -> Result<()> {
        self.client.close().await?;
        Ok(())
    }
}

/// One outbound video stream of a page, from its `outbound-rtp` stats.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundVideo {
    /// The simulcast layer's RID, empty for a single stream.
    pub rid: String,
    /// Bytes sent so far.
    pub bytes_sent: u64,
    /// The size of the frames it sends (0 before the first).
    pub width: u64,
    /// See `width`.
    pub height: u64,
}
