//! The connectors bridgekeeper knows without a config file: the WhatsApp connector
//! (node-bridge) with Hermes' paths, used by `run` without `--config`, the drop-in mode and
//! `whatsapp link`. The generated config goes through the same validation as a written one.

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde_json::json;

use super::hermes_paths::{bridge_log_for, state_dir_for};
use super::{ConfigError, SupervisorConfig};
use crate::connectors::builtins;
use crate::connectors::kit::settings::is_on;

/// The WhatsApp connector's name (and its platform).
pub const WHATSAPP: &str = crate::connectors::whatsapp::DESCRIPTION.platform;

/// node-bridge's `src/index.js`: given, from the environment, beside the shim, or beside the
/// bridgekeeper binary (a source checkout's `target/{debug,release}` included).
pub fn find_node_bridge(explicit: Option<&Path>) -> anyhow::Result<PathBuf> {
    let mut candidates: Vec<PathBuf> = Vec::new();
    candidates.extend(explicit.map(Path::to_path_buf));
    if let Some(p) = std::env::var_os("BRIDGEKEEPER_NODE_BRIDGE") {
        candidates.push(PathBuf::from(p));
    }
    if let Some(shim) = std::env::var_os("BRIDGEKEEPER_LEGACY_SCRIPT").map(PathBuf::from)
        && let Some(dir) = shim.parent()
    {
        candidates.push(dir.join("src/index.js"));
    }
    if let Some(dir) = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(Path::to_path_buf))
    {
        candidates.push(dir.join("../../node-bridge/src/index.js"));
        candidates.push(dir.join("node-bridge/src/index.js"));
        candidates.push(dir.join("../share/bridgekeeper/node-bridge/src/index.js"));
    }
    candidates
        .iter()
        .find(|c| c.is_file())
        .map(|c| c.canonicalize().unwrap_or_else(|_| c.clone()))
        .with_context(|| {
            format!(
                "cannot find node-bridge (looked at {}); pass --node-bridge PATH or set BRIDGEKEEPER_NODE_BRIDGE",
                candidates.iter().map(|c| c.display().to_string()).collect::<Vec<_>>().join(", ")
            )
        })
}

/// A supervisor config for the WhatsApp connector with Hermes' paths. `origin` names where
/// the settings came from in error messages (there is no config file).
pub fn whatsapp_config(
    hermes_home: &Path,
    session: &Path,
    node_bridge: &Path,
    origin: &str,
) -> Result<SupervisorConfig, ConfigError> {
    let platforms = [Enabled {
        platform: WHATSAPP,
        because: String::new(),
    }];
    hermes_config(hermes_home, session, Some(node_bridge), origin, &platforms)
}

/// A platform `run` without a config starts, and the setting that turned it on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enabled {
    pub platform: &'static str,
    pub because: String,
}

/// What turns each platform on when there is no config file, for the message that says none is.
pub fn enabling_settings() -> String {
    let mut out =
        "WHATSAPP_ENABLED=true (or a session linked with `bridgekeeper whatsapp link`)".to_owned();
    for b in builtins() {
        out.push_str(", ");
        out.push_str(b.enabled_by);
    }
    out
}

/// The platforms Hermes would start from its settings (`lookup`: the environment, then
/// `.env`), in the order they run: WhatsApp when `WHATSAPP_ENABLED` is true, or is unset and a
/// session is linked (`linked`); every other platform when its credentials are set. Pure.
pub fn enabled_platforms(
    lookup: &dyn Fn(&str) -> Option<String>,
    linked: bool,
    saved: &dyn Fn(&str) -> bool,
) -> Vec<Enabled> {
    // `saved`: whether a login of the named built-in connector is saved.
    let set = |key: &str| lookup(key).filter(|v| !v.trim().is_empty());
    let mut on = Vec::new();
    match set("WHATSAPP_ENABLED").map(|v| v.trim().to_ascii_lowercase()) {
        Some(v) if is_on(&v) => on.push(Enabled {
            platform: WHATSAPP,
            because: format!("WHATSAPP_ENABLED={v}"),
        }),
        Some(_) => {}
        None if linked => on.push(Enabled {
            platform: WHATSAPP,
            because: "a linked WhatsApp session".into(),
        }),
        None => {}
    }
    for b in builtins() {
        let because = match set(b.enabled_by) {
            // A switch counts when it says true; a credential when it is there.
            Some(v) if b.enabled_by.ends_with("_ENABLED") => {
                let v = v.trim().to_ascii_lowercase();
                if !is_on(&v) {
                    continue;
                }
                format!("{}={v}", b.enabled_by)
            }
            Some(_) => format!("{} is set", b.enabled_by),
            None => match b.saved_login {
                Some((_, what)) if saved(b.name) => what.to_owned(),
                _ => continue,
            },
        };
        on.push(Enabled {
            platform: b.name,
            because,
        });
    }
    on
}

/// `enabled_platforms` for a Hermes home: its environment and `.env`, and whether `session`
/// holds linked credentials.
pub fn hermes_platforms(hermes_home: &Path, session: &Path) -> Vec<Enabled> {
    let lookup = |key: &str| {
        std::env::var(key)
            .ok()
            .or_else(|| dotenv_value(hermes_home, key))
    };
    let saved = |name: &str| {
        crate::connectors::builtin(name)
            .and_then(|b| b.saved_login)
            .is_some_and(|(is_saved, _)| is_saved(hermes_home))
    };
    enabled_platforms(&lookup, session.join("creds.json").is_file(), &saved)
}

/// A supervisor config for `platforms` with Hermes' paths; `node_bridge` is needed only when
/// WhatsApp is among them.
pub fn hermes_config(
    hermes_home: &Path,
    session: &Path,
    node_bridge: Option<&Path>,
    origin: &str,
    platforms: &[Enabled],
) -> Result<SupervisorConfig, ConfigError> {
    let base = session.parent().unwrap_or(Path::new("/"));
    let mut connectors = Vec::new();
    for p in platforms {
        match (p.platform, node_bridge) {
            (WHATSAPP, Some(node_bridge)) => {
                let media = std::env::var_os("HERMES_IMAGE_CACHE_DIR")
                    .map(PathBuf::from)
                    .unwrap_or_else(|| base.join("media"));
                connectors.push(json!({
                    "name": WHATSAPP,
                    "platform": WHATSAPP,
                    "command": "node",
                    "args": [node_bridge, "--media-dir", media],
                    "session_dir": session,
                }));
            }
            (WHATSAPP, None) => {}
            (name, _) => {
                let media = base.join(format!("{name}-media"));
                connectors
                    .push(json!({"name": name, "builtin": name, "args": ["--media-dir", media]}));
            }
        }
    }
    // JSON is YAML: the generated config goes through the same validation as a written one.
    let text = json!({
        "state_dir": state_dir_for(session),
        "hermes_home": hermes_home,
        "log": { "path": bridge_log_for(session) },
        "connectors": connectors,
    })
    .to_string();
    SupervisorConfig::parse(&text, Path::new(origin), base)
}

/// How to start a built-in connector.
pub struct BuiltinSpec {
    pub program: PathBuf,
    pub args: Vec<String>,
    /// Settings the connector reads from its environment, taken from `$HERMES_HOME/.env`
    /// when the process environment does not have them (a child inherits the rest).
    pub env: Vec<(String, String)>,
}

/// `builtin: NAME` in a config file: this executable's `connector NAME` subcommand.
pub fn connector(name: &str, hermes_home: &Path) -> Result<BuiltinSpec, String> {
    let Some(builtin) = crate::connectors::builtin(name) else {
        let names: Vec<&str> = builtins().map(|b| b.name).collect();
        return Err(format!(
            "{name:?} is not a built-in connector; built in: {}",
            names.join(", ")
        ));
    };
    let program = std::env::current_exe()
        .map_err(|e| format!("cannot find the bridgekeeper executable: {e}"))?;
    let mut env: Vec<(String, String)> = builtin
        .settings
        .iter()
        .map(|s| s.env)
        .filter(|k| std::env::var_os(k).is_none())
        .filter_map(|k| Some((k.to_owned(), dotenv_value(hermes_home, k)?)))
        .collect();
    // Where Hermes keeps what a connector shares with it (saved accounts).
    env.push(("HERMES_HOME".into(), hermes_home.display().to_string()));
    Ok(BuiltinSpec {
        program,
        args: vec!["connector".into(), builtin.name.into()],
        env,
    })
}

fn dotenv_value(hermes_home: &Path, key: &str) -> Option<String> {
    super::hermes::dotenv_value(&hermes_home.join(".env"), key)
        .ok()
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn platforms(vars: &[(&str, &str)], linked: bool) -> Vec<(&'static str, String)> {
        let lookup = |k: &str| {
            vars.iter()
                .find(|(key, _)| *key == k)
                .map(|(_, v)| v.to_string())
        };
        let saved = |name: &str| vars.iter().any(|(k, _)| *k == "SAVED" && name == "weixin");
        enabled_platforms(&lookup, linked, &saved)
            .into_iter()
            .map(|e| (e.platform, e.because))
            .collect()
    }

    #[test]
    fn each_platform_runs_when_its_settings_say_so_and_says_which() {
        let wa = |why: &str| (WHATSAPP, why.to_owned());
        let tg = ("telegram", "TELEGRAM_BOT_TOKEN is set".to_owned());
        assert_eq!(platforms(&[], false), vec![]);
        assert_eq!(platforms(&[], true), vec![wa("a linked WhatsApp session")]);
        assert_eq!(
            platforms(&[("WHATSAPP_ENABLED", "True")], false),
            vec![wa("WHATSAPP_ENABLED=true")]
        );
        // Said off, it stays off even with a session.
        assert_eq!(platforms(&[("WHATSAPP_ENABLED", "false")], true), vec![]);
        assert_eq!(
            platforms(&[("TELEGRAM_BOT_TOKEN", "123:abc")], false),
            vec![tg.clone()]
        );
        assert_eq!(platforms(&[("TELEGRAM_BOT_TOKEN", "  ")], false), vec![]);
        assert_eq!(
            platforms(
                &[("TELEGRAM_BOT_TOKEN", "1:a"), ("WHATSAPP_ENABLED", "1")],
                false
            ),
            vec![wa("WHATSAPP_ENABLED=1"), tg]
        );
        let wx = |why: &str| ("weixin", why.to_owned());
        assert_eq!(
            platforms(&[("WEIXIN_TOKEN", "t")], false),
            vec![wx("WEIXIN_TOKEN is set")]
        );
        assert_eq!(
            platforms(&[("SAVED", "")], false),
            vec![wx("a saved weixin login")]
        );
        // A switch counts when it says so, not when it is merely there.
        assert_eq!(
            platforms(&[("WEBHOOK_ENABLED", "True")], false),
            vec![("webhook", "WEBHOOK_ENABLED=true".to_owned())]
        );
        assert_eq!(platforms(&[("WEBHOOK_ENABLED", "false")], false), vec![]);
        assert_eq!(
            platforms(
                &[("WECOM_BOT_ID", "b"), ("WECOM_CALLBACK_CORP_ID", "ww1")],
                false
            ),
            vec![
                ("wecom", "WECOM_BOT_ID is set".to_owned()),
                ("wecom_callback", "WECOM_CALLBACK_CORP_ID is set".to_owned())
            ]
        );
    }
}
