//! `doctor`'s WeCom self-built app checks.

use super::{self as callback};
use crate::connectors::kit::checks::{CheckInput, Finding, fail, ok, verdict};

/// With a self-built app: each app's `gettoken` accepted. No secret is printed; errors come
/// back with them redacted.
pub fn checks(input: &CheckInput) -> Vec<Finding> {
    let mut findings = Vec::new();
    let (home, app_setting) = (input.home, input.setting);
    let extra = crate::connectors::kit::hermes::platform_section(home, "wecom_callback")
        .ok()
        .flatten()
        .and_then(|s| s.get("extra").cloned());
    let configured =
        app_setting("WECOM_CALLBACK_CORP_ID").is_some() || callback::enabled_in_yaml(home);
    if !configured {
        findings.push(ok(
            "WeCom self-built apps: not configured, the connector is not started",
        ));
        return findings;
    }
    match callback::settings(extra.as_ref(), app_setting) {
        Err(why) => findings.push(fail(
            format!("WeCom self-built apps: {why}"),
            callback::TOKEN_FIX,
        )),
        Ok(settings) => {
            for app in &settings.apps {
                let asked =
                    (app.api.access_token()).map(|_| "WeCom accepts its corp secret".to_owned());
                let subject = format!("WeCom self-built app {}", app.name);
                findings.push(verdict(&subject, asked, callback::TOKEN_FIX));
            }
        }
    }
    findings
}
