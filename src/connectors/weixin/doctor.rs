//! `doctor`'s Weixin checks.

use super::account;
use super::api::Api;
use crate::connectors::kit::checks::{CheckInput, Finding, fail, ok, verdict};

/// With a Weixin login (the config's built-in connector, the environment, `.env`, or an account
/// saved by `weixin link`): iLink accepts it (a `getconfig`). The token is never printed.
pub fn checks(input: &CheckInput) -> Vec<Finding> {
    let (home, setting) = (input.home, input.setting);
    let lookup = |key: &str| {
        if key == "HERMES_HOME" {
            return Some(home.display().to_string());
        }
        setting(key)
    };
    let in_use =
        lookup("WEIXIN_TOKEN").is_some_and(|t| !t.trim().is_empty()) || account::has_saved(home);
    if !in_use {
        return vec![ok("Weixin: no login, the connector is not started")];
    }
    let creds = match account::find(&lookup) {
        Ok(c) => c,
        Err(why) => return vec![fail(format!("Weixin: {why}"), "bridgekeeper weixin link")],
    };
    let api = Api::new(&creds.base_url, &creds.token);
    let body = serde_json::json!({"ilink_user_id": creds.account_id});
    let asked = api
        .post(
            "ilink/bot/getconfig",
            body,
            std::time::Duration::from_secs(15),
        )
        .map(|_| format!("iLink accepts the login of {}", creds.account_id));
    vec![verdict("Weixin", asked, super::RELINK_FIX)]
}
