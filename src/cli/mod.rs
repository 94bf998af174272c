//! Command-line interface: one file per subcommand. `main.rs` parses and dispatches here.

pub mod config;
pub mod doctor;
pub mod legacy;
pub mod logs;
pub mod pairing;
pub mod platforms;
pub mod qr;
pub mod run;
pub mod status;
pub mod webhook;
pub mod weixin;
pub mod whatsapp;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "bridgekeeper",
    version,
    about = "Supervisor for chat-network bridges"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Commands,
}

#[derive(Debug, Subcommand)]
pub enum Commands {
    /// Run the daemon: start the configured connectors and speak the gateway link (JSON lines)
    /// on stdin/stdout. Closing stdin, SIGTERM or SIGINT stops it and its connectors.
    Run(run::RunArgs),
    /// Show each connector's state, pid, uptime, restarts, last exit and message ledger.
    Status(status::StatusArgs),
    /// Manage DM pairing: list, approve, revoke, clear-pending.
    Pairing(pairing::PairingArgs),
    /// Explain the effective access policy: every value, its source, and warnings.
    Config(config::ConfigArgs),
    /// Drop-in for the old bridge.js: same flags and loopback HTTP API (used by the Hermes shim).
    Legacy(legacy::LegacyArgs),
    /// Check node, node-bridge, the session, the port and the settings; each problem with its fix.
    Doctor(doctor::DoctorArgs),
    /// The platforms `run` without a config would start, and why (`--json` for programs).
    Platforms(platforms::PlatformsArgs),
    /// The debug view of bridge.log: one readable line per event, filters, follow (-f).
    Logs(logs::LogsArgs),
    /// WhatsApp account tools: `whatsapp link`.
    Whatsapp(whatsapp::WhatsappArgs),
    /// Weixin (personal WeChat) account tools: `weixin link`.
    Weixin(weixin::WeixinArgs),
    /// Webhook routes: subscribe, list, remove, test (Hermes' webhook_subscriptions.json).
    Webhook(webhook::WebhookArgs),
    /// A built-in connector process (the supervisor starts it; PROTOCOL.md on stdio).
    #[command(hide = true, subcommand)]
    Connector(ConnectorKind),
}

pub use crate::connectors::ConnectorKind;

/// Where to find the daemon's state: from its config file, directly, or — as every other
/// command defaults — the one `run` without a config uses under the Hermes home.
#[derive(Debug, clap::Args)]
#[group(multiple = false)]
pub struct StateDirArgs {
    /// The config file the daemon runs with.
    #[arg(long, short)]
    pub config: Option<PathBuf>,
    /// The daemon's state directory.
    #[arg(long)]
    pub state_dir: Option<PathBuf>,
    /// Hermes home (default: $HERMES_HOME, else ~/.hermes).
    #[arg(long)]
    pub hermes_home: Option<PathBuf>,
}

impl StateDirArgs {
    pub fn resolve(&self) -> anyhow::Result<PathBuf> {
        match (&self.state_dir, &self.config) {
            (Some(dir), _) => Ok(dir.clone()),
            (None, Some(config)) => Ok(crate::config::SupervisorConfig::load(config)?.state_dir),
            (None, None) => Ok(crate::config::hermes_paths::hermes_state_dir(
                &self
                    .hermes_home
                    .clone()
                    .unwrap_or_else(crate::config::hermes::default_hermes_home),
            )),
        }
    }
}

/// The Hermes home a command works on: the config file's, the one given, or the default.
pub fn hermes_home(
    config: Option<&std::path::Path>,
    given: Option<PathBuf>,
) -> anyhow::Result<PathBuf> {
    Ok(match config {
        Some(path) => crate::config::SupervisorConfig::load(path)?.hermes_home,
        None => given.unwrap_or_else(crate::config::hermes::default_hermes_home),
    })
}

/// An exit status chosen on purpose, with nothing more to print (the command said it all).
#[derive(Debug, thiserror::Error)]
#[error("exit status {0}")]
pub struct ExitStatus(pub u8);

/// An error and its causes on one line, each said once: many errors already include their
/// source in their own text, and printing the chain again would repeat it
/// ("File exists (os error 17): File exists (os error 17)").
pub fn error_text(error: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in error.chain() {
        let part = cause.to_string();
        if text.contains(&part) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&part);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_cause_is_said_once() {
        let io = std::io::Error::from_raw_os_error(17);
        let path = crate::util::fs::PathError::new("cannot create", std::path::Path::new("/x"), io);
        let error = anyhow::Error::new(path).context("cannot start with /etc/bk.yaml");
        let text = error_text(&error);
        assert_eq!(text.matches("os error 17").count(), 1, "{text}");
        assert!(
            text.starts_with("cannot start with /etc/bk.yaml: cannot create /x"),
            "{text}"
        );
        let lock = crate::util::lock::LockError::Held {
            dir: "/s".into(),
            holder: Some(7),
        };
        let error = anyhow::Error::new(crate::daemon::StartError::from(lock));
        assert_eq!(error_text(&error).matches("stop it first").count(), 1);
    }
}
