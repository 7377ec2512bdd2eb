//! `videoroom-server`: the whole app in one process.

use clap::Parser;
use server::Config;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| {
            EnvFilter::new("info,webrtc=warn,webrtc_ice=warn,webrtc_srtp=warn,webrtc_dtls=warn")
        }))
        .init();
    let config = Config::parse();
    let server = server::start(config).await?;
    println!("Videoroom is running at http://{}", server.addr);
    let state = server.state.clone();
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("shutting down: telling every peer");
        state.shutdown.cancel();
    });
    server.wait().await
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(t) => t,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
