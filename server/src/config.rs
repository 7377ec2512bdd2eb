//! The server's settings: command-line flags (clap), each with an environment variable twin,
//! and optionally a TOML file with the same names (`--config`).

use std::ffi::OsString;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{CommandFactory, Parser};

/// The server's settings (flattened into the binary's command line).
#[derive(Debug, Clone, Parser)]
pub struct Config {
    /// TOML file of settings named as these flags (`bind = "0.0.0.0:4000"`, `ice_ips =
    /// ["10.0.0.5"]`); flags on the command line and `VIDEOROOM_*` variables override it.
    #[arg(long, env = "VIDEOROOM_CONFIG")]
    pub config: Option<PathBuf>,

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

    /// STUN server URLs handed to clients (e.g. `stun:turn.example.com:3478`).
    #[arg(long, env = "VIDEOROOM_STUN_URLS", value_delimiter = ',')]
    pub stun_urls: Vec<String>,

    /// TURN server URLs handed to clients with short-lived credentials (needs --turn-secret),
    /// e.g. `turn:turn.example.com:3478?transport=udp`.
    #[arg(
        long,
        env = "VIDEOROOM_TURN_URLS",
        value_delimiter = ',',
        requires = "turn_secret"
    )]
    pub turn_urls: Vec<String>,

    /// The secret shared with the TURN server (coturn: `use-auth-secret`,
    /// `static-auth-secret`).
    #[arg(long, env = "VIDEOROOM_TURN_SECRET", hide_env_values = true)]
    pub turn_secret: Option<String>,

    /// How long a TURN credential stays valid.
    #[arg(long, env = "VIDEOROOM_TURN_CREDENTIAL_TTL_SECS", default_value_t = 6 * 3600)]
    pub turn_credential_ttl_secs: u64,

    /// Serve HTTPS with this PEM certificate chain (needs --tls-key).
    #[arg(long, env = "VIDEOROOM_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// The private key (PEM) of --tls-cert.
    #[arg(long, env = "VIDEOROOM_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// Serve HTTPS with a self-signed certificate for this machine's names and addresses, made
    /// once and kept in --tls-dir (for a LAN: browsers ask to accept it once).
    #[arg(long, env = "VIDEOROOM_TLS_SELF_SIGNED", conflicts_with = "tls_cert")]
    pub tls_self_signed: bool,

    /// Where the self-signed certificate is kept.
    #[arg(long, env = "VIDEOROOM_TLS_DIR", default_value = "videoroom-dev-tls")]
    pub tls_dir: PathBuf,

    /// Seconds a participant whose connection dropped (no `leave`) keeps its place: the others
    /// see its media go at once but no departure, and a reconnect with its token within this
    /// time comes back as the same participant. 0 removes it at once.
    #[arg(long, env = "VIDEOROOM_RECONNECT_GRACE_SECS", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(0..=3600))]
    pub reconnect_grace_secs: u64,

    /// Seconds a new WebSocket may take to join a room before it is closed.
    #[arg(long, env = "VIDEOROOM_JOIN_TIMEOUT_SECS", default_value_t = 10)]
    pub join_timeout_secs: u64,

    /// Fan-out shards per published track: its audience is split over this many tasks, so a
    /// large audience is served from several cores (default: the cores this process may use).
    #[arg(long, env = "VIDEOROOM_FANOUT_SHARDS",
          value_parser = clap::value_parser!(u16).range(1..=64))]
    pub fanout_shards: Option<u16>,

    /// The Redis shared by every node of a cluster (`redis://host:port/`): rooms are then
    /// owned through leases in it and nodes list each other (`/cluster`). Without it, this one
    /// node serves every room and nothing is shared.
    #[arg(long, env = "VIDEOROOM_REDIS_URL")]
    pub redis_url: Option<String>,

    /// This node's id in the cluster (default: a fresh one per process).
    #[arg(long, env = "VIDEOROOM_NODE_ID")]
    pub node_id: Option<String>,

    /// The URL other nodes reach this one at (default: `http://` and the address it listens
    /// on, which must then be reachable from them).
    #[arg(long, env = "VIDEOROOM_ADVERTISE_URL")]
    pub advertise_url: Option<String>,

    /// Milliseconds between a node's heartbeats (its registration and room leases renewed).
    #[arg(long, env = "VIDEOROOM_CLUSTER_HEARTBEAT_MS", default_value_t = 1000,
          value_parser = clap::value_parser!(u64).range(100..=60_000))]
    pub cluster_heartbeat_ms: u64,

    /// Milliseconds a node's registration and room leases outlive its last heartbeat (at
    /// least three heartbeats): how soon the rooms of a node that died can be taken.
    #[arg(long, env = "VIDEOROOM_CLUSTER_LEASE_MS", default_value_t = 5000,
          value_parser = clap::value_parser!(u64).range(300..=600_000))]
    pub cluster_lease_ms: u64,

    /// Simulcast: each camera is asked for three layers (quarter, half and full size) and
    /// each viewer gets the one its tile and its link fit. Off: one stream per camera,
    /// forwarded as it comes.
    #[arg(long, env = "VIDEOROOM_SIMULCAST")]
    pub simulcast: bool,

    /// Most TCP connections open at once (page loads and WebSockets); the next is closed at once.
    #[arg(long, env = "VIDEOROOM_MAX_CONNECTIONS", default_value_t = 4096,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections: u32,

    /// Most TCP connections open at once from one source address (behind a reverse proxy on
    /// this machine every client is one address: raise it to --max-connections there).
    #[arg(long, env = "VIDEOROOM_MAX_CONNECTIONS_PER_IP", default_value_t = 256,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections_per_ip: u32,

    /// Seconds a client has to send a request's headers, an idle keep-alive connection
    /// included, before the connection is closed.
    #[arg(long, env = "VIDEOROOM_HEADER_TIMEOUT_SECS", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub header_timeout_secs: u64,

    /// Room joins one source address may make per minute (after a burst of a third of it, at
    /// least 5); the next is denied until the rate allows it.
    #[arg(long, env = "VIDEOROOM_JOINS_PER_MINUTE_PER_IP", default_value_t = 30,
          value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub joins_per_minute_per_ip: u32,

    /// Participants from one source address whose media is not up yet (joined, still
    /// connecting); the next join from there is denied until one connects or goes. A room
    /// cannot be filled with joins that never answer from one address.
    #[arg(long, env = "VIDEOROOM_MAX_CONNECTING_PER_IP", default_value_t = 8,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connecting_per_ip: u32,

    /// Host names the server is reached by (e.g. `meet.example.com`), checked on the WebSocket
    /// against DNS rebinding: `localhost` and IP addresses are always accepted, other names
    /// only if listed here.
    #[arg(long, env = "VIDEOROOM_PUBLIC_HOST", value_delimiter = ',')]
    pub public_host: Vec<String>,

    /// Serve `/metrics` (and `/healthz`'s figures) only with `Authorization: Bearer <token>`;
    /// without it `/healthz` says only whether the server is up.
    #[arg(long, env = "VIDEOROOM_METRICS_TOKEN", hide_env_values = true)]
    pub metrics_token: Option<String>,
}

impl Config {
    /// Settings for tests: an ephemeral loopback port and ICE on 127.0.0.1 only.
    pub fn for_tests() -> Self {
        Config {
            config: None,
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            static_dir: PathBuf::from("dist"),
            ice_ips: vec![IpAddr::from([127, 0, 0, 1])],
            nat_1to1_ip: None,
            udp_port: 0,
            udp_port_range: None,
            max_peers_per_room: 16,
            max_peers: 512,
            join_timeout_secs: 10,
            // Tests of departures expect them at once; the reconnect tests set a grace.
            reconnect_grace_secs: 0,
            allowed_origins: Vec::new(),
            keepalive_secs: 9,
            ice_connect_timeout_secs: 20,
            join_token_secret: None,
            stun_urls: Vec::new(),
            turn_urls: Vec::new(),
            turn_secret: None,
            turn_credential_ttl_secs: 6 * 3600,
            tls_cert: None,
            tls_key: None,
            tls_self_signed: false,
            tls_dir: PathBuf::from("videoroom-dev-tls"),
            fanout_shards: None,
            redis_url: None,
            node_id: None,
            advertise_url: None,
            cluster_heartbeat_ms: 1000,
            cluster_lease_ms: 5000,
            simulcast: false,
            // Tests open many connections and joins from 127.0.0.1; the limit tests set theirs.
            max_connections: 4096,
            max_connections_per_ip: 4096,
            header_timeout_secs: 10,
            joins_per_minute_per_ip: 100_000,
            max_connecting_per_ip: 4096,
            public_host: Vec::new(),
            metrics_token: None,
        }
    }

    /// Fan-out shards per track: the setting, else one per core this process may use (at
    /// most 8).
    pub fn fanout_shards(&self) -> usize {
        match self.fanout_shards {
            Some(n) => usize::from(n),
            None => std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
                .clamp(1, 8),
        }
    }

    /// Where the HTTPS certificate comes from, if HTTPS is on.
    pub fn cert_source(&self) -> Option<crate::tls::CertSource> {
        match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => Some(crate::tls::CertSource::Files {
                cert: cert.clone(),
                key: key.clone(),
            }),
            _ if self.tls_self_signed => Some(crate::tls::CertSource::SelfSigned {
                dir: self.tls_dir.clone(),
            }),
            _ => None,
        }
    }

    /// A request's headers deadline.
    pub fn header_timeout(&self) -> Duration {
        Duration::from_secs(self.header_timeout_secs)
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

    /// How long a dropped participant keeps its place.
    pub fn reconnect_grace(&self) -> std::time::Duration {
        Duration::from_secs(self.reconnect_grace_secs)
    }

    /// How long a fresh connection may take to join.
    pub fn join_timeout(&self) -> Duration {
        Duration::from_secs(self.join_timeout_secs)
    }
}

/// Why a config file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigFileError {
    /// It could not be read.
    #[error("config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// It is not TOML.
    #[error("config file {path}: {source}")]
    Syntax {
        /// The file.
        path: PathBuf,
        /// The parse error.
        source: toml::de::Error,
    },
    /// A key names no setting, or its value has the wrong shape.
    #[error("config file {path}: {message}")]
    Setting {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

/// The command line with the settings of the `--config` file (or `VIDEOROOM_CONFIG`) added as
/// flags, so that clap checks every value; a setting also given as a flag or an environment
/// variable is left to those.
pub fn with_config_file(args: Vec<OsString>) -> Result<Vec<OsString>, ConfigFileError> {
    let from_args = args.iter().enumerate().find_map(|(i, a)| {
        let a = a.to_str()?;
        if a == "--config" {
            args.get(i + 1).map(PathBuf::from)
        } else {
            a.strip_prefix("--config=").map(PathBuf::from)
        }
    });
    let Some(path) = from_args.or_else(|| std::env::var_os("VIDEOROOM_CONFIG").map(PathBuf::from))
    else {
        return Ok(args);
    };
    let text = std::fs::read_to_string(&path).map_err(|source| ConfigFileError::Read {
        path: path.clone(),
        source,
    })?;
    let given: Vec<&str> = args.iter().filter_map(|a| a.to_str()).collect();
    let flags = config_flags(&path, &text, |flag, env| {
        let long = format!("--{flag}");
        given
            .iter()
            .any(|a| *a == long || a.starts_with(&format!("{long}=")))
            || env.is_some_and(|e| std::env::var_os(e).is_some())
    })?;
    let mut out = Vec::with_capacity(args.len() + flags.len());
    let mut args = args.into_iter();
    out.extend(args.next());
    out.extend(flags);
    out.extend(args);
    Ok(out)
}

/// `--name=value` flags for each setting in a TOML text, but those `overridden(flag, env)`.
fn config_flags(
    path: &Path,
    text: &str,
    overridden: impl Fn(&str, Option<&std::ffi::OsStr>) -> bool,
) -> Result<Vec<OsString>, ConfigFileError> {
    let table: toml::Table = text.parse().map_err(|source| ConfigFileError::Syntax {
        path: path.to_owned(),
        source,
    })?;
    let command = Config::command();
    let known: Vec<(&str, Option<&std::ffi::OsStr>)> = command
        .get_arguments()
        .filter_map(|a| Some((a.get_long()?, a.get_env())))
        .filter(|(l, _)| *l != "config")
        .collect();
    let bad = |message: String| ConfigFileError::Setting {
        path: path.to_owned(),
        message,
    };
    let mut flags = Vec::new();
    for (key, value) in table {
        let flag = key.replace('_', "-");
        let Some(&(_, env)) = known.iter().find(|(l, _)| *l == flag) else {
            let names: Vec<String> = known.iter().map(|(l, _)| l.replace('-', "_")).collect();
            return Err(bad(format!(
                "unknown setting `{key}`; known: {}",
                names.join(", ")
            )));
        };
        if overridden(&flag, env) {
            continue;
        }
        match value {
            // A switch: present or absent.
            toml::Value::Boolean(true) => {
                flags.push(OsString::from(format!("--{flag}")));
                continue;
            }
            toml::Value::Boolean(false) => continue,
            _ => {}
        }
        let scalar = |v: &toml::Value| match v {
            toml::Value::String(s) => Ok(s.clone()),
            toml::Value::Integer(i) => Ok(i.to_string()),
            toml::Value::Float(f) => Ok(f.to_string()),
            toml::Value::Boolean(b) => Ok(b.to_string()),
            other => Err(bad(format!(
                "`{key}` must be a string, number or list, not {}",
                other.type_str()
            ))),
        };
        let value = match &value {
            toml::Value::Array(items) => items
                .iter()
                .map(scalar)
                .collect::<Result<Vec<_>, _>>()?
                .join(","),
            v => scalar(v)?,
        };
        flags.push(OsString::from(format!("--{flag}={value}")));
    }
    Ok(flags)
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

    fn parse_with_file(text: &str, args: &[&str]) -> Result<Config, String> {
        let path = std::env::temp_dir().join(format!(
            "videoroom-config-{}-{}.toml",
            std::process::id(),
            text.len()
        ));
        std::fs::write(&path, text).unwrap();
        let mut argv: Vec<OsString> = vec!["s".into(), "--config".into(), path.clone().into()];
        argv.extend(args.iter().map(OsString::from));
        let out = with_config_file(argv)
            .map_err(|e| e.to_string())
            .and_then(|a| Config::try_parse_from(a).map_err(|e| e.to_string()));
        std::fs::remove_file(&path).unwrap();
        out
    }

    #[test]
    fn a_config_file_sets_flags_and_the_command_line_wins() {
        let c = parse_with_file(
            "bind = \"0.0.0.0:4443\"\nice_ips = [\"10.0.0.5\", \"10.0.0.6\"]\n\
             max-peers-per-room = 4\nudp_port_range = \"50000-50100\"\n",
            &["--max-peers-per-room", "8"],
        )
        .unwrap();
        assert_eq!(c.bind, "0.0.0.0:4443".parse::<SocketAddr>().unwrap());
        assert_eq!(c.ice_ips.len(), 2);
        assert_eq!(c.max_peers_per_room, 8, "the command line wins");
        assert_eq!(c.udp_port_range, Some((50000, 50100)));
    }

    #[test]
    fn config_file_mistakes_are_named() {
        let e = parse_with_file("bnid = \"x\"\n", &[]).unwrap_err();
        assert!(
            e.contains("unknown setting `bnid`") && e.contains("bind"),
            "{e}"
        );
        let e = parse_with_file("bind = [\n", &[]).unwrap_err();
        assert!(e.contains("config file"), "{e}");
        let e = parse_with_file("[section]\nbind = 1\n", &[]).unwrap_err();
        assert!(e.contains("unknown setting `section`"), "{e}");
        let e = parse_with_file("max_peers_per_room = 0\n", &[]).unwrap_err();
        assert!(
            e.contains("max-peers-per-room"),
            "clap checks file values too: {e}"
        );
        let missing = with_config_file(vec!["s".into(), "--config=/nonexistent.toml".into()]);
        assert!(matches!(missing, Err(ConfigFileError::Read { .. })));
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
        assert!(!c.simulcast, "simulcast is off by default (for now)");
        let on = Config::try_parse_from(["s", "--simulcast"]).unwrap();
        assert!(on.simulcast);
        assert!(
            parse_with_file("simulcast = true\n", &[])
                .unwrap()
                .simulcast
        );
        assert!(Config::try_parse_from(["s", "--max-peers-per-room", "0"]).is_err());
        assert!(
            Config::try_parse_from(["s", "--udp-port", "1", "--udp-port-range", "2-3"]).is_err()
        );
    }
}
