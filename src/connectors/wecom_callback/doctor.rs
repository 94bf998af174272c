//! `doctor`'s WeCom self-built app checks.

use super::{self as callback, api::ApiError};
use crate::connectors::kit::checks::{CheckInput, Finding, fail, ok, warn};

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
                findings.push(match app.api.access_token() {
                    Ok(_) => ok(format!(
                        "WeCom self-built app {}: WeCom accepts its corp secret",
                        app.name
                    )),
                    Err(ApiError::BadCredentials(why)) => fail(
                        format!("WeCom self-built app {}: {why}", app.name),
                        callback::TOKEN_FIX,
                    ),
                    Err(e) => warn(
                        format!(
                            "WeCom self-built app {}: cannot check the credentials ({e})",
                            app.name
                        ),
                        "run doctor again; if it persists, check the network to WeCom",
                    ),
                });
            }
        }
    }
    findings
}
