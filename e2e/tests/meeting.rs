//! Meeting features in real browsers: mute, chat, screen share, active speaker, connection
//! quality, devices and reconnecting — each in Chromium and in Firefox, used through the page's
//! own buttons, keys and text as a person would.
//!
//! Run through `cargo xtask test` (it builds the client and installs the browsers and drivers).

use std::time::{Duration, Instant};

use anyhow::{ensure, Result};
use e2e::{App, Browser, Media, Page};
use serde_json::Value;

const MEDIA_WAIT: Duration = Duration::from_secs(30);
const EVENT_WAIT: Duration = Duration::from_secs(5);

use e2e::{close_all, unique_room as room};

async fn open(b: Browser, label: &str) -> Result<Page> {
    Page::open(b, label, Media::Granted).await
}

/// Two people in a room, both seeing the other's video.
async fn pair(app: &App, browser: Browser, room: &str) -> Result<(Page, Page)> {
    let ada = open(browser, "Ada").await?;
    let bob = open(browser, "Bob").await?;
    ada.join(&app.base, room, "Ada").await?;
    ada.wait_in_room().await?;
    bob.join(&app.base, room, "Bob").await?;
    ada.wait_remote_playing(1, MEDIA_WAIT).await?;
    bob.wait_remote_playing(1, MEDIA_WAIT).await?;
    Ok((ada, bob))
}

/// Scenario m1: Bob mutes his microphone with the button and his camera with the `v` key;
/// Ada's tile for him shows both, his camera track is disabled (no frames, not a frozen one),
/// and unmuting brings his video back.
async fn mute_and_unmute(browser: Browser) -> Result<()> {
    let app = App::start(|_| {}).await?;
    let (ada, bob) = pair(&app, browser, &room("mute")).await?;
    let bob_id = ada.peer_id_of("Bob", EVENT_WAIT).await?;
    let tile = format!("feed-{bob_id}");
    ada.wait_attr(&tile, "data-mic-muted", "false", EVENT_WAIT)
        .await?;

    bob.click("#toggle-mic").await?;
    bob.wait_attr("toggle-mic", "aria-pressed", "true", EVENT_WAIT)
        .await?;
    bob.press_key("v").await?;
    bob.wait_attr("toggle-camera", "aria-pressed", "true", EVENT_WAIT)
        .await?;
    let started = Instant::now();
    ada.wait_attr(&tile, "data-mic-muted", "true", EVENT_WAIT)
        .await?;
    ada.wait_attr(&tile, "data-camera-muted", "true", EVENT_WAIT)
        .await?;
    println!(
        "[{browser}] mute seen by the other side after {:?}",
        started.elapsed()
    );
    bob.wait_attr("feed-local-peer", "data-camera-muted", "true", EVENT_WAIT)
        .await?;
    let enabled = bob
        .js(
            "const s = document.getElementById('video-local-peer').srcObject;
             return s.getTracks().map(t => t.kind + ':' + t.enabled).sort().join(',');",
        )
        .await?;
    ensure!(
        enabled == "audio:false,video:false",
        "[{browser}] Bob's muted tracks are still enabled: {enabled}"
    );
    // The muted camera is not shown as a frozen picture.
    let visible = ada
        .js(&format!(
            "const v = document.getElementById('video-{bob_id}');
             return v.offsetParent !== null && getComputedStyle(v).visibility !== 'hidden';"
        ))
        .await?;
    ensure!(
        visible == false,
        "[{browser}] Ada still shows Bob's muted camera"
    );

    // Unmute both; the others' tile plays again.
    bob.click("#toggle-camera").await?;
    bob.press_key("m").await?;
    ada.wait_attr(&tile, "data-camera-muted", "false", EVENT_WAIT)
        .await?;
    ada.wait_attr(&tile, "data-mic-muted", "false", EVENT_WAIT)
        .await?;
    ada.wait_video_playing(&format!("video-{bob_id}"), MEDIA_WAIT)
        .await?;
    close_all(vec![ada, bob]).await;
    app.server.shutdown().await
}

/// Scenario m2: chat. Ada writes (HTML stays text), Bob reads it with her name and the time;
/// Cy, joining later, sees the history; an over-long message is refused with the reason.
async fn chat(browser: Browser) -> Result<()> {
    let app = App::start(|_| {}).await?;
    let room = room("chat");
    let (ada, bob) = pair(&app, browser, &room).await?;
    let text = "Hello <b>Bob</b> & all";
    ada.click("#toggle-chat").await?;
    ada.type_into("#chat-input", text).await?;
    ada.click("#chat-send").await?;

    let last = "const m = [...document.querySelectorAll('#chat-messages .chat-message')].pop();
        return m ? [m.querySelector('[data-role=chat-author]').textContent,
                    m.querySelector('[data-role=chat-text]').textContent,
                    m.querySelector('[data-role=chat-time]').getAttribute('datetime'),
                    m.querySelectorAll('b').length] : null;";
    // Bob's panel is closed: an unread badge first, then the message.
    bob.wait_js(
        "an unread chat badge",
        EVENT_WAIT,
        "const b = document.getElementById('chat-unread'); return !!b && !b.hidden && b.textContent.trim() === '1';",
    )
    .await?;
    bob.click("#toggle-chat").await?;
    let got = bob.wait_js("Ada's chat message", EVENT_WAIT, last).await?;
    ensure!(
        got[0] == "Ada" && got[1] == text && got[3] == 0,
        "[{browser}] Bob sees {got}"
    );
    ensure!(
        got[2].as_str().is_some_and(|t| t.contains('T')),
        "[{browser}] no ISO time on the message: {got}"
    );
    // Enter sends; the sender sees its own message once.
    bob.type_into("#chat-input", "Hi Ada\u{E007}").await?;
    ada.wait_js(
        "Bob's reply",
        EVENT_WAIT,
        "return [...document.querySelectorAll('#chat-messages [data-role=chat-text]')].map(e => e.textContent).join('|') === 'Hello <b>Bob</b> & all|Hi Ada';",
    )
    .await?;

    // Too long: refused on the page with the reason, nothing sent.
    let long = "x".repeat(protocol::MAX_CHAT_CHARS + 1);
    bob.js(&format!(
        "const i = document.getElementById('chat-input'); i.removeAttribute('maxlength'); i.value = '{long}';"
    ))
    .await?;
    bob.click("#chat-send").await?;
    bob.wait_js(
        "the chat refusal",
        EVENT_WAIT,
        "const e = document.getElementById('chat-error'); return !!e && !e.hidden && e.textContent.includes('limit');",
    )
    .await?;

    // A late joiner gets the history.
    let cy = open(browser, "Cy").await?;
    cy.join(&app.base, &room, "Cy").await?;
    cy.wait_remote_playing(2, MEDIA_WAIT).await?;
    cy.click("#toggle-chat").await?;
    cy.wait_js(
        "the chat history",
        EVENT_WAIT,
        "return [...document.querySelectorAll('#chat-messages [data-role=chat-author]')].map(e => e.textContent).join(',') === 'Ada,Bob';",
    )
    .await?;
    close_all(vec![ada, bob, cy]).await;
    app.server.shutdown().await
}

/// Scenario m3: Ada shares her screen; Bob sees it as its own large tile with her name, beside
/// her camera; Ada stops; the tile goes; sharing again works on the renegotiated connection.
async fn screen_share(browser: Browser) -> Result<()> {
    let app = App::start(|_| {}).await?;
    let room = room("screen");
    let ada = Page::open_with_screen(browser, "Ada", Media::Granted).await?;
    let bob = open(browser, "Bob").await?;
    ada.join(&app.base, &room, "Ada").await?;
    ada.wait_in_room().await?;
    bob.join(&app.base, &room, "Bob").await?;
    ada.wait_remote_playing(1, MEDIA_WAIT).await?;
    bob.wait_remote_playing(1, MEDIA_WAIT).await?;
    let ada_id = bob.peer_id_of("Ada", EVENT_WAIT).await?;
    for round in 1..=2 {
        let clicked = Instant::now();
        ada.click("#toggle-screen").await?;
        ada.wait_attr("toggle-screen", "aria-pressed", "true", EVENT_WAIT)
            .await?;
        bob.wait_video_playing(&format!("video-screen-{ada_id}"), MEDIA_WAIT)
            .await?;
        println!(
            "[{browser}] share {round}: click → screen playing for the other: {:?}",
            clicked.elapsed()
        );
        let label = bob
            .js(&format!(
                "return document.getElementById('feed-screen-{ada_id}').querySelector('[data-role=video-label]').textContent"
            ))
            .await?;
        ensure!(label == "Ada's screen", "[{browser}] screen label {label}");
        // Her camera still plays beside it.
        bob.wait_video_playing(&format!("video-{ada_id}"), MEDIA_WAIT)
            .await?;
        if round == 1 {
            // The README's picture: Ada presenting and speaking (Bob's microphone off, so the
            // highlight is hers alone), the whole room in view.
            bob.click("#toggle-mic").await?;
            bob.wait_attr(
                &format!("feed-{ada_id}"),
                "data-speaking",
                "true",
                Duration::from_secs(10),
            )
            .await?;
            bob.client.set_window_size(1280, 1400).await?;
            bob.js("window.scrollTo(0, 0)").await?;
            tokio::time::sleep(Duration::from_millis(500)).await;
            let shot = e2e::artefacts_dir().join(format!(
                "screen-share-{}.png",
                browser.to_string().to_lowercase()
            ));
            bob.screenshot(&shot).await?;
            bob.click("#toggle-mic").await?;
            println!(
                "[{browser}] screenshot of a shared screen: {}",
                shot.display()
            );
        }
        ada.click("#toggle-screen").await?;
        bob.wait_js(
            "the screen tile gone",
            Duration::from_secs(10),
            &format!("return document.getElementById('feed-screen-{ada_id}') === null"),
        )
        .await?;
    }
    bob.wait_video_playing(&format!("video-{ada_id}"), MEDIA_WAIT)
        .await?;
    close_all(vec![ada, bob]).await;
    app.server.shutdown().await
}

/// Scenario m4: active speaker. With Bob's microphone muted, Ada (the browser's fake microphone
/// makes sound) is highlighted on both pages and Bob is not; then they swap.
async fn active_speaker(browser: Browser) -> Result<()> {
    let app = App::start(|_| {}).await?;
    let (ada, bob) = pair(&app, browser, &room("speaker")).await?;
    let ada_id = bob.peer_id_of("Ada", EVENT_WAIT).await?;
    let bob_id = ada.peer_id_of("Bob", EVENT_WAIT).await?;
    let speak_wait = Duration::from_secs(10);

    bob.click("#toggle-mic").await?;
    bob.wait_attr(
        &format!("feed-{ada_id}"),
        "data-speaking",
        "true",
        speak_wait,
    )
    .await?;
    ada.wait_attr("feed-local-peer", "data-speaking", "true", speak_wait)
        .await?;
    ada.wait_attr(
        &format!("feed-{bob_id}"),
        "data-speaking",
        "false",
        speak_wait,
    )
    .await?;

    ada.click("#toggle-mic").await?;
    let swapped = Instant::now();
    bob.click("#toggle-mic").await?;
    ada.wait_attr(
        &format!("feed-{bob_id}"),
        "data-speaking",
        "true",
        speak_wait,
    )
    .await?;
    println!(
        "[{browser}] unmute → highlighted on the other page: {:?}",
        swapped.elapsed()
    );
    bob.wait_attr(
        &format!("feed-{ada_id}"),
        "data-speaking",
        "false",
        speak_wait,
    )
    .await?;
    close_all(vec![ada, bob]).await;
    app.server.shutdown().await
}

/// Scenario m5: connection quality: each remote tile shows an indicator; the stats panel lists
/// the remote tracks with live figures.
async fn connection_quality(browser: Browser) -> Result<()> {
    let app = App::start(|_| {}).await?;
    let (ada, bob) = pair(&app, browser, &room("quality")).await?;
    let bob_id = ada.peer_id_of("Bob", EVENT_WAIT).await?;
    ada.wait_js(
        "a quality indicator on Bob's tile",
        Duration::from_secs(10),
        &format!(
            "const q = document.getElementById('feed-{bob_id}')?.querySelector('[data-role=quality]');
             return !!q && q.dataset.quality === 'good';"
        ),
    )
    .await?;
    ada.click("#toggle-stats").await?;
    let rows = ada
        .wait_js(
            "stats rows with a bitrate",
            Duration::from_secs(10),
            "const p = document.getElementById('stats-panel');
             if (!p || p.hidden) return null;
             const rows = [...p.querySelectorAll('tr[data-track-id]')].map(r =>
                 ['bitrate', 'loss', 'jitter', 'rtt'].map(k => r.querySelector(`[data-stat=${k}]`)?.textContent.trim()));
             return rows.length >= 2 && rows.every(r => parseFloat(r[0]) > 0) ? rows : null;",
        )
        .await?;
    println!("[{browser}] stats panel rows: {rows}");
    close_all(vec![ada, bob]).await;
    app.server.shutdown().await
}

/// Scenario m6: devices. The landing page previews the camera and lists the devices; the
/// choice and the name are remembered; in the room the camera can be switched without
/// rejoining and the others keep seeing video.
async fn devices(browser: Browser) -> Result<()> {
    let app = App::start(|_| {}).await?;
    let room = room("devices");
    let ada = open(browser, "Ada").await?;
    ada.client.goto(&format!("{}/", app.base)).await?;
    ada.wait_video_playing("preview", MEDIA_WAIT).await?;
    let cameras = ada
        .wait_js(
            "the camera list",
            EVENT_WAIT,
            "const s = document.getElementById('camera-select');
             return s && s.options.length > 0 ? [...s.options].map(o => o.value) : null;",
        )
        .await?;
    let cameras: Vec<String> = cameras
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    println!("[{browser}] cameras offered: {}", cameras.len());
    let chosen = cameras.last().cloned().unwrap_or_default();
    ada.js(&format!(
        "const s = document.getElementById('camera-select'); s.value = {chosen};
         s.dispatchEvent(new Event('change', {{bubbles: true}}));",
        chosen = serde_json::to_string(&chosen)?
    ))
    .await?;
    ada.fill_and_click_join(&room, "Ada").await?;
    ada.wait_in_room().await?;
    let remembered = ada
        .wait_js(
            "the room's camera list",
            EVENT_WAIT,
            "const s = document.getElementById('room-camera-select');
             return s && s.options.length > 0 ? [localStorage.getItem('videoroom.cameraId'), s.value] : null;",
        )
        .await?;
    ensure!(
        remembered == Value::from(vec![chosen.clone(), chosen.clone()]),
        "[{browser}] camera choice not remembered/used: {remembered}"
    );

    let bob = open(browser, "Bob").await?;
    bob.join(&app.base, &room, "Bob").await?;
    bob.wait_remote_playing(1, MEDIA_WAIT).await?;
    // Switch Ada's camera in the room (to the first one): Bob keeps getting video, nobody rejoins.
    let first = cameras.first().cloned().unwrap_or_default();
    let peer_before = bob.peer_id_of("Ada", EVENT_WAIT).await?;
    ada.js(&format!(
        "const s = document.getElementById('room-camera-select'); s.value = {first};
         s.dispatchEvent(new Event('change', {{bubbles: true}}));",
        first = serde_json::to_string(&first)?
    ))
    .await?;
    ada.wait_js(
        "the local tile on the new camera",
        EVENT_WAIT,
        &format!(
            "const t = document.getElementById('video-local-peer').srcObject?.getVideoTracks()[0];
             return !!t && t.readyState === 'live' && t.getSettings().deviceId === {first};",
            first = serde_json::to_string(&first)?
        ),
    )
    .await?;
    bob.wait_video_playing(&format!("video-{peer_before}"), MEDIA_WAIT)
        .await?;
    ensure!(
        bob.peer_id_of("Ada", EVENT_WAIT).await? == peer_before,
        "[{browser}] switching the camera made Ada rejoin"
    );

    // Back to the landing page: the name and the camera are remembered.
    ada.disconnect().await?;
    ada.wait_js(
        "the remembered name",
        EVENT_WAIT,
        "return document.getElementById('display_name')?.value === 'Ada'",
    )
    .await?;
    close_all(vec![ada, bob]).await;
    app.server.shutdown().await
}

/// Scenario m7: the network drops Ada's socket. Her page says "Reconnecting…", keeps the call
/// on screen, comes back on its own; Bob sees the same Ada throughout (same tile, no leave).
async fn reconnect(browser: Browser) -> Result<()> {
    let app = App::start(|c| c.reconnect_grace_secs = 10).await?;
    let (ada, bob) = pair(&app, browser, &room("reconnect")).await?;
    let ada_id = bob.peer_id_of("Ada", EVENT_WAIT).await?;
    // Mark Bob's tile node for Ada: a ghost-and-new-peer would replace it.
    bob.js(&format!(
        "document.getElementById('feed-{ada_id}').e2eMark = 'same';"
    ))
    .await?;
    let dropped = Instant::now();
    ada.js("window.videoroomSocket.close(4000, 'e2e: network drop');")
        .await?;
    ada.wait_js(
        "the reconnecting banner",
        EVENT_WAIT,
        "const s = document.getElementById('connection-status'); return !!s && !s.hidden && s.textContent.includes('Reconnecting');",
    )
    .await?;
    ada.wait_js(
        "the banner gone",
        Duration::from_secs(20),
        "const s = document.getElementById('connection-status'); return !!s && s.hidden;",
    )
    .await?;
    ada.wait_remote_playing(1, MEDIA_WAIT).await?;
    bob.wait_video_playing(&format!("video-{ada_id}"), MEDIA_WAIT)
        .await?;
    println!(
        "[{browser}] socket drop → video back on both sides: {:?}",
        dropped.elapsed()
    );
    let same = bob
        .js(&format!(
            "return document.getElementById('feed-{ada_id}')?.e2eMark === 'same'"
        ))
        .await?;
    ensure!(same == true, "[{browser}] Bob's tile for Ada was replaced");
    bob.wait_participants(&["Ada", "Bob"], EVENT_WAIT).await?;
    ensure!(
        ada.error_text().await?.is_empty(),
        "[{browser}] Ada shows an error after reconnecting"
    );
    close_all(vec![ada, bob]).await;
    app.server.shutdown().await
}

/// Scenarios run one at a time whatever the test runner's threads: each already runs several
/// browsers, and CI has two cores. (A separate test binary from `rooms`; cargo runs test
/// binaries one after another.)
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

macro_rules! in_each_browser {
    ($($name:ident => $scenario:ident;)*) => {
        mod chromium {
            use super::*;
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() -> Result<()> {
                let _one = ONE_AT_A_TIME.lock().await;
                $scenario(Browser::Chromium).await
            })*
        }
        mod firefox {
            use super::*;
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() -> Result<()> {
                let _one = ONE_AT_A_TIME.lock().await;
                $scenario(Browser::Firefox).await
            })*
        }
    };
}

in_each_browser! {
    m1_mute_and_unmute => mute_and_unmute;
    m2_chat => chat;
    m3_screen_share => screen_share;
    m4_active_speaker => active_speaker;
    m5_connection_quality => connection_quality;
    m6_devices => devices;
    m7_reconnect => reconnect;
}
