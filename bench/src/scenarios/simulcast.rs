//! Scenario D, simulcast on constrained downlinks: three simulcast cameras and N viewers, a
//! third of whom get their downlink capped once everyone receives the top layers. Printed per
//! group (capped, uncapped): the loss in the window, the share of each layer received, and
//! how long the capped viewers took to leave the top layer.
//!
//! The peers are testkit's: its simulcast publisher sends layers q, h, f (VP8-shaped frames
//! whose keyframes announce 320×180, 640×360 and 1280×720) and its impaired link caps a
//! viewer's downlink in process (a 200 ms queue, then drops) — one cap per viewer, which a
//! shared namespace link could not give.
//!
//! Ours only: Janus's videoroom forwards the substream a subscriber `configure`s (its demo page
//! lowers it on `slowlink` events, in JavaScript); nothing in the server fits a viewer's layers
//! to a measured downlink, so the same run against it would measure this generator's policy.

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::{Deserialize, Serialize};
use testkit::{PeerOptions, PeerState, TestPeer};
use tracing::info;

use super::Ctx;
use crate::procfs;

/// Simulcast cameras in the room.
const PUBLISHERS: usize = 3;
/// A capped viewer's downlink: three lowest layers and audio fit (~0.7 Mbit/s), one more
/// step up may, the three top layers (~2.5 Mbit/s) do not.
pub const CAP_BPS: u64 = 1_000_000;
/// Media before the cap, so everyone starts on the top layers.
const BEFORE_CAP: Duration = Duration::from_secs(4);
/// A capped viewer has settled once no top-layer packet came for this long.
const QUIET: Duration = Duration::from_secs(2);
/// Longest wait for the capped viewers to settle.
const SETTLE_LIMIT: Duration = Duration::from_secs(20);

/// One group of viewers' figures.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct GroupFigures {
    /// `capped` or `uncapped`.
    pub group: String,
    /// Viewers in it.
    pub viewers: usize,
    /// Media loss in the window, %: distinct packets received against those the publishers
    /// sent of the layers received.
    pub loss_pct: f64,
    /// Datagrams the capped link dropped in the window, % of those that reached it.
    pub queue_drop_pct: Option<f64>,
    /// The same from the cap until the window (while the viewers adapted).
    #[serde(default)]
    pub adapt_drop_pct: Option<f64>,
    /// Share of video packets received in the window per layer: q, h, f (%).
    pub layer_pct: [f64; 3],
    /// Cap → last top-layer packet, median over the group's viewers (s).
    pub settle_p50_s: Option<f64>,
    /// The slowest viewer's (s).
    pub settle_max_s: Option<f64>,
}

/// Runs scenario D: `ctx.spec.n` viewers.
pub(super) async fn simulcast(ctx: &mut Ctx) -> anyhow::Result<()> {
    let spec = ctx.spec.clone();
    let ip = crate::netns::LOAD_IP.into();
    let room = "bench-simulcast";
    let mut publishers = Vec::new();
    for i in 0..PUBLISHERS {
        let options = PeerOptions {
            simulcast: true,
            ice_ip: ip,
            ..PeerOptions::default()
        };
        let p = TestPeer::join(&spec.url, room, &format!("cam{i}"), options)
            .await
            .with_context(|| format!("camera {i} joins"))?;
        publishers.push(p);
    }
    let capped_n = (spec.n as usize).div_ceil(3);
    let mut viewers = Vec::new();
    for i in 0..spec.n as usize {
        let capped = i < capped_n;
        let options = PeerOptions {
            audio: false,
            video: false,
            ice_ip: ip,
            record_packets: true,
            // The cap needs the in-process link; a clean one until the cap is set.
            impairment: capped.then_some(testkit::Impairment {
                loss: 0.0,
                delay: Duration::ZERO,
                seed: i as u64 + 1,
                spare_dtls_handshake: true,
            }),
            ..PeerOptions::default()
        };
        match TestPeer::join(&spec.url, room, &format!("viewer{i}"), options).await {
            Ok(v) => viewers.push((capped, v)),
            Err(e) => {
                ctx.result.join_failures += 1;
                ctx.errors.push(format!("viewer {i}: {e:#}"));
            }
        }
    }
    ctx.result.participants = (publishers.len() + viewers.len()) as u32;
    info!(
        viewers = viewers.len(),
        capped = capped_n,
        "simulcast room joined"
    );
    tokio::time::sleep(BEFORE_CAP.max(Duration::from_secs_f64(spec.warmup_s))).await;

    // The cap, and how long each capped viewer keeps getting top layers.
    let cap_at = Instant::now();
    let links_cap: Vec<(u64, u64)> = viewers.iter().map(|(_, v)| link_counts(v)).collect();
    for (_, v) in viewers.iter().filter(|(capped, _)| *capped) {
        v.set_downlink_cap(Some(CAP_BPS))?;
    }
    let mut last_top: Vec<Option<(u64, Instant)>> = vec![None; viewers.len()];
    loop {
        let now = Instant::now();
        for (i, (capped, v)) in viewers.iter().enumerate() {
            if !capped {
                continue;
            }
            let top = top_packets(&v.state(), &publishers);
            match last_top[i] {
                Some((n, _)) if n == top => {}
                _ => last_top[i] = Some((top, now)),
            }
        }
        let settled = viewers.iter().enumerate().all(|(i, (capped, _))| {
            !capped || last_top[i].is_some_and(|(_, t)| now.duration_since(t) >= QUIET)
        });
        if settled || now.duration_since(cap_at) > SETTLE_LIMIT {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let settle: Vec<f64> = viewers
        .iter()
        .enumerate()
        .filter(|(_, (capped, _))| *capped)
        .filter_map(|(i, _)| last_top[i].map(|(_, t)| t.duration_since(cap_at).as_secs_f64()))
        .collect();

    // The window.
    let from = tokio::time::Instant::now();
    let links_start: Vec<(u64, u64)> = viewers.iter().map(|(_, v)| link_counts(v)).collect();
    let cpu_start = procfs::cpu_time(spec.server_pid)?;
    let gen_start = procfs::cpu_time(std::process::id())?;
    let t0 = Instant::now();
    tokio::time::sleep(Duration::from_secs_f64(spec.measure_s)).await;
    let wall = t0.elapsed().as_secs_f64();
    let cpu = (procfs::cpu_time(spec.server_pid)? - cpu_start).as_secs_f64();
    let gen_cpu = (procfs::cpu_time(std::process::id())? - gen_start).as_secs_f64();
    let to = tokio::time::Instant::now();
    let end: Vec<PeerState> = viewers.iter().map(|(_, v)| v.state()).collect();
    let links_end: Vec<(u64, u64)> = viewers.iter().map(|(_, v)| link_counts(v)).collect();

    let mut groups = Vec::new();
    let (mut all_got, mut all_expected, mut all_packets) = (0u64, 0u64, 0u64);
    for (name, want_capped) in [("capped", true), ("uncapped", false)] {
        let members: Vec<usize> = (0..viewers.len())
            .filter(|&i| viewers[i].0 == want_capped)
            .collect();
        let (mut got, mut expected, mut by_layer) = (0u64, 0u64, [0u64; 3]);
        let (mut dropped, mut reached) = (0u64, 0u64);
        let (mut adapt_dropped, mut adapt_reached) = (0u64, 0u64);
        for &i in &members {
            let w = window(&end[i], &publishers, from, to);
            got += w.distinct;
            expected += w.expected;
            for (k, n) in w.by_layer.iter().enumerate() {
                by_layer[k] += n;
            }
            let (d0, r0) = links_start[i];
            let (d1, r1) = links_end[i];
            dropped += d1 - d0;
            reached += (d1 - d0) + (r1 - r0);
            let (dc, rc) = links_cap[i];
            adapt_dropped += d0 - dc;
            adapt_reached += (d0 - dc) + (r0 - rc);
        }
        all_got += got;
        all_expected += expected;
        let packets: u64 = by_layer.iter().sum();
        all_packets += packets;
        let mut settle_group = if want_capped {
            settle.clone()
        } else {
            Vec::new()
        };
        groups.push(GroupFigures {
            group: name.into(),
            viewers: members.len(),
            loss_pct: loss_pct(got, expected),
            queue_drop_pct: (want_capped && reached > 0)
                .then(|| 100.0 * dropped as f64 / reached as f64),
            adapt_drop_pct: (want_capped && adapt_reached > 0)
                .then(|| 100.0 * adapt_dropped as f64 / adapt_reached as f64),
            layer_pct: by_layer.map(|n| 100.0 * n as f64 / packets.max(1) as f64),
            settle_p50_s: crate::stats::percentile(&mut settle_group, 50.0),
            settle_max_s: settle_group.iter().copied().reduce(f64::max),
        });
    }
    let r = &mut ctx.result;
    r.window_s = wall;
    r.packets = all_packets;
    r.expected = all_expected;
    r.loss_pct = loss_pct(all_got, all_expected);
    r.pps = all_packets as f64 / wall;
    r.server_cpu_pct = 100.0 * cpu / wall;
    r.gen_cpu_pct = 100.0 * gen_cpu / wall;
    r.server_us_per_pkt = (all_packets > 0).then(|| cpu * 1e6 / all_packets as f64);
    r.rss_mb = procfs::rss_bytes(spec.server_pid)? as f64 / 1e6;
    r.groups = groups;
    for (_, v) in viewers {
        v.leave().await;
    }
    for p in publishers {
        p.leave().await;
    }
    Ok(())
}

fn loss_pct(got: u64, expected: u64) -> f64 {
    if expected == 0 {
        return 100.0;
    }
    100.0 * (1.0 - got as f64 / expected as f64).max(0.0)
}

/// Top-layer video packets `state` has received from all `publishers`.
fn top_packets(state: &PeerState, publishers: &[TestPeer]) -> u64 {
    let top = testkit::SIMULCAST_LAYERS.len() as u8;
    videos(state, publishers)
        .map(|t| t.by_layer.get(&top).map_or(0, |l| l.packets))
        .sum()
}

/// The capped link's drops and deliveries so far (zeros without a link).
fn link_counts(v: &TestPeer) -> (u64, u64) {
    v.link().map_or((0, 0), |l| {
        (
            l.dropped_queue.load(Ordering::Relaxed),
            l.delivered.load(Ordering::Relaxed),
        )
    })
}

/// The publishers' video tracks as `state` received them.
fn videos<'a>(
    state: &'a PeerState,
    publishers: &'a [TestPeer],
) -> impl Iterator<Item = &'a testkit::TrackStats> {
    state
        .received
        .values()
        .filter(move |t| t.kind == "video" && publishers.iter().any(|p| p.id == t.publisher))
}

/// What one viewer got in the window.
#[derive(Debug, Default, PartialEq)]
struct Window {
    distinct: u64,
    expected: u64,
    by_layer: [u64; 3],
}

/// The packets `state` logged between `from` and `to`: per track, each run of one layer (a
/// layer switch starts a new one) expects every counter from its first to its last, so a
/// switch is not a loss and a gap inside a run is.
fn window(
    state: &PeerState,
    publishers: &[TestPeer],
    from: tokio::time::Instant,
    to: tokio::time::Instant,
) -> Window {
    /// One run of a layer: its mark, lowest and highest counter, and the counters seen.
    struct Run {
        layer: u8,
        lo: u32,
        hi: u32,
        seen: HashSet<u32>,
    }
    let mut w = Window::default();
    let close = |run: Option<Run>, w: &mut Window| {
        if let Some(r) = run {
            w.expected += u64::from(r.hi - r.lo) + 1;
            w.distinct += r.seen.len() as u64;
        }
    };
    for t in videos(state, publishers) {
        let mut run: Option<Run> = None;
        for p in t.log.iter().filter(|p| p.at >= from && p.at < to) {
            if let Some(n) = usize::from(p.layer)
                .checked_sub(1)
                .and_then(|k| w.by_layer.get_mut(k))
            {
                *n += 1;
            }
            match run.as_mut() {
                Some(r) if r.layer == p.layer => {
                    r.lo = r.lo.min(p.counter);
                    r.hi = r.hi.max(p.counter);
                    r.seen.insert(p.counter);
                }
                _ => {
                    close(run.take(), &mut w);
                    run = Some(Run {
                        layer: p.layer,
                        lo: p.counter,
                        hi: p.counter,
                        seen: HashSet::from([p.counter]),
                    });
                }
            }
        }
        close(run, &mut w);
    }
    w
}
