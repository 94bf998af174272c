//! The connectors bridgekeeper knows without a config file: the WhatsApp connector
//! (node-bridge) with Hermes' paths, used by `run` without `--config`, the drop-in mode and
//! `whatsapp link`. The generated config goes through the same validation as a written one.

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde_json::json;

use super::hermes_paths::{bridge_log_for, state_dir_for};
use super::{ConfigError, SupervisorConfig};

/// The WhatsApp connector's name (and its platform).
pub const WHATSAPP: &str = "whatsapp";

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
    hermes_config(hermes_home, session, node_bridge, origin, false)
}

/// `whatsapp_config`, with the built-in Telegram connector beside it when `telegram`.
pub fn hermes_config(
    hermes_home: &Path,
    session: &Path,
    node_bridge: &Path,
    origin: &str,
    telegram: bool,
) -> Result<SupervisorConfig, ConfigError> {
    let base = session.parent().unwrap_or(Path::new("/"));
    let media = std::env::var_os("HERMES_IMAGE_CACHE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| base.join("media"));
    // JSON is YAML: the generated config goes through the same validation as a written one.
    let mut text = json!({
        "state_dir": state_dir_for(session),
        "hermes_home": hermes_home,
        "log": { "path": bridge_log_for(session) },
        "connectors": [{
            "name": WHATSAPP,
            "platform": WHATSAPP,
            "command": "node",
            "args": [node_bridge, "--media-dir", media],
            "session_dir": session,
        }],
    });
    if telegram {
        let media = base.join("telegram-media");
        text["connectors"]
            .as_array_mut()
            .expect("a list")
            .push(json!({"name": TELEGRAM, "builtin": TELEGRAM, "args": ["--media-dir", media]}));
    }
    let text = text.to_string();
    SupervisorConfig::parse(&text, Path::new(origin), base)
}

pub const TELEGRAM: &str = "telegram";

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
    if name != TELEGRAM {
        return Err(format!(
            "{name:?} is not a built-in connector; built in: {TELEGRAM}"
        ));
    }
    let program = std::env::current_exe()
        .map_err(|e| format!("cannot find the bridgekeeper executable: {e}"))?;
    let env = ["TELEGRAM_BOT_TOKEN", "TELEGRAM_API_ROOT"]
        .into_iter()
        .filter(|k| std::env::var_os(k).is_none())
        .filter_map(|k| Some((k.to_owned(), dotenv_value(hermes_home, k)?)))
        .collect();
    Ok(BuiltinSpec {
        program,
        args: vec!["connector".into(), TELEGRAM.into()],
        env,
    })
}

/// Whether a Telegram bot token is set (environment or `$HERMES_HOME/.env`): then `run`
/// without a config starts the Telegram connector beside WhatsApp.
pub fn telegram_token_set(hermes_home: &Path) -> bool {
    std::env::var("TELEGRAM_BOT_TOKEN").is_ok_and(|t| !t.trim().is_empty())
        || dotenv_value(hermes_home, "TELEGRAM_BOT_TOKEN").is_some()
}

fn dotenv_value(hermes_home: &Path, key: &str) -> Option<String> {
    super::hermes::dotenv_value(&hermes_home.join(".env"), key)
        .ok()
        .flatten()
}
