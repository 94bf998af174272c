//! The Telegram connector: `bridgekeeper connector telegram`, run by the supervisor like any
//! connector. It long-polls the Bot API (`getUpdates`, 30 s) and turns updates into inbound
//! messages, and commands into Bot API calls, over PROTOCOL.md on its stdio.
//!
//! Settings come from its environment: `TELEGRAM_BOT_TOKEN` (required), `TELEGRAM_API_ROOT`
//! (default `https://api.telegram.org`), `BRIDGEKEEPER_STATE_DIR` (where the update offset is
//! kept), `BRIDGEKEEPER_HEARTBEAT_MS`. Threads, not async: one polls, one reads commands, one
//! sends heartbeats; stdout is shared under a lock, one whole line at a time.

pub mod api;
pub mod doctor;
pub mod translate;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bridge_protocol::message::{Account, Command, ConnectionState, ConnectorEvent, ErrorBody};
use serde_json::{Value, json};

use super::description::{Description, TextUnit};
use super::kit::failure::{self, Classified, Failure};
use super::kit::files::{StateFile, save_media};
use super::kit::{Backoff, CommandOutcome, Link, Terminal, after_parts, error};
use super::{Builtin, Setting};
use crate::policy::AccessPolicy;
use api::{Api, ApiError};
use translate::Bot;

/// What to do when Telegram refuses the token (the connector's reason and the supervisor's
/// alert say the same).
pub const TOKEN_FIX: &str = "set a valid TELEGRAM_BOT_TOKEN (from @BotFather)";
/// How long a `getUpdates` waits on Telegram's side for an update.
const POLL_SECS: u64 = 30;
const DEFAULT_ROOT: &str = "https://api.telegram.org";
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// Calls other than the long poll.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);
const MAX_DOWNLOAD_BYTES: u64 = 20 << 20;
/// How long a batch waits for the supervisor's `recorded` notes before the offset moves on.
const RECORDED_WAIT: Duration = Duration::from_secs(10);
/// The Bot API's limit for a file a bot sends.
const MAX_UPLOAD_BYTES: u64 = 50 << 20;

#[derive(Debug, clap::Args)]
pub struct TelegramArgs {
    /// Where downloaded photos and documents go.
    #[arg(long)]
    pub media_dir: Option<PathBuf>,
}

/// Everything the threads share.
struct Shared {
    link: Arc<Link>,
    api: Api,
    bot: Mutex<Bot>,
}

/// Telegram's facts: 4,096 UTF-16 units a message, edits, no self-chat (a bot is a bot).
pub const DESCRIPTION: Description = Description {
    platform: "telegram",
    label: "Telegram",
    text_limit: translate::MAX_TEXT_UNITS,
    text_unit: TextUnit::Utf16,
    markdown: "plain",
    edits: true,
    self_chat: false,
    groups: true,
    // The Bot API answers a too-fast send with 429 and `retry_after`, which `call` waits out.
    paced: false,
    direct_chat_type: "dm",
    access: AccessPolicy::default,
    allowlist_prefixes: &[],
    ops: &[
        "send_text",
        "send_media",
        "edit",
        "typing",
        "read",
        "chat_info",
        "react",
        "delete",
        "ping",
        "recorded",
    ],
    doctor: Some(doctor::checks),
    relink_fix: TOKEN_FIX,
    builtin: Some(Builtin {
        name: "telegram",
        settings: &[
            Setting::secret("TELEGRAM_BOT_TOKEN"),
            Setting::plain("TELEGRAM_API_ROOT"),
        ],
        enabled_by: "TELEGRAM_BOT_TOKEN",
        saved_login: None,
        token_fix: TOKEN_FIX,
    }),
};

/// Runs until stdin closes (exit 0), the token is refused (exit 15), or another poller or a
/// webhook takes the updates (exit 13).
pub fn run(args: TelegramArgs) -> i32 {
    let token = std::env::var("TELEGRAM_BOT_TOKEN").unwrap_or_default();
    let root = std::env::var("TELEGRAM_API_ROOT")
        .ok()
        .filter(|r| !r.trim().is_empty())
        .unwrap_or_else(|| DEFAULT_ROOT.to_owned());
    let link = Link::start(DESCRIPTION.platform, DESCRIPTION.ops);
    let shared = Arc::new(Shared {
        link: link.clone(),
        api: Api::new(&root, token.trim()),
        bot: Mutex::new(Bot::default()),
    });
    {
        let shared = shared.clone();
        link.start_commands(move |command| execute(&shared, command));
    }
    link.start_heartbeats();
    if token.trim().is_empty() {
        let why = "TELEGRAM_BOT_TOKEN is not set";
        return failure::end(&link, Terminal::NeedsToken, &why, &DESCRIPTION);
    }
    let bot = loop {
        match shared.api.call("getMe", &json!({}), CALL_TIMEOUT) {
            Ok(me) => break me,
            Err(e) => match e.failure() {
                Failure::RateLimited(Some(wait)) => std::thread::sleep(wait),
                f => {
                    if let Some(terminal) = f.terminal() {
                        return failure::end(&link, terminal, &e, &DESCRIPTION);
                    }
                    link.status(ConnectionState::Connecting, Some(e.to_string()));
                    std::thread::sleep(Duration::from_secs(2));
                }
            },
        }
    };
    link.heard();
    let me = Bot {
        id: bot
            .get("id")
            .and_then(Value::as_i64)
            .unwrap_or(0)
            .to_string(),
        username: bot
            .get("username")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_lowercase(),
    };
    link.emit(&ConnectorEvent::Account(Account {
        user_id: Some(me.id.clone()),
        username: Some(me.username.clone()),
        name: bot
            .get("first_name")
            .and_then(Value::as_str)
            .map(str::to_owned),
        ..Default::default()
    }));
    *shared.bot.lock().unwrap_or_else(|p| p.into_inner()) = me.clone();
    link.status(ConnectionState::Open, None);
    super::kit::files::keep_media_tidy(args.media_dir.as_deref(), "tg");
    poll(&shared, &me, args.media_dir.as_deref())
}

fn poll(shared: &Shared, bot: &Bot, media_dir: Option<&std::path::Path>) -> i32 {
    // Where the next update's id is kept between runs.
    let file = StateFile::from_env("telegram", "telegram-offset");
    let mut offset: i64 = file
        .as_ref()
        .and_then(StateFile::read)
        .and_then(|t| t.parse().ok())
        .unwrap_or(0);
    let mut backoff = Backoff::doubling(Duration::from_secs(1), MAX_BACKOFF);
    let link = &shared.link;
    loop {
        // Edits too, as Hermes' own Telegram adapter takes them: a fixed typo is a new turn.
        let body = json!({"offset": offset, "timeout": POLL_SECS, "allowed_updates": ["message", "edited_message"]});
        match shared
            .api
            .call("getUpdates", &body, Duration::from_secs(POLL_SECS + 15))
        {
            Ok(updates) => {
                link.heard();
                if backoff.failures() > 0 {
                    backoff.reset();
                    link.status(ConnectionState::Open, None);
                }
                let updates = updates.as_array().cloned().unwrap_or_default();
                let mut emitted = Vec::new();
                for u in &updates {
                    let Some(id) = u.get("update_id").and_then(Value::as_i64) else {
                        continue;
                    };
                    if let Some(mut msg) = translate::inbound(u, bot) {
                        if let (Some(media), Some(file_id)) =
                            (msg.media.as_mut(), translate::file_id(u))
                        {
                            match download(shared, &file_id, &msg.id, media_dir) {
                                Ok((path, size)) => {
                                    media.path = Some(path);
                                    media.size = Some(size);
                                }
                                Err(e) => media.download_error = Some(e),
                            }
                        }
                        emitted.push(msg.id.clone());
                        link.inbound(msg);
                    } else {
                        // Only `message` updates are asked for; one that cannot be read is
                        // said (stderr is in bridge.log), by its id only, never dropped unsaid.
                        eprintln!(
                            "telegram: update {id} carries no readable message (no chat or message id); skipped"
                        );
                    }
                    offset = offset.max(id + 1);
                }
                // The next getUpdates confirms these to Telegram, which then forgets them:
                // first the supervisor must have them in its ledger.
                link.wait_recorded(emitted, RECORDED_WAIT);
                // Kept for a restart of this process; a crash before it delivers the batch
                // again, and the supervisor's duplicate window drops the repeats.
                if !updates.is_empty()
                    && let Some(f) = &file
                {
                    let _ = f.write(&offset.to_string());
                }
            }
            Err(e) => match e.failure() {
                Failure::RateLimited(Some(wait)) => std::thread::sleep(wait),
                f => {
                    if let Some(terminal) = f.terminal() {
                        return failure::end(link, terminal, &e, &DESCRIPTION);
                    }
                    if backoff.failures() == 0 {
                        link.status(ConnectionState::Connecting, Some(e.to_string()));
                    }
                    std::thread::sleep(backoff.next_wait());
                }
            },
        }
    }
}

/// `getFile`, then the file into the media dir (0600). The error text is what the
/// supervisor records as `download_error`.
fn download(
    shared: &Shared,
    file_id: &str,
    message_id: &str,
    dir: Option<&std::path::Path>,
) -> Result<(String, u64), String> {
    let dir = Some(dir.ok_or("no --media-dir given")?);
    let info = shared
        .api
        .call("getFile", &json!({"file_id": file_id}), CALL_TIMEOUT)
        .map_err(|e| format!("getFile: {e}"))?;
    let path = info
        .get("file_path")
        .and_then(Value::as_str)
        .ok_or("getFile gave no file_path")?;
    let bytes = shared
        .api
        .download(path, MAX_DOWNLOAD_BYTES)
        .map_err(|e| format!("download: {e}"))?;
    save_media(dir, "tg", message_id, path, &bytes)
}

/// A numeric chat id goes as a number; anything else (`@channelname`) as text.
fn chat_id(chat: &str) -> Value {
    chat.trim()
        .parse::<i64>()
        .map_or_else(|_| json!(chat.trim()), |n| json!(n))
}

/// The error a failed call becomes.
fn failed(e: ApiError) -> ErrorBody {
    failure::command_error(&e, "telegram_error")
}

/// A call, waiting out at most three 429s.
fn call(shared: &Shared, method: &str, body: &Value) -> Result<Value, ApiError> {
    let mut waits = 0;
    loop {
        match shared.api.call(method, body, CALL_TIMEOUT) {
            Err(ApiError::RetryAfter(s)) if waits < 3 && s <= 30 => {
                waits += 1;
                std::thread::sleep(Duration::from_secs(s));
            }
            other => {
                if other.is_ok() {
                    shared.link.heard();
                }
                return other;
            }
        }
    }
}

fn execute(shared: &Shared, command: &Command) -> CommandOutcome {
    match command {
        Command::Ping(_) => Ok(None),
        Command::React(r) => {
            let id = translate::telegram_message_id(&r.message_id)
                .ok_or_else(|| error("invalid_request", "not a Telegram message id", false))?;
            let reaction = if r.emoji.is_empty() {
                json!([])
            } else {
                json!([{"type": "emoji", "emoji": r.emoji}])
            };
            let body = json!({"chat_id": chat_id(&r.chat), "message_id": id, "reaction": reaction});
            call(shared, "setMessageReaction", &body).map_err(failed)?;
            Ok(None)
        }
        Command::Delete(d) => {
            let id = translate::telegram_message_id(&d.message_id)
                .ok_or_else(|| error("invalid_request", "not a Telegram message id", false))?;
            let body = json!({"chat_id": chat_id(&d.chat), "message_id": id});
            call(shared, "deleteMessage", &body).map_err(failed)?;
            Ok(None)
        }
        Command::SendText(t) => {
            let parts = translate::split(&t.text, translate::MAX_TEXT_UNITS);
            if parts.is_empty() {
                return Err(error("invalid_request", "the text is empty", false));
            }
            let mut ids = Vec::new();
            for (i, part) in parts.iter().enumerate() {
                let mut body = json!({"chat_id": chat_id(&t.chat), "text": part});
                if let Some(thread) = t.thread.as_deref().and_then(|t| t.parse::<i64>().ok()) {
                    body["message_thread_id"] = json!(thread);
                }
                if i == 0
                    && let Some(to) = t
                        .reply_to
                        .as_deref()
                        .and_then(translate::telegram_message_id)
                {
                    body["reply_parameters"] =
                        json!({"message_id": to, "allow_sending_without_reply": true});
                }
                let sent = call(shared, "sendMessage", &body)
                    .map_err(|e| after_parts(failed(e), ids.len(), parts.len()))?;
                let key = translate::message_key(
                    &t.chat,
                    sent.get("message_id").and_then(Value::as_i64).unwrap_or(0),
                );
                ids.push(key);
            }
            // Telegram's answer is its server's acknowledgement.
            for id in &ids {
                shared.link.server_ack(id, &t.chat);
            }
            Ok(Some(json!({"message_ids": ids})))
        }
        Command::Edit(e) => {
            let id = translate::telegram_message_id(&e.message_id)
                .ok_or_else(|| error("invalid_request", "not a Telegram message id", false))?;
            let body = json!({"chat_id": chat_id(&e.chat), "message_id": id, "text": e.text});
            call(shared, "editMessageText", &body).map_err(failed)?;
            Ok(None)
        }
        Command::Typing(t) => {
            let body = json!({"chat_id": chat_id(&t.chat), "action": "typing"});
            call(shared, "sendChatAction", &body).map_err(failed)?;
            Ok(None)
        }
        // Bots have no read receipts on Telegram: nothing to send, and said so.
        Command::Read(_) => Ok(Some(
            json!({"sent": false, "note": "Telegram has no read receipts for bots"}),
        )),
        Command::ChatInfo(c) => {
            let chat =
                call(shared, "getChat", &json!({"chat_id": chat_id(&c.chat)})).map_err(failed)?;
            let kind = chat
                .get("type")
                .and_then(Value::as_str)
                .unwrap_or("private");
            let name = chat
                .get("title")
                .or_else(|| chat.get("first_name"))
                .and_then(Value::as_str);
            Ok(Some(json!({"name": name, "is_group": kind != "private"})))
        }
        Command::SendMedia(m) => {
            use bridge_protocol::message::MediaKind;
            let (method, field) = match m.kind {
                MediaKind::Image => ("sendPhoto", "photo"),
                MediaKind::Video | MediaKind::Gif => ("sendVideo", "video"),
                MediaKind::Audio | MediaKind::Voice => ("sendAudio", "audio"),
                _ => ("sendDocument", "document"),
            };
            let size = std::fs::metadata(&m.path)
                .map_err(|e| error("media_unreadable", &format!("{}: {e}", m.path), false))?
                .len();
            if size > MAX_UPLOAD_BYTES {
                return Err(error(
                    "too_large",
                    &format!("{size} bytes; bots may upload at most {MAX_UPLOAD_BYTES}"),
                    false,
                ));
            }
            let bytes = std::fs::read(&m.path)
                .map_err(|e| error("media_unreadable", &format!("{}: {e}", m.path), false))?;
            let name = m.file_name.clone().unwrap_or_else(|| {
                std::path::Path::new(&m.path)
                    .file_name()
                    .map_or("file".into(), |n| n.to_string_lossy().into_owned())
            });
            let mut fields = vec![("chat_id", m.chat.trim().to_owned())];
            if let Some(caption) = m.caption.as_ref().filter(|c| !c.is_empty()) {
                fields.push(("caption", caption.clone()));
            }
            let sent = shared
                .api
                .upload(method, &fields, field, &name, &bytes)
                .map_err(failed)?;
            shared.link.heard();
            let id = translate::message_key(
                &m.chat,
                sent.get("message_id").and_then(Value::as_i64).unwrap_or(0),
            );
            shared.link.server_ack(&id, &m.chat);
            Ok(Some(json!({"message_ids": [id]})))
        }
        other => Err(error(
            "unsupported",
            &format!("the Telegram connector cannot do {}", other.type_name()),
            false,
        )),
    }
}
