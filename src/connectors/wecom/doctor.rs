//! `doctor`'s WeCom AI Bot checks.

use crate::connectors::Setting;
use crate::connectors::kit::checks::{CheckInput, Finding, fail, ok, verdict};

/// With the AI Bot's credentials: its subscription accepted (dialled and answered). No secret
/// is printed; errors come back with them redacted.
pub fn checks(input: &CheckInput) -> Vec<Finding> {
    let mut findings = Vec::new();
    let env = input.setting;
    let bot_yaml = crate::connectors::kit::hermes::platform_section(input.home, "wecom")
        .ok()
        .flatten()
        .and_then(|s| s.get("extra").cloned());
    let bot = |s: &Setting| crate::connectors::kit::settings::read(s, env, bot_yaml.as_ref());
    match (bot(&super::BOT_ID), bot(&super::SECRET)) {
        (None, None) => findings.push(ok(
            "WeCom AI Bot: not configured, the connector is not started",
        )),
        (Some(id), Some(secret)) => {
            let url =
                bot(&super::WEBSOCKET_URL).unwrap_or_else(|| super::DEFAULT_WS_URL.to_owned());
            let asked = super::check_subscription(&url, &id, &secret)
                .map(|()| format!("WeCom accepts bot {id}"));
            findings.push(verdict("WeCom AI Bot", asked, super::TOKEN_FIX));
        }
        _ => findings.push(fail(
            "WeCom AI Bot: only one of WECOM_BOT_ID and WECOM_SECRET is set",
            super::TOKEN_FIX,
        )),
    }
    findings
}
