//! The relay's upgrade token, as Hermes' `gateway/relay/auth.py` builds it:
//! `base64url_unpadded("<gateway id>:<exp>:<sig>")`, `sig` the hex HMAC-SHA256 of
//! `"<gateway id>:<exp>"` under the shared secret, `exp` in unix seconds. The id may itself
//! contain colons, so the token is split from the right. Pure: the caller passes the clock.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

type HmacSha256 = Hmac<Sha256>;

/// Hermes signs for 300 s. A token valid much longer than that was not made by Hermes and would
/// widen the replay window, so anything beyond this from now is refused.
pub const MAX_TOKEN_LIFETIME_SECS: u64 = 900;

/// A shared secret. Never printed: `Debug` shows only a fingerprint.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Option<Self> {
        let value = value.into();
        (!value.trim().is_empty()).then(|| Self(value.trim().to_owned()))
    }

    /// Identifies the secret (to notice a revoked one) without revealing it.
    pub fn fingerprint(&self) -> [u8; 32] {
        Sha256::digest(self.0.as_bytes()).into()
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(…)")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("no bearer token")]
    Missing,
    #[error("the token is not base64url of id:exp:signature")]
    Malformed,
    #[error("the token's signature matches no configured secret")]
    BadSignature,
    #[error("the token has expired")]
    Expired,
    #[error("the token never expires or lives too long")]
    Lifetime,
}

impl TokenError {
    pub fn code(self) -> &'static str {
        match self {
            Self::Missing => "missing_token",
            Self::Malformed => "malformed_token",
            Self::BadSignature => "bad_signature",
            Self::Expired => "expired_token",
            Self::Lifetime => "token_lifetime",
        }
    }
}

/// Who a valid token speaks for, and which secret signed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub gateway_id: String,
    pub secret: [u8; 32],
}

/// The token from an `Authorization` header value (`Bearer <token>`).
pub fn bearer(header: Option<&str>) -> Result<&str, TokenError> {
    let value = header.ok_or(TokenError::Missing)?.trim();
    let (scheme, token) = value.split_once(' ').ok_or(TokenError::Malformed)?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(TokenError::Malformed);
    }
    Ok(token.trim())
}

/// Checks `token` against every secret (a rotation may have two). The signature is compared in
/// constant time; the expiry is checked only for a genuine token, so a forger learns nothing.
pub fn verify(token: &str, secrets: &[Secret], now_unix: u64) -> Result<Verified, TokenError> {
    let raw = URL_SAFE_NO_PAD
        .decode(token.trim_end_matches('='))
        .map_err(|_| TokenError::Malformed)?;
    let text = String::from_utf8(raw).map_err(|_| TokenError::Malformed)?;
    let (signed, sig_hex) = text.rsplit_once(':').ok_or(TokenError::Malformed)?;
    let (gateway_id, exp) = signed.rsplit_once(':').ok_or(TokenError::Malformed)?;
    let exp: u64 = exp.parse().map_err(|_| TokenError::Malformed)?;
    let sig = crate::util::hex::decode(sig_hex)
        .filter(|s| !s.is_empty())
        .ok_or(TokenError::Malformed)?;
    let matched = secrets.iter().find(|secret| {
        let mut mac = HmacSha256::new_from_slice(secret.0.as_bytes()).expect("any key length");
        mac.update(signed.as_bytes());
        mac.verify_slice(&sig).is_ok()
    });
    let secret = matched.ok_or(TokenError::BadSignature)?;
    if exp == 0 || exp > now_unix.saturating_add(MAX_TOKEN_LIFETIME_SECS) {
        return Err(TokenError::Lifetime);
    }
    if now_unix > exp {
        return Err(TokenError::Expired);
    }
    Ok(Verified {
        gateway_id: gateway_id.to_owned(),
        secret: secret.fingerprint(),
    })
}

/// A token as Hermes makes one (tests, benchmarks, and `doctor`'s self-check).
pub fn make(gateway_id: &str, secret: &Secret, exp_unix: u64) -> String {
    let signed = format!("{gateway_id}:{exp_unix}");
    let mut mac = HmacSha256::new_from_slice(secret.0.as_bytes()).expect("any key length");
    mac.update(signed.as_bytes());
    let sig = crate::util::hex::encode(&mac.finalize().into_bytes());
    URL_SAFE_NO_PAD.encode(format!("{signed}:{sig}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_800_000_000;

    fn secret(s: &str) -> Secret {
        Secret::new(s).unwrap()
    }

    #[test]
    fn a_token_made_like_hermes_verifies_and_names_its_gateway() {
        let s = secret("s3cret");
        let token = make("gw:with:colons", &s, NOW + 300);
        let v = verify(&token, &[secret("old"), s.clone()], NOW).unwrap();
        assert_eq!(v.gateway_id, "gw:with:colons");
        assert_eq!(v.secret, s.fingerprint());
    }

    /// The exact token Hermes 0.19.0's `make_token("gw-1", "k", 300)` returned with its clock
    /// at 1800000000 (run against its `auth.py`).
    #[test]
    fn the_wire_format_matches_hermes() {
        let token = make("gw-1", &secret("k"), 1_800_000_300);
        assert_eq!(
            token,
            "Z3ctMToxODAwMDAwMzAwOjNjYTdmNzJhOTY3ZDUxMGQ5ZTg3MjlmODNlMzhjMmMwOTY1MTMyZmIzMzQyZTRkYjdkNDM2OWE2NDE0Y2I0MjI"
        );
        assert!(verify(&token, &[secret("k")], 1_800_000_000).is_ok());
    }

    #[test]
    fn every_bad_token_is_refused_with_its_reason() {
        let s = secret("s3cret");
        let cases = [
            (make("gw", &s, NOW - 1), TokenError::Expired),
            (
                make("gw", &secret("other"), NOW + 300),
                TokenError::BadSignature,
            ),
            (make("gw", &s, 0), TokenError::Lifetime),
            (make("gw", &s, NOW + 100_000), TokenError::Lifetime),
            ("not base64!".to_owned(), TokenError::Malformed),
            (URL_SAFE_NO_PAD.encode("gw:123"), TokenError::Malformed),
            (
                URL_SAFE_NO_PAD.encode("gw:soon:abcd"),
                TokenError::Malformed,
            ),
            (URL_SAFE_NO_PAD.encode("gw:123:zz"), TokenError::Malformed),
            (String::new(), TokenError::Malformed),
        ];
        for (token, want) in cases {
            assert_eq!(
                verify(&token, std::slice::from_ref(&s), NOW),
                Err(want),
                "{token}"
            );
        }
        assert_eq!(
            verify(&make("gw", &s, NOW + 10), &[], NOW),
            Err(TokenError::BadSignature)
        );
    }

    #[test]
    fn the_bearer_scheme_is_required() {
        assert_eq!(bearer(Some("Bearer abc")), Ok("abc"));
        assert_eq!(bearer(Some("bearer  abc ")), Ok("abc"));
        assert_eq!(bearer(None), Err(TokenError::Missing));
        assert_eq!(bearer(Some("Basic abc")), Err(TokenError::Malformed));
        assert_eq!(bearer(Some("Bearer")), Err(TokenError::Malformed));
    }

    #[test]
    fn a_secret_never_shows_in_debug_output() {
        assert_eq!(format!("{:?}", secret("hunter2")), "Secret(…)");
        assert!(Secret::new("  ").is_none());
    }
}
