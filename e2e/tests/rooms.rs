//! People using Videoroom in real browsers: every scenario in Chromium and Firefox, and in a
//! mixed room. Each test's name says the scenario and the browser; failures say who saw what.
//!
//! Run through `cargo xtask test` (it builds the client and installs the browsers and drivers).

use std::time::Duration;

use anyhow::{ensure, Result};
use e2e::{artefacts_dir, App, Browser, Media, Page};
use futures_util::future::try_join_all;

const MEDIA_WAIT: Duration = Duration::from_secs(30);
const EVENT_WAIT: Duration = Duration::from_secs(5);

use e2e::{close_all, unique_room as room};

async fn open(b: Browser, label: &str) -> Result<Page> {
    Page::open(b, label, Media::Granted).await
}

/// Scenario 1: two people see and hear each other.
async fn two_participants(first: Browser, second: Browser) -> Result<()> {
    let app = App::start(|_| {}).await?;
    let room = room("two");
    let ada = open(first, "Ada").await?;
    let bob = open(second, "Bob").await?;
    ada.join(&app.base, &room, "Ada").await?;
    ada.wait_in_room().await?;
    let clicked = bob.join(&app.base, &room, "Bob").await?;
    bob.wait_remote_playing(1, MEDIA_WAIT).await?;
    println!(
        "[{second}] Join click → first remote frame: {:?} (publisher in {first})",
        clicked.elapsed()
    );
    ada.wait_remote_playing(1, MEDIA_WAIT).await?;
    for p in [&ada, &bob] {
        p.wait_participants(&["Ada", "Bob"], EVENT_WAIT).await?;
        // Inbound audio and video bytes keep rising.
        let (a1, v1) = p.inbound_bytes().await?;
        tokio::time::sleep(Duration::from_secs(1)).await;
        let (a2, v2) = p.inbound_bytes().await?;
        ensure!(
            a2 > a1 && v2 > v1,
            "{} ({}): inbound bytes not rising: audio {a1}→{a2}, video {v1}→{v2}",
            p.label,
            p.browser
        );
        // The remote audio element carries the remote stream's audio track.
        let has_audio = p
            .js("return [...document.querySelectorAll('#videos-grid audio')]
                    .filter(a => a.id !== 'audio-local-peer')
                    .some(a => a.srcObject && a.srcObject.getAudioTracks().length > 0);")
            .await?;
        ensure!(
            has_audio == true,
            "{} ({}): no remote audio track attached",
            p.label,
            p.browser
        );
    }
    close_all(vec![ada, bob]).await;
    app.server.shutdown().await
}

async fn two_same(b: Browser) -> Result<()> {
    two_participants(b, b).await
}

/// Scenario 2: four people join at nearly the same time.
async fn four_at_once(browser: Browser) -> Result<()> {
    four_at_once_in([browser; 4]).await
}

async fn four_at_once_in(browsers: [Browser; 4]) -> Result<()> {
    let app = App::start(|_| {}).await?;
    let room = room("four");
    let names = ["Ada", "Bob", "Cy", "Dee"];
    let mut pages = Vec::new();
    for (n, b) in names.into_iter().zip(browsers) {
        let p = open(b, n).await?;
        p.client.goto(&format!("{}/", app.base)).await?;
        pages.push(p);
    }
    try_join_all(
        pages
            .iter()
            .zip(names)
            .map(|(p, n)| p.fill_and_click_join(&room, n)),
    )
    .await?;
    for p in &pages {
        p.wait_remote_playing(3, MEDIA_WAIT).await?;
        p.wait_participants(&names, EVENT_WAIT).await?;
    }
    close_all(pages).await;
    app.server.shutdown().await
}

/// Scenario 3: one leaves with Disconnect, one closes the tab, the leaver rejoins.
async fn leave_close_rejoin(browser: Browser) -> Result<()> {
    leave_close_rejoin_in([browser; 3]).await
}

async fn leave_close_rejoin_in(browsers: [Browser; 3]) -> Result<()> {
    let browser = browsers[0];
    // As in production: a dropped connection keeps its place for a while, so the quick
    // departures below show that both the button and closing the tab are clean leaves.
    let app = App::start(|c| c.reconnect_grace_secs = 10).await?;
    let room = room("leave");
    let ada = open(browsers[0], "Ada").await?;
    let bob = open(browsers[1], "Bob").await?;
    let cy = open(browsers[2], "Cy").await?;
    for (p, n) in [(&ada, "Ada"), (&bob, "Bob"), (&cy, "Cy")] {
        p.join(&app.base, &room, n).await?;
    }
    for p in [&ada, &bob, &cy] {
        p.wait_remote_playing(2, MEDIA_WAIT).await?;
    }
    let kind = if browsers.iter().all(|b| *b == browser) {
        browser.to_string().to_lowercase()
    } else {
        "mixed".to_owned()
    };
    let shot = artefacts_dir().join(format!("room-3-people-{kind}.png"));

    ada.screenshot(&shot).await?;
    println!(
        "[{browser}] screenshot of a 3-person room: {}",
        shot.display()
    );

    // Bob leaves with the button: back on the landing page; the others update within 5 s.
    bob.disconnect().await?;
    bob.wait_js(
        "the landing form after Disconnect",
        EVENT_WAIT,
        "return document.querySelector('#room_name') !== null && document.querySelector('#room') === null",
    )
    .await?;
    for p in [&ada, &cy] {
        p.wait_participants(&["Ada", "Cy"], EVENT_WAIT).await?;
        p.wait_js(
            "one remote tile after Bob left",
            EVENT_WAIT,
            "return document.querySelectorAll('#videos-grid video:not(#video-local-peer)').length === 1",
        )
        .await?;
    }

    // Cy closes the tab abruptly.
    cy.close().await?;
    ada.wait_participants(&["Ada"], EVENT_WAIT).await?;
    ada.wait_js(
        "no remote tile after Cy closed the tab",
        EVENT_WAIT,
        "return document.querySelectorAll('#videos-grid video:not(#video-local-peer)').length === 0",
    )
    .await?;

    // Bob rejoins from the landing form he was returned to.
    let prefilled = bob
        .js("return document.querySelector('#room_name').value")
        .await?;
    ensure!(
        prefilled == room.as_str(),
        "[{browser}] room name not kept after Disconnect: {prefilled}"
    );
    bob.fill_and_click_join(&room, "Bob").await?;
    bob.wait_remote_playing(1, MEDIA_WAIT).await?;
    ada.wait_remote_playing(1, MEDIA_WAIT).await?;
    ada.wait_participants(&["Ada", "Bob"], EVENT_WAIT).await?;
    close_all(vec![ada, bob]).await;
    app.server.shutdown().await
}

/// Scenario 4: camera and microphone refused.
async fn media_refused(browser: Browser) -> Result<()> {
    let app = App::start(|_| {}).await?;
    let page = Page::open(browser, "Ada", Media::Refused).await?;
    page.join(&app.base, &room("refused"), "Ada").await?;
    page.wait_error(
        "Failed to setup video room, make sure to grant camera and microphone permissions",
        Duration::from_secs(20),
    )
    .await?;
    // Give a join every chance to (wrongly) happen, then check nobody joined.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let census = app.server.state.rooms.census();
    ensure!(
        census.peers == 0,
        "[{browser}] a join happened after media was refused: {census:?}"
    );
    page.close().await?;
    app.server.shutdown().await
}

/// Scenario 5: the room is full.
async fn room_full(browser: Browser) -> Result<()> {
    let app = App::start(|c| c.max_peers_per_room = 2).await?;
    let room = room("full");
    let ada = open(browser, "Ada").await?;
    let bob = open(browser, "Bob").await?;
    let cy = open(browser, "Cy").await?;
    ada.join(&app.base, &room, "Ada").await?;
    ada.wait_in_room().await?;
    bob.join(&app.base, &room, "Bob").await?;
    bob.wait_remote_playing(1, MEDIA_WAIT).await?;
    cy.join(&app.base, &room, "Cy").await?;
    cy.wait_error("Peer denied.", Duration::from_secs(20))
        .await?;
    ada.wait_participants(&["Ada", "Bob"], EVENT_WAIT).await?;
    close_all(vec![ada, bob, cy]).await;
    app.server.shutdown().await
}

/// Scenario 6: the server restarts while people are in the room. The pages say they are
/// reconnecting and, once the server is back, bring everyone back together by themselves — no
/// reload, no form.
async fn server_restart(browser: Browser) -> Result<()> {
    let app = App::start(|_| {}).await?;
    let addr = app.server.addr;
    let room = room("restart");
    let ada = open(browser, "Ada").await?;
    let bob = open(browser, "Bob").await?;
    ada.join(&app.base, &room, "Ada").await?;
    bob.join(&app.base, &room, "Bob").await?;
    ada.wait_remote_playing(1, MEDIA_WAIT).await?;
    app.server.shutdown().await?;
    for p in [&ada, &bob] {
        let shown = p
            .wait_js(
                "the reconnecting state after the server went away",
                Duration::from_secs(10),
                "const s = document.querySelector('#connection-status'); return s && !s.hidden && s.textContent.trim();",
            )
            .await?;
        println!("[{browser}] {} sees: {shown}", p.label);
    }
    let back = std::time::Instant::now();
    let app = App::start(|c| c.bind = addr).await?;
    // The restarted server knows nobody: each page rejoins as a new peer; the old tiles go.
    for p in [&ada, &bob] {
        p.wait_js(
            "the reconnecting banner gone",
            MEDIA_WAIT,
            "const s = document.querySelector('#connection-status'); return !!s && s.hidden;",
        )
        .await?;
    }
    for p in [&ada, &bob] {
        p.wait_participants(&["Ada", "Bob"], MEDIA_WAIT).await?;
        p.wait_remote_playing(1, MEDIA_WAIT).await?;
    }
    println!(
        "[{browser}] server back → both playing again without a reload: {:?}",
        back.elapsed()
    );
    for p in [&ada, &bob] {
        ensure!(
            p.error_text().await?.is_empty(),
            "[{browser}] {} shows an error after the server came back",
            p.label
        );
    }
    close_all(vec![ada, bob]).await;
    app.server.shutdown().await
}

/// Scenario 7: a display name with HTML in it is shown as text.
async fn html_name_is_text(browser: Browser) -> Result<()> {
    let app = App::start(|_| {}).await?;
    let room = room("html");
    let evil = r#"<b>Eve</b><img src=x onerror="window.pwned=1">"#;
    let ada = open(browser, "Ada").await?;
    let eve = open(browser, "Eve").await?;
    ada.join(&app.base, &room, "Ada").await?;
    ada.wait_in_room().await?;
    eve.join(&app.base, &room, evil).await?;
    ada.wait_remote_playing(1, MEDIA_WAIT).await?;
    ada.wait_participants(&["Ada", evil], EVENT_WAIT).await?;
    let injected = ada
        .js("return window.pwned === 1
                || document.querySelector('#participants-list img, #videos-grid img') !== null
                || [...document.querySelectorAll('#participants-list b, #videos-grid b')]
                    .some(b => b.textContent === 'Eve')")
        .await?;
    ensure!(
        injected == false,
        "[{browser}] the display name was rendered as HTML"
    );
    let tile_text = ada
        .js("return document.querySelector('#videos-grid').textContent")
        .await?;
    ensure!(
        tile_text.as_str().is_some_and(|t| t.contains(evil)),
        "[{browser}] the name under the tile is not the literal text: {tile_text}"
    );
    close_all(vec![ada, eve]).await;
    app.server.shutdown().await
}

/// Scenarios run one at a time whatever the test runner's threads: each already runs several
/// browsers, and CI has two cores.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn one_at_a_time() -> tokio::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().await
}

/// Scenario 8: a locked server: a shared link with a join token lets people in; without one
/// the page says why.
async fn join_with_a_token_link(browser: Browser) -> Result<()> {
    const SECRET: &str = "an e2e secret that is long enough";
    let app = App::start(|c| c.join_token_secret = Some(SECRET.into())).await?;
    let room = room("locked");
    let key = server::access::TokenKey::new(SECRET).map_err(anyhow::Error::msg)?;
    let token = key.mint(&room, server::access::now_unix() + 600);
    let ada = open(browser, "Ada").await?;
    let bob = open(browser, "Bob").await?;
    let eve = open(browser, "Eve").await?;
    // The link brings each person to the form for that room; the token is kept out of sight.
    for (p, n) in [(&ada, "Ada"), (&bob, "Bob")] {
        p.client
            .goto(&format!("{}/room/{room}?token={token}", app.base))
            .await?;
        // The app starts after the page's load event: wait for it to have tidied the URL.
        p.wait_js(
            "the token moved out of the address bar",
            EVENT_WAIT,
            "return document.querySelector('#room_name') !== null && !location.href.includes('token=')",
        )
        .await?;
        p.fill_and_click_join(&room, n).await?;
    }
    ada.wait_remote_playing(1, MEDIA_WAIT).await?;
    bob.wait_remote_playing(1, MEDIA_WAIT).await?;
    eve.join(&app.base, &room, "Eve").await?;
    let shown = eve
        .wait_js(
            "a refusal without a token",
            Duration::from_secs(20),
            "const e = document.querySelector('#videochat-error'); return e && !e.hidden && e.textContent.trim();",
        )
        .await?;
    ensure!(
        shown
            .as_str()
            .is_some_and(|t| t.contains("requires a join token")),
        "[{browser}] Eve sees {shown}"
    );
    ada.wait_participants(&["Ada", "Bob"], EVENT_WAIT).await?;
    close_all(vec![ada, bob, eve]).await;
    app.server.shutdown().await
}

/// Scenario 9: the app over HTTPS with the self-signed development certificate, as on a LAN:
/// the page, the `wss:` socket and media all work.
async fn over_https(browser: Browser) -> Result<()> {
    let dir = std::env::temp_dir().join(format!(
        "videoroom-e2e-tls-{}-{}",
        std::process::id(),
        browser
    ));
    let app = App::start(|c| {
        c.tls_self_signed = true;
        c.tls_dir = dir.clone();
    })
    .await?;
    anyhow::ensure!(app.base.starts_with("https://"), "base {}", app.base);
    let room = room("https");
    let ada = open(browser, "Ada").await?;
    let bob = open(browser, "Bob").await?;
    ada.join(&app.base, &room, "Ada").await?;
    bob.join(&app.base, &room, "Bob").await?;
    ada.wait_remote_playing(1, MEDIA_WAIT).await?;
    bob.wait_remote_playing(1, MEDIA_WAIT).await?;
    ada.wait_js(
        "a secure page",
        EVENT_WAIT,
        "return location.protocol === 'https:' && window.isSecureContext",
    )
    .await?;
    close_all(vec![ada, bob]).await;
    app.server.shutdown().await?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// Scenario 10: with `--simulcast`, a Chromium and a Firefox page each send their camera in
/// two or more layers and still see each other.
async fn simulcast_layers(first: Browser, second: Browser) -> Result<()> {
    let app = App::start(|c| c.simulcast = true).await?;
    let room = room("simulcast");
    let ada = open(first, "Ada").await?;
    let bob = open(second, "Bob").await?;
    ada.join(&app.base, &room, "Ada").await?;
    ada.wait_in_room().await?;
    bob.join(&app.base, &room, "Bob").await?;
    bob.wait_remote_playing(1, MEDIA_WAIT).await?;
    ada.wait_remote_playing(1, MEDIA_WAIT).await?;
    for p in [&ada, &bob] {
        // Layers start as the sender's bandwidth estimate allows: give them a few seconds.
        let deadline = tokio::time::Instant::now() + MEDIA_WAIT;
        let (before, after) = loop {
            let before = p.outbound_video().await?;
            tokio::time::sleep(Duration::from_secs(1)).await;
            let after = p.outbound_video().await?;
            let rising = after
                .iter()
                .filter(|a| {
                    !a.rid.is_empty()
                        && before
                            .iter()
                            .any(|b| b.rid == a.rid && a.bytes_sent > b.bytes_sent)
                })
                .count();
            if rising >= 2 || tokio::time::Instant::now() > deadline {
                break (before, after);
            }
        };
        println!(
            "[{}] {} sends layers: {}",
            p.browser,
            p.label,
            after
                .iter()
                .map(|o| format!("{} {}x{} {} B", o.rid, o.width, o.height, o.bytes_sent))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let mut rids: Vec<&str> = after
            .iter()
            .filter(|a| {
                before
                    .iter()
                    .any(|b| b.rid == a.rid && a.bytes_sent > b.bytes_sent)
            })
            .map(|a| a.rid.as_str())
            .filter(|r| !r.is_empty())
            .collect();
        rids.dedup();
        ensure!(
            rids.len() >= 2,
            "{} ({}): fewer than two simulcast layers sending: {after:?}",
            p.label,
            p.browser
        );
        // And what the other sees keeps coming.
        let (_, v1) = p.inbound_bytes().await?;
        tokio::time::sleep(Duration::from_secs(1)).await;
        let (_, v2) = p.inbound_bytes().await?;
        ensure!(
            v2 > v1,
            "{} ({}): inbound video not rising: {v1}→{v2}",
            p.label,
            p.browser
        );
    }
    // Both browsers answer our transport-wide sequence numbers with feedback: the server
    // can estimate either one's downlink (`transport_cc`).
    let downlinks = app.server.state.rtc.bwe.snapshot();
    ensure!(
        downlinks.len() == 2,
        "transport-cc feedback from {} of the 2 browsers ({first} and {second}); figures: {downlinks:?}",
        downlinks.len()
    );
    println!("downlink estimates (None: no congestion seen): {downlinks:?}");
    // The server receives the layers, sizes them from their keyframes, and forwards the
    // biggest live one of each camera.
    let tracks = app
        .server
        .state
        .rooms
        .get(&room)
        .map(|r| r.tracks())
        .unwrap_or_default();
    let now = tokio::time::Instant::now();
    let mut cameras = 0;
    for t in tracks.iter().filter(|t| t.kind.to_string() == "video") {
        let layers = t.layers.readings(now);
        let forwarded = t.layers.selected_ssrc();
        println!(
            "server: {}'s layers {layers:?}, forwarding SSRC {forwarded:?}",
            t.publisher
        );
        let live: Vec<_> = layers.iter().filter(|(_, _, r)| r.live).collect();
        ensure!(
            live.len() >= 2,
            "{}: fewer than two live layers at the server: {layers:?}",
            t.publisher
        );
        ensure!(
            live.iter().all(|(_, _, r)| r.area > 0),
            "{}: a live layer's keyframe size was not read: {layers:?}",
            t.publisher
        );
        let biggest = live
            .iter()
            .max_by_key(|(_, _, r)| r.area)
            .map(|(_, ssrc, _)| *ssrc);
        ensure!(
            forwarded == biggest,
            "{}: forwarding {forwarded:?}, not the biggest live layer: {layers:?}",
            t.publisher
        );
        cameras += 1;
    }
    ensure!(
        cameras == 2,
        "expected two cameras at the server, found {cameras}"
    );
    close_all(vec![ada, bob]).await;
    Ok(())
}

/// Scenario 11: with `--simulcast`, a publisher turns its top encoding off and on; a viewer in
/// the other browser keeps playing throughout, at a smaller size while it is off.
async fn simulcast_top_layer_off_and_on(publisher: Browser, viewer: Browser) -> Result<()> {
    let app = App::start(|c| c.simulcast = true).await?;
    let room = room("simulcast-switch");
    let ada = open(publisher, "Ada").await?;
    let bob = open(viewer, "Bob").await?;
    ada.join(&app.base, &room, "Ada").await?;
    ada.wait_in_room().await?;
    bob.join(&app.base, &room, "Bob").await?;
    bob.wait_remote_playing(1, MEDIA_WAIT).await?;
    // Ada's encodings with bytes flowing, lowest first by size.
    let deadline = tokio::time::Instant::now() + MEDIA_WAIT;
    let mut sending = loop {
        let mut layers: Vec<_> = ada
            .outbound_video()
            .await?
            .into_iter()
            .filter(|o| !o.rid.is_empty() && o.height > 0)
            .collect();
        if layers.len() >= 2 || tokio::time::Instant::now() > deadline {
            layers.sort_by_key(|o| o.height);
            break layers;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    ensure!(
        sending.len() >= 2,
        "{publisher}: fewer than two layers: {sending:?}"
    );
    let top = sending.pop().expect("two layers");
    let next = sending.pop().expect("two layers");
    // Waits until Bob decodes Ada's video at `height`, and it keeps coming.
    let wait_height = |height: u64, why: &'static str| {
        let bob = &bob;
        async move {
            let deadline = tokio::time::Instant::now() + MEDIA_WAIT;
            loop {
                let heights = bob.inbound_video_heights().await?;
                if heights.contains(&height) {
                    return Ok::<_, anyhow::Error>(());
                }
                ensure!(
                    tokio::time::Instant::now() < deadline,
                    "{viewer}: {why}: Bob's video is {heights:?}, not {height} high"
                );
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
    };
    wait_height(top.height, "the top layer").await?;
    ada.set_encoding_active(&top.rid, false).await?;
    let off = tokio::time::Instant::now();
    wait_height(next.height, "after the top layer stopped").await?;
    println!(
        "[{publisher}→{viewer}] {} off: Bob at {} high after {:?}",
        top.rid,
        next.height,
        off.elapsed()
    );
    bob.wait_remote_playing(1, MEDIA_WAIT).await?;
    ada.set_encoding_active(&top.rid, true).await?;
    let on = tokio::time::Instant::now();
    wait_height(top.height, "after the top layer came back").await?;
    println!(
        "[{publisher}→{viewer}] {} on: Bob at {} high after {:?}",
        top.rid,
        top.height,
        on.elapsed()
    );
    bob.wait_remote_playing(1, MEDIA_WAIT).await?;
    let switches = |s: &std::sync::atomic::AtomicU64| s.load(std::sync::atomic::Ordering::Relaxed);
    let stats = &app.server.state.stats;
    println!(
        "server: {} switches down, {} up",
        switches(&stats.layer_switches_down),
        switches(&stats.layer_switches_up)
    );
    close_all(vec![ada, bob]).await;
    Ok(())
}

/// The longest `p` may go without decoding a new frame of a camera it watches, through a
/// switch of layer or a hidden tile shown again (which waits for a keyframe: CI saw 1.65 s).
/// Before the server renumbered VP8 PictureIDs across switches, a Chromium page watching a
/// Firefox camera froze for ~3 s after three switches in five runs of s12; none in four runs
/// since. Each wait over a second is printed.
const MAX_FREEZE: Duration = Duration::from_secs(3);

/// Whether `p` decodes a new frame of `peer_id`'s camera within [`MAX_FREEZE`]; prints any
/// wait over a second.
async fn keeps_playing(p: &Page, peer_id: &str) -> Result<()> {
    let start = tokio::time::Instant::now();
    let before = p.frames_of(peer_id).await?;
    loop {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let after = p.frames_of(peer_id).await?;
        if after > before {
            if start.elapsed() > Duration::from_secs(1) {
                println!(
                    "FREEZE {} ({}): {:?} to the next frame of {peer_id}",
                    p.label,
                    p.browser,
                    start.elapsed()
                );
            }
            return Ok(());
        }
        ensure!(
            start.elapsed() < MAX_FREEZE,
            "{} ({}): {peer_id}'s video stopped at {before} frames for {:?}",
            p.label,
            p.browser,
            start.elapsed()
        );
    }
}

/// Scenario 12: three people, with `--simulcast`. A page made small gets a smaller layer of a
/// camera than a large page watching it, and keeps playing through the change; a hidden tile
/// gets no video, and plays again when shown; once the large page leaves, the layer nobody
/// needs stops at the publisher (`active = false`), and it starts again when the small page
/// grows. Relative outcomes only: each browser decides how many layers its camera can send.
async fn small_windows_get_small_layers(
    publisher: Browser,
    large: Browser,
    small: Browser,
) -> Result<()> {
    // A phone-sized window: one column of tiles, each under 200 pixels high.
    const SMALL: (u32, u32) = (360, 640);
    const LARGE: (u32, u32) = (1280, 800);
    let app = App::start(|c| c.simulcast = true).await?;
    let room = room("tile-sizes");
    let ada = open(publisher, "Ada").await?;
    let bob = open(large, "Bob").await?;
    let cid = open(small, "Cid").await?;
    for (p, name) in [(&ada, "Ada"), (&bob, "Bob"), (&cid, "Cid")] {
        p.join(&app.base, &room, name).await?;
        p.wait_in_room().await?;
    }
    for p in [&ada, &bob, &cid] {
        p.wait_remote_playing(2, MEDIA_WAIT).await?;
    }
    let ada_id = bob.peer_id_of("Ada", EVENT_WAIT).await?;
    let heights = || async {
        Ok::<_, anyhow::Error>((
            bob.video_height_of(&ada_id).await?,
            cid.video_height_of(&ada_id).await?,
        ))
    };

    cid.set_window_size(SMALL.0, SMALL.1).await?;
    let resized = tokio::time::Instant::now();
    let deadline = resized + MEDIA_WAIT;
    let (large_h, small_h) = loop {
        let (b, c) = heights().await?;
        if c > 0 && c < b {
            break (b, c);
        }
        if tokio::time::Instant::now() > deadline {
            let layout = cid
                .js(&format!(
                    "const v = document.getElementById('video-{ada_id}');
                     const r = v ? v.getBoundingClientRect() : null;
                     return [innerWidth, innerHeight, devicePixelRatio,
                             r ? r.width : -1, r ? r.height : -1];"
                ))
                .await?;
            anyhow::bail!(
                "{small}: Cid's small window still gets Ada's ({publisher}) video {c} high, \
                 Bob's large one {b}; Cid's window and Ada's tile [w, h, ratio, tile w, tile h]: \
                 {layout}"
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    println!(
        "[{publisher}→{large}/{small}] Ada's camera: {large_h} high in a large window, \
         {small_h} in a small one after {:?}",
        resized.elapsed()
    );
    keeps_playing(&cid, &ada_id).await?;
    keeps_playing(&bob, &ada_id).await?;

    // Bob hides Ada's tile: his page asks for none of her video and gets none; shown again,
    // it plays again at the size it had.
    let tile = |display: &str| {
        format!("document.getElementById('feed-{ada_id}').style.display = '{display}'")
    };
    bob.js(&tile("none")).await?;
    let hidden = tokio::time::Instant::now();
    let deadline = hidden + MEDIA_WAIT;
    loop {
        let before = bob.frames_of(&ada_id).await?;
        tokio::time::sleep(Duration::from_secs(1)).await;
        let after = bob.frames_of(&ada_id).await?;
        if after == before {
            break;
        }
        ensure!(
            tokio::time::Instant::now() < deadline,
            "{large}: Bob still decodes Ada's video with her tile hidden ({before} → {after})"
        );
    }
    println!(
        "[{large}] Ada's tile hidden at Bob: no frames after {:?}",
        hidden.elapsed()
    );
    bob.js(&tile("")).await?;
    keeps_playing(&bob, &ada_id).await?;
    let deadline = tokio::time::Instant::now() + MEDIA_WAIT;
    while bob.video_height_of(&ada_id).await? != large_h {
        ensure!(
            tokio::time::Instant::now() < deadline,
            "{large}: Bob's video of Ada not back to {large_h} after showing her tile"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    // Bob leaves: Ada's top layer is needed by nobody (Cid's tile is small) and stops at her
    // browser, after five seconds; Cid keeps playing the smaller one.
    let active = |e: &[(String, bool)]| -> Vec<String> {
        e.iter()
            .filter(|(_, a)| *a)
            .map(|(r, _)| r.clone())
            .collect()
    };
    let watched = active(&ada.camera_encodings().await?);
    bob.disconnect().await?;
    let left = tokio::time::Instant::now();
    let deadline = left + MEDIA_WAIT;
    let encodings = loop {
        let e = ada.camera_encodings().await?;
        if active(&e).len() < watched.len() {
            break e;
        }
        ensure!(
            tokio::time::Instant::now() < deadline,
            "{publisher}: no layer of Ada's camera turned off with only a small window \
             watching: {e:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    println!(
        "[{publisher}] layers {watched:?} with a large window watching; {:?} {:?} after it left",
        active(&encodings),
        left.elapsed()
    );
    ensure!(
        !active(&encodings).is_empty(),
        "{publisher}: every layer off while Cid watches: {encodings:?}"
    );
    keeps_playing(&cid, &ada_id).await?;

    // Cid's window large: the layer is back on at once, and Cid gets it.
    cid.set_window_size(LARGE.0, LARGE.1).await?;
    let resized = tokio::time::Instant::now();
    let deadline = resized + MEDIA_WAIT;
    loop {
        let e = ada.camera_encodings().await?;
        let c = cid.video_height_of(&ada_id).await?;
        if active(&e) == watched && c == large_h {
            break;
        }
        ensure!(
            tokio::time::Instant::now() < deadline,
            "{publisher}: after Cid's window grew: encodings {e:?}, Cid {c} high"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    println!(
        "[{publisher}] a large window again: layers {watched:?} on and Cid {large_h} high after \
         {:?}",
        resized.elapsed()
    );
    keeps_playing(&cid, &ada_id).await?;
    close_all(vec![ada, bob, cid]).await;
    Ok(())
}

macro_rules! in_each_browser {
    ($($name:ident => $scenario:ident;)*) => {
        mod chromium {
            use super::*;
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() -> Result<()> {
                let _one = one_at_a_time().await;
                let b = Browser::Chromium;
                $scenario(b).await
            })*
        }
        mod firefox {
            use super::*;
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() -> Result<()> {
                let _one = one_at_a_time().await;
                let b = Browser::Firefox;
                $scenario(b).await
            })*
        }
    };
}

in_each_browser! {
    s1_two_participants => two_same;
    s2_four_join_at_once => four_at_once;
    s3_leave_close_and_rejoin => leave_close_rejoin;
    s4_media_refused => media_refused;
    s5_room_full => room_full;
    s6_server_restart => server_restart;
    s7_html_name_is_text => html_name_is_text;
    s8_join_with_a_token_link => join_with_a_token_link;
    s9_over_https => over_https;
}

mod mixed {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn s1_chromium_then_firefox() -> Result<()> {
        let _one = one_at_a_time().await;
        two_participants(Browser::Chromium, Browser::Firefox).await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn s1_firefox_then_chromium() -> Result<()> {
        let _one = one_at_a_time().await;
        two_participants(Browser::Firefox, Browser::Chromium).await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn s2_two_chromium_two_firefox_join_at_once() -> Result<()> {
        let _one = one_at_a_time().await;
        use Browser::{Chromium as C, Firefox as F};
        four_at_once_in([C, F, C, F]).await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn s10_simulcast_chromium_and_firefox() -> Result<()> {
        let _one = one_at_a_time().await;
        simulcast_layers(Browser::Chromium, Browser::Firefox).await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn s11_chromium_top_layer_off_and_on_firefox_keeps_playing() -> Result<()> {
        let _one = one_at_a_time().await;
        simulcast_top_layer_off_and_on(Browser::Chromium, Browser::Firefox).await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn s11_firefox_top_layer_off_and_on_chromium_keeps_playing() -> Result<()> {
        let _one = one_at_a_time().await;
        simulcast_top_layer_off_and_on(Browser::Firefox, Browser::Chromium).await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn s12_chromium_camera_in_a_large_firefox_and_a_small_chromium() -> Result<()> {
        let _one = one_at_a_time().await;
        use Browser::{Chromium as C, Firefox as F};
        small_windows_get_small_layers(C, F, C).await
    }

    // The small page is Chromium's in both: a Firefox window here is never narrower than
    // 500 px, where a tile is still 265 px high and needs the full picture.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn s12_firefox_camera_in_a_large_firefox_and_a_small_chromium() -> Result<()> {
        let _one = one_at_a_time().await;
        use Browser::{Chromium as C, Firefox as F};
        small_windows_get_small_layers(F, F, C).await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn s3_firefox_leaves_chromium_closes() -> Result<()> {
        let _one = one_at_a_time().await;
        use Browser::{Chromium as C, Firefox as F};
        leave_close_rejoin_in([C, F, C]).await
    }
}
