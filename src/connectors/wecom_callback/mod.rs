//! WeCom's self-built apps (自建应用): `bridgekeeper connector wecom_callback`. WeCom POSTs
//! each message, encrypted, to an HTTP callback; this connector serves that callback (through
//! `crate::listener`, loopback by default: a TLS reverse proxy goes in front), checks and opens
//! each request with the app's keys, and answers WeCom only once the supervisor recorded the
//! message (WeCom retries a callback it got no answer to; the duplicate window drops the retry
//! by `MsgId`). Answers go out through WeCom's `message/send` with the app's access token.
//!
//! Settings, Hermes' names: `WECOM_CALLBACK_CORP_ID`, `_CORP_SECRET`, `_AGENT_ID`, `_TOKEN`,
//! `_ENCODING_AES_KEY`, `_HOST` (default 127.0.0.1), `_PORT` (8645), `_PATH` (`/wecom/callback`),
//! `_API_ROOT` (`https://qyapi.weixin.qq.com`); several apps as Hermes' `apps` list under
//! `platforms.wecom_callback.extra` in config.yaml.

pub mod api;
pub mod crypto;
pub mod doctor;
pub mod receive;
pub mod xml;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bridge_protocol::exit;
use bridge_protocol::message::{Command, ConnectionState};
use serde_json::{Value, json};

use super::description::{Description, TextUnit};
use super::kit::failure::{self, Classified};
use super::kit::settings as kit_settings;
use super::kit::{CommandOutcome, Link, after_parts, error};
use super::{Builtin, Setting};
use crate::policy::AccessPolicy;
use api::{Api, ApiError};
use crypto::Crypt;

pub const TOKEN_FIX: &str = "set WECOM_CALLBACK_CORP_ID and a valid WECOM_CALLBACK_CORP_SECRET (the app's Secret in the WeCom admin console)";
pub const DEFAULT_API_ROOT: &str = "https://qyapi.weixin.qq.com";
const DEFAULT_HOST: &str = "127.0.0.1";
const DEFAULT_PORT: u16 = 8645;
const DEFAULT_PATH: &str = "/wecom/callback";
/// WeCom's limit for one text, in bytes.
pub const MAX_TEXT_BYTES: usize = 2048;

#[derive(Debug, clap::Args)]
pub struct WecomCallbackArgs {
    /// Accepted for symmetry with the other built-in connectors (texts only).
    #[arg(long)]
    pub media_dir: Option<PathBuf>,
}

/// One self-built app: its keys and its API client.
pub struct App {
    pub name: String,
    pub corp_id: String,
    pub crypt: Crypt,
    pub api: Api,
}

/// The listener's address and path, and the apps.
pub struct Settings {
    pub host: String,
    pub port: u16,
    pub path: String,
    pub apps: Vec<App>,
}

/// Reads the settings: `lookup` is the environment (the supervisor passes `.env`'s); `extra` is
/// `platforms.wecom_callback.extra` of config.yaml. Every problem is said at once.
pub fn settings(
    extra: Option<&Value>,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<Settings, String> {
    let text = |key: &str| kit_settings::env(lookup, key);
    let extra = extra.cloned().unwrap_or(Value::Null);
    let field = kit_settings::text_field;
    let root = text("WECOM_CALLBACK_API_ROOT").unwrap_or_else(|| DEFAULT_API_ROOT.into());
    let mut declared: Vec<Value> = extra
        .get("apps")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if declared.is_empty() {
        let env_or =
            |env: &str, key: &str| text(env).or_else(|| field(&extra, key)).map(Value::String);
        let mut one = serde_json::Map::new();
        for (env, key) in [
            ("WECOM_CALLBACK_CORP_ID", "corp_id"),
            ("WECOM_CALLBACK_CORP_SECRET", "corp_secret"),
            ("WECOM_CALLBACK_AGENT_ID", "agent_id"),
            ("WECOM_CALLBACK_TOKEN", "token"),
            ("WECOM_CALLBACK_ENCODING_AES_KEY", "encoding_aes_key"),
        ] {
            if let Some(v) = env_or(env, key) {
                one.insert(key.into(), v);
            }
        }
        one.insert("name".into(), json!("default"));
        declared.push(Value::Object(one));
    }
    let mut apps = Vec::new();
    let mut problems = Vec::new();
    for (i, app) in declared.iter().enumerate() {
        let name = field(app, "name").unwrap_or_else(|| format!("app {}", i + 1));
        let need = |key: &str, env: &str| {
            field(app, key).ok_or_else(|| format!("{name}: {key} is not set ({env})"))
        };
        let parts = (
            need("corp_id", "WECOM_CALLBACK_CORP_ID"),
            need("corp_secret", "WECOM_CALLBACK_CORP_SECRET"),
            need("agent_id", "WECOM_CALLBACK_AGENT_ID"),
            need("token", "WECOM_CALLBACK_TOKEN"),
            need("encoding_aes_key", "WECOM_CALLBACK_ENCODING_AES_KEY"),
        );
        let (Ok(corp), Ok(secret), Ok(agent), Ok(token), Ok(aes)) = parts else {
            let (a, b, c, d, e) = parts;
            problems.extend(
                [a.err(), b.err(), c.err(), d.err(), e.err()]
                    .into_iter()
                    .flatten(),
            );
            continue;
        };
        let Ok(agent_id) = agent.parse::<i64>() else {
            problems.push(format!("{name}: agent_id must be a number, not {agent:?}"));
            continue;
        };
        match Crypt::new(&token, &aes, &corp) {
            Ok(crypt) => apps.push(App {
                api: Api::new(&root, &corp, &secret, agent_id),
                name,
                corp_id: corp,
                crypt,
            }),
            Err(e) => problems.push(format!("{name}: {e}")),
        }
    }
    if !problems.is_empty() {
        return Err(problems.join("; "));
    }
    let port = match text("WECOM_CALLBACK_PORT").or_else(|| field(&extra, "port")) {
        None => DEFAULT_PORT,
        Some(p) => p
            .parse()
            .map_err(|_| format!("WECOM_CALLBACK_PORT must be a port number, not {p:?}"))?,
    };
    let path = text("WECOM_CALLBACK_PATH")
        .or_else(|| field(&extra, "path"))
        .unwrap_or_else(|| DEFAULT_PATH.into());
    if !path.starts_with('/') {
        return Err(format!("the callback path must start with /, not {path:?}"));
    }
    Ok(Settings {
        host: text("WECOM_CALLBACK_HOST")
            .or_else(|| field(&extra, "host"))
            .unwrap_or_else(|| DEFAULT_HOST.into()),
        port,
        path,
        apps,
    })
}

/// Whether config.yaml declares a self-built app (`platforms.wecom_callback.extra.corp_id` or
/// `apps`), which starts the connector as it starts Hermes' adapter.
pub fn enabled_in_yaml(hermes_home: &std::path::Path) -> bool {
    kit_settings::yaml_says(hermes_home, "wecom_callback", |s| {
        s.get("extra").is_some_and(|e| {
            e.get("corp_id").is_some()
                || e.get("apps")
                    .is_some_and(|a| a.as_array().is_some_and(|a| !a.is_empty()))
        })
    })
}

/// A self-built app's facts: Hermes' text limit of 2,048 (told to the gateway in characters,
/// cut here in bytes, which is never longer), plain text, WeCom's allowlist spelling.
pub const DESCRIPTION: Description = Description {
    platform: "wecom_callback",
    label: "WeCom (self-built app)",
    text_limit: MAX_TEXT_BYTES,
    text_unit: TextUnit::Chars,
    markdown: "plain",
    edits: false,
    self_chat: false,
    groups: true,
    paced: true,
    direct_chat_type: "dm",
    access: AccessPolicy::default,
    allowlist_prefixes: super::wecom::WECOM_PREFIXES,
    ops: &["send_text", "typing", "read", "ping", "recorded"],
    doctor: Some(doctor::checks),
    relink_fix: TOKEN_FIX,
    builtin: Some(Builtin {
        name: "wecom_callback",
        settings: &[
            Setting::plain("WECOM_CALLBACK_CORP_ID"),
            Setting::secret("WECOM_CALLBACK_CORP_SECRET"),
            Setting::plain("WECOM_CALLBACK_AGENT_ID"),
            Setting::secret("WECOM_CALLBACK_TOKEN"),
            Setting::secret("WECOM_CALLBACK_ENCODING_AES_KEY"),
            Setting::plain("WECOM_CALLBACK_HOST"),
            Setting::plain("WECOM_CALLBACK_PORT"),
            Setting::plain("WECOM_CALLBACK_PATH"),
            Setting::plain("WECOM_CALLBACK_API_ROOT"),
        ],
        enabled_by: "WECOM_CALLBACK_CORP_ID",
        saved_login: Some((
            enabled_in_yaml,
            "platforms.wecom_callback apps in config.yaml",
        )),
        token_fix: TOKEN_FIX,
    }),
};

/// Runs until stdin closes (exit 0); refused credentials end it with exit 15 (`needs_token`),
/// settings it cannot use with 14, a port it cannot bind with 11.
pub fn run(_args: WecomCallbackArgs) -> i32 {
    let link = Link::start(DESCRIPTION.platform, DESCRIPTION.ops);
    let home = std::env::var_os("HERMES_HOME").map(PathBuf::from);
    let extra = match home
        .as_deref()
        .map(|h| super::kit::hermes::platform_section(h, "wecom_callback"))
    {
        Some(Err(why)) => return config_error(&link, &why),
        Some(Ok(section)) => section.and_then(|s| s.get("extra").cloned()),
        None => None,
    };
    let settings = match settings(extra.as_ref(), &|k| std::env::var(k).ok()) {
        Ok(s) => s,
        Err(why) => return config_error(&link, &why),
    };
    // The credentials first: a refused secret is a state to report, not a restart loop.
    for app in &settings.apps {
        loop {
            match app.api.access_token() {
                Ok(_) => break,
                Err(e) if let Some(terminal) = e.failure().terminal() => {
                    let why = format!("app {}: {e}", app.name);
                    return failure::end(&link, terminal, &why, &DESCRIPTION);
                }
                Err(e) => {
                    link.status(
                        ConnectionState::Connecting,
                        Some(format!("app {}: {e}", app.name)),
                    );
                    std::thread::sleep(Duration::from_secs(2));
                }
            }
        }
    }
    let Some(runtime) = super::kit::runtime("wecom_callback") else {
        return bridge_protocol::exit::RESTART_BACKOFF;
    };
    runtime.block_on(serve(link, settings))
}

fn config_error(link: &Link, why: &str) -> i32 {
    eprintln!("wecom_callback: {why}");
    link.status(ConnectionState::Closed, Some(format!("config: {why}")));
    exit::FATAL
}

async fn serve(link: Arc<Link>, settings: Settings) -> i32 {
    let bound = match super::kit::receiver::bind(
        &link,
        "wecom_callback",
        &settings.host,
        settings.port,
        None,
    )
    .await
    {
        Ok(b) => b,
        Err(code) => return code,
    };
    let url = format!("{}{}", bound.base_url, settings.path);
    let receiver = Arc::new(receive::Receiver::new(
        link.clone(),
        settings.apps,
        &settings.path,
    ));
    {
        let receiver = receiver.clone();
        link.start_commands(move |command| execute(&receiver, command));
    }
    link.start_heartbeats();
    eprintln!("wecom_callback: listening on {url}");
    bound.serve(link, receiver.router(), &url).await
}

fn execute(receiver: &receive::Receiver, command: &Command) -> CommandOutcome {
    match command {
        Command::Ping(_) => Ok(None),
        Command::Typing(_) | Command::Read(_) => Ok(Some(json!({"sent": false}))),
        Command::SendText(t) => {
            let (app, user) = receiver.app_for_chat(&t.chat).ok_or_else(|| {
                error(
                    "unknown_chat",
                    "no app of this connector serves that chat",
                    false,
                )
            })?;
            let parts = super::kit::text::split(&t.text, MAX_TEXT_BYTES, char::len_utf8);
            if parts.is_empty() {
                return Err(error("invalid_request", "the text is empty", false));
            }
            let mut ids = Vec::new();
            for part in &parts {
                let id = app.api.send_text(&user, part).map_err(|e| {
                    let body = match &e {
                        ApiError::Network(_) => error("network_error", &e.to_string(), true),
                        _ => error("wecom_error", &e.to_string(), false),
                    };
                    after_parts(body, ids.len(), parts.len())
                })?;
                receiver.link.server_ack(&id, &t.chat);
                ids.push(id);
            }
            Ok(Some(json!({"message_id": ids.last(), "message_ids": ids})))
        }
        other => Err(super::kit::unsupported("wecom_callback", other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG";

    #[test]
    fn one_app_from_the_environment_or_several_from_config_yaml_and_every_gap_named() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(key, _)| *key == k)
                    .map(|(_, v)| (*v).to_owned())
            }
        };
        let full: &[(&str, &str)] = &[
            ("WECOM_CALLBACK_CORP_ID", "ww1"),
            ("WECOM_CALLBACK_CORP_SECRET", "s"),
            ("WECOM_CALLBACK_AGENT_ID", "1000002"),
            ("WECOM_CALLBACK_TOKEN", "t"),
            ("WECOM_CALLBACK_ENCODING_AES_KEY", KEY),
        ];
        let s = settings(None, &env(full)).unwrap();
        assert_eq!(
            (s.host.as_str(), s.port, s.path.as_str(), s.apps.len()),
            ("127.0.0.1", 8645, "/wecom/callback", 1)
        );
        let err = settings(None, &env(&[("WECOM_CALLBACK_CORP_ID", "ww1")]))
            .err()
            .unwrap();
        assert!(
            err.contains("corp_secret is not set") && err.contains("encoding_aes_key"),
            "{err}"
        );
        let apps = json!({"apps": [
            {"name": "hr", "corp_id": "ww1", "corp_secret": "a", "agent_id": 1, "token": "t", "encoding_aes_key": KEY},
            {"name": "it", "corp_id": "ww2", "corp_secret": "b", "agent_id": "2", "token": "u", "encoding_aes_key": "short"}
        ], "port": 9000});
        let err = settings(Some(&apps), &env(&[])).err().unwrap();
        assert!(err.contains("it: the EncodingAESKey must be 43"), "{err}");
        assert!(
            !err.contains("\"a\"") && !err.contains(KEY),
            "no secret in the message: {err}"
        );
    }
}
