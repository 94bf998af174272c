//! The Telegram connector: `bridgekeeper connector telegram`, run by the supervisor like any
//! connector. It long-polls the Bot API (`getUpdates`, 30 s) and turns updates into inbound
//! messages, and commands into Bot API calls, over PROTOCOL.md on its stdio.
//!
//! Settings come from its environment: `TELEGRAM_BOT_TOKEN` (required), `TELEGRAM_API_ROOT`
//! (default `https://api.telegram.org`), `BRIDGEKEEPER_STATE_DIR` (where the update offset is
//! kept), `BRIDGEKEEPER_HEARTBEAT_MS`. Threads, not async: one polls, one reads commands, one
//! sends heartbeats; stdout is shared under a lock, one whole line at a time.

pub mod api;
pub mod translate;

use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bridge_protocol::exit;
use bridge_protocol::message::{
    Account, Command, CommandResult, ConnectionState, ConnectionStatus, ConnectorCommand,
    ConnectorEvent, ErrorBody, Heartbeat, Hello, Receipt, ReceiptStatus,
};
use serde_json::{Value, json};

use api::{Api, ApiError};
use translate::Bot;

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
    out: Mutex<std::io::Stdout>,
    api: Api,
    bot: Mutex<Bot>,
    started: Instant,
    /// Milliseconds since `started` of the last answer from the Bot API (any call).
    last_frame: AtomicU64,
    last_message: AtomicU64,
    open: AtomicBool,
    opened_at: AtomicU64,
    /// Ids the supervisor said are in its ledger (`recorded`), until the poller takes them.
    recorded: Mutex<std::collections::HashSet<String>>,
    recorded_changed: std::sync::Condvar,
}

impl Shared {
    fn emit(&self, event: &ConnectorEvent) {
        let mut line = serde_json::to_vec(event).expect("events serialize");
        line.push(b'\n');
        let mut out = self.out.lock().unwrap_or_else(|p| p.into_inner());
        // The supervisor gone means we are done.
        if out.write_all(&line).and_then(|()| out.flush()).is_err() {
            std::process::exit(exit::CLEAN);
        }
    }

    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    fn heard(&self) {
        self.last_frame.store(self.now_ms(), Ordering::Relaxed);
    }

    fn status(&self, state: ConnectionState, reason: Option<String>) {
        let open = state == ConnectionState::Open;
        if open && !self.open.swap(true, Ordering::Relaxed) {
            self.opened_at.store(self.now_ms(), Ordering::Relaxed);
        }
        if !open {
            self.open.store(false, Ordering::Relaxed);
        }
        self.emit(&ConnectorEvent::Status(ConnectionStatus {
            state,
            code: None,
            reason,
        }));
    }
}

/// Runs until stdin closes (exit 0), the token is refused (exit 15), or another poller or a
/// webhook takes the updates (exit 13).
pub fn run(args: TelegramArgs) -> i32 {
    let token = std::env::var("TELEGRAM_BOT_TOKEN").unwrap_or_default();
    let root = std::env::var("TELEGRAM_API_ROOT")
        .ok()
        .filter(|r| !r.trim().is_empty())
        .unwrap_or_else(|| DEFAULT_ROOT.to_owned());
    let shared = Arc::new(Shared {
        out: Mutex::new(std::io::stdout()),
        api: Api::new(&root, token.trim()),
        bot: Mutex::new(Bot::default()),
        started: Instant::now(),
        last_frame: AtomicU64::new(0),
        last_message: AtomicU64::new(0),
        open: AtomicBool::new(false),
        opened_at: AtomicU64::new(0),
        recorded: Mutex::new(std::collections::HashSet::new()),
        recorded_changed: std::sync::Condvar::new(),
    });
    shared.emit(&ConnectorEvent::Hello(Hello {
        protocol: bridge_protocol::PROTOCOL_VERSION,
        connector: "telegram".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        capabilities: [
            "send_text",
            "send_media",
            "edit",
            "typing",
            "read",
            "chat_info",
            "react",
            "ping",
            "recorded",
        ]
        .map(str::to_owned)
        .to_vec(),
    }));
    shared.status(ConnectionState::Connecting, None);
    {
        let shared = shared.clone();
        std::thread::spawn(move || commands(&shared));
    }
    {
        let shared = shared.clone();
        std::thread::spawn(move || heartbeats(&shared));
    }
    if token.trim().is_empty() {
        return needs_token(&shared, "TELEGRAM_BOT_TOKEN is not set".into());
    }
    let bot = loop {
        match shared.api.call("getMe", &json!({}), CALL_TIMEOUT) {
            Ok(me) => break me,
            Err(ApiError::BadToken(why)) => return needs_token(&shared, why),
            Err(ApiError::RetryAfter(s)) => std::thread::sleep(Duration::from_secs(s)),
            Err(e) => {
                shared.status(ConnectionState::Connecting, Some(e.to_string()));
                std::thread::sleep(Duration::from_secs(2));
            }
        }
    };
    shared.heard();
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
    shared.emit(&ConnectorEvent::Account(Account {
        user_id: Some(me.id.clone()),
        username: Some(me.username.clone()),
        name: bot
            .get("first_name")
            .and_then(Value::as_str)
            .map(str::to_owned),
        ..Default::default()
    }));
    *shared.bot.lock().unwrap_or_else(|p| p.into_inner()) = me.clone();
    shared.status(ConnectionState::Open, None);
    poll(&shared, &me, args.media_dir.as_deref())
}

fn needs_token(shared: &Shared, why: String) -> i32 {
    shared.status(
        ConnectionState::Closed,
        Some(format!(
            "needs_token: {why}; set a valid TELEGRAM_BOT_TOKEN (from @BotFather)"
        )),
    );
    exit::NEEDS_TOKEN
}

/// Where the next update's id is kept between runs.
fn offset_file() -> Option<PathBuf> {
    let dir = std::env::var_os("BRIDGEKEEPER_STATE_DIR")?;
    let name = std::env::var("BRIDGEKEEPER_CONNECTOR").unwrap_or_else(|_| "telegram".into());
    Some(PathBuf::from(dir).join(format!("{name}.telegram-offset")))
}

fn poll(shared: &Shared, bot: &Bot, media_dir: Option<&std::path::Path>) -> i32 {
    let file = offset_file();
    let mut offset: i64 = file
        .as_ref()
        .and_then(|f| std::fs::read_to_string(f).ok())
        .and_then(|t| t.trim().parse().ok())
        .unwrap_or(0);
    let mut backoff = Duration::from_secs(1);
    let mut failing = false;
    loop {
        let body = json!({"offset": offset, "timeout": POLL_SECS, "allowed_updates": ["message"]});
        match shared
            .api
            .call("getUpdates", &body, Duration::from_secs(POLL_SECS + 15))
        {
            Ok(updates) => {
                shared.heard();
                backoff = Duration::from_secs(1);
                if failing {
                    failing = false;
                    shared.status(ConnectionState::Open, None);
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
                            match download(shared, &file_id, media_dir) {
                                Ok((path, size)) => {
                                    media.path = Some(path);
                                    media.size = Some(size);
                                }
                                Err(e) => media.download_error = Some(e),
                            }
                        }
                        shared
                            .last_message
                            .store(shared.now_ms(), Ordering::Relaxed);
                        emitted.push(msg.id.clone());
                        shared.emit(&ConnectorEvent::Inbound(Box::new(msg)));
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
                wait_recorded(shared, emitted);
                // Kept for a restart of this process; a crash before it delivers the batch
                // again, and the supervisor's duplicate window drops the repeats.
                if !updates.is_empty()
                    && let Some(f) = &file
                {
                    let _ = crate::util::fs::write_atomic(f, offset.to_string().as_bytes());
                }
            }
            Err(ApiError::BadToken(why)) => return needs_token(shared, why),
            Err(ApiError::Conflict(c)) => {
                shared.status(ConnectionState::Conflict, Some(c.to_string()));
                return exit::CONFLICT;
            }
            Err(ApiError::RetryAfter(s)) => std::thread::sleep(Duration::from_secs(s)),
            Err(e) => {
                if !failing {
                    failing = true;
                    shared.status(ConnectionState::Connecting, Some(e.to_string()));
                }
                std::thread::sleep(backoff);
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

/// Waits (at most `RECORDED_WAIT`) until the supervisor said every one of `ids` is recorded.
/// Past the wait it goes on: a supervisor that does not answer must not stop the bot, and a
/// crash then is no worse than before this check.
fn wait_recorded(shared: &Shared, mut ids: Vec<String>) {
    let deadline = Instant::now() + RECORDED_WAIT;
    let mut recorded = shared.recorded.lock().unwrap_or_else(|p| p.into_inner());
    loop {
        ids.retain(|id| !recorded.remove(id));
        let left = deadline.saturating_duration_since(Instant::now());
        if ids.is_empty() || left.is_zero() {
            return;
        }
        recorded = shared
            .recorded_changed
            .wait_timeout(recorded, left)
            .unwrap_or_else(|p| p.into_inner())
            .0;
    }
}

/// `getFile`, then the file into the media dir (0600). The error text is what the
/// supervisor records as `download_error`.
fn download(
    shared: &Shared,
    file_id: &str,
    dir: Option<&std::path::Path>,
) -> Result<(String, u64), String> {
    let dir = dir.ok_or("no --media-dir given")?;
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
    crate::util::fs::ensure_private_dir(dir).map_err(|e| e.to_string())?;
    let name = path.rsplit('/').next().unwrap_or("file").replace("..", "_");
    let target = dir.join(format!("tg-{}-{name}", std::process::id()));
    crate::util::fs::write_atomic(&target, &bytes).map_err(|e| e.to_string())?;
    Ok((target.display().to_string(), bytes.len() as u64))
}

fn heartbeats(shared: &Shared) {
    let every = std::env::var("BRIDGEKEEPER_HEARTBEAT_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(15_000u64);
    loop {
        std::thread::sleep(Duration::from_millis(every));
        let now = shared.now_ms();
        let open = shared.open.load(Ordering::Relaxed);
        let ago = |at: &AtomicU64| {
            let at = at.load(Ordering::Relaxed);
            (open && at > 0).then(|| now.saturating_sub(at))
        };
        shared.emit(&ConnectorEvent::Heartbeat(Heartbeat {
            open,
            last_frame_ms_ago: ago(&shared.last_frame),
            last_message_ms_ago: ago(&shared.last_message),
            open_ms_ago: ago(&shared.opened_at),
        }));
    }
}

/// Reads commands until stdin closes, then ends the process (exit 0, the contract).
fn commands(shared: &Shared) {
    let stdin = std::io::stdin();
    for line in stdin.lock().lines() {
        let Ok(line) = line else { break };
        if line.trim().is_empty() {
            continue;
        }
        if let Some(id) = recorded_note(&line) {
            let mut recorded = shared.recorded.lock().unwrap_or_else(|p| p.into_inner());
            // Bounded: notes for messages no batch waits on (a restart) are not kept forever.
            if recorded.len() > 10_000 {
                recorded.clear();
            }
            recorded.insert(id);
            shared.recorded_changed.notify_all();
            continue;
        }
        let command: ConnectorCommand = match serde_json::from_str(&line) {
            Ok(c) => c,
            Err(e) => {
                let id = serde_json::from_str::<Value>(&line)
                    .ok()
                    .and_then(|v| v.get("id").and_then(Value::as_str).map(str::to_owned));
                if let Some(id) = id {
                    let body = error("invalid_request", &e.to_string(), false);
                    shared.emit(&ConnectorEvent::Result(CommandResult {
                        id,
                        ok: false,
                        data: None,
                        error: Some(body),
                    }));
                }
                continue;
            }
        };
        if matches!(command.command, Command::Shutdown(_)) {
            shared.emit(&ConnectorEvent::Result(CommandResult::ok(command.id, None)));
            break;
        }
        let result = match execute(shared, &command.command) {
            Ok(data) => CommandResult::ok(command.id, data),
            Err(body) => CommandResult {
                id: command.id,
                ok: false,
                data: None,
                error: Some(body),
            },
        };
        shared.emit(&ConnectorEvent::Result(result));
    }
    std::process::exit(exit::CLEAN);
}

/// `{"type":"recorded","id":…}`: the supervisor has the message in its ledger.
fn recorded_note(line: &str) -> Option<String> {
    if !line.contains("\"recorded\"") {
        return None;
    }
    let v: Value = serde_json::from_str(line).ok()?;
    (v.get("type")? == "recorded").then(|| v.get("id")?.as_str().map(str::to_owned))?
}

fn error(code: &str, message: &str, unconfirmed: bool) -> ErrorBody {
    ErrorBody {
        code: code.into(),
        message: message.into(),
        unconfirmed,
    }
}

/// A numeric chat id goes as a number; anything else (`@channelname`) as text.
fn chat_id(chat: &str) -> Value {
    chat.trim()
        .parse::<i64>()
        .map_or_else(|_| json!(chat.trim()), |n| json!(n))
}

/// The error a failed call becomes. A call with no answer may or may not have been carried
/// out: `unconfirmed`.
fn failed(e: ApiError) -> ErrorBody {
    match e {
        ApiError::Network(m) => error("network_error", &m, true),
        ApiError::RetryAfter(s) => error(
            "rate_limited",
            &format!("Telegram asked to wait {s} s"),
            false,
        ),
        other => error("telegram_error", &other.to_string(), false),
    }
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
                    shared.heard();
                }
                return other;
            }
        }
    }
}

fn execute(shared: &Shared, command: &Command) -> Result<Option<Value>, ErrorBody> {
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
                let sent = call(shared, "sendMessage", &body).map_err(|e| {
                    let mut b = failed(e);
                    if !ids.is_empty() {
                        b.message = format!(
                            "{} (after {} of {} parts were sent)",
                            b.message,
                            ids.len(),
                            parts.len()
                        );
                    }
                    b
                })?;
                let key = translate::message_key(
                    &t.chat,
                    sent.get("message_id").and_then(Value::as_i64).unwrap_or(0),
                );
                ids.push(key);
            }
            // Telegram's answer is its server's acknowledgement.
            for id in &ids {
                shared.emit(&ConnectorEvent::Receipt(Receipt {
                    message_id: id.clone(),
                    chat: t.chat.clone(),
                    status: ReceiptStatus::ServerAck,
                }));
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
            shared.heard();
            let id = translate::message_key(
                &m.chat,
                sent.get("message_id").and_then(Value::as_i64).unwrap_or(0),
            );
            shared.emit(&ConnectorEvent::Receipt(Receipt {
                message_id: id.clone(),
                chat: m.chat.clone(),
                status: ReceiptStatus::ServerAck,
            }));
            Ok(Some(json!({"message_ids": [id]})))
        }
        other => Err(error(
            "unsupported",
            &format!("the Telegram connector cannot do {}", other.type_name()),
            false,
        )),
    }
}
