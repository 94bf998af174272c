//! A connector's settings as Hermes reads them: the environment first (the supervisor passes
//! `.env`'s), else `platforms.<name>.extra` of Hermes' `config.yaml`. One reader for every
//! connector; each says which of its settings come from where.

use std::path::Path;

use serde_json::Value;

/// `key` from `lookup` (the environment), trimmed; empty counts as unset.
pub fn env(lookup: &dyn Fn(&str) -> Option<String>, key: &str) -> Option<String> {
    lookup(key)
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}

/// Whether a switch setting (`WEBHOOK_ENABLED`, `WHATSAPP_ENABLED`, …) says on: `1`, `true`,
/// `yes` or `on`, in any case, spaces around ignored.
pub fn is_on(value: &str) -> bool {
    matches!(
        value.trim().to_ascii_lowercase().as_str(),
        "1" | "true" | "yes" | "on"
    )
}

/// `env` from the environment, else the string `key` of `extra` (config.yaml's
/// `platforms.<name>.extra`); trimmed, empty counts as unset, as Hermes' `getenv(…) or
/// extra.get(…)` reads it.
pub fn env_or_extra(
    lookup: &dyn Fn(&str) -> Option<String>,
    env_key: &str,
    extra: Option<&Value>,
    key: &str,
) -> Option<String> {
    env(lookup, env_key).or_else(|| {
        extra?
            .get(key)?
            .as_str()
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    })
}

/// `setting` as Hermes reads it: from `lookup` (the environment), else, where it has a key
/// there, from `extra` (config.yaml's `platforms.<name>.extra`).
pub fn read(
    setting: &crate::connectors::Setting,
    lookup: &dyn Fn(&str) -> Option<String>,
    extra: Option<&Value>,
) -> Option<String> {
    match setting.extra {
        Some(key) => env_or_extra(lookup, setting.env, extra, key),
        None => env(lookup, setting.env),
    }
}

/// `value.<key>` as text: a string (trimmed, not empty) or a number (YAML writes ids as either).
pub fn text_field(value: &Value, key: &str) -> Option<String> {
    match value.get(key)? {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_owned()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Whether `platforms.<platform>` of config.yaml under `hermes_home` satisfies `turned_on` (an
/// unreadable or missing file or section does not).
pub fn yaml_says(
    hermes_home: &Path,
    platform: &str,
    turned_on: impl FnOnce(&Value) -> bool,
) -> bool {
    super::hermes::platform_section(hermes_home, platform)
        .ok()
        .flatten()
        .is_some_and(|section| turned_on(&section))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_environment_then_config_yaml_trimmed_and_empty_as_unset() {
        let lookup = |k: &str| match k {
            "SET" => Some(" v ".to_owned()),
            "EMPTY" => Some("  ".to_owned()),
            _ => None,
        };
        let extra = json!({"key": " from yaml ", "blank": "", "n": 42});
        assert_eq!(env(&lookup, "SET").as_deref(), Some("v"));
        assert_eq!(env(&lookup, "EMPTY"), None);
        assert_eq!(
            env_or_extra(&lookup, "SET", Some(&extra), "key").as_deref(),
            Some("v")
        );
        assert_eq!(
            env_or_extra(&lookup, "EMPTY", Some(&extra), "key").as_deref(),
            Some("from yaml"),
            "an empty variable does not hide config.yaml (Hermes' `or`)"
        );
        assert_eq!(env_or_extra(&lookup, "NONE", Some(&extra), "blank"), None);
        assert_eq!(
            env_or_extra(&lookup, "NONE", Some(&extra), "n"),
            None,
            "strings only"
        );
        assert_eq!(env_or_extra(&lookup, "NONE", None, "key"), None);
        assert_eq!(text_field(&extra, "n").as_deref(), Some("42"));
        assert_eq!(text_field(&extra, "key").as_deref(), Some("from yaml"));
        assert_eq!(text_field(&extra, "blank"), None);
    }

    #[test]
    fn switches_say_on_as_hermes_writes_them() {
        for on in ["1", "true", " TRUE ", "Yes", "on"] {
            assert!(is_on(on), "{on}");
        }
        for off in ["", "0", "false", "no", "off", "enabled"] {
            assert!(!is_on(off), "{off}");
        }
    }

    #[test]
    fn config_yaml_switches() {
        let home = tempfile::tempdir().unwrap();
        assert!(!yaml_says(home.path(), "webhook", |_| true), "no file");
        std::fs::write(
            home.path().join("config.yaml"),
            "platforms:\n  webhook:\n    enabled: true\n",
        )
        .unwrap();
        assert!(yaml_says(home.path(), "webhook", |s| s["enabled"] == true));
        assert!(!yaml_says(home.path(), "wecom", |_| true), "no section");
        std::fs::write(home.path().join("config.yaml"), "platforms: [").unwrap();
        assert!(!yaml_says(home.path(), "webhook", |_| true), "unreadable");
    }
}
