//! Reconnect tokens: 128 random bits in hex, compared in constant time. The room issues one per
//! admission and keeps the member's latest; a `join` presenting it gets the same peer id back.

/// A fresh reconnect token: 128 random bits from the system's secure generator, in hex.
pub fn new_token() -> String {
    let mut bytes = [0u8; 16];
    // The TLS stack's generator (ring): already built in, no other dependency. It only fails
    // when the OS has no randomness at all; a UUID v4 (also OS randomness) is the fallback.
    let provider = rustls::crypto::ring::default_provider();
    if provider.secure_random.fill(&mut bytes).is_err() {
        bytes = uuid::Uuid::new_v4().into_bytes();
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether a presented token is this one, in time independent of where they differ.
pub fn tokens_match(ours: &str, presented: &str) -> bool {
    ours.len() == presented.len()
        && ours
            .bytes()
            .zip(presented.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_128_random_bits_in_hex_and_compared_exactly() {
        let a = new_token();
        let b = new_token();
        assert_eq!(a.len(), 32);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
        assert!(tokens_match(&a, &a.clone()));
        assert!(!tokens_match(&a, &b));
        assert!(!tokens_match(&a, &a[..31]));
        assert!(!tokens_match(&a, ""));
    }
}
