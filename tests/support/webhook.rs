//! A webhook provider for tests and benchmarks: signs a body the way GitHub, GitLab, Svix and
//! Hermes' generic scheme do (bridgekeeper's `signature::sign`, which a test holds to Hermes'
//! own adapter) and posts it over plain HTTP/1.1.

use bridgekeeper::connectors::webhook::signature::{Scheme, sign};

use super::http::{Reply, request};

pub const SCHEMES: [Scheme; 5] = [
    Scheme::GitHub,
    Scheme::GitLab,
    Scheme::Svix,
    Scheme::GenericV2,
    Scheme::GenericV1,
];

/// One delivery of `body` to `/webhooks/<route>` at `addr`, signed with `secret` under
/// `scheme`, carrying delivery id `id` and (when given) GitHub's event header.
pub fn deliver(
    addr: &str,
    route: &str,
    scheme: Scheme,
    secret: &str,
    id: &str,
    event: Option<&str>,
    body: &str,
) -> Reply {
    let now = bridgekeeper::util::time::unix_secs() as i64;
    let signed = sign(scheme, body.as_bytes(), secret, id, now);
    let mut headers: Vec<(&str, &str)> = signed
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    if let Some(e) = event {
        headers.push(("X-GitHub-Event", e));
    }
    request(
        addr,
        "POST",
        &format!("/webhooks/{route}"),
        Some(addr),
        &headers,
        Some(body),
    )
}
