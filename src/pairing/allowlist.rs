//! The allowlist mirror. Hermes 0.19.0 copies an approval into `<PLATFORM>_ALLOWED_USERS` in
//! `$HERMES_HOME/.env` when that allowlist is set (never on an open gateway), and its revoke
//! takes the entry out again (`_sync_allowlist_add` / `_sync_allowlist_remove` in
//! `gateway/pairing.py`). bridgekeeper's approve and revoke keep the same mirror, so whichever
//! tool approves, the files end up as the other expects.

use std::path::Path;

use crate::policy::normalize;
use crate::util::fs::PathError;

/// `WHATSAPP_ALLOWED_USERS`, `TELEGRAM_ALLOWED_USERS`, …
pub fn env_key(platform: &str) -> String {
    format!(
        "{}_ALLOWED_USERS",
        platform.to_uppercase().replace('-', "_")
    )
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Add,
    Remove,
}

/// The new text of `.env` after `change` of `user` in `key`, or `None` when nothing changes.
/// `inherited` is the value from the process environment, used when the file does not set the
/// key (Hermes reads its own environment, which its `.env` was loaded into). Pure.
pub fn edit(
    text: &str,
    key: &str,
    inherited: Option<&str>,
    user: &str,
    change: Change,
) -> Option<String> {
    let in_file = dotenvy::from_read_iter(text.as_bytes())
        .flatten()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v);
    let current = in_file.as_deref().or(inherited).unwrap_or_default().trim();
    if current.is_empty() {
        return None; // no allowlist: an open gateway stays open
    }
    let ids: Vec<&str> = current
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    let user_key = normalize(user);
    let listed = |id: &&str| normalize(id) == user_key;
    let new_ids: Vec<&str> = match change {
        Change::Add if ids.contains(&"*") || ids.iter().any(listed) => return None,
        Change::Add => ids.iter().copied().chain([user]).collect(),
        Change::Remove if !ids.iter().any(listed) => return None,
        Change::Remove => ids.iter().copied().filter(|id| !listed(id)).collect(),
    };
    let line = (!new_ids.is_empty()).then(|| format!("{key}={}", quote(&new_ids.join(","))));
    let mut out = String::with_capacity(text.len() + 32);
    let mut replaced = false;
    for l in text.split_inclusive('\n') {
        if defines(l, key) {
            if !replaced && let Some(line) = &line {
                out.push_str(line);
                out.push('\n');
            }
            replaced = true;
        } else {
            out.push_str(l);
        }
    }
    if !replaced && let Some(line) = line {
        if !out.is_empty() && !out.ends_with('\n') {
            out.push('\n');
        }
        out.push_str(&line);
        out.push('\n');
    }
    Some(out)
}

/// `KEY=…` or `export KEY=…`, as Hermes matches them.
fn defines(line: &str, key: &str) -> bool {
    let l = line.trim_start();
    let l = l.strip_prefix("export ").map_or(l, str::trim_start);
    l.strip_prefix(key)
        .is_some_and(|rest| rest.trim_start().starts_with('='))
}

/// Quoted only when dotenv would otherwise read it differently (Hermes' `_quote_env_value`).
fn quote(value: &str) -> String {
    let plain = !value
        .chars()
        .any(|c| c.is_whitespace() || matches!(c, '#' | '"' | '\''));
    if plain {
        value.to_owned()
    } else {
        format!("\"{}\"", value.replace('\\', "\\\\").replace('"', "\\\""))
    }
}

/// Applies `change` to the `.env` at `path` (replaced atomically; its mode kept). Returns the
/// key when the file changed. Blocking.
pub fn apply(
    path: &Path,
    platform: &str,
    user: &str,
    change: Change,
) -> Result<Option<String>, PathError> {
    use std::os::unix::fs::PermissionsExt;
    let key = env_key(platform);
    let (text, mode) = match std::fs::read_to_string(path) {
        Ok(t) => (
            t,
            std::fs::metadata(path).ok().map(|m| m.permissions().mode()),
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => (String::new(), None),
        Err(e) => return Err(PathError::new("read", path, e)),
    };
    let inherited = std::env::var(&key).ok();
    let Some(new) = edit(&text, &key, inherited.as_deref(), user, change) else {
        return Ok(None);
    };
    crate::util::fs::write_atomic(path, new.as_bytes())?;
    if let Some(mode) = mode {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode & 0o7777))
            .map_err(|e| PathError::new("set the mode of", path, e))?;
    }
    Ok(Some(key))
}

#[cfg(test)]
mod tests {
    use super::*;

    const K: &str = "WHATSAPP_ALLOWED_USERS";

    #[test]
    fn an_approval_joins_a_configured_allowlist_and_nothing_else() {
        let text = "A=1\nWHATSAPP_ALLOWED_USERS=15551112222\nB=2\n";
        assert_eq!(
            edit(text, K, None, "15553334444", Change::Add).unwrap(),
            "A=1\nWHATSAPP_ALLOWED_USERS=15551112222,15553334444\nB=2\n"
        );
        // Already there (in another spelling), a wildcard, or no allowlist at all: unchanged.
        assert_eq!(edit(text, K, None, "+1 555 111 2222", Change::Add), None);
        assert_eq!(
            edit("WHATSAPP_ALLOWED_USERS=*\n", K, None, "1555", Change::Add),
            None
        );
        assert_eq!(edit("A=1\n", K, None, "15553334444", Change::Add), None);
        // Set only in the environment: written to the file, as Hermes does.
        assert_eq!(
            edit("A=1", K, Some("15551112222"), "15553334444", Change::Add).unwrap(),
            "A=1\nWHATSAPP_ALLOWED_USERS=15551112222,15553334444\n"
        );
    }

    #[test]
    fn a_revoke_takes_the_entry_out_and_the_line_when_it_was_the_last() {
        let text = "export WHATSAPP_ALLOWED_USERS=15551112222,15553334444\n";
        assert_eq!(
            edit(text, K, None, "15553334444", Change::Remove).unwrap(),
            "WHATSAPP_ALLOWED_USERS=15551112222\n"
        );
        assert_eq!(
            edit(
                "X=1\nWHATSAPP_ALLOWED_USERS=15553334444\n",
                K,
                None,
                "15553334444",
                Change::Remove
            )
            .unwrap(),
            "X=1\n"
        );
        assert_eq!(edit(text, K, None, "19990000000", Change::Remove), None);
    }

    #[test]
    fn the_key_follows_hermes_naming() {
        assert_eq!(env_key("whatsapp"), K);
        assert_eq!(env_key("telegram"), "TELEGRAM_ALLOWED_USERS");
        assert!(defines("  WHATSAPP_ALLOWED_USERS = 1\n", K));
        assert!(!defines("WHATSAPP_ALLOWED_USERS_X=1\n", K));
        assert_eq!(quote("a b"), "\"a b\"");
    }
}
