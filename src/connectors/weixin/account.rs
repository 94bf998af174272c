//! Which iLink account the connector runs: `WEIXIN_TOKEN` and `WEIXIN_ACCOUNT_ID` from its
//! environment, else an account Hermes' QR login saved as
//! `$HERMES_HOME/weixin/accounts/<account_id>.json` (`{"token", "base_url", "user_id",
//! "saved_at"}`). The token is never part of an error.

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::DEFAULT_BASE_URL;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    pub account_id: String,
    pub token: String,
    pub base_url: String,
}

/// Hermes' account directory under a Hermes home.
pub fn accounts_dir(hermes_home: &Path) -> PathBuf {
    hermes_home.join("weixin").join("accounts")
}

/// An account id names a file: nothing that could leave the directory.
fn valid_id(id: &str) -> bool {
    !id.is_empty() && !id.contains(['/', '\\']) && id != "." && id != ".."
}

/// Finds the account from `env` (the process environment), reading saved accounts when the
/// token is not set. The error says what to set, never a secret.
pub fn find(env: &dyn Fn(&str) -> Option<String>) -> Result<Credentials, String> {
    let set = |k: &str| crate::connectors::kit::settings::env(env, k);
    let base_from_env = set("WEIXIN_BASE_URL");
    let id = set("WEIXIN_ACCOUNT_ID");
    if let Some(token) = set("WEIXIN_TOKEN") {
        let account_id = id.ok_or(
            "WEIXIN_TOKEN is set but WEIXIN_ACCOUNT_ID is not (the bot's iLink id, e.g. …@im.bot)",
        )?;
        return Ok(Credentials {
            account_id,
            token,
            base_url: base_from_env.unwrap_or_else(|| DEFAULT_BASE_URL.into()),
        });
    }
    let Some(home) = set("HERMES_HOME") else {
        return Err("no Weixin account: set WEIXIN_TOKEN and WEIXIN_ACCOUNT_ID".into());
    };
    let dir = accounts_dir(Path::new(&home));
    let id = match id {
        Some(id) => id,
        None => only_saved_account(&dir)?,
    };
    if !valid_id(&id) {
        return Err(format!("WEIXIN_ACCOUNT_ID {id:?} is not an account id"));
    }
    let path = dir.join(format!("{id}.json"));
    let text = std::fs::read_to_string(&path).map_err(|e| {
        format!(
            "no saved Weixin account {id} ({}: {e}); log in with the QR code or set WEIXIN_TOKEN",
            path.display()
        )
    })?;
    let saved: Value = serde_json::from_str(&text)
        .map_err(|e| format!("{} is not valid JSON: {e}", path.display()))?;
    let token = saved
        .get("token")
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| format!("{} holds no token", path.display()))?
        .to_owned();
    let base_url = base_from_env
        .or_else(|| {
            saved
                .get("base_url")
                .and_then(Value::as_str)
                .map(str::trim)
                .filter(|b| !b.is_empty())
                .map(str::to_owned)
        })
        .unwrap_or_else(|| DEFAULT_BASE_URL.into());
    Ok(Credentials {
        account_id: id,
        token,
        base_url,
    })
}

/// The accounts saved in `dir`, sorted (Hermes' context-token and cursor files beside them
/// aside).
pub fn saved_ids(dir: &Path) -> Vec<String> {
    let mut ids: Vec<String> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter_map(|e| e.file_name().into_string().ok())
                .filter_map(|n| n.strip_suffix(".json").map(str::to_owned))
                .filter(|id| !id.ends_with(".context-tokens") && !id.ends_with(".sync"))
                .collect()
        })
        .unwrap_or_default();
    ids.sort();
    ids
}

/// Whether `weixin link` (or Hermes) saved a login under this Hermes home.
pub fn has_saved(hermes_home: &Path) -> bool {
    !saved_ids(&accounts_dir(hermes_home)).is_empty()
}

/// The one account saved in `dir`.
fn only_saved_account(dir: &Path) -> Result<String, String> {
    let mut ids = saved_ids(dir);
    match ids.len() {
        1 => Ok(ids.remove(0)),
        0 => Err(format!(
            "no Weixin account: set WEIXIN_TOKEN and WEIXIN_ACCOUNT_ID, or log in with the QR code (saved in {})",
            dir.display()
        )),
        _ => Err(format!(
            "{} accounts are saved in {} ({}): set WEIXIN_ACCOUNT_ID to choose one",
            ids.len(),
            dir.display(),
            ids.join(", ")
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(vars: &'a [(&'a str, String)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |k| {
            vars.iter()
                .find(|(key, _)| *key == k)
                .map(|(_, v)| v.clone())
        }
    }

    #[test]
    fn from_the_environment_or_a_saved_account_never_naming_the_token() {
        let vars = [
            ("WEIXIN_TOKEN", "tok-1".to_owned()),
            ("WEIXIN_ACCOUNT_ID", "bot@im.bot".to_owned()),
        ];
        let c = find(&env(&vars)).unwrap();
        assert_eq!(c.base_url, DEFAULT_BASE_URL);
        assert_eq!(c.token, "tok-1");
        let no_id = [("WEIXIN_TOKEN", "tok-1".to_owned())];
        let e = find(&env(&no_id)).unwrap_err();
        assert!(
            e.contains("WEIXIN_ACCOUNT_ID") && !e.contains("tok-1"),
            "{e}"
        );

        let home = tempfile::tempdir().unwrap();
        let dir = accounts_dir(home.path());
        std::fs::create_dir_all(&dir).unwrap();
        let h = home.path().display().to_string();
        let saved = [("HERMES_HOME", h.clone())];
        assert!(
            find(&env(&saved))
                .unwrap_err()
                .contains("no Weixin account")
        );
        std::fs::write(
            dir.join("bot@im.bot.json"),
            r#"{"token": "saved-tok", "base_url": "http://127.0.0.1:1", "user_id": "u"}"#,
        )
        .unwrap();
        std::fs::write(dir.join("bot@im.bot.context-tokens.json"), "{}").unwrap();
        let c = find(&env(&saved)).unwrap();
        assert_eq!(
            (c.account_id.as_str(), c.token.as_str(), c.base_url.as_str()),
            ("bot@im.bot", "saved-tok", "http://127.0.0.1:1")
        );
        std::fs::write(dir.join("other@im.bot.json"), r#"{"token": "t2"}"#).unwrap();
        let e = find(&env(&saved)).unwrap_err();
        assert!(e.contains("2 accounts") && !e.contains("saved-tok"), "{e}");
        let chosen = [
            ("HERMES_HOME", h.clone()),
            ("WEIXIN_ACCOUNT_ID", "other@im.bot".to_owned()),
        ];
        assert_eq!(find(&env(&chosen)).unwrap().token, "t2");
        let climbing = [("HERMES_HOME", h), ("WEIXIN_ACCOUNT_ID", "..".to_owned())];
        assert!(
            find(&env(&climbing))
                .unwrap_err()
                .contains("not an account id")
        );
    }
}
