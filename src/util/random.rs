//! Randomness that is only best effort: jitter and names (message ids, multipart boundaries),
//! where a failing OS random source must not stop the work. Keys and codes call `getrandom`
//! themselves and fail when it fails.

/// Uniform in [0, 1) from the OS random source; 0.5 (no jitter) if it cannot be had.
pub fn unit() -> f64 {
    let mut bytes = [0u8; 8];
    if getrandom::fill(&mut bytes).is_err() {
        return 0.5;
    }
    (u64::from_le_bytes(bytes) >> 11) as f64 / (1u64 << 53) as f64
}

/// `N` bytes from the OS random source (zeros if it cannot be had).
pub fn bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    let _ = getrandom::fill(&mut b);
    b
}

/// `N` random bytes as hex, for names that need only be unique.
pub fn hex<const N: usize>() -> String {
    super::hex::encode(&bytes::<N>())
}

#[cfg(test)]
mod tests {
    #[test]
    fn units_are_in_range_and_names_differ() {
        for _ in 0..100 {
            let u = super::unit();
            assert!((0.0..1.0).contains(&u));
        }
        assert_ne!(super::hex::<8>(), super::hex::<8>());
        assert_eq!(super::hex::<8>().len(), 16);
    }
}
