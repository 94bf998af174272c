//! Connectors built into the bridgekeeper executable. The supervisor runs each as a child
//! process (`bridgekeeper connector NAME`) that speaks PROTOCOL.md over its stdio, exactly like
//! node-bridge: one file to install, and the same supervision, policy and ledger.
//!
//! This file is the registry: a new connector adds its subcommand (`ConnectorKind`, `run`), its
//! row in `BUILTIN` and its `DESCRIPTION` in `description::ALL`; everything else it needs is in
//! `kit/` and its own folder.

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
    pub env: &'static [&'static str],
    /// The setting whose presence makes `run` without a config start it (a `…_ENABLED`
    /// setting: when it says true).
    pub enabled_by: &'static str,
    /// What else under a Hermes home starts it (a saved login, a config.yaml switch), and how
    /// `run` names it.
    pub saved_login: Option<(IsSaved, &'static str)>,
    /// What the operator's alert says to do when its credentials are refused (`needs_token`)
    /// and when its login is gone (`needs_relink`).
    pub token_fix: &'static str,
    pub relink_fix: &'static str,
}

pub const BUILTIN: &[Builtin] = &[
    Builtin {
        name: "telegram",
        env: &["TELEGRAM_BOT_TOKEN", "TELEGRAM_API_ROOT"],
        enabled_by: "TELEGRAM_BOT_TOKEN",
        saved_login: None,
        token_fix: telegram::TOKEN_FIX,
        relink_fix: telegram::TOKEN_FIX,
    },
    Builtin {
        name: "weixin",
        env: &[
            "WEIXIN_TOKEN",
            "WEIXIN_ACCOUNT_ID",
            "WEIXIN_BASE_URL",
            "WEIXIN_CDN_BASE_URL",
            "WEIXIN_SPLIT_MULTILINE_MESSAGES",
        ],
        enabled_by: "WEIXIN_TOKEN",
        saved_login: Some((weixin::account::has_saved, "a saved weixin login")),
        token_fix: weixin::TOKEN_FIX,
        relink_fix: weixin::RELINK_FIX,
    },
    Builtin {
        name: "webhook",
        env: &[
            "WEBHOOK_ENABLED",
            "WEBHOOK_PORT",
            "WEBHOOK_SECRET",
            "WEBHOOK_HOST",
        ],
        enabled_by: "WEBHOOK_ENABLED",
        saved_login: Some((
            webhook::routes::enabled_in_yaml,
            "platforms.webhook.enabled in config.yaml",
        )),
        token_fix: webhook::CONFIG_FIX,
        relink_fix: webhook::CONFIG_FIX,
    },
    Builtin {
        name: "wecom",
        env: &["WECOM_BOT_ID", "WECOM_SECRET", "WECOM_WEBSOCKET_URL"],
        enabled_by: "WECOM_BOT_ID",
        saved_login: Some((
            wecom::enabled_in_yaml,
            "platforms.wecom.extra.bot_id in config.yaml",
        )),
        token_fix: wecom::TOKEN_FIX,
        relink_fix: wecom::TOKEN_FIX,
    },
    Builtin {
        name: "wecom_callback",
        env: &[
            "WECOM_CALLBACK_CORP_ID",
            "WECOM_CALLBACK_CORP_SECRET",
            "WECOM_CALLBACK_AGENT_ID",
            "WECOM_CALLBACK_TOKEN",
            "WECOM_CALLBACK_ENCODING_AES_KEY",
            "WECOM_CALLBACK_HOST",
            "WECOM_CALLBACK_PORT",
            "WECOM_CALLBACK_PATH",
            "WECOM_CALLBACK_API_ROOT",
        ],
        enabled_by: "WECOM_CALLBACK_CORP_ID",
        saved_login: Some((
            wecom_callback::enabled_in_yaml,
            "platforms.wecom_callback apps in config.yaml",
        )),
        token_fix: wecom_callback::TOKEN_FIX,
        relink_fix: wecom_callback::TOKEN_FIX,
    },
];

pub fn builtin(name: &str) -> Option<&'static Builtin> {
    BUILTIN.iter().find(|b| b.name == name)
}
