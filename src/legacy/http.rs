//! The old bridge's HTTP API, served on loopback: the same endpoints, JSON shapes and status
//! codes as `bridge.js`, so the Hermes adapter talks to bridgekeeper without a change. Behind
//! it, every request becomes a gateway-link command (`GatewayClient`), so policy, ledger and the
//! outbound gate apply as in `run`.
//!
//! Differences, all opt-in or additive: an optional shared token (401 without it), a `/health`
//! that also reports the ledger and the connector, and an inbox that never drops silently.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{ConnectInfo, Path, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bridge_protocol::gateway::GatewayCommand;
use bridge_protocol::message::{
    ChatInfo, EditText, MediaKind, ReadReceipt, SendLocation, SendMedia, SendPoll, SendText, Typing,
};
use serde_json::{Value, json};
use subtle::ConstantTimeEq;

use super::peer::{BatchBody, PeerSocket};
use super::shape::chunk;
use crate::gateway::in_process::{CallError, GatewayClient};
use crate::listener::BodyError;
use crate::record::log::Event;

pub struct Api {
    pub client: Arc<GatewayClient>,
    pub session: PathBuf,
    /// First 16 hex digits of sha256 of the bridge script Hermes launched.
    pub script_hash: String,
    pub send_read_receipts: bool,
    /// Self-chat mode: replies carry `reply_prefix`.
    pub self_chat: bool,
    pub reply_prefix: String,
    pub max_message_length: usize,
    /// The most WhatsApp messages one `/send` may become (413 past it).
    pub max_parts: usize,
    pub chunk_delay: Duration,
    pub send_timeout: Duration,
    pub token: Option<String>,
    pub started: Instant,
    /// Requests refused as possibly cross-site (see `cross_site`).
    pub refused: AtomicU64,
    /// When a refusal was last written to bridge.log (once a minute at most).
    pub refusal_logged: Mutex<Option<Instant>>,
    /// `GET /messages` requests whose client had already gone: nothing was drained for them.
    pub stale_polls: AtomicU64,
}

const LOOPBACK_HOSTS: [&str; 4] = ["localhost", "127.0.0.1", "[::1]", "::1"];

pub fn router(api: Arc<Api>) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/messages", get(messages))
        .route("/send", post(send))
        .route("/edit", post(edit))
        .route("/send-media", post(send_media))
        .route("/send-poll", post(send_poll))
        .route("/send-location", post(send_location))
        .route("/typing", post(typing))
        .route("/read", post(read))
        .route("/chat/{id}", get(chat))
        .fallback(|| async { error(StatusCode::NOT_FOUND, "Not found") })
        .layer(middleware::from_fn_with_state(api.clone(), guard))
        .layer(middleware::map_response(json_errors))
        .with_state(api)
}

fn reply(status: StatusCode, body: Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// axum's own rejections (body too large, wrong method, bad path) answer in plain text or
/// with no body; every error the API gives is JSON like the others.
async fn json_errors(response: Response) -> Response {
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if status.is_success() || is_json {
        return response;
    }
    let text = match axum::body::to_bytes(response.into_body(), 4096).await {
        Ok(b) if !b.is_empty() => String::from_utf8_lossy(&b).trim().to_owned(),
        _ => status.canonical_reason().unwrap_or("Error").to_owned(),
    };
    reply(status, json!({ "error": text }))
}

/// An error answer in the old bridge's shape: `{"error": "..."}` with a status code.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        reply(self.status, json!({ "error": self.message }))
    }
}

type Answer = Result<Response, ApiError>;

fn error(status: StatusCode, message: &str) -> ApiError {
    ApiError {
        status,
        message: message.to_owned(),
    }
}

fn not_connected() -> ApiError {
    error(StatusCode::SERVICE_UNAVAILABLE, "Not connected to WhatsApp")
}

fn ensure_connected(api: &Api) -> Result<(), ApiError> {
    if api.client.connected() {
        Ok(())
    } else {
        Err(not_connected())
    }
}

fn ok(body: Value) -> Answer {
    Ok(reply(StatusCode::OK, body))
}

/// The host part of a Host header: `[::1]:3000` → `[::1]`, `::1` stays, `localhost:3000` → `localhost`.
fn host_name(host: &str) -> &str {
    if host.starts_with('[') {
        return host.find(']').map(|i| &host[..=i]).unwrap_or(host);
    }
    match host.matches(':').count() {
        1 => host.split(':').next().unwrap_or(host),
        _ => host,
    }
}

/// Loopback Host header (DNS-rebinding defence, as in the old bridge), then the cross-site
/// checks, then the optional token.
async fn guard(State(api): State<Arc<Api>>, request: Request, next: Next) -> Response {
    let Some(host) = request
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
    else {
        return error(StatusCode::BAD_REQUEST, "Missing Host header").into_response();
    };
    if !LOOPBACK_HOSTS.contains(&host_name(host)) {
        return error(
            StatusCode::BAD_REQUEST,
            "Invalid Host header. Bridge accepts loopback hosts only.",
        )
        .into_response();
    }
    if let Some(refusal) = cross_site(request.method(), request.headers()) {
        api.note_refusal(refusal, request.method().as_str(), request.uri().path());
        return error(refusal.status(), refusal.message()).into_response();
    }
    if let Some(token) = &api.token
        && !token_matches(request.headers(), token)
    {
        return error(StatusCode::UNAUTHORIZED, "Missing or invalid bridge token").into_response();
    }
    next.run(request).await
}

/// Why a request that a web page could have sent was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrossSite {
    /// An `Origin` that is not a loopback page (`null` included).
    ForeignOrigin,
    /// `Sec-Fetch-Site: cross-site` or `same-site`.
    FetchSite,
    /// A request that changes state without an `application/json` body: a browser sends
    /// `text/plain`, form and multipart bodies cross-site without asking first.
    NotJson,
}

impl CrossSite {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ForeignOrigin => "foreign_origin",
            Self::FetchSite => "cross_site_fetch",
            Self::NotJson => "not_json",
        }
    }

    fn status(self) -> StatusCode {
        match self {
            Self::NotJson => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            _ => StatusCode::FORBIDDEN,
        }
    }

    fn message(self) -> &'static str {
        match self {
            Self::ForeignOrigin => {
                "Requests from web pages are refused: the Origin is not a loopback page"
            }
            Self::FetchSite => "Requests from other sites are refused (Sec-Fetch-Site)",
            Self::NotJson => "Content-Type must be application/json",
        }
    }
}

/// The checks that keep a web page open in the operator's browser from acting through the
/// API. The Hermes adapter (aiohttp, `application/json`, no `Origin`) passes all of them.
pub fn cross_site(method: &axum::http::Method, headers: &HeaderMap) -> Option<CrossSite> {
    if let Some(origin) = headers.get(header::ORIGIN)
        && !origin.to_str().is_ok_and(is_loopback_origin)
    {
        return Some(CrossSite::ForeignOrigin);
    }
    let fetch_site = headers
        .get("sec-fetch-site")
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().to_ascii_lowercase());
    if matches!(fetch_site.as_deref(), Some("cross-site" | "same-site")) {
        return Some(CrossSite::FetchSite);
    }
    let changes_state = !matches!(
        *method,
        axum::http::Method::GET | axum::http::Method::HEAD | axum::http::Method::OPTIONS
    );
    if changes_state && !is_json(headers) {
        return Some(CrossSite::NotJson);
    }
    None
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|essence| essence.trim().eq_ignore_ascii_case("application/json"))
}

/// `http://localhost:3000`, `http://127.0.0.1`, `http://[::1]:8080`; not `null`, not a name
/// that merely starts with `localhost`.
fn is_loopback_origin(origin: &str) -> bool {
    let Some(rest) = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
    else {
        return false;
    };
    !rest.contains('/') && LOOPBACK_HOSTS.contains(&host_name(rest))
}

impl Api {
    fn note_refusal(&self, refusal: CrossSite, method: &str, path: &str) {
        let refused = self.refused.fetch_add(1, Ordering::Relaxed) + 1;
        let now = Instant::now();
        {
            let mut last = self
                .refusal_logged
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            if last.is_some_and(|t| now.duration_since(t) < REFUSAL_LOG_INTERVAL) {
                return;
            }
            *last = Some(now);
        }
        self.client.log().emit(
            None,
            &Event::HttpRefused {
                reason: refusal.as_str(),
                method,
                path,
                refused,
            },
        );
    }
}

/// Refusals are logged at most this often: a hostile page could otherwise fill the disk.
const REFUSAL_LOG_INTERVAL: Duration = Duration::from_secs(60);

/// `Bearer TOKEN`, the scheme in any case (RFC 9110 §11.1).
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim_start())
}

fn token_matches(headers: &HeaderMap, token: &str) -> bool {
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(bearer_token)
        .or_else(|| headers.get("x-bridge-token").and_then(|v| v.to_str().ok()));
    given
        .is_some_and(|g| g.len() == token.len() && bool::from(g.as_bytes().ct_eq(token.as_bytes())))
}

/// The largest request body the API takes (a send carries text and a file path, not a file).
pub const MAX_BODY: usize = 1024 * 1024;

/// A request's JSON object body, read through `listener::body` (about its own size in memory,
/// at the listener's pace) after the guard has passed the request's head.
pub struct JsonObject(Value);

impl<S: Send + Sync> axum::extract::FromRequest<S> for JsonObject {
    type Rejection = ApiError;

    async fn from_request(request: Request, _: &S) -> Result<Self, ApiError> {
        let bytes = crate::listener::body::read(request.into_body(), MAX_BODY)
            .await
            .map_err(|e| {
                let message = match e {
                    BodyError::TooLarge => "Request body is too large",
                    BodyError::TooSlow => "Request body arrived too slowly",
                    BodyError::Broken => "Request body ended early",
                };
                error(e.status(), message)
            })?;
        serde_json::from_slice::<Value>(&bytes)
            .ok()
            .filter(Value::is_object)
            .map(Self)
            .ok_or_else(|| {
                error(
                    StatusCode::BAD_REQUEST,
                    "Request body must be a JSON object",
                )
            })
    }
}

fn text(v: &Value, key: &str) -> Option<String> {
    v.get(key)
        .and_then(|x| match x {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        })
        .filter(|s| !s.is_empty())
}

/// Runs one command on the connector; maps its failure to the old bridge's status codes.
async fn command(api: &Api, cmd: GatewayCommand) -> Result<Option<Value>, ApiError> {
    // Our own wait covers the connector's send timeout plus the queue in front of it.
    let wait = api.send_timeout + Duration::from_secs(5);
    let result = match api.client.call(cmd, wait).await {
        Ok(r) => r,
        Err(CallError::Closed) => return Err(not_connected()),
        Err(e @ CallError::Timeout(_)) => {
            return Err(error(StatusCode::GATEWAY_TIMEOUT, &e.to_string()));
        }
        Err(e @ CallError::Encode) => {
            return Err(error(StatusCode::BAD_REQUEST, &e.to_string()));
        }
    };
    if result.ok {
        return Ok(result.data);
    }
    let (code, message) = result
        .error
        .map(|e| (e.code, e.message))
        .unwrap_or_else(|| ("failed".into(), "the connector reported a failure".into()));
    Err(match code.as_str() {
        "not_connected" | "connector_unavailable" | "shutting_down" | "connector_exited" => {
            not_connected()
        }
        "file_not_found" => error(StatusCode::NOT_FOUND, &message),
        "send_denied" => error(StatusCode::FORBIDDEN, &message),
        "queue_full" => error(StatusCode::SERVICE_UNAVAILABLE, &message),
        _ => error(StatusCode::INTERNAL_SERVER_ERROR, &message),
    })
}

fn message_ids(data: &Option<Value>) -> Vec<Value> {
    data.as_ref()
        .and_then(|d| d.get("message_ids"))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

/// The answer of the endpoints that send one message: its id.
fn sent_one(data: &Option<Value>) -> Answer {
    ok(json!({"success": true, "messageId": message_ids(data).last()}))
}

async fn health(State(api): State<Arc<Api>>) -> Answer {
    let snapshot = api.client.log().board().snapshot();
    let connector = snapshot.connectors.first();
    ok(json!({
        "status": if api.client.connected() { "connected" } else { "disconnected" },
        "queueLength": api.client.queue_len(),
        "uptime": api.started.elapsed().as_secs_f64(),
        "scriptHash": api.script_hash,
        "sendReadReceipts": api.send_read_receipts,
        "session": api.session,
        "bridgekeeper": {
            "version": env!("CARGO_PKG_VERSION"),
            "connector": connector.map(|c| json!({
                "state": c.state, "pid": c.pid, "restarts": c.restarts, "lastExit": c.last_exit,
                "liveness": c.liveness,
            })),
            "ledger": connector.map(|c| &c.ledger),
            "inbox": {
                "capacity": api.client.inbox_capacity(),
                "dropped": api.client.dropped.load(Ordering::Relaxed),
                "returned": api.client.returned.load(Ordering::Relaxed),
                "stalePolls": api.stale_polls.load(Ordering::Relaxed),
            },
            "refusedCrossSite": api.refused.load(Ordering::Relaxed),
            "sends": api.client.sends.to_json(),
        },
    }))
}

/// Drains the inbox into this connection only if its client is still there; a batch the
/// answer never carried goes back to the head of the inbox (see `peer`).
async fn messages(
    State(api): State<Arc<Api>>,
    ConnectInfo(peer): ConnectInfo<PeerSocket>,
) -> Answer {
    if peer.closed() {
        api.stale_polls.fetch_add(1, Ordering::Relaxed);
        return Err(error(
            StatusCode::BAD_REQUEST,
            "the client closed the connection; nothing was taken from the queue",
        ));
    }
    let body = BatchBody::new(api.client.drain(), api.client.clone(), peer);
    // The connection closes after this answer, so nothing reads from it any more and the
    // client's reset of an unread answer stays visible to `BatchBody` (see `peer`).
    Ok((
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CONNECTION, "close"),
        ],
        axum::body::Body::new(body),
    )
        .into_response())
}

async fn send(State(api): State<Arc<Api>>, JsonObject(v): JsonObject) -> Answer {
    let (Some(chat), Some(message)) = (text(&v, "chatId"), text(&v, "message")) else {
        return Err(error(
            StatusCode::BAD_REQUEST,
            "chatId and message are required",
        ));
    };
    ensure_connected(&api)?;
    let full = if api.self_chat {
        format!("{}{message}", api.reply_prefix)
    } else {
        message
    };
    let parts = chunk(&full, api.max_message_length);
    if parts.len() > api.max_parts {
        return Err(error(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!(
                "message too long: it would be {} WhatsApp messages of up to {} characters; the limit is {} (BRIDGEKEEPER_HTTP_MAX_PARTS)",
                parts.len(),
                api.max_message_length,
                api.max_parts
            ),
        ));
    }
    let mut reply_to = text(&v, "replyTo");
    let mut ids = Vec::new();
    for (i, part) in parts.into_iter().enumerate() {
        if i > 0 {
            tokio::time::sleep(api.chunk_delay).await;
        }
        let cmd = GatewayCommand::SendText(SendText {
            chat: chat.clone(),
            text: part,
            reply_to: reply_to.take(), // only the first chunk quotes
            thread: None,
        });
        ids.extend(message_ids(&command(&api, cmd).await?));
    }
    let last = ids.last().cloned().unwrap_or(Value::Null);
    ok(json!({"success": true, "messageId": last, "messageIds": ids}))
}

async fn edit(State(api): State<Arc<Api>>, JsonObject(v): JsonObject) -> Answer {
    let (Some(chat), Some(message_id), Some(message)) = (
        text(&v, "chatId"),
        text(&v, "messageId"),
        text(&v, "message"),
    ) else {
        return Err(error(
            StatusCode::BAD_REQUEST,
            "chatId, messageId and message are required",
        ));
    };
    ensure_connected(&api)?;
    let cmd = GatewayCommand::Edit(EditText {
        chat,
        message_id,
        text: message,
    });
    let data = command(&api, cmd).await?;
    ok(json!({"success": true, "messageIds": message_ids(&data)}))
}

fn media_kind(explicit: Option<&str>, path: &str) -> MediaKind {
    let by_name = |name: &str| match name {
        "image" => Some(MediaKind::Image),
        "video" => Some(MediaKind::Video),
        "gif" => Some(MediaKind::Gif),
        "audio" => Some(MediaKind::Audio),
        "voice" | "ptt" => Some(MediaKind::Voice),
        "sticker" => Some(MediaKind::Sticker),
        "document" => Some(MediaKind::Document),
        _ => None,
    };
    if let Some(kind) = explicit.and_then(by_name) {
        return kind;
    }
    let ext = std::path::Path::new(path)
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or_default()
        .to_lowercase();
    match ext.as_str() {
        "jpg" | "jpeg" | "png" | "webp" => MediaKind::Image,
        "mp4" | "mov" | "mkv" | "avi" | "3gp" => MediaKind::Video,
        "gif" => MediaKind::Gif,
        "mp3" | "m4a" | "wav" | "aac" | "flac" => MediaKind::Audio,
        "ogg" | "opus" => MediaKind::Voice,
        _ => MediaKind::Document,
    }
}

async fn send_media(State(api): State<Arc<Api>>, JsonObject(v): JsonObject) -> Answer {
    let (Some(chat), Some(path)) = (text(&v, "chatId"), text(&v, "filePath")) else {
        return Err(error(
            StatusCode::BAD_REQUEST,
            "chatId and filePath are required",
        ));
    };
    if !std::path::Path::new(&path).is_file() {
        return Err(error(
            StatusCode::NOT_FOUND,
            &format!("File not found: {path}"),
        ));
    }
    ensure_connected(&api)?;
    let kind = media_kind(text(&v, "mediaType").as_deref(), &path);
    let cmd = GatewayCommand::SendMedia(SendMedia {
        chat,
        path,
        kind,
        caption: text(&v, "caption"),
        file_name: text(&v, "fileName"),
        mime: None,
    });
    sent_one(&command(&api, cmd).await?)
}

async fn send_poll(State(api): State<Arc<Api>>, JsonObject(v): JsonObject) -> Answer {
    let options: Option<Vec<String>> = v.get("options").and_then(Value::as_array).map(|a| {
        a.iter()
            .filter_map(|o| o.as_str().map(str::to_owned))
            .collect()
    });
    let (Some(chat), Some(question), Some(options)) =
        (text(&v, "chatId"), text(&v, "question"), options)
    else {
        return Err(error(
            StatusCode::BAD_REQUEST,
            "chatId, question and options are required",
        ));
    };
    if !(2..=12).contains(&options.len()) {
        return Err(error(
            StatusCode::BAD_REQUEST,
            "options must have between 2 and 12 entries",
        ));
    }
    ensure_connected(&api)?;
    let selectable_count = v
        .get("selectableCount")
        .and_then(Value::as_u64)
        .unwrap_or(1) as u32;
    let cmd = GatewayCommand::SendPoll(SendPoll {
        chat,
        question,
        options,
        selectable_count,
    });
    sent_one(&command(&api, cmd).await?)
}

async fn send_location(State(api): State<Arc<Api>>, JsonObject(v): JsonObject) -> Answer {
    let coordinate = |k: &str| v.get(k).and_then(Value::as_f64).filter(|x| x.is_finite());
    let (Some(chat), Some(latitude), Some(longitude)) = (
        text(&v, "chatId"),
        coordinate("latitude"),
        coordinate("longitude"),
    ) else {
        return Err(error(
            StatusCode::BAD_REQUEST,
            "chatId, latitude and longitude are required",
        ));
    };
    ensure_connected(&api)?;
    let cmd = GatewayCommand::SendLocation(SendLocation {
        chat,
        latitude,
        longitude,
        name: text(&v, "name"),
        address: text(&v, "address"),
    });
    sent_one(&command(&api, cmd).await?)
}

async fn typing(State(api): State<Arc<Api>>, JsonObject(v): JsonObject) -> Answer {
    let Some(chat) = text(&v, "chatId") else {
        return Err(error(StatusCode::BAD_REQUEST, "chatId is required"));
    };
    ensure_connected(&api)?;
    let cmd = GatewayCommand::Typing(Typing {
        chat,
        state: Default::default(),
    });
    command(&api, cmd).await?;
    ok(json!({"success": true}))
}

async fn read(State(api): State<Arc<Api>>, JsonObject(v): JsonObject) -> Answer {
    let key = v.get("key").cloned().unwrap_or(Value::Null);
    let (Some(chat), Some(id)) = (text(&key, "remoteJid"), text(&key, "id")) else {
        return Err(error(
            StatusCode::BAD_REQUEST,
            "key.remoteJid and key.id are required",
        ));
    };
    // Read receipts are opt-in (WHATSAPP_SEND_READ_RECEIPTS); own messages need none.
    if !api.send_read_receipts || key.get("fromMe").and_then(Value::as_bool) == Some(true) {
        return ok(json!({"success": true, "marked": false}));
    }
    ensure_connected(&api)?;
    let cmd = GatewayCommand::Read(ReadReceipt {
        chat,
        message_ids: vec![id],
        participant: text(&key, "participant"),
    });
    command(&api, cmd).await?;
    ok(json!({"success": true, "marked": true}))
}

async fn chat(State(api): State<Arc<Api>>, Path(id): Path<String>) -> Answer {
    ensure_connected(&api)?;
    let data = command(&api, GatewayCommand::ChatInfo(ChatInfo { chat: id }))
        .await?
        .unwrap_or(Value::Null);
    ok(json!({
        "name": data.get("name").cloned().unwrap_or(Value::Null),
        "isGroup": data.get("is_group").cloned().unwrap_or(Value::Bool(false)),
        "participants": data.get("participants").cloned().unwrap_or(json!([])),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_names_without_ports() {
        assert_eq!(host_name("localhost:3000"), "localhost");
        assert_eq!(host_name("127.0.0.1"), "127.0.0.1");
        assert_eq!(host_name("[::1]:3000"), "[::1]");
        assert_eq!(host_name("::1"), "::1");
        assert_eq!(host_name("evil.example:80"), "evil.example");
    }

    #[test]
    fn loopback_origins_only() {
        for ok in [
            "http://localhost:3000",
            "http://127.0.0.1",
            "http://[::1]:8080",
        ] {
            assert!(is_loopback_origin(ok), "{ok}");
        }
        for bad in [
            "null",
            "https://evil.example",
            "http://localhost.evil.example",
            "http://127.0.0.1.evil.example:3000",
            "file://",
            "http://localhost:3000/x",
            "",
        ] {
            assert!(!is_loopback_origin(bad), "{bad}");
        }
    }

    #[test]
    fn json_content_types() {
        let with = |ct: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::CONTENT_TYPE, ct.parse().unwrap());
            is_json(&h)
        };
        assert!(with("application/json"));
        assert!(with("Application/JSON; charset=utf-8"));
        assert!(!with("text/plain"));
        assert!(!with("application/json-seq"));
        assert!(!with("application/x-www-form-urlencoded"));
        assert!(!is_json(&HeaderMap::new()));
    }

    #[test]
    fn media_kinds_from_type_or_extension() {
        assert_eq!(media_kind(Some("ptt"), "/a.bin"), MediaKind::Voice);
        assert_eq!(media_kind(None, "/a/b.JPG"), MediaKind::Image);
        assert_eq!(media_kind(None, "/a/b.pdf"), MediaKind::Document);
        assert_eq!(media_kind(Some("nonsense"), "/a/b.mp4"), MediaKind::Video);
    }
}
