//! `doctor`'s webhook checks.

use super::routes;
use crate::connectors::kit::checks::{CheckInput, Finding, fail, ok, warn};
use crate::connectors::kit::settings;

/// With the webhook platform on: its settings and every route can be served (a secret each,
/// no contradiction, filters it can evaluate), the routes of the subscriptions file too, and
/// the port is free. No secret is printed.
pub fn checks(input: &CheckInput) -> Vec<Finding> {
    let (home, setting, configured) = (input.home, input.setting, input.configured);
    let switched_on = setting("WEBHOOK_ENABLED").is_some_and(|v| settings::is_on(&v));
    if !configured && !switched_on && !routes::enabled_in_yaml(home) {
        return vec![ok("Webhooks: not enabled, the receiver is not started")];
    }
    const FIX: &str = super::CONFIG_FIX;
    let settings = match routes::read_yaml(home).and_then(|y| routes::settings(y.as_ref(), setting))
    {
        Ok(s) => s,
        Err(why) => return vec![fail(format!("Webhooks: {why}"), FIX)],
    };
    let subscriptions = std::fs::read_to_string(home.join(routes::SUBSCRIPTIONS_FILE)).ok();
    let mut findings = match routes::routes(&settings, subscriptions.as_deref()) {
        Err(why) => vec![fail(format!("Webhooks: {why}"), FIX)],
        Ok((served, warnings)) => {
            let mut names: Vec<&str> = served.by_name.keys().map(String::as_str).collect();
            names.sort_unstable();
            let mut f = vec![ok(format!(
                "Webhooks: {} route(s) can be served: {}",
                names.len(),
                names.join(", ")
            ))];
            f.extend(
                warnings
                    .into_iter()
                    .map(|w| warn(format!("Webhooks: {w}"), FIX)),
            );
            if served.by_name.values().any(|r| r.insecure()) {
                f.push(warn(
                    "Webhooks: a route has no signature check (INSECURE_NO_AUTH)",
                    "give the route a secret before anything but a local test sends to it",
                ));
            }
            f
        }
    };
    if settings.port != 0 {
        let port = settings.port;
        findings.push(
            match std::net::TcpListener::bind((settings.host.as_str(), port)) {
                Ok(_) => ok(format!(
                    "Webhooks: {}:{port} is free for the receiver",
                    settings.host
                )),
                Err(e) => warn(
                    format!(
                        "Webhooks: {}:{port} is taken ({e}): a receiver may already run there",
                        settings.host
                    ),
                    format!("`ss -ltnp 'sport = :{port}'` shows who; or set WEBHOOK_PORT"),
                ),
            },
        );
    }
    findings
}
