//! Connectors built into the bridgekeeper executable. The supervisor runs each as a child
//! process (`bridgekeeper connector NAME`) that speaks PROTOCOL.md over its stdio, exactly like
//! node-bridge: one file to install, and the same supervision, policy and ledger.
//!
//! This file is the registry: a new connector adds its subcommand (`ConnectorKind`, `run`) and
//! its `DESCRIPTION` (with its `Builtin` row) in `description::ALL`; everything else it needs is
//! in `kit/` and its own folder.

pub mod description;
pub mod kit;
pub mod telegram;
pub mod webhook;
pub mod wecom;
pub mod wecom_callback;
pub mod weixin;
pub mod whatsapp;

/// The connectors built into this executable (`bridgekeeper connector NAME`).
#[derive(Debug, clap::Subcommand)]
pub enum ConnectorKind {
    Telegram(telegram::TelegramArgs),
    Weixin(weixin::WeixinArgs),
    Webhook(webhook::WebhookArgs),
    Wecom(wecom::WecomArgs),
    /// Named as the platform (`connector wecom_callback`), not clap's kebab case.
    #[command(name = "wecom_callback")]
    WecomCallback(wecom_callback::WecomCallbackArgs),
}

/// Runs a built-in connector; its exit code is the protocol's (PROTOCOL.md, "Exit codes").
pub fn run(kind: ConnectorKind) -> i32 {
    match kind {
        ConnectorKind::Telegram(args) => telegram::run(args),
        ConnectorKind::Weixin(args) => weixin::run(args),
        ConnectorKind::Webhook(args) => webhook::run(args),
        ConnectorKind::Wecom(args) => wecom::run(args),
        ConnectorKind::WecomCallback(args) => wecom_callback::run(args),
    }
}

/// Whether something under a Hermes home turns a connector on.
pub type IsSaved = fn(&std::path::Path) -> bool;

/// What the supervisor needs to know of a built-in connector.
#[derive(Debug)]
pub struct Builtin {
    /// `builtin: NAME` in a config file, the subcommand, and the platform.
    pub name: &'static str,
    /// Settings it reads from its environment: taken from Hermes' `.env` when the process
    /// environment does not have them.
    pub settings: &'static [Setting],
    /// The setting whose presence makes `run` without a config start it (a `…_ENABLED`
    /// setting: when it says true).
    pub enabled_by: &'static str,
    /// What else under a Hermes home starts it (a saved login, a config.yaml switch), and how
    /// `run` names it.
    pub saved_login: Option<(IsSaved, &'static str)>,
    /// What the operator's alert says to do when its credentials are refused (`needs_token`);
    /// its description says what to do when its login is gone.
    pub token_fix: &'static str,
}

/// One of a connector's settings, by Hermes' names.
#[derive(Debug)]
pub struct Setting {
    /// Its name in the environment and Hermes' `.env`.
    pub env: &'static str,
    /// Its key in config.yaml's `platforms.<platform>.extra`, where Hermes reads it there too
    /// (the environment wins).
    pub extra: Option<&'static str>,
    /// A credential: never printed, never in a file bridgekeeper writes, and taken out of the
    /// connector's stderr before it reaches `bridge.log`.
    pub secret: bool,
}

impl Setting {
    pub const fn plain(env: &'static str) -> Self {
        Self {
            env,
            extra: None,
            secret: false,
        }
    }

    pub const fn secret(env: &'static str) -> Self {
        Self {
            secret: true,
            ..Self::plain(env)
        }
    }

    /// Read from `platforms.<platform>.extra.<key>` as well.
    pub const fn or_extra(self, key: &'static str) -> Self {
        Self {
            extra: Some(key),
            ..self
        }
    }
}

/// Every built-in connector: the platforms whose description has a `Builtin` row.
pub fn builtins() -> impl Iterator<Item = &'static Builtin> {
    description::ALL
        .into_iter()
        .filter_map(|d| d.builtin.as_ref())
}

pub fn builtin(name: &str) -> Option<&'static Builtin> {
    builtins().find(|b| b.name == name)
}
