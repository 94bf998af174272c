//! `doctor`'s Telegram checks.

use super::api::Api;
use crate::connectors::kit::checks::{CheckInput, Finding, fail, ok, verdict, warn};

/// With a Telegram token (the config's built-in connector, the environment or `.env`): the
/// token is accepted (`getMe`), and no webhook takes the updates polling needs. The token is
/// never printed; errors come back with it redacted.
pub fn checks(input: &CheckInput) -> Vec<Finding> {
    let setting = input.setting;
    let Some(token) = setting("TELEGRAM_BOT_TOKEN") else {
        return vec![ok(
            "Telegram: no TELEGRAM_BOT_TOKEN, the connector is not started",
        )];
    };
    let root = setting("TELEGRAM_API_ROOT").unwrap_or_else(|| "https://api.telegram.org".into());
    let api = Api::new(&root, token.trim());
    let timeout = std::time::Duration::from_secs(15);
    let asked = api
        .call("getMe", &serde_json::json!({}), timeout)
        .map(|me| {
            let name = me.get("username").and_then(serde_json::Value::as_str);
            format!("token accepted, the bot is @{}", name.unwrap_or("?"))
        });
    let accepted = asked.is_ok();
    let mut findings = vec![verdict("Telegram", asked, super::TOKEN_FIX)];
    if !accepted {
        return findings;
    }
    match api.call("getWebhookInfo", &serde_json::json!({}), timeout) {
        Ok(info) => {
            let url = info
                .get("url")
                .and_then(serde_json::Value::as_str)
                .unwrap_or_default();
            if !url.is_empty() {
                // The host only: a webhook path often carries a secret of its own.
                let host = url.split('/').nth(2).unwrap_or("?");
                findings.push(fail(
                    format!("a webhook (to {host}) is set for this bot: Telegram refuses getUpdates polling while it is"),
                    "remove it with the Bot API's deleteWebhook (or stop the other program that set it)",
                ));
            } else {
                findings.push(ok("Telegram: no webhook set, polling can receive updates"));
            }
        }
        Err(e) => findings.push(warn(
            format!("Telegram: cannot read the webhook setting: {e}"),
            "run doctor again; if it persists, check getWebhookInfo by hand",
        )),
    }
    findings
}
