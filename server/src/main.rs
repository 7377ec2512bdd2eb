//! `videoroom-server`: the whole app in one process.

use clap::{Parser, Subcommand};
use server::Config;

/// Videoroom: a browser video room and its Selective Forwarding Unit.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(flatten)]
    config: Config,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Print a join token for a room (needs --join-token-secret), then exit.
    MintToken {
        /// The room the token admits to.
        room: String,
        /// How long the token stays valid.
        #[arg(long, default_value_t = 24 * 3600)]
        valid_for_secs: u64,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    server::logging::init(std::io::stdout);
    let Cli { config, command } = Cli::parse_from(server::config::with_config_file(
        std::env::args_os().collect(),
    )?);
    if let Some(Command::MintToken {
        room,
        valid_for_secs,
    }) = command
    {
        protocol::validate_room_name(&room)?;
        let secret = config
            .join_token_secret
            .as_deref()
            .ok_or_else(|| anyhow::anyhow!("mint-token needs --join-token-secret"))?;
        let key = server::access::TokenKey::new(secret).map_err(anyhow::Error::msg)?;
        let expires = server::access::expiry(server::access::now_unix(), valid_for_secs)?;
        println!("{}", key.mint(&room, expires));
        return Ok(());
    }
    let server = server::start(config).await?;
    println!("Videoroom is running at {}", server.url());
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
