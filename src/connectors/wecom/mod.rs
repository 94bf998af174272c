//! The WeCom AI Bot (智能机器人): `bridgekeeper connector wecom`, run by the supervisor like any
//! connector. It holds WeCom's WebSocket (`WECOM_WEBSOCKET_URL`), subscribes with the bot's id
//! and secret, answers nothing itself: callbacks become inbound messages (their encrypted media
//! fetched and decrypted into the media dir), events are reported, and commands become
//! `aibot_respond_msg` (a reply, under the callback's `req_id`; the only way into a group) or
//! `aibot_send_msg`. An application `ping` every 30 s; one unanswered by the next is a deaf
//! connection, dropped and dialled again (2, 5, 10, 30, 60 s).
//!
//! Settings: `WECOM_BOT_ID`, `WECOM_SECRET` (a password: in no output), `WECOM_WEBSOCKET_URL`
//! (default `wss://openws.work.weixin.qq.com`), `BRIDGEKEEPER_WECOM_PING_MS` (tests).
//! WeCom has no acknowledgement for a callback: a message is at least once only as far as WeCom
//! redelivers it; the supervisor's duplicate window drops a repeat by `msgid`.

pub mod doctor;
pub mod frames;
pub mod media;
pub mod translate;

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bridge_protocol::message::{Account, Command, ConnectionState, ConnectorEvent};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::Message;

use super::description::{Description, TextUnit};
use super::kit::failure::{self, Classified, Failure};
use super::kit::settings;
use super::kit::{Backoff, CommandOutcome, Link, Terminal, after_parts, error};
use super::{Builtin, Setting};
use crate::policy::AccessPolicy;
use frames::Incoming;

pub const TOKEN_FIX: &str =
    "set WECOM_BOT_ID and a valid WECOM_SECRET (the AI Bot's, in the WeCom admin console)";
pub const DEFAULT_WS_URL: &str = "wss://openws.work.weixin.qq.com";
const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);
const RECONNECT: [u64; 5] = [2, 5, 10, 30, 60];
/// Callback `req_id`s kept for replies: by message id and the latest per chat.
const REPLY_IDS: usize = 1000;

#[derive(Debug, clap::Args)]
pub struct WecomArgs {
    /// Where downloaded images and files go.
    #[arg(long)]
    pub media_dir: Option<PathBuf>,
}

/// An answer to one of our requests.
type Answer = (i64, String, Value);

/// Why `check_subscription` failed.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    /// WeCom answered and refused the bot's credentials.
    #[error("{0}")]
    Refused(String),
    /// No answer (network, timeout).
    #[error("{0}")]
    Unreachable(String),
}

impl Classified for CheckError {
    fn failure(&self) -> Failure {
        match self {
            Self::Refused(_) => Failure::CredentialsRefused,
            Self::Unreachable(_) => Failure::Unanswered,
        }
    }
}

/// Dials `url`, subscribes, and hangs up: whether WeCom accepts the bot (for `doctor`).
pub fn check_subscription(url: &str, bot_id: &str, secret: &str) -> Result<(), CheckError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CheckError::Unreachable(e.to_string()))?;
    runtime.block_on(async {
        let (mut sink, _stream) = dial(url, bot_id, secret, &crate::util::random::hex::<16>())
            .await
            .map_err(|e| match e {
                Ended::Refused(why) => CheckError::Refused(why),
                Ended::Lost(why) => CheckError::Unreachable(why),
            })?;
        let _ = sink.close().await;
        Ok(())
    })
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;
type Sink = futures_util::stream::SplitSink<Socket, Message>;
type Stream = futures_util::stream::SplitStream<Socket>;

/// Connects and subscribes: the socket's halves, or why not.
async fn dial(
    url: &str,
    bot_id: &str,
    secret: &str,
    device_id: &str,
) -> Result<(Sink, Stream), Ended> {
    let dialled =
        tokio::time::timeout(CONNECT_TIMEOUT, tokio_tungstenite::connect_async(url)).await;
    let ws = match dialled {
        Ok(Ok((ws, _))) => ws,
        Ok(Err(e)) => return Err(Ended::Lost(format!("cannot connect: {e}"))),
        Err(_) => return Err(Ended::Lost("connecting timed out".into())),
    };
    let (mut sink, mut stream) = ws.split();
    let req_id = format!("subscribe-{}", crate::util::random::hex::<8>());
    if let Err(e) = sink
        .send(Message::text(frames::subscribe(
            &req_id, bot_id, secret, device_id,
        )))
        .await
    {
        return Err(Ended::Lost(format!("cannot subscribe: {e}")));
    }
    // The subscription's answer, within the connect timeout.
    let answer = tokio::time::timeout(CONNECT_TIMEOUT, async {
        while let Some(Ok(msg)) = stream.next().await {
            if let Message::Text(text) = msg
                && let Some(Incoming::Answer {
                    req_id: r,
                    errcode,
                    errmsg,
                    ..
                }) = frames::parse(&text)
                && r == req_id
            {
                return Some((errcode, errmsg));
            }
        }
        None
    })
    .await;
    match answer {
        Ok(Some((0, _))) => Ok((sink, stream)),
        Ok(Some((code, msg))) => Err(Ended::Refused(format!(
            "WeCom refused the subscription (errcode {code}: {msg})"
        ))),
        Ok(None) => Err(Ended::Lost(
            "the connection closed while subscribing".into(),
        )),
        Err(_) => Err(Ended::Lost("no answer to the subscription".into())),
    }
}

/// What the session and the command tasks share.
struct Shared {
    link: Arc<Link>,
    bot_id: String,
    media_dir: Option<PathBuf>,
    /// The open socket's outgoing frames (none while disconnected).
    out: Mutex<Option<mpsc::Sender<String>>>,
    pending: Mutex<HashMap<String, oneshot::Sender<Answer>>>,
    replies: Mutex<ReplyIds>,
}

#[derive(Default)]
struct ReplyIds {
    by_message: HashMap<String, String>,
    /// Each group's latest callback `req_id` (a bot cannot start a message in a group).
    by_group: HashMap<String, String>,
    order: VecDeque<String>,
}

impl ReplyIds {
    fn remember(&mut self, message: &str, chat: &str, req_id: &str, is_group: bool) {
        self.by_message
            .insert(message.to_owned(), req_id.to_owned());
        if is_group {
            if self.by_group.len() >= REPLY_IDS {
                self.by_group.clear();
            }
            self.by_group.insert(chat.to_owned(), req_id.to_owned());
        }
        self.order.push_back(message.to_owned());
        while self.order.len() > REPLY_IDS {
            if let Some(old) = self.order.pop_front() {
                self.by_message.remove(&old);
            }
        }
    }
}

/// The `req_id` a reply goes under: the message replied to's, or (in a group, where a bot
/// cannot start a message) the chat's latest. `None`: a message the bot starts.
fn reply_req_id(replies: &ReplyIds, chat: &str, reply_to: Option<&str>) -> Option<String> {
    reply_to
        .and_then(|m| replies.by_message.get(m))
        .or_else(|| replies.by_group.get(chat))
        .cloned()
}

/// The AI Bot's facts: Hermes' markdown limit of 4,000; allowlist entries may be written
/// `wecom:user:zhangsan` or `group:wrk…`, as Hermes reads them.
pub const DESCRIPTION: Description = Description {
    platform: "wecom",
    label: "WeCom",
    text_limit: translate::MAX_TEXT_CHARS,
    text_unit: TextUnit::Chars,
    markdown: "markdown",
    edits: false,
    self_chat: false,
    groups: true,
    paced: true,
    direct_chat_type: "dm",
    access: AccessPolicy::default,
    allowlist_prefixes: WECOM_PREFIXES,
    ops: &["send_text", "send_media", "typing", "read", "ping"],
    doctor: Some(doctor::checks),
    relink_fix: TOKEN_FIX,
    builtin: Some(Builtin {
        name: "wecom",
        settings: &[BOT_ID, SECRET, WEBSOCKET_URL],
        enabled_by: "WECOM_BOT_ID",
        saved_login: Some((
            enabled_in_yaml,
            "platforms.wecom.extra.bot_id in config.yaml",
        )),
        token_fix: TOKEN_FIX,
    }),
};

/// The AI Bot's settings, read as Hermes' adapter reads them: the environment, else
/// `platforms.wecom.extra`.
pub const BOT_ID: Setting = Setting::plain("WECOM_BOT_ID").or_extra("bot_id");
pub const SECRET: Setting = Setting::secret("WECOM_SECRET").or_extra("secret");
pub const WEBSOCKET_URL: Setting = Setting::plain("WECOM_WEBSOCKET_URL").or_extra("websocket_url");

/// How Hermes' WeCom adapters let an allowlist entry be written: these dropped, any case.
pub const WECOM_PREFIXES: &[&str] = &["wecom:", "user:", "group:"];

pub fn run(args: WecomArgs) -> i32 {
    let link = Link::start(DESCRIPTION.platform, DESCRIPTION.ops);
    // The environment (with `.env`'s, passed by the supervisor), else Hermes' config.yaml
    // (`platforms.wecom.extra.bot_id`, `secret`, `websocket_url`).
    let extra = std::env::var_os("HERMES_HOME")
        .and_then(|h| super::kit::hermes::platform_section(std::path::Path::new(&h), "wecom").ok())
        .flatten()
        .and_then(|s| s.get("extra").cloned());
    let setting = |s: &Setting| settings::read(s, &|k| std::env::var(k).ok(), extra.as_ref());
    let bot_id = setting(&BOT_ID).unwrap_or_default();
    let secret = setting(&SECRET).unwrap_or_default();
    if bot_id.is_empty() || secret.is_empty() {
        return link.end(
            Terminal::NeedsToken,
            &format!("WECOM_BOT_ID and WECOM_SECRET are required; {TOKEN_FIX}"),
        );
    }
    let url = setting(&WEBSOCKET_URL).unwrap_or_else(|| DEFAULT_WS_URL.to_owned());
    let ping_every = Duration::from_millis(
        std::env::var("BRIDGEKEEPER_WECOM_PING_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(30_000),
    );
    let shared = Arc::new(Shared {
        link: link.clone(),
        bot_id: bot_id.clone(),
        media_dir: args.media_dir,
        out: Mutex::new(None),
        pending: Mutex::default(),
        replies: Mutex::default(),
    });
    super::kit::files::keep_media_tidy(shared.media_dir.as_deref(), "wecom");
    let Some(runtime) = super::kit::runtime("wecom") else {
        return bridge_protocol::exit::RESTART_BACKOFF;
    };
    {
        let shared = shared.clone();
        let handle = runtime.handle().clone();
        link.start_commands(move |command| handle.block_on(execute(&shared, command)));
    }
    link.start_heartbeats();
    link.emit(&ConnectorEvent::Account(Account {
        user_id: Some(bot_id.clone()),
        ..Default::default()
    }));
    runtime.block_on(connect_loop(shared, &url, &bot_id, &secret, ping_every))
}

/// Whether Hermes' config.yaml names an AI Bot (`platforms.wecom.extra.bot_id`), which starts
/// the connector as it starts Hermes' adapter.
pub fn enabled_in_yaml(hermes_home: &std::path::Path) -> bool {
    settings::yaml_says(hermes_home, "wecom", |s| {
        s.pointer("/extra/bot_id")
            .and_then(Value::as_str)
            .is_some_and(|id| !id.trim().is_empty())
    })
}

async fn connect_loop(
    shared: Arc<Shared>,
    url: &str,
    bot_id: &str,
    secret: &str,
    ping_every: Duration,
) -> i32 {
    let steps: Vec<Duration> = RECONNECT.iter().map(|s| Duration::from_secs(*s)).collect();
    let mut backoff = Backoff::steps(&steps);
    let device_id = crate::util::random::hex::<16>();
    loop {
        match session(
            &shared,
            url,
            bot_id,
            secret,
            &device_id,
            ping_every,
            &mut backoff,
        )
        .await
        {
            Ended::Refused(why) => {
                return failure::end(&shared.link, Terminal::NeedsToken, &why, &DESCRIPTION);
            }
            Ended::Lost(why) => {
                *shared.out.lock().unwrap_or_else(|p| p.into_inner()) = None;
                // Requests in flight get their error now, not at their timeout.
                shared
                    .pending
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .clear();
                let wait = backoff.next_wait();
                shared.link.status(
                    ConnectionState::Connecting,
                    Some(format!("{why}; dialling again in {} s", wait.as_secs())),
                );
                tokio::time::sleep(wait).await;
            }
        }
    }
}

enum Ended {
    /// WeCom refused the bot's credentials.
    Refused(String),
    /// The connection failed or went deaf.
    Lost(String),
}

async fn session(
    shared: &Arc<Shared>,
    url: &str,
    bot_id: &str,
    secret: &str,
    device_id: &str,
    ping_every: Duration,
    backoff: &mut Backoff,
) -> Ended {
    let (mut sink, mut stream) = match dial(url, bot_id, secret, device_id).await {
        Ok(halves) => halves,
        Err(ended) => return ended,
    };
    backoff.reset();
    shared.link.heard();
    shared.link.status(ConnectionState::Open, None);
    let (out_tx, mut out_rx) = mpsc::channel::<String>(64);
    *shared.out.lock().unwrap_or_else(|p| p.into_inner()) = Some(out_tx.clone());
    let writer = tokio::spawn(async move {
        while let Some(frame) = out_rx.recv().await {
            if sink.send(Message::text(frame)).await.is_err() {
                break;
            }
        }
        let _ = sink.close().await;
    });
    let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + ping_every, ping_every);
    let mut unanswered: Option<String> = None;
    let ended = loop {
        tokio::select! {
            msg = stream.next() => {
                let Some(Ok(msg)) = msg else { break Ended::Lost("the connection closed".into()) };
                let Message::Text(text) = msg else { continue };
                shared.link.heard();
                match frames::parse(&text) {
                    Some(Incoming::Answer { req_id, errcode, errmsg, body }) => {
                        if unanswered.as_deref() == Some(req_id.as_str()) {
                            unanswered = None;
                        } else if let Some(tx) = shared.pending.lock().unwrap_or_else(|p| p.into_inner()).remove(&req_id) {
                            let _ = tx.send((errcode, errmsg, body));
                        }
                    }
                    Some(Incoming::Callback { req_id, body }) => {
                        tokio::spawn(on_callback(shared.clone(), req_id, body));
                    }
                    Some(Incoming::Event { req_id, body }) => on_event(shared, &req_id, &body),
                    None => {}
                }
            }
            _ = ping.tick() => {
                if unanswered.is_some() {
                    break Ended::Lost(format!("deaf: a ping went unanswered for {} s", ping_every.as_secs()));
                }
                let id = format!("ping-{}", crate::util::random::hex::<8>());
                if out_tx.send(frames::frame(frames::PING, &id, json!({}))).await.is_err() {
                    break Ended::Lost("the connection closed".into());
                }
                unanswered = Some(id);
            }
        }
    };
    writer.abort();
    ended
}

/// A callback: its media fetched (off the runtime's workers), then the message reported.
async fn on_callback(shared: Arc<Shared>, req_id: String, body: Value) {
    let now = crate::util::time::unix_secs() as u64;
    let (mut message, refs) = translate::inbound(&body, &req_id, &shared.bot_id, now);
    shared
        .replies
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .remember(&message.id, &message.chat, &req_id, message.is_group);
    if let Some(first) = refs.into_iter().next() {
        let dir = shared.media_dir.clone();
        let id = message.id.clone();
        message.media =
            tokio::task::spawn_blocking(move || media::fetch(&first, dir.as_deref(), &id))
                .await
                .ok();
    }
    shared.link.inbound(message);
}

/// An event is recorded like any message (without text), never dropped unseen.
fn on_event(shared: &Shared, req_id: &str, body: &Value) {
    let kind = body
        .pointer("/event/eventtype")
        .and_then(Value::as_str)
        .unwrap_or("unknown");
    eprintln!("wecom: event {kind}");
    let (mut message, _) = translate::inbound(
        body,
        req_id,
        &shared.bot_id,
        crate::util::time::unix_secs() as u64,
    );
    message.text = None;
    shared.link.inbound(message);
}

/// Sends `body` as `cmd` (under `req_id`) and waits for its answer.
async fn request(
    shared: &Shared,
    cmd: &str,
    req_id: &str,
    body: Value,
) -> Result<Value, bridge_protocol::message::ErrorBody> {
    let out = shared
        .out
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone()
        .ok_or_else(|| {
            error(
                "not_connected",
                "the WeCom connection is not open; try again",
                false,
            )
        })?;
    let (tx, rx) = oneshot::channel();
    shared
        .pending
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(req_id.to_owned(), tx);
    if out.send(frames::frame(cmd, req_id, body)).await.is_err() {
        shared
            .pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(req_id);
        return Err(error("not_connected", "the WeCom connection closed", false));
    }
    match tokio::time::timeout(REQUEST_TIMEOUT, rx).await {
        Ok(Ok((0, _, body))) => Ok(body),
        Ok(Ok((code, msg, _))) => Err(error(
            "wecom_error",
            &format!("{cmd} failed: errcode {code}: {msg}"),
            false,
        )),
        Ok(Err(_)) => Err(error(
            "network_error",
            "the connection dropped before WeCom answered",
            true,
        )),
        Err(_) => {
            shared
                .pending
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(req_id);
            Err(error("timeout", "WeCom did not answer in 15 s", true))
        }
    }
}

/// One outgoing message: a reply under `reply` (a callback's `req_id`), or one the bot starts.
async fn post(
    shared: &Shared,
    chat: &str,
    reply: Option<&str>,
    body: Value,
) -> Result<String, bridge_protocol::message::ErrorBody> {
    let (cmd, req_id, body) = match reply {
        Some(req_id) => (frames::RESPOND, req_id.to_owned(), body),
        None => {
            let mut body = body;
            body["chatid"] = json!(chat);
            (
                frames::SEND,
                format!("send-{}", crate::util::random::hex::<8>()),
                body,
            )
        }
    };
    request(shared, cmd, &req_id, body).await?;
    let id = format!("{req_id}/{}", crate::util::random::hex::<4>());
    shared.link.server_ack(&id, chat);
    Ok(id)
}

async fn execute(shared: &Shared, command: &Command) -> CommandOutcome {
    match command {
        Command::Ping(_) => Ok(None),
        Command::Typing(_) | Command::Read(_) => Ok(Some(json!({"sent": false}))),
        Command::SendText(t) => {
            let reply = reply_req_id(
                &shared.replies.lock().unwrap_or_else(|p| p.into_inner()),
                &t.chat,
                t.reply_to.as_deref(),
            );
            let parts = super::kit::text::split(&t.text, translate::MAX_TEXT_CHARS, |_| 1);
            if parts.is_empty() {
                return Err(error("invalid_request", "the text is empty", false));
            }
            let mut ids = Vec::new();
            for part in &parts {
                let id = post(
                    shared,
                    &t.chat,
                    reply.as_deref(),
                    frames::markdown(None, part),
                )
                .await
                .map_err(|e| after_parts(e, ids.len(), parts.len()))?;
                ids.push(id);
            }
            Ok(Some(
                json!({"message_id": ids.last(), "message_ids": ids, "replied": reply.is_some()}),
            ))
        }
        Command::SendMedia(m) => {
            let reply = reply_req_id(
                &shared.replies.lock().unwrap_or_else(|p| p.into_inner()),
                &m.chat,
                None,
            );
            let kind = translate::upload_kind(m.kind);
            let path = m.path.clone();
            let data = tokio::task::spawn_blocking(move || std::fs::read(path))
                .await
                .map_err(|_| error("internal", "the read was cancelled", false))?
                .map_err(|e| {
                    error(
                        "invalid_request",
                        &format!("cannot read {}: {e}", m.path),
                        false,
                    )
                })?;
            media::check_size(kind, data.len() as u64)
                .map_err(|why| error("too_large", &why, false))?;
            let name = m
                .file_name
                .clone()
                .unwrap_or_else(|| super::kit::files::safe_name(&m.path));
            let media_id = media::upload(shared, kind, &name, &data).await?;
            let id = post(
                shared,
                &m.chat,
                reply.as_deref(),
                frames::media(None, kind, &media_id),
            )
            .await?;
            let mut ids = vec![id];
            if let Some(caption) = m.caption.as_deref().filter(|c| !c.trim().is_empty()) {
                ids.push(
                    post(
                        shared,
                        &m.chat,
                        reply.as_deref(),
                        frames::markdown(None, caption),
                    )
                    .await?,
                );
            }
            Ok(Some(json!({"message_id": ids.first(), "message_ids": ids})))
        }
        other => Err(super::kit::unsupported("wecom", other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_go_under_the_message_s_req_id_or_a_group_s_latest() {
        let mut r = ReplyIds::default();
        r.remember("m1", "zhang", "cb-1", false);
        r.remember("m2", "wr-group", "cb-2", true);
        assert_eq!(
            reply_req_id(&r, "zhang", Some("m1")).as_deref(),
            Some("cb-1")
        );
        assert_eq!(
            reply_req_id(&r, "zhang", None),
            None,
            "a DM without a reply starts a message"
        );
        assert_eq!(
            reply_req_id(&r, "wr-group", None).as_deref(),
            Some("cb-2"),
            "groups need a reply"
        );
        assert_eq!(reply_req_id(&r, "zhang", Some("unknown")), None);
        for i in 0..REPLY_IDS + 10 {
            r.remember(&format!("x{i}"), "zhang", "cb", false);
        }
        assert!(r.by_message.len() <= REPLY_IDS);
    }
}
