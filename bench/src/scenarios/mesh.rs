//! Scenario B, mesh: N participants each publishing to all the others.

use std::time::Duration;

use super::window::Window;
use super::{
    close_all, connected, first_rtp, join, join_figures, streams_of, Ctx, ServerKind, FPS,
    MESH_VIDEO_BPS,
};
use crate::load::PublishSpec;

/// Runs scenario B.
pub(super) async fn mesh(ctx: &mut Ctx) -> anyhow::Result<()> {
    let spec = ctx.spec.clone();
    let mut members = Vec::new();
    for i in 0..spec.n {
        let ps = PublishSpec {
            index: i,
            video_bps: MESH_VIDEO_BPS,
            fps: FPS,
            pacing: spec.pacing,
        };
        match join(&ctx.api, &spec, &format!("m{i}"), Some(ps), &[], None).await {
            Ok(p) => {
                if let Err(e) = connected(&p).await {
                    ctx.errors.push(format!("{e:#}"));
                }
                members.push(p);
            }
            Err(e) => {
                ctx.result.join_failures += 1;
                ctx.errors.push(format!("m{i}: {e:#}"));
            }
        }
    }
    // On Janus each member subscribes to the others' feeds on a second connection (its API
    // has publishers and subscribers apart); on ours the room subscribes everyone already.
    let mut extra = Vec::new();
    if spec.server == ServerKind::Janus {
        for (i, m) in members.iter().enumerate() {
            let feeds: Vec<u64> = members
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != i)
                .filter_map(|(_, o)| o.feed)
                .collect();
            match join(
                &ctx.api,
                &spec,
                &format!("m{i}-sub"),
                None,
                &feeds,
                Some(m.recv.clone()),
            )
            .await
            {
                Ok(p) => extra.push(p),
                Err(e) => {
                    ctx.result.join_failures += 1;
                    ctx.errors.push(format!("m{i} subscribe: {e:#}"));
                }
            }
        }
    }
    for m in &members {
        if let Err(e) = first_rtp(m).await {
            ctx.errors.push(format!("{e:#}"));
        }
    }
    ctx.result.participants = members.len() as u32;
    tokio::time::sleep(Duration::from_secs_f64(spec.warmup_s)).await;
    let n = members.len() as u32;
    let window = Window {
        receivers: members
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let streams = (0..n)
                    .filter(|j| *j != i as u32)
                    .flat_map(streams_of)
                    .collect();
                (p, streams)
            })
            .collect(),
        publishers: members.iter().collect(),
    };
    window.measure(ctx, spec.measure_s, async {}).await?;
    join_figures(&mut ctx.result, &members.iter().collect::<Vec<_>>());
    ctx.result.rss_per_peer_kb =
        Some((ctx.result.rss_mb - ctx.result.rss_base_mb) * 1000.0 / f64::from(n.max(1)));
    close_all(extra).await;
    close_all(members).await;
    Ok(())
}
