//! The server's settings: command-line flags (clap), each with an environment variable twin.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

/// The server's settings (flattened into the binary's command line).
#[derive(Debug, Clone, Parser)]
pub struct Config {
    /// HTTP + WebSocket listen address.
    #[arg(long, env = "VIDEOROOM_BIND", default_value = "127.0.0.1:4000")]
    pub bind: SocketAddr,

    /// Folder with the built client (Trunk's dist/), served at `/`.
    #[arg(long, env = "VIDEOROOM_STATIC_DIR", default_value = "dist")]
    pub static_dir: PathBuf,

    /// Only these local addresses are offered as ICE candidates (default: every interface,
    /// loopback excluded). Tests pass 127.0.0.1.
    #[arg(long, env = "VIDEOROOM_ICE_IPS", value_delimiter = ',')]
    pub ice_ips: Vec<IpAddr>,

    /// Public address to advertise instead of the local one (1:1 NAT, e.g. a cloud VM).
    #[arg(long, env = "VIDEOROOM_NAT_1TO1_IP")]
    pub nat_1to1_ip: Option<IpAddr>,

    /// UDP media port: one port shared by every peer connection (0 picks a free one).
    #[arg(
        long,
        env = "VIDEOROOM_UDP_PORT",
        default_value_t = 4000,
        conflicts_with = "udp_port_range"
    )]
    pub udp_port: u16,

    /// Instead of one shared port, give each peer connection its own port from MIN-MAX.
    #[arg(long, env = "VIDEOROOM_UDP_PORT_RANGE", value_parser = parse_port_range)]
    pub udp_port_range: Option<(u16, u16)>,

    /// Most participants in one room; the next one is denied.
    #[arg(long, env = "VIDEOROOM_MAX_PEERS_PER_ROOM", default_value_t = 16,
          value_parser = clap::value_parser!(u16).range(1..=protocol::MAX_PEERS_LISTED as i64))]
    pub max_peers_per_room: u16,

    /// Most participants on the whole server.
    #[arg(long, env = "VIDEOROOM_MAX_PEERS", default_value_t = 512)]
    pub max_peers: u32,

    /// Browser origins (e.g. `http://localhost:8080`) allowed to open the WebSocket besides the
    /// server's own; `*` allows any. Requests without an Origin (non-browser clients) pass.
    #[arg(long, env = "VIDEOROOM_ALLOWED_ORIGINS", value_delimiter = ',')]
    pub allowed_origins: Vec<String>,

    /// Seconds of silence (no message, no pong) after which a client in a room counts as gone
    /// even if its TCP connection looks open; the server pings every third of it.
    #[arg(long, env = "VIDEOROOM_KEEPALIVE_SECS", default_value_t = 9,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub keepalive_secs: u64,

    /// Seconds a participant's media connection (ICE + DTLS) may take to come up.
    #[arg(long, env = "VIDEOROOM_ICE_CONNECT_TIMEOUT_SECS", default_value_t = 20,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub ice_connect_timeout_secs: u64,

    /// Require a signed join token (see `mint-token`) for every room; at least 16 bytes.
    #[arg(long, env = "VIDEOROOM_JOIN_TOKEN_SECRET", hide_env_values = true)]
    pub join_token_secret: Option<String>,

    /// Seconds a new WebSocket may take to join a room before it is closed.
    #[arg(long, env = "VIDEOROOM_JOIN_TIMEOUT_SECS", default_value_t = 10)]
    pub join_timeout_secs: u64,
}

impl Config {
    /// Settings for tests: an ephemeral loopback port and ICE on 127.0.0.1 only.
    pub fn for_tests() -> Self {
        Config {
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            static_dir: PathBuf::from("dist"),
            ice_ips: vec![IpAddr::from([127, 0, 0, 1])],
            nat_1to1_ip: None,
            udp_port: 0,
            udp_port_range: None,
            max_peers_per_room: 16,
            max_peers: 512,
            join_timeout_secs: 10,
            allowed_origins: Vec::new(),
            keepalive_secs: 9,
            ice_connect_timeout_secs: 20,
            join_token_secret: None,
        }
    }

    /// Silence after which a client in a room is gone.
    pub fn keepalive(&self) -> Duration {
        Duration::from_secs(self.keepalive_secs)
    }

    /// How often the server pings: three pings fit in the keepalive window.
    pub fn ping_interval(&self) -> Duration {
        self.keepalive() / 3
    }

    /// How long ICE and DTLS may take.
    pub fn ice_connect_timeout(&self) -> Duration {
        Duration::from_secs(self.ice_connect_timeout_secs)
    }

    /// How long a fresh connection may take to join.
    pub fn join_timeout(&self) -> Duration {
        Duration::from_secs(self.join_timeout_secs)
    }
}

fn parse_port_range(s: &str) -> Result<(u16, u16), String> {
    let (a, b) = s
        .split_once('-')
        .ok_or_else(|| format!("expected MIN-MAX, got {s:?}"))?;
    let parse = |p: &str| {
        p.trim()
            .parse::<u16>()
            .map_err(|e| format!("bad port {p:?}: {e}"))
    };
    let (min, max) = (parse(a)?, parse(b)?);
    if min == 0 || min > max {
        return Err(format!("need 0 < MIN <= MAX, got {min}-{max}"));
    }
    Ok((min, max))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_ranges() {
        assert_eq!(parse_port_range("50000-50100"), Ok((50000, 50100)));
        assert!(parse_port_range("5-1").is_err());
        assert!(parse_port_range("x").is_err());
    }

    #[test]
    fn flags_parse_and_clash() {
        let c = Config::try_parse_from([
            "s",
            "--ice-ips",
            "127.0.0.1,::1",
            "--max-peers-per-room",
            "2",
        ])
        .unwrap();
        assert_eq!(c.ice_ips.len(), 2);
        assert_eq!(c.max_peers_per_room, 2);
        assert!(Config::try_parse_from(["s", "--max-peers-per-room", "0"]).is_err());
        assert!(
            Config::try_parse_from(["s", "--udp-port", "1", "--udp-port-range", "2-3"]).is_err()
        );
    }
}
