//! Pairing codes: 8 characters from an alphabet without look-alikes (no 0/O, 1/I), drawn from
//! the OS CSPRNG, stored only as a salted SHA-256 hash and compared in constant time.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

pub const CODE_ALPHABET: &[u8; 32] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
pub const CODE_LEN: usize = 8;

/// The OS random source failed: no code, salt or id is made at all.
#[derive(Debug, thiserror::Error)]
#[error("the OS random source is unavailable: {0}")]
pub struct RandomUnavailable(String);

fn random_bytes<const N: usize>() -> Result<[u8; N], RandomUnavailable> {
    let mut bytes = [0u8; N];
    // No fallback: a pairing code from anything but the OS CSPRNG must not exist.
    getrandom::fill(&mut bytes).map_err(|e| RandomUnavailable(e.to_string()))?;
    Ok(bytes)
}

/// A new code. 32 divides 256, so `byte % 32` is uniform.
pub fn new_code() -> Result<String, RandomUnavailable> {
    Ok(random_bytes::<CODE_LEN>()?
        .iter()
        .map(|b| CODE_ALPHABET[(*b % 32) as usize] as char)
        .collect())
}

pub fn new_salt_hex() -> Result<String, RandomUnavailable> {
    Ok(crate::util::hex::encode(&random_bytes::<16>()?))
}

/// 16 hex digits, the key of a pending request.
pub fn new_request_id() -> Result<String, RandomUnavailable> {
    Ok(crate::util::hex::encode(&random_bytes::<8>()?))
}

/// `sha256(salt bytes + code)` as hex.
pub fn hash_code(salt_hex: &str, code: &str) -> Option<String> {
    let salt = crate::util::hex::decode(salt_hex)?;
    let mut h = Sha256::new();
    h.update(&salt);
    h.update(code.as_bytes());
    Some(crate::util::hex::encode(&h.finalize()))
}

/// What a person typed, as a code: upper case, without spaces or dashes.
pub fn normalize_input(input: &str) -> String {
    input
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .flat_map(char::to_uppercase)
        .collect()
}

pub fn ct_eq(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

pub fn looks_like_code(s: &str) -> bool {
    s.len() == CODE_LEN && s.bytes().all(|b| CODE_ALPHABET.contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_use_the_alphabet_and_differ() {
        let codes: std::collections::HashSet<String> =
            (0..200).map(|_| new_code().unwrap()).collect();
        assert_eq!(codes.len(), 200);
        assert!(codes.iter().all(|c| looks_like_code(c)));
    }

    #[test]
    fn the_hash_is_sha256_of_salt_bytes_then_code() {
        // Computed independently: hashlib.sha256(bytes(16) + b"ABCDEFGH").hexdigest()
        assert_eq!(
            hash_code(&"00".repeat(16), "ABCDEFGH").unwrap(),
            "dba9f9bbeef67132ee78658ba81ef008e359f93f24b6961e79c0c3238734b905"
        );
        assert!(hash_code("zz", "A").is_none());
    }

    #[test]
    fn typed_codes_are_normalised() {
        assert_eq!(normalize_input(" abcd 23-45 "), "ABCD2345");
    }
}
