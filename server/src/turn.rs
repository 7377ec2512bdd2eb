//! The ICE servers a client is told to use: STUN for discovering its public address, TURN for
//! when no direct path exists (strict NATs, UDP blocked). TURN credentials are short-lived, in
//! the TURN REST scheme that coturn's `use-auth-secret` checks: the user name is
//! `<expiry unix time>:<peer id>` and the password `base64(HMAC-SHA1(secret, user name))`, so
//! the secret never leaves the server and a leaked credential expires.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use protocol::IceServer;
use sha1::Sha1;

use crate::Config;

/// The ICE servers for `peer_id` joining at `now` (unix seconds).
pub fn ice_servers(config: &Config, peer_id: &str, now: u64) -> Vec<IceServer> {
    let mut servers = Vec::new();
    if !config.stun_urls.is_empty() {
        servers.push(IceServer {
            urls: config.stun_urls.clone(),
            username: None,
            credential: None,
        });
    }
    if let (false, Some(secret)) = (config.turn_urls.is_empty(), &config.turn_secret) {
        let (username, credential) =
            rest_credential(secret, peer_id, now + config.turn_credential_ttl_secs);
        servers.push(IceServer {
            urls: config.turn_urls.clone(),
            username: Some(username),
            credential: Some(credential),
        });
    }
    servers
}

/// The TURN REST user name and password for `peer_id`, valid until `expiry`.
pub fn rest_credential(secret: &str, peer_id: &str, expiry: u64) -> (String, String) {
    let username = format!("{expiry}:{peer_id}");
    let mut mac =
        <Hmac<Sha1> as Mac>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(username.as_bytes());
    (username, STANDARD.encode(mac.finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rest_credentials_match_the_turn_rest_scheme() {
        // Computed independently: printf '1700000000:p1' | openssl dgst -sha1 -hmac secret -binary | base64
        let (user, pass) = rest_credential("secret", "p1", 1_700_000_000);
        assert_eq!(user, "1700000000:p1");
        assert_eq!(pass, "0eBzZq6Gbz8vtWCnJTCAn+awJQI=");
    }

    #[test]
    fn servers_only_when_configured() {
        let mut c = Config::for_tests();
        assert!(ice_servers(&c, "p", 0).is_empty());
        c.stun_urls = vec!["stun:stun.example.com:3478".into()];
        c.turn_urls = vec!["turn:turn.example.com:3478".into()];
        assert_eq!(ice_servers(&c, "p", 0).len(), 1, "TURN needs its secret");
        c.turn_secret = Some("s".into());
        c.turn_credential_ttl_secs = 60;
        let s = ice_servers(&c, "p", 100);
        assert_eq!(s.len(), 2);
        assert_eq!(s[1].username.as_deref(), Some("160:p"));
    }
}
