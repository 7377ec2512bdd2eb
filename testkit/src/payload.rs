//! Synthetic payloads that prove integrity end to end: a counter, then bytes derived from it.

use bytes::Bytes;

/// A payload of `size` bytes (at least 4) for packet number `counter`.
pub fn make_payload(counter: u32, size: usize) -> Bytes {
    let size = size.max(4);
    let mut v = Vec::with_capacity(size);
    v.extend_from_slice(&counter.to_be_bytes());
    v.extend((4..size).map(|i| pattern(counter, i)));
    Bytes::from(v)
}

/// Whether a payload is exactly what [`make_payload`] wrote for its counter.
pub fn check_payload(p: &[u8]) -> bool {
    let Some(head) = p.get(..4) else {
        return false;
    };
    let counter = u32::from_be_bytes([head[0], head[1], head[2], head[3]]);
    p.iter()
        .enumerate()
        .skip(4)
        .all(|(i, &b)| b == pattern(counter, i))
}

fn pattern(counter: u32, i: usize) -> u8 {
    (counter as usize).wrapping_mul(31).wrapping_add(i) as u8
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_corruption() {
        let p = make_payload(7, 100);
        assert_eq!(p.len(), 100);
        assert!(check_payload(&p));
        let mut bad = p.to_vec();
        bad[50] ^= 1;
        assert!(!check_payload(&bad));
        assert!(!check_payload(&[1, 2]));
    }
}
