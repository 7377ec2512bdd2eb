//! Optional room access control: signed join tokens. Off by default (as in the original);
//! with `--join-token-secret` every channel join must carry a token for that room, signed with
//! the secret and not yet expired.
//!
//! A token is `<payload>.<signature>`, both base64url without padding: the payload is the JSON
//! `{"room": "<name>", "exp": <unix seconds>}`, the signature its HMAC-SHA256.

use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

/// The shortest secret accepted, in bytes.
pub const MIN_SECRET_BYTES: usize = 16;

/// Why a token was refused; the text goes to the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// No token, but the server requires one.
    #[error("this server requires a join token")]
    Missing,
    /// Not two base64url parts with a JSON payload.
    #[error("the join token is malformed")]
    Malformed,
    /// The signature does not match.
    #[error("the join token's signature is invalid")]
    BadSignature,
    /// Past its expiry.
    #[error("the join token has expired")]
    Expired,
    /// Signed for another room.
    #[error("the join token is for another room")]
    WrongRoom,
}

#[derive(Serialize, Deserialize)]
struct Claims {
    room: String,
    exp: u64,
}

/// The key join tokens are signed with.
#[derive(Clone)]
pub struct TokenKey(Vec<u8>);

impl std::fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenKey(..)")
    }
}

/// Seconds since the Unix epoch.
pub fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A validity a token cannot carry: its expiry would pass the largest Unix time it can hold.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a token valid for {valid_for_secs} s from now cannot be written: its expiry passes the largest Unix time a token holds ({max}); ask for less")]
pub struct ValidityTooLong {
    /// What was asked for.
    pub valid_for_secs: u64,
    /// The largest expiry (JavaScript's largest exact integer, so every reader sees one value).
    pub max: u64,
}

/// The largest expiry a token carries: 2^53 − 1, exact in every JSON reader.
pub const MAX_EXPIRY: u64 = (1 << 53) - 1;

/// The expiry of a token minted at `now` for `valid_for_secs`, refused rather than wrapped.
pub fn expiry(now: u64, valid_for_secs: u64) -> Result<u64, ValidityTooLong> {
    now.checked_add(valid_for_secs)
        .filter(|&exp| exp <= MAX_EXPIRY)
        .ok_or(ValidityTooLong {
            valid_for_secs,
            max: MAX_EXPIRY,
        })
}

impl TokenKey {
    /// A key from a secret of at least [`MIN_SECRET_BYTES`].
    pub fn new(secret: &str) -> Result<Self, String> {
        if secret.len() < MIN_SECRET_BYTES {
            return Err(format!(
                "the join token secret must be at least {MIN_SECRET_BYTES} bytes"
            ));
        }
        Ok(TokenKey(secret.as_bytes().to_vec()))
    }

    fn mac(&self) -> Hmac<Sha256> {
        // HMAC accepts keys of any length.
        <Hmac<Sha256> as Mac>::new_from_slice(&self.0).expect("HMAC takes any key length")
    }

    /// A token for `room`, valid until `exp` (Unix seconds).
    pub fn mint(&self, room: &str, exp: u64) -> String {
        let claims = Claims {
            room: room.to_owned(),
            exp,
        };
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).unwrap_or_default());
        let mut mac = self.mac();
        mac.update(payload.as_bytes());
        let sig = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
        format!("{payload}.{sig}")
    }

    /// Checks `token` for joining `room` at time `now` (Unix seconds).
    pub fn verify(&self, token: Option<&str>, room: &str, now: u64) -> Result<(), TokenError> {
        let token = token.ok_or(TokenError::Missing)?;
        let (payload, sig) = token.split_once('.').ok_or(TokenError::Malformed)?;
        let sig = URL_SAFE_NO_PAD
            .decode(sig)
            .map_err(|_| TokenError::Malformed)?;
        let mut mac = self.mac();
        mac.update(payload.as_bytes());
        // Constant-time comparison.
        mac.verify_slice(&sig)
            .map_err(|_| TokenError::BadSignature)?;
        let claims: Claims = URL_SAFE_NO_PAD
            .decode(payload)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or(TokenError::Malformed)?;
        if claims.room != room {
            return Err(TokenError::WrongRoom);
        }
        if now >= claims.exp {
            return Err(TokenError::Expired);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_expiry_past_what_a_token_holds_is_refused_not_wrapped() {
        assert_eq!(expiry(1_000, 86_400), Ok(87_400));
        let e = expiry(1_700_000_000, u64::MAX).unwrap_err();
        assert!(e.to_string().contains("cannot be written"), "{e}");
        assert!(expiry(0, MAX_EXPIRY).is_ok());
        assert!(expiry(1, MAX_EXPIRY).is_err());
    }

    fn key() -> TokenKey {
        TokenKey::new("correct horse battery staple").unwrap()
    }

    #[test]
    fn valid_tokens_pass_and_every_fault_is_named() {
        let k = key();
        let t = k.mint("standup", 1000);
        assert_eq!(k.verify(Some(&t), "standup", 999), Ok(()));
        assert_eq!(k.verify(None, "standup", 0), Err(TokenError::Missing));
        assert_eq!(
            k.verify(Some(&t), "standup", 1000),
            Err(TokenError::Expired)
        );
        assert_eq!(k.verify(Some(&t), "other", 0), Err(TokenError::WrongRoom));
        assert_eq!(
            k.verify(Some("nodot"), "standup", 0),
            Err(TokenError::Malformed)
        );
        let other = TokenKey::new("another secret of enough bytes").unwrap();
        assert_eq!(
            other.verify(Some(&t), "standup", 0),
            Err(TokenError::BadSignature)
        );
        // A payload rewritten for another room no longer matches its signature.
        let (_, sig) = t.split_once('.').unwrap();
        let forged_payload = URL_SAFE_NO_PAD.encode(br#"{"room":"other","exp":99999}"#);
        assert_eq!(
            k.verify(Some(&format!("{forged_payload}.{sig}")), "other", 0),
            Err(TokenError::BadSignature)
        );
    }

    #[test]
    fn short_secrets_are_refused() {
        assert!(TokenKey::new("short").is_err());
    }
}
