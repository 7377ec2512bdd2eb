//! Scenario A, fan-out: one publisher at 1.5 Mbit/s, N subscribers joining it.

use std::time::Duration;

use tracing::info;

use super::window::Window;
use super::{close_all, join_figures, spawn_subscriber, start_publisher, streams_of, Ctx};

/// Runs scenario A.
pub(super) async fn fan_out(ctx: &mut Ctx) -> anyhow::Result<()> {
    let spec = ctx.spec.clone();
    let (publisher, feeds) = start_publisher(ctx).await?;
    let api = ctx.api.clone();
    let mut subs = Vec::new();
    let mut next = 0u32;
    while next < spec.n {
        let wave: Vec<_> = (next..(next + spec.join_concurrency as u32).min(spec.n))
            .map(|i| spawn_subscriber(api.clone(), spec.clone(), format!("sub{i}"), feeds.clone()))
            .collect();
        next += wave.len() as u32;
        for h in wave {
            match h.await? {
                Ok(p) => subs.push(p),
                Err(e) => {
                    ctx.result.join_failures += 1;
                    ctx.errors.push(format!("{e:#}"));
                }
            }
        }
    }
    ctx.result.participants = subs.len() as u32 + 1;
    info!(subscribers = subs.len(), "fan-out joined");
    tokio::time::sleep(Duration::from_secs_f64(spec.warmup_s)).await;
    let window = Window {
        receivers: subs.iter().map(|p| (p, streams_of(0).to_vec())).collect(),
        publishers: vec![&publisher],
    };
    window.measure(ctx, spec.measure_s, async {}).await?;
    // After the window: a first keyframe may come well after the first (audio) packet.
    join_figures(&mut ctx.result, &subs.iter().collect::<Vec<_>>());
    let base = ctx.result.rss_base_mb;
    ctx.result.rss_per_peer_kb =
        Some((ctx.result.rss_mb - base) * 1000.0 / f64::from(ctx.result.participants.max(1)));
    close_all(subs).await;
    publisher.close().await;
    Ok(())
}
