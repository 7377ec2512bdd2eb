//! The measuring window: counters snapshotted at its start and end, and the figures (delivery,
//! loss, delay, CPU, memory) computed from the difference.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::Ctx;
use crate::load::{self, Participant, StreamCount};
use crate::procfs;
use crate::stats::p50_p99;

/// What the window measures: receivers with the streams each should get, and the publishers.
pub(super) struct Window<'a> {
    pub(super) receivers: Vec<(&'a Participant, Vec<u32>)>,
    pub(super) publishers: Vec<&'a Participant>,
}

struct Snap {
    at: Instant,
    counts: Vec<HashMap<u32, StreamCount>>,
    bytes: Vec<u64>,
    server_cpu: Duration,
    gen_cpu: Duration,
}

impl Window<'_> {
    fn snap(&self, server_pid: u32) -> anyhow::Result<Snap> {
        Ok(Snap {
            at: Instant::now(),
            counts: self
                .receivers
                .iter()
                .map(|(p, _)| p.recv.snapshot())
                .collect(),
            bytes: self
                .receivers
                .iter()
                .map(|(p, _)| p.recv.with(|s| s.bytes))
                .collect(),
            server_cpu: procfs::cpu_time(server_pid)?,
            gen_cpu: procfs::cpu_time(std::process::id())?,
        })
    }

    /// Measures for `secs` while `during` runs (churn), then fills the window's figures.
    pub(super) async fn measure(
        &self,
        ctx: &mut Ctx,
        secs: f64,
        during: impl std::future::Future<Output = ()>,
    ) -> anyhow::Result<()> {
        // Drop anything left from the joins, then collect only the window's delays.
        for (p, _) in &self.receivers {
            p.recv.with(|s| s.latency_us.clear());
        }
        let pid = ctx.spec.server_pid;
        let a = self.snap(pid)?;
        load::set_measuring(true);
        let sleep = tokio::time::sleep(Duration::from_secs_f64(secs));
        tokio::join!(sleep, during);
        load::set_measuring(false);
        let b = self.snap(pid)?;
        let r = &mut ctx.result;
        let wall = b.at.duration_since(a.at).as_secs_f64();
        r.window_s = wall;
        // What each stream's publisher sent in the window: the highest number any receiver saw.
        let sent = |snap: &Snap| {
            let mut m: HashMap<u32, u64> = HashMap::new();
            for c in &snap.counts {
                for (s, sc) in c {
                    let e = m.entry(*s).or_default();
                    *e = (*e).max(sc.sent_upto);
                }
            }
            m
        };
        let (sent_a, sent_b) = (sent(&a), sent(&b));
        let offered: u64 = sent_b
            .iter()
            .map(|(s, n)| n.saturating_sub(sent_a.get(s).copied().unwrap_or_default()))
            .sum();
        r.offered_pps = offered as f64 / wall;
        let mut latencies = Vec::new();
        for (i, (p, streams)) in self.receivers.iter().enumerate() {
            for s in streams {
                let before = a.counts[i].get(s).copied().unwrap_or_default();
                let after = b.counts[i].get(s).copied().unwrap_or_default();
                r.packets += after.received - before.received;
                r.gaps += after.gaps - before.gaps;
                let sa = sent_a.get(s).copied().unwrap_or_default();
                let sb = sent_b.get(s).copied().unwrap_or_default();
                r.expected += sb.saturating_sub(sa);
            }
            r.bytes += b.bytes[i] - a.bytes[i];
            p.recv.with(|s| latencies.append(&mut s.latency_us));
        }
        r.loss_pct = if r.expected == 0 {
            100.0
        } else {
            100.0 * (1.0 - (r.packets as f64 / r.expected as f64)).max(0.0)
        };
        r.pps = r.packets as f64 / wall;
        r.mbps = r.bytes as f64 * 8.0 / wall / 1e6;
        let (p50, p99) = p50_p99(&mut latencies);
        r.latency_p50_ms = p50.map(|v| v / 1000.0);
        r.latency_p99_ms = p99.map(|v| v / 1000.0);
        let scpu = (b.server_cpu - a.server_cpu).as_secs_f64();
        let gcpu = (b.gen_cpu - a.gen_cpu).as_secs_f64();
        r.server_cpu_pct = 100.0 * scpu / wall;
        r.gen_cpu_pct = 100.0 * gcpu / wall;
        if r.packets > 0 {
            r.server_us_per_pkt = Some(scpu * 1e6 / r.packets as f64);
            r.gen_us_per_pkt = Some(gcpu * 1e6 / r.packets as f64);
        }
        r.rss_mb = procfs::rss_bytes(pid)? as f64 / 1e6;
        let media = || self.publishers.iter().filter_map(|p| p.media.as_ref());
        let load = |c: &std::sync::atomic::AtomicU64| c.load(std::sync::atomic::Ordering::Relaxed);
        r.keyframe_requests = media().map(|m| load(&m.keyframe_requests)).sum();
        r.keyframe_requests_ignored = media().map(|m| load(&m.keyframe_requests_ignored)).sum();
        Ok(())
    }
}
