//! The Weixin connector (personal WeChat through Tencent's iLink Bot API): `bridgekeeper
//! connector weixin`, run by the supervisor like any connector. It long-polls `getupdates`
//! (35 s, or what iLink suggests) with the `get_updates_buf` cursor, and sends with
//! `sendmessage`, echoing each peer's latest `context_token`.
//!
//! Settings from its environment (Hermes' names): `WEIXIN_TOKEN` and `WEIXIN_ACCOUNT_ID`, or an
//! account saved under `$HERMES_HOME/weixin/accounts/` (Hermes' format); `WEIXIN_BASE_URL`;
//! `WEIXIN_SPLIT_MULTILINE_MESSAGES`. The cursor and the context tokens are kept in the state
//! dir (0600). At least once: the cursor moves only after the supervisor recorded every
//! message of a batch.

pub mod account;
pub mod api;
pub mod cdn;
pub mod doctor;
pub mod translate;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bridge_protocol::message::{Account, Command, ConnectionState, ConnectorEvent};
use serde_json::{Value, json};

use super::description::{Description, TextUnit};
use super::kit::failure::{self, Classified};
use super::kit::files::{StateFile, save_media};
use super::kit::{Backoff, CommandOutcome, Link, Terminal, after_parts, error};
use super::{Builtin, Setting};
use crate::policy::{AccessPolicy, GroupPolicy};
use api::{Api, ApiError};

pub const DEFAULT_BASE_URL: &str = "https://ilinkai.weixin.qq.com";
/// What to do when iLink refuses the login, and when the session has expired (the connector's
/// reason and the supervisor's alert say the same).
pub const TOKEN_FIX: &str =
    "log in with `bridgekeeper weixin link`, or set WEIXIN_TOKEN and WEIXIN_ACCOUNT_ID";
pub const RELINK_FIX: &str =
    "log in again with `bridgekeeper weixin link` (or set a new WEIXIN_TOKEN)";
pub const DEFAULT_CDN_BASE_URL: &str = "https://novac2c.cdn.weixin.qq.com/c2c";
/// The largest file fetched from the CDN, and sent.
const MAX_MEDIA_BYTES: u64 = 50 << 20;
const LONG_POLL: Duration = Duration::from_secs(35);
/// Calls other than the long poll.
const CALL_TIMEOUT: Duration = Duration::from_secs(15);
/// How long a batch waits for the supervisor's `recorded` notes before the cursor moves on.
const RECORDED_WAIT: Duration = Duration::from_secs(10);
/// A send that meets iLink's rate limit is tried this many more times, waiting between.
const SEND_RETRIES: usize = 4;
/// Typing tickets from `getconfig` are reused this long.
const TYPING_TICKET_TTL: Duration = Duration::from_secs(600);
const TYPING_START: i64 = 1;

#[derive(Debug, clap::Args)]
pub struct WeixinArgs {
    /// Where downloaded media goes (0600 files in a 0700 directory).
    #[arg(long)]
    pub media_dir: Option<PathBuf>,
}

/// Everything the threads share.
struct Shared {
    link: Arc<Link>,
    api: Api,
    account_id: String,
    per_line: bool,
    cdn: String,
    media_dir: Option<PathBuf>,
    tokens: Mutex<ContextTokens>,
    /// Chats seen as group rooms (for `chat_info`).
    rooms: Mutex<HashSet<String>>,
    typing: Mutex<HashMap<String, (String, Instant)>>,
}

/// Each peer's latest context token, kept on disk so a restart can still reply.
struct ContextTokens {
    tokens: HashMap<String, String>,
    file: Option<StateFile>,
    dirty: bool,
}

impl ContextTokens {
    fn load(file: Option<StateFile>) -> Self {
        let text = file.as_ref().and_then(StateFile::read).unwrap_or_default();
        let tokens = match serde_json::from_str(&text) {
            Ok(tokens) => tokens,
            Err(_) if text.is_empty() => HashMap::new(),
            Err(e) => {
                // Said (stderr is in bridge.log), not a reason to stop: replies go without a
                // token until each peer writes again, and the next save replaces the file.
                eprintln!(
                    "weixin: the saved context tokens cannot be read ({e}); starting without them"
                );
                HashMap::new()
            }
        };
        Self {
            tokens,
            file,
            dirty: false,
        }
    }

    fn set(&mut self, peer: &str, token: &str) {
        if self.tokens.get(peer).map(String::as_str) != Some(token) {
            self.tokens.insert(peer.to_owned(), token.to_owned());
            self.dirty = true;
        }
    }

    fn forget(&mut self, peer: &str) {
        self.dirty |= self.tokens.remove(peer).is_some();
    }

    fn save(&mut self) {
        if let (true, Some(f)) = (self.dirty, &self.file)
            && let Ok(text) = serde_json::to_string(&self.tokens)
            && f.write(&text).is_ok()
        {
            self.dirty = false;
        }
    }
}

/// Weixin's facts: Hermes' 2,000-character limit, no editing on iLink. Groups are off unless
/// `WEIXIN_GROUP_POLICY` says otherwise (an iLink bot is rarely in ordinary groups), and an
/// allowed group is answered without a mention (iLink reports none).
pub const DESCRIPTION: Description = Description {
    platform: "weixin",
    label: "Weixin",
    text_limit: translate::MAX_TEXT_CHARS,
    text_unit: TextUnit::Chars,
    markdown: "plain",
    edits: false,
    self_chat: false,
    groups: true,
    paced: true,
    direct_chat_type: "dm",
    access: || AccessPolicy {
        group_policy: GroupPolicy::Disabled,
        require_mention: false,
        ..AccessPolicy::default()
    },
    allowlist_prefixes: &[],
    ops: &[
        "send_text",
        "send_media",
        "typing",
        "read",
        "chat_info",
        "ping",
        "recorded",
    ],
    doctor: Some(doctor::checks),
    relink_fix: RELINK_FIX,
    builtin: Some(Builtin {
        name: "weixin",
        settings: &[
            Setting::secret("WEIXIN_TOKEN"),
            Setting::plain("WEIXIN_ACCOUNT_ID"),
            Setting::plain("WEIXIN_BASE_URL"),
            Setting::plain("WEIXIN_CDN_BASE_URL"),
            Setting::plain("WEIXIN_SPLIT_MULTILINE_MESSAGES"),
        ],
        enabled_by: "WEIXIN_TOKEN",
        saved_login: Some((account::has_saved, "a saved weixin login")),
        token_fix: TOKEN_FIX,
    }),
};

/// Runs until stdin closes (exit 0), or the session expires (`needs_relink`, exit 12), or no
/// credentials are found (`needs_token`, exit 15).
pub fn run(args: WeixinArgs) -> i32 {
    let link = Link::start(DESCRIPTION.platform, DESCRIPTION.ops);
    let found = account::find(&|k| std::env::var(k).ok());
    let account = match found {
        Ok(a) => a,
        Err(why) => {
            // The command reader still answers (the supervisor's shutdown) until we exit.
            return link.end(Terminal::NeedsToken, &why);
        }
    };
    let shared = Arc::new(Shared {
        link: link.clone(),
        api: Api::new(&account.base_url, &account.token),
        account_id: account.account_id.clone(),
        per_line: std::env::var("WEIXIN_SPLIT_MULTILINE_MESSAGES")
            .is_ok_and(|v| super::kit::settings::is_on(&v)),
        tokens: Mutex::new(ContextTokens::load(StateFile::from_env(
            "weixin",
            "weixin-context-tokens",
        ))),
        rooms: Mutex::new(HashSet::new()),
        typing: Mutex::new(HashMap::new()),
        cdn: std::env::var("WEIXIN_CDN_BASE_URL")
            .ok()
            .filter(|c| !c.trim().is_empty())
            .unwrap_or_else(|| DEFAULT_CDN_BASE_URL.into()),
        media_dir: args.media_dir,
    });
    super::kit::files::keep_media_tidy(shared.media_dir.as_deref(), "wx");
    {
        let shared = shared.clone();
        link.start_commands(move |command| execute(&shared, command));
    }
    link.start_heartbeats();
    link.emit(&ConnectorEvent::Account(Account {
        user_id: Some(account.account_id.clone()),
        ..Default::default()
    }));
    poll(&shared)
}

fn poll(shared: &Shared) -> i32 {
    let link = &shared.link;
    let cursor_file = StateFile::from_env("weixin", "weixin-cursor");
    let mut cursor = cursor_file
        .as_ref()
        .and_then(StateFile::read)
        .unwrap_or_default();
    let mut wait = LONG_POLL;
    let mut failures = Backoff::steps(&[2, 5, 10, 30].map(Duration::from_secs));
    let mut opened = false;
    loop {
        let answer = shared.api.post(
            "ilink/bot/getupdates",
            json!({"get_updates_buf": cursor}),
            wait + Duration::from_secs(10),
        );
        let answer = match answer {
            Ok(a) => a,
            Err(e) if let Some(terminal) = e.failure().terminal() => {
                return failure::end(link, terminal, &e, &DESCRIPTION);
            }
            Err(e) => {
                // A rate limit keeps the cursor and waits; so does anything else, said once.
                if failures.failures() == 0 {
                    link.status(ConnectionState::Connecting, Some(e.to_string()));
                }
                opened = false;
                std::thread::sleep(failures.next_wait());
                continue;
            }
        };
        link.heard();
        failures.reset();
        if !opened {
            opened = true;
            link.status(ConnectionState::Open, None);
        }
        if let Some(ms) = answer.get("longpolling_timeout_ms").and_then(Value::as_u64)
            && ms > 0
        {
            wait = Duration::from_millis(ms.min(120_000));
        }
        let messages = answer
            .get("msgs")
            .and_then(Value::as_array)
            .map_or(&[][..], Vec::as_slice);
        let mut emitted = Vec::new();
        for m in messages {
            match translate::inbound(m, &shared.account_id) {
                Ok(read) => {
                    let mut msg = read.message;
                    if let (Some(media), Some(source)) = (msg.media.as_mut(), &read.media_source) {
                        let name = media.file_name.clone().unwrap_or_default();
                        match fetch(shared, source, &msg.id, &name) {
                            Ok((path, size)) => {
                                media.path = Some(path);
                                media.size = Some(size);
                                media.download_error = None;
                            }
                            Err(e) => media.download_error = Some(e),
                        }
                    }
                    if let Some(token) = read.context_token.as_ref().filter(|_| !msg.from_me) {
                        lock(&shared.tokens).set(&msg.sender, token);
                    }
                    if msg.is_group {
                        lock(&shared.rooms).insert(msg.chat.clone());
                    }
                    emitted.push(msg.id.clone());
                    link.inbound(msg);
                }
                Err(translate::Skip::Unreadable) => {
                    // Said (stderr is in bridge.log), never dropped unsaid; no content.
                    eprintln!("weixin: a message without a sender or id was skipped");
                }
            }
        }
        lock(&shared.tokens).save();
        let next = answer
            .get("get_updates_buf")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        if next.is_empty() || next == cursor {
            continue;
        }
        // The next getupdates with the new cursor lets iLink forget the batch: first the
        // supervisor must have it in its ledger. A crash before the save redelivers it, and
        // the supervisor's duplicate window drops the repeats.
        link.wait_recorded(emitted, RECORDED_WAIT);
        cursor = next;
        if let Some(f) = &cursor_file {
            let _ = f.write(&cursor);
        }
    }
}

/// A message's media from the CDN, decrypted into the media dir.
fn fetch(
    shared: &Shared,
    source: &translate::MediaSource,
    message_id: &str,
    name: &str,
) -> Result<(String, u64), String> {
    let key = source.key.clone()?;
    let bytes = cdn::download(&shared.cdn, &source.query_param, &key, MAX_MEDIA_BYTES)?;
    shared.link.heard();
    save_media(shared.media_dir.as_deref(), "wx", message_id, name, &bytes)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The error a failed call becomes.
fn failed(e: ApiError) -> bridge_protocol::message::ErrorBody {
    failure::command_error(&e, "weixin_error")
}

/// `sendmessage` of one part: a rate limit waits and tries again (order is kept: commands run
/// one at a time); an expired-session answer to a send that carried a context token is tried
/// once more without it, as Hermes does.
fn send_part(shared: &Shared, chat: &str, text: &str) -> Result<String, ApiError> {
    let mut token = lock(&shared.tokens).tokens.get(chat).cloned();
    let mut waits = Backoff::doubling(Duration::from_secs(1), Duration::from_secs(8));
    let client_id = format!("bk-weixin-{}", crate::util::random::hex::<8>());
    loop {
        let msg = translate::text_message(chat, text, &client_id, token.as_deref());
        match shared
            .api
            .post("ilink/bot/sendmessage", json!({"msg": msg}), CALL_TIMEOUT)
        {
            Ok(_) => {
                shared.link.heard();
                return Ok(client_id);
            }
            Err(ApiError::SessionExpired(_)) if token.is_some() => {
                token = None;
                lock(&shared.tokens).forget(chat);
            }
            Err(ApiError::RateLimited(why)) => {
                if waits.failures() >= SEND_RETRIES {
                    return Err(ApiError::RateLimited(why));
                }
                std::thread::sleep(waits.next_wait());
            }
            Err(e) => return Err(e),
        }
    }
}

fn execute(shared: &Shared, command: &Command) -> CommandOutcome {
    match command {
        Command::Ping(_) => Ok(None),
        Command::SendText(t) => {
            let parts = translate::parts(&t.text, shared.per_line);
            if parts.is_empty() {
                return Err(error("invalid_request", "the text is empty", false));
            }
            let mut ids = Vec::new();
            for part in &parts {
                let id = send_part(shared, &t.chat, part)
                    .map_err(|e| after_parts(failed(e), ids.len(), parts.len()))?;
                // iLink's answer is its server's acknowledgement.
                shared.link.server_ack(&id, &t.chat);
                ids.push(id);
            }
            lock(&shared.tokens).save();
            Ok(Some(json!({"message_ids": ids})))
        }
        Command::Typing(t) => {
            let ticket = typing_ticket(shared, &t.chat).map_err(failed)?;
            let body =
                json!({"ilink_user_id": t.chat, "typing_ticket": ticket, "status": TYPING_START});
            shared
                .api
                .post("ilink/bot/sendtyping", body, CALL_TIMEOUT)
                .map_err(failed)?;
            Ok(None)
        }
        Command::SendMedia(m) => {
            let bytes = read_media(&m.path)?;
            let name = m.file_name.clone().unwrap_or_else(|| {
                std::path::Path::new(&m.path)
                    .file_name()
                    .map_or("file".into(), |n| n.to_string_lossy().into_owned())
            });
            let mut ids = Vec::new();
            if let Some(caption) = m.caption.as_deref().filter(|c| !c.trim().is_empty()) {
                let id = send_part(shared, &m.chat, caption).map_err(failed)?;
                shared.link.server_ack(&id, &m.chat);
                ids.push(id);
            }
            let id = send_media(shared, &m.chat, m.kind, &name, &bytes)?;
            shared.link.server_ack(&id, &m.chat);
            ids.push(id);
            Ok(Some(json!({"message_ids": ids})))
        }
        // iLink has no read receipts for bots: nothing to send, and said so.
        Command::Read(_) => Ok(Some(
            json!({"sent": false, "note": "iLink has no read receipts for bots"}),
        )),
        Command::ChatInfo(c) => {
            let is_group = lock(&shared.rooms).contains(&c.chat);
            Ok(Some(json!({"name": c.chat, "is_group": is_group})))
        }
        other => Err(error(
            "unsupported",
            &format!("the Weixin connector cannot do {}", other.type_name()),
            false,
        )),
    }
}

fn read_media(path: &str) -> Result<Vec<u8>, bridge_protocol::message::ErrorBody> {
    let unreadable = |e: std::io::Error| error("media_unreadable", &format!("{path}: {e}"), false);
    let size = std::fs::metadata(path).map_err(unreadable)?.len();
    if size > MAX_MEDIA_BYTES {
        return Err(error(
            "too_large",
            &format!("{size} bytes; at most {MAX_MEDIA_BYTES} are sent"),
            false,
        ));
    }
    std::fs::read(path).map_err(unreadable)
}

/// A file to `chat`: a key and a file key of our own, `getuploadurl`, the ciphertext to the
/// CDN, then a `sendmessage` naming it (with the peer's context token).
fn send_media(
    shared: &Shared,
    chat: &str,
    kind: bridge_protocol::message::MediaKind,
    name: &str,
    bytes: &[u8],
) -> Result<String, bridge_protocol::message::ErrorBody> {
    use md5::Digest;
    let mut key = [0u8; 16];
    getrandom::fill(&mut key).map_err(|e| error("internal", &e.to_string(), false))?;
    let filekey = crate::util::random::hex::<16>();
    let ciphertext = cdn::encrypt(bytes, &key);
    let media_type = translate::upload_media_type(kind);
    let answer = shared
        .api
        .post(
            "ilink/bot/getuploadurl",
            json!({
                "filekey": filekey,
                "media_type": media_type,
                "to_user_id": chat,
                "rawsize": bytes.len(),
                "rawfilemd5": crate::util::hex::encode(&md5::Md5::digest(bytes)),
                "filesize": ciphertext.len(),
                "no_need_thumb": true,
                "aeskey": crate::util::hex::encode(&key),
            }),
            CALL_TIMEOUT,
        )
        .map_err(failed)?;
    let text = |k: &str| {
        answer
            .get(k)
            .and_then(Value::as_str)
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    };
    let upload_to = match (text("upload_full_url"), text("upload_param")) {
        (Some(full), _) => (full, vec![]),
        (None, Some(param)) => (
            format!("{}/upload", shared.cdn.trim_end_matches('/')),
            vec![("encrypted_query_param", param), ("filekey", filekey)],
        ),
        (None, None) => {
            return Err(error(
                "weixin_error",
                "getuploadurl gave neither upload_param nor upload_full_url",
                false,
            ));
        }
    };
    let param = cdn::upload(&upload_to.0, &upload_to.1, &ciphertext)
        .map_err(|e| error("network_error", &e, true))?;
    let item = translate::media_item(
        kind,
        &param,
        &cdn::key_for_api(&key),
        ciphertext.len(),
        bytes.len(),
        name,
    );
    let token = lock(&shared.tokens).tokens.get(chat).cloned();
    let client_id = format!("bk-weixin-{}", crate::util::random::hex::<8>());
    let mut msg = translate::text_message(chat, "", &client_id, token.as_deref());
    msg["item_list"] = json!([item]);
    shared
        .api
        .post("ilink/bot/sendmessage", json!({"msg": msg}), CALL_TIMEOUT)
        .map_err(failed)?;
    Ok(client_id)
}

/// A peer's typing ticket (`getconfig`), reused for ten minutes.
fn typing_ticket(shared: &Shared, peer: &str) -> Result<String, ApiError> {
    if let Some((ticket, at)) = lock(&shared.typing).get(peer)
        && at.elapsed() < TYPING_TICKET_TTL
    {
        return Ok(ticket.clone());
    }
    let mut body = json!({"ilink_user_id": peer});
    if let Some(token) = lock(&shared.tokens).tokens.get(peer) {
        body["context_token"] = json!(token);
    }
    let answer = shared.api.post("ilink/bot/getconfig", body, CALL_TIMEOUT)?;
    let ticket = answer
        .get("typing_ticket")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| ApiError::Refused {
            endpoint: "ilink/bot/getconfig".into(),
            detail: "no typing_ticket in the answer".into(),
        })?
        .to_owned();
    lock(&shared.typing).insert(peer.to_owned(), (ticket.clone(), Instant::now()));
    Ok(ticket)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn context_tokens_survive_a_restart_and_a_corrupt_file_starts_empty() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.weixin-context-tokens");
        let mut tokens = ContextTokens::load(Some(StateFile::at(path.clone())));
        tokens.set("alice", "ctx-1");
        tokens.save();
        let again = ContextTokens::load(Some(StateFile::at(path.clone())));
        assert_eq!(again.tokens.get("alice").map(String::as_str), Some("ctx-1"));
        std::fs::write(&path, "{not json").unwrap();
        let corrupt = ContextTokens::load(Some(StateFile::at(path)));
        assert!(corrupt.tokens.is_empty());
    }
}
