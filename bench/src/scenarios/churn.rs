//! Scenario C, churn: one publisher with a steady audience of four while N others join, one a
//! second, each staying three seconds: what joining costs those already there, and what memory
//! the leavers leave behind.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::task::JoinHandle;
use tracing::warn;

use super::window::Window;
use super::{
    close_all, join_figures, spawn_subscriber, start_publisher, streams_of, Ctx, CHURN_STAY,
    CHURN_STEADY,
};
use crate::load::Participant;
use crate::procfs;

/// Runs scenario C.
pub(super) async fn churn(ctx: &mut Ctx) -> anyhow::Result<()> {
    let spec = ctx.spec.clone();
    let (publisher, feeds) = start_publisher(ctx).await?;
    let api = ctx.api.clone();
    let mut steady = Vec::new();
    for i in 0..CHURN_STEADY {
        steady.push(
            spawn_subscriber(
                api.clone(),
                spec.clone(),
                format!("steady{i}"),
                feeds.clone(),
            )
            .await??,
        );
    }
    tokio::time::sleep(Duration::from_secs_f64(spec.warmup_s)).await;
    let rss_before = procfs::rss_bytes(spec.server_pid)? as f64 / 1e6;
    let churned: tokio::sync::Mutex<Vec<Participant>> = Default::default();
    let errors: std::sync::Mutex<Vec<String>> = Default::default();
    let during = async {
        let mut live: VecDeque<JoinHandle<anyhow::Result<Participant>>> = VecDeque::new();
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        for i in 0..spec.n {
            tick.tick().await;
            live.push_back(spawn_subscriber(
                api.clone(),
                spec.clone(),
                format!("churn{i}"),
                feeds.clone(),
            ));
            if live.len() as u64 > CHURN_STAY {
                if let Some(h) = live.pop_front() {
                    leave(h, &churned, &errors).await;
                }
            }
        }
        while let Some(h) = live.pop_front() {
            leave(h, &churned, &errors).await;
        }
    };
    let window = Window {
        receivers: steady.iter().map(|p| (p, streams_of(0).to_vec())).collect(),
        publishers: vec![&publisher],
    };
    // The window is the churn itself; it ends when the last churner has left.
    window.measure(ctx, spec.n as f64, during).await?;
    // Let the server finish tearing the last ones down before reading its memory.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_after = procfs::rss_bytes(spec.server_pid)? as f64 / 1e6;
    ctx.result.rss_mb = rss_after;
    ctx.errors
        .extend(errors.into_inner().unwrap_or_else(|e| e.into_inner()));
    ctx.result.join_failures = ctx.errors.len() as u32;
    let joined = churned.into_inner();
    ctx.result.participants = joined.len() as u32;
    ctx.result.rss_per_peer_kb = Some((rss_after - rss_before) * 1000.0 / f64::from(spec.n.max(1)));
    join_figures(&mut ctx.result, &joined.iter().collect::<Vec<_>>());
    close_all(steady).await;
    publisher.close().await;
    Ok(())
}

/// Ends a churning subscriber: records its figures (kept as closed participants) and leaves.
async fn leave(
    h: JoinHandle<anyhow::Result<Participant>>,
    churned: &tokio::sync::Mutex<Vec<Participant>>,
    errors: &std::sync::Mutex<Vec<String>>,
) {
    match h.await {
        Ok(Ok(p)) => {
            // Keep the receive side for the join figures; close the connections now.
            let kept = Participant {
                name: p.name.clone(),
                feed: None,
                recv: p.recv.clone(),
                pcs: Vec::new(),
                cancel: tokio_util::sync::CancellationToken::new(),
                media: None,
            };
            p.close().await;
            churned.lock().await.push(kept);
        }
        Ok(Err(e)) => {
            warn!(error = %e, "churn join failed");
            errors
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(format!("{e:#}"));
        }
        Err(e) => errors
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(format!("join task: {e}")),
    }
}
