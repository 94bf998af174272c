//! Whether a delivery carries the route's secret, by the schemes Hermes' webhook adapter
//! accepts, checked in the same order (the first scheme whose header is present decides; it
//! never falls through to a weaker one). Every comparison is constant-time. Pure: headers,
//! body, secret and the clock in, a verdict out.

use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// How far a signed timestamp (Svix, generic V2) may be from now.
pub const REPLAY_WINDOW_SECS: i64 = 300;

/// The scheme a delivery proved the secret with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Svix,
    GitHub,
    GitLab,
    GenericV2,
    /// `X-Webhook-Signature` over the body alone: replayable, accepted with a warning.
    GenericV1,
}

impl Scheme {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Svix => "svix",
            Self::GitHub => "github",
            Self::GitLab => "gitlab",
            Self::GenericV2 => "generic_v2",
            Self::GenericV1 => "generic_v1",
        }
    }
}

/// Why a delivery was refused (401); never says more to the sender than "invalid signature".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    Missing,
    Mismatch,
    /// Svix or V2 with its timestamp absent, malformed or outside the window.
    Stale,
}

impl Refusal {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Missing => "signature_missing",
            Self::Mismatch => "signature_mismatch",
            Self::Stale => "signature_stale",
        }
    }
}

/// The request's headers, looked up case-insensitively.
pub trait Headers {
    fn get(&self, name: &str) -> Option<&str>;
}

impl Headers for axum::http::HeaderMap {
    fn get(&self, name: &str) -> Option<&str> {
        axum::http::HeaderMap::get(self, name).and_then(|v| v.to_str().ok())
    }
}

pub fn verify(
    headers: &impl Headers,
    body: &[u8],
    secret: &str,
    now_secs: i64,
) -> Result<Scheme, Refusal> {
    let header = |name: &str| headers.get(name).filter(|v| !v.is_empty());
    let (svix_id, svix_ts, svix_sig) = (
        header("svix-id"),
        header("svix-timestamp"),
        header("svix-signature"),
    );
    if svix_id.is_some() || svix_ts.is_some() || svix_sig.is_some() {
        let (Some(id), Some(ts), Some(sig)) = (svix_id, svix_ts, svix_sig) else {
            return Err(Refusal::Missing);
        };
        fresh(ts, now_secs)?;
        let key = svix_key(secret).ok_or(Refusal::Mismatch)?;
        let expected = base64::engine::general_purpose::STANDARD.encode(hmac(
            &key,
            &[id.as_bytes(), b".", ts.as_bytes(), b".", body],
        ));
        // Several signatures during a key rotation: `v1,<b64> v1,<b64>`.
        let matched = sig
            .split_whitespace()
            .filter_map(|part| part.split_once(','))
            .any(|(version, s)| version == "v1" && same(s, &expected));
        return matched.then_some(Scheme::Svix).ok_or(Refusal::Mismatch);
    }
    if let Some(sig) = header("x-hub-signature-256") {
        let expected = format!(
            "sha256={}",
            crate::util::hex::encode(&hmac(secret.as_bytes(), &[body]))
        );
        return same(sig, &expected)
            .then_some(Scheme::GitHub)
            .ok_or(Refusal::Mismatch);
    }
    if let Some(token) = header("x-gitlab-token") {
        return same(token, secret)
            .then_some(Scheme::GitLab)
            .ok_or(Refusal::Mismatch);
    }
    // V2 present commits to V2: a replay with its timestamp stripped must not fall back to V1.
    if let Some(sig) = header("x-webhook-signature-v2") {
        let ts = header("x-webhook-timestamp").ok_or(Refusal::Stale)?;
        fresh(ts, now_secs)?;
        let expected =
            crate::util::hex::encode(&hmac(secret.as_bytes(), &[ts.as_bytes(), b".", body]));
        return same(sig, &expected)
            .then_some(Scheme::GenericV2)
            .ok_or(Refusal::Mismatch);
    }
    if let Some(sig) = header("x-webhook-signature") {
        let expected = crate::util::hex::encode(&hmac(secret.as_bytes(), &[body]));
        return same(sig, &expected)
            .then_some(Scheme::GenericV1)
            .ok_or(Refusal::Mismatch);
    }
    Err(Refusal::Missing)
}

/// The id a verified delivery is known by in the duplicate window: one that a replay cannot
/// change. Svix signs its `svix-id`, so that is it; every other scheme leaves its id header
/// unsigned (anyone holding a captured request may add or change one), so the id is made from
/// what the scheme did sign: the timestamp and body (generic V2) or the body (GitHub, GitLab's
/// token, V1), on `route`. A retry of one delivery is the same content, so it stays a duplicate.
/// Pure.
pub fn replay_id(route: &str, scheme: Scheme, headers: &impl Headers, body: &[u8]) -> String {
    use sha2::Digest;
    if scheme == Scheme::Svix
        && let Some(id) = headers.get("svix-id")
    {
        return id.to_owned();
    }
    let mut hash = Sha256::new();
    hash.update(route.as_bytes());
    hash.update(b"\n");
    if scheme == Scheme::GenericV2 {
        hash.update(headers.get("x-webhook-timestamp").unwrap_or("").as_bytes());
        hash.update(b".");
    }
    hash.update(body);
    let digest = hash.finalize();
    format!(
        "{}-{}",
        scheme.as_str(),
        crate::util::hex::encode(&digest[..16])
    )
}

/// The headers a sender puts on `body` for `scheme` (`bridgekeeper webhook test`, the tests and
/// the benchmark sign with this). `id` is the delivery id where the scheme carries one.
pub fn sign(
    scheme: Scheme,
    body: &[u8],
    secret: &str,
    id: &str,
    now_secs: i64,
) -> Vec<(String, String)> {
    let ts = now_secs.to_string();
    let pairs: Vec<(&str, String)> = match scheme {
        Scheme::Svix => {
            let key = svix_key(secret).unwrap_or_else(|| secret.as_bytes().to_vec());
            let sig = base64::engine::general_purpose::STANDARD.encode(hmac(
                &key,
                &[id.as_bytes(), b".", ts.as_bytes(), b".", body],
            ));
            vec![
                ("svix-id", id.to_owned()),
                ("svix-timestamp", ts),
                ("svix-signature", format!("v1,{sig}")),
            ]
        }
        Scheme::GitHub => vec![
            (
                "X-Hub-Signature-256",
                format!(
                    "sha256={}",
                    crate::util::hex::encode(&hmac(secret.as_bytes(), &[body]))
                ),
            ),
            ("X-GitHub-Delivery", id.to_owned()),
        ],
        Scheme::GitLab => vec![
            ("X-Gitlab-Token", secret.to_owned()),
            ("X-Request-ID", id.to_owned()),
        ],
        Scheme::GenericV2 => {
            let sig =
                crate::util::hex::encode(&hmac(secret.as_bytes(), &[ts.as_bytes(), b".", body]));
            vec![
                ("X-Webhook-Signature-V2", sig),
                ("X-Webhook-Timestamp", ts),
                ("X-Request-ID", id.to_owned()),
            ]
        }
        Scheme::GenericV1 => vec![
            (
                "X-Webhook-Signature",
                crate::util::hex::encode(&hmac(secret.as_bytes(), &[body])),
            ),
            ("X-Request-ID", id.to_owned()),
        ],
    };
    pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
}

/// Svix secrets are `whsec_<base64>`; some providers hand out Svix-style raw secrets.
fn svix_key(secret: &str) -> Option<Vec<u8>> {
    match secret.strip_prefix("whsec_") {
        Some(encoded) => base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .ok(),
        None => Some(secret.as_bytes().to_vec()),
    }
}

fn fresh(ts: &str, now_secs: i64) -> Result<(), Refusal> {
    let ts: i64 = ts.trim().parse().map_err(|_| Refusal::Stale)?;
    if (now_secs - ts).abs() > REPLAY_WINDOW_SECS {
        return Err(Refusal::Stale);
    }
    Ok(())
}

fn hmac(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().to_vec()
}

/// Constant-time for equal lengths; a length difference says only that they differ.
fn same(provided: &str, expected: &str) -> bool {
    provided.as_bytes().ct_eq(expected.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    struct H(HashMap<String, String>);

    impl Headers for H {
        fn get(&self, name: &str) -> Option<&str> {
            self.0.get(&name.to_ascii_lowercase()).map(String::as_str)
        }
    }

    fn headers(pairs: Vec<(String, String)>) -> H {
        H(pairs
            .into_iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v))
            .collect())
    }

    const NOW: i64 = 1_767_225_600;
    const BODY: &[u8] = br#"{"action":"opened"}"#;

    #[test]
    fn every_scheme_accepts_its_own_signature_and_refuses_another_secret() {
        let schemes = [
            Scheme::Svix,
            Scheme::GitHub,
            Scheme::GitLab,
            Scheme::GenericV2,
            Scheme::GenericV1,
        ];
        for secret in ["s3cret", "whsec_c2VjcmV0LWtleQ=="] {
            for scheme in schemes {
                let h = headers(sign(scheme, BODY, secret, "d-1", NOW));
                assert_eq!(verify(&h, BODY, secret, NOW), Ok(scheme), "{scheme:?}");
                assert_eq!(
                    verify(&h, BODY, "other", NOW),
                    Err(Refusal::Mismatch),
                    "{scheme:?}"
                );
                if scheme != Scheme::GitLab {
                    assert_eq!(
                        verify(&h, b"{}", secret, NOW),
                        Err(Refusal::Mismatch),
                        "{scheme:?}: another body"
                    );
                }
            }
        }
    }

    #[test]
    fn timestamps_outside_the_window_and_downgrades_are_refused() {
        for scheme in [Scheme::Svix, Scheme::GenericV2] {
            let h = headers(sign(scheme, BODY, "k", "d", NOW - REPLAY_WINDOW_SECS - 1));
            assert_eq!(
                verify(&h, BODY, "k", NOW),
                Err(Refusal::Stale),
                "{scheme:?}"
            );
            let h = headers(sign(scheme, BODY, "k", "d", NOW - REPLAY_WINDOW_SECS));
            assert_eq!(verify(&h, BODY, "k", NOW), Ok(scheme));
        }
        // V2 with its timestamp stripped does not fall back to the V1 header beside it.
        let mut both = sign(Scheme::GenericV2, BODY, "k", "d", NOW);
        both.extend(sign(Scheme::GenericV1, BODY, "k", "d", NOW));
        both.retain(|(k, _)| k != "X-Webhook-Timestamp");
        assert_eq!(verify(&headers(both), BODY, "k", NOW), Err(Refusal::Stale));
        // A partial Svix set is not a signature.
        let mut svix = sign(Scheme::Svix, BODY, "k", "d", NOW);
        svix.retain(|(k, _)| k != "svix-id");
        assert_eq!(
            verify(&headers(svix), BODY, "k", NOW),
            Err(Refusal::Missing)
        );
        assert_eq!(
            verify(&headers(vec![]), BODY, "k", NOW),
            Err(Refusal::Missing)
        );
        // A hostile non-ASCII signature is a plain refusal.
        let h = headers(vec![("X-Hub-Signature-256".into(), "sha256=é".into())]);
        assert_eq!(verify(&h, BODY, "k", NOW), Err(Refusal::Mismatch));
    }

    #[test]
    fn a_replay_under_another_id_header_keeps_its_id() {
        for scheme in [
            Scheme::GitHub,
            Scheme::GitLab,
            Scheme::GenericV2,
            Scheme::GenericV1,
        ] {
            let signed = sign(scheme, BODY, "k", "first", NOW);
            let mut replayed = signed.clone();
            for (k, v) in replayed.iter_mut() {
                if k.starts_with("X-GitHub-Delivery") || k == "X-Request-ID" {
                    *v = "second".into();
                }
            }
            replayed.push(("X-GitHub-Delivery".into(), "third".into()));
            let id = replay_id("r", scheme, &headers(signed), BODY);
            assert_eq!(
                id,
                replay_id("r", scheme, &headers(replayed), BODY),
                "{scheme:?}"
            );
            assert!(id.starts_with(scheme.as_str()), "{id}");
            assert_ne!(
                id,
                replay_id("r", scheme, &headers(vec![]), b"other"),
                "{scheme:?}"
            );
            assert_ne!(id, replay_id("other route", scheme, &headers(vec![]), BODY));
        }
        // Svix signs its id: that id is the delivery's, whatever else the request carries.
        let mut svix = sign(Scheme::Svix, BODY, "k", "msg_1", NOW);
        svix.push(("X-GitHub-Delivery".into(), "anything".into()));
        assert_eq!(replay_id("r", Scheme::Svix, &headers(svix), BODY), "msg_1");
    }
}
