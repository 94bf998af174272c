//! The Hermes relay endpoint: an unmodified Hermes gateway (`GATEWAY_RELAY_URL`) dials
//! `GET /relay`, says `hello` per platform, and exchanges newline-terminated JSON frames
//! (`frames.rs`). Every access decision stays in the supervisor: the relay only ever sees what
//! the policy delivered, kept in a durable buffer (`buffer.rs`) until the gateway acks it.
//!
//! Data flow: daemon gateway link → `DaemonLink::pump` → `Hub::offer` (buffer, then the owning
//! session's socket); socket → `session` → `Hub` (acks, hellos) or `Requests::call` (outbound
//! ops, one `outbound_result` each).

pub mod auth;
pub mod buffer;
pub mod frames;
pub mod hub;
pub mod media;
mod session;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bridge_protocol::JsonLinesCodec;
use bridge_protocol::gateway::GatewayEvent;
use bridge_protocol::message::CommandResult;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::sync::{Semaphore, mpsc};
use tokio_util::codec::FramedRead;
use tokio_util::sync::CancellationToken;

use crate::config::RelayConfig;
use crate::config::hermes::dotenv_value;
use crate::gateway::in_process::{CallError, Requests};
use crate::listener::BodyError;
use crate::record::log::{AlertCode, Event, EventLog};
use auth::Secret;
use hub::{HelloError, Hub, Out, close};

/// Outbound ops answered within Hermes' 30 s wait, with a second to spare for the frame.
const OUTBOUND_TIMEOUT: Duration = Duration::from_secs(29);
/// Outbound ops in flight per connection; beyond it an op is answered `busy` at once.
const MAX_OUTBOUND_IN_FLIGHT: usize = 64;
/// How often uploads past their hour are removed.
const MEDIA_SWEEP_EVERY: Duration = Duration::from_secs(60);

/// How often the secret sources are read again (a removed secret closes its sockets, 4401).
const SECRET_RECHECK: Duration = Duration::from_secs(5);
const INSECURE_WARNING_EVERY: Duration = Duration::from_secs(60);
const REFUSAL_LOG_EVERY: Duration = Duration::from_secs(60);
/// How long a closing socket's last frames may take before the socket is dropped.
const SOCKET_CLOSE_GRACE: Duration = Duration::from_secs(2);

/// Where the shared secret comes from, read again every few seconds.
#[derive(Debug, Clone)]
pub struct SecretSources {
    pub env: Option<Secret>,
    pub dotenv: PathBuf,
    pub file: Option<PathBuf>,
    /// `GATEWAY_RELAY_ID`, when set: a token must name this gateway.
    pub gateway_id: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("{0}: readable by others (mode {1:o}); chmod 600 it")]
    Permissions(PathBuf, u32),
    #[error("{0}: {1}")]
    Read(PathBuf, std::io::Error),
    #[error(
        "the relay has no secret: set GATEWAY_RELAY_SECRET (environment or $HERMES_HOME/.env) or relay.secret_file, or relay.insecure_no_auth: true on a loopback address"
    )]
    None,
}

impl SecretSources {
    pub fn from_env(hermes_home: &Path, file: Option<PathBuf>) -> Self {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
        Self {
            env: var("GATEWAY_RELAY_SECRET").and_then(Secret::new),
            dotenv: hermes_home.join(".env"),
            file,
            gateway_id: var("GATEWAY_RELAY_ID").or_else(|| {
                dotenv_value(&hermes_home.join(".env"), "GATEWAY_RELAY_ID")
                    .ok()
                    .flatten()
            }),
        }
    }

    /// Every secret configured now (blocking file reads: call off the async workers).
    pub fn load(&self) -> Result<Vec<Secret>, SecretError> {
        let mut secrets: Vec<Secret> = self.env.iter().cloned().collect();
        if let Some(v) = dotenv_value(&self.dotenv, "GATEWAY_RELAY_SECRET")
            .map_err(|e| SecretError::Read(self.dotenv.clone(), e))?
            .and_then(Secret::new)
        {
            secrets.push(v);
        }
        if let Some(path) = &self.file {
            use std::os::unix::fs::PermissionsExt;
            let meta = std::fs::metadata(path).map_err(|e| SecretError::Read(path.clone(), e))?;
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                return Err(SecretError::Permissions(path.clone(), mode));
            }
            let text =
                std::fs::read_to_string(path).map_err(|e| SecretError::Read(path.clone(), e))?;
            secrets.extend(Secret::new(text));
        }
        secrets.dedup();
        Ok(secrets)
    }
}

struct Relay {
    hub: Hub,
    requests: Arc<Requests>,
    /// `None`: `insecure_no_auth`.
    secrets: Option<std::sync::Mutex<Vec<Secret>>>,
    /// Secrets that were in force and were removed from every source, newest last: a token
    /// they sign is a revoked gateway's, told so with 4401 after its upgrade (not HTTP 401),
    /// so that Hermes stops dialling. Kept in memory only, until bridgekeeper restarts.
    revoked: std::sync::Mutex<Vec<Secret>>,
    /// Inbound media served and uploads kept (`/relay/media`).
    media: Arc<media::MediaRoom>,
    gateway_id: Option<String>,
    max_frame_bytes: usize,
    shutdown: CancellationToken,
    refused: AtomicU64,
    refusal_logged: std::sync::Mutex<Option<Instant>>,
    policy_path: PathBuf,
    limits: crate::listener::Limits,
}

/// Everything `serve` needs besides the listener.
pub struct RelayParts {
    pub config: RelayConfig,
    pub limits: crate::listener::Limits,
    pub sources: Option<SecretSources>,
    pub state_dir: PathBuf,
    pub connectors: Vec<(String, String)>,
    pub log: EventLog,
    pub requests: Arc<Requests>,
}

/// The relay, ready to serve: `events` is the daemon's gateway output, fed to `pump`.
pub struct Running {
    relay: Arc<Relay>,
}

impl Running {
    /// Opens the buffer and loads the secret; errors stop the start.
    pub fn start(parts: RelayParts, shutdown: CancellationToken) -> anyhow::Result<Self> {
        use anyhow::Context;
        parts.config.check().map_err(anyhow::Error::msg)?;
        let secrets = match &parts.sources {
            Some(sources) => {
                let loaded = sources.load()?;
                if loaded.is_empty() {
                    return Err(SecretError::None.into());
                }
                Some(std::sync::Mutex::new(loaded))
            }
            None => None,
        };
        let (buffer, loaded) = buffer::RelayBuffer::open(&parts.state_dir, parts.config.buffer)
            .context("cannot open the relay buffer")?;
        let media = Arc::new(
            media::MediaRoom::open(&parts.state_dir).context("cannot open the relay's media")?,
        );
        let relay = Arc::new(Relay {
            hub: Hub::new(
                buffer,
                &parts.connectors,
                parts.log.clone(),
                parts.config.ack_timeout,
                (!parts.config.local_media_paths).then(|| media.clone()),
            ),
            media,
            requests: parts.requests,
            gateway_id: parts.sources.as_ref().and_then(|s| s.gateway_id.clone()),
            secrets,
            max_frame_bytes: parts.config.max_frame_bytes,
            shutdown: shutdown.clone(),
            refused: AtomicU64::new(0),
            refusal_logged: std::sync::Mutex::new(None),
            revoked: std::sync::Mutex::new(Vec::new()),
            policy_path: parts.state_dir.join(crate::config::RELAY_POLICY_FILE),
            limits: parts.limits,
        });
        if loaded.corrupt > 0 {
            let text = format!(
                "{} line(s) of the relay buffer could not be read; they are kept in {}.corrupt",
                loaded.corrupt,
                buffer::FILE_NAME
            );
            for (name, _) in parts.connectors.iter().take(1) {
                relay.hub.alert(name, AlertCode::RelayBufferCorrupt, &text);
            }
        }
        parts.log.emit(
            None,
            &Event::RelayListening {
                address: parts.config.listen.to_string(),
                auth: relay.secrets.is_some(),
                buffered: loaded.waiting,
            },
        );
        tokio::spawn(housekeeping(relay.clone(), parts.sources));
        Ok(Self { relay })
    }

    /// Serves `GET /relay` and `POST /relay/policy` until shutdown.
    pub async fn serve(&self, listener: tokio::net::TcpListener) -> std::io::Result<()> {
        let address = listener.local_addr()?.to_string();
        let limits = self.relay.limits;
        let counters =
            self.relay
                .hub
                .log()
                .board()
                .listener("relay", &address, limits.max_connections);
        let router = axum::Router::new()
            .route("/relay", get(upgrade))
            .route("/relay/policy", post(policy))
            .route("/relay/media", post(upload_media))
            .route("/relay/media/{id}", get(serve_media))
            .route("/relay/health", get(health))
            // The drop-in API's name for the same question.
            .route("/health", get(health))
            .with_state(self.relay.clone());
        crate::listener::Listener {
            router,
            limits,
            counters,
            health_paths: &["/relay/health", "/health"],
            connect_info: crate::listener::peer_address,
        }
        .serve(listener, self.relay.shutdown.clone())
        .await;
        Ok(())
    }

    /// Reads the daemon's gateway output: delivered messages to the relay, results to their
    /// callers, everything else to `stdio` (a gateway piped to us), if any.
    pub async fn pump(
        &self,
        events: impl AsyncRead + Unpin,
        mut stdio: Option<Box<dyn AsyncWrite + Send + Unpin>>,
    ) {
        let mut lines = FramedRead::new(events, JsonLinesCodec::<GatewayEvent>::new());
        while let Some(Ok(item)) = lines.next().await {
            let Ok(event) = item else { continue };
            match &event {
                GatewayEvent::Inbound { connector, message } => {
                    self.relay.hub.offer(connector, message);
                    continue;
                }
                GatewayEvent::Result(r) if self.relay.requests.resolve(r) => continue,
                _ => {}
            }
            if let Some(out) = stdio.as_mut() {
                let line = bridge_protocol::encode_line(&event, usize::MAX).unwrap_or_default();
                if out.write_all(&line).await.is_err() || out.flush().await.is_err() {
                    stdio = None;
                }
            }
        }
        self.relay.requests.close();
    }
}

/// Forwards a piped gateway's requests (stdin) to the daemon, line by line. End of input only
/// ends the forwarding: with the relay the daemon runs until SIGTERM/SIGINT.
pub async fn forward_stdin(input: impl AsyncRead + Unpin, requests: Arc<Requests>, max: usize) {
    let mut lines = tokio::io::BufReader::new(input).lines();
    while let Ok(Some(mut line)) = lines.next_line().await {
        if line.len() > max {
            continue; // the daemon would refuse it anyway; it cannot be split back into lines
        }
        line.push('\n');
        if requests.write_line(line.as_bytes()).await.is_err() {
            return;
        }
    }
}

async fn housekeeping(relay: Arc<Relay>, sources: Option<SecretSources>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut last_secret_check = Instant::now();
    let mut last_insecure_warning: Option<Instant> = None;
    let mut last_media_sweep = Instant::now();
    loop {
        tokio::select! {
            _ = relay.shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        relay.hub.tick();
        relay.hub.log().board().set_relay(relay.hub.status());
        if last_media_sweep.elapsed() >= MEDIA_SWEEP_EVERY {
            last_media_sweep = Instant::now();
            let media = relay.media.clone();
            let _ = tokio::task::spawn_blocking(move || media.sweep()).await;
        }
        if relay.secrets.is_none()
            && last_insecure_warning.is_none_or(|t| t.elapsed() >= INSECURE_WARNING_EVERY)
        {
            last_insecure_warning = Some(Instant::now());
            relay.hub.log().emit(
                None,
                &Event::Alert {
                    severity: bridge_protocol::gateway::Severity::Warning,
                    code: AlertCode::RelayInsecure,
                    message: "the relay accepts gateways without a token (relay.insecure_no_auth)",
                },
            );
        }
        if let (Some(sources), Some(current)) = (&sources, &relay.secrets)
            && last_secret_check.elapsed() >= SECRET_RECHECK
        {
            last_secret_check = Instant::now();
            let s = sources.clone();
            // A file that cannot be read keeps the secrets we have: a typo must not cut off
            // every gateway. An emptied source is a revocation.
            if let Ok(Ok(fresh)) = tokio::task::spawn_blocking(move || s.load()).await {
                let prints: Vec<[u8; 32]> = fresh.iter().map(Secret::fingerprint).collect();
                let before = std::mem::replace(
                    &mut *current.lock().unwrap_or_else(|p| p.into_inner()),
                    fresh.clone(),
                );
                relay.remember_revoked(before, &fresh);
                for tx in relay.hub.revoked(&prints) {
                    // Never waits on a gateway that stopped reading: its socket is closed
                    // when the session ends, the frame or not.
                    let _ = tx.try_send(Out::Close(close::REVOKED, "relay secret revoked".into()));
                }
            }
        }
    }
}

/// A relevance policy is a few fields; 64 KiB is far more than any.
const MAX_POLICY_BYTES: usize = 64 * 1024;

/// A refused request: its status and a JSON body naming the reason.
struct Refusal(StatusCode, &'static str, String);

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let body = json!({"error": self.1, "message": self.2});
        (self.0, axum::Json(body)).into_response()
    }
}

/// How many revoked secrets are remembered (the oldest is forgotten first).
const REVOKED_KEPT: usize = 16;

/// Whether an upgrade goes on to a session, or only to be told it is revoked.
enum Admitted {
    Gateway(String, Option<[u8; 32]>),
    Revoked,
}

impl Relay {
    /// Secrets of `before` missing from `now` are revoked; one that is back is not.
    fn remember_revoked(&self, before: Vec<Secret>, now: &[Secret]) {
        let mut revoked = self.revoked.lock().unwrap_or_else(|p| p.into_inner());
        revoked.retain(|s| !now.contains(s));
        for secret in before {
            if !now.contains(&secret) && !revoked.contains(&secret) {
                revoked.push(secret);
            }
        }
        let over = revoked.len().saturating_sub(REVOKED_KEPT);
        revoked.drain(..over);
    }

    /// `admit` for an upgrade: a valid, unexpired token signed with a revoked secret is let
    /// through the upgrade only to be closed with 4401. An expired one stays a refusal.
    fn admit_upgrade(&self, headers: &HeaderMap) -> Result<Admitted, Refusal> {
        let refusal = match self.admit(headers) {
            Ok((gateway, secret)) => return Ok(Admitted::Gateway(gateway, secret)),
            Err(refusal) => refusal,
        };
        let revoked = self
            .revoked
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let token = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        let now = crate::util::time::unix_secs() as u64;
        match auth::bearer(token).and_then(|t| auth::verify(t, &revoked, now)) {
            Ok(_) if refusal.1 == "bad_signature" => Ok(Admitted::Revoked),
            _ => Err(refusal),
        }
    }

    fn refuse(&self, status: StatusCode, reason: &'static str, message: &str) -> Refusal {
        let refused = self.refused.fetch_add(1, Ordering::Relaxed) + 1;
        let mut last = self
            .refusal_logged
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if last.is_none_or(|t| t.elapsed() >= REFUSAL_LOG_EVERY) {
            *last = Some(Instant::now());
            self.hub
                .log()
                .emit(None, &Event::RelayRefused { reason, refused });
        }
        Refusal(status, reason, message.to_owned())
    }

    /// The checks every request passes: no browser, a valid token naming the right gateway.
    fn admit(&self, headers: &HeaderMap) -> Result<(String, Option<[u8; 32]>), Refusal> {
        // A web page can open a WebSocket to loopback, and CORS does not stop it; Hermes never
        // sends an Origin.
        if headers.contains_key(header::ORIGIN) {
            return Err(self.refuse(
                StatusCode::FORBIDDEN,
                "browser_origin",
                "requests carrying an Origin header (from a web page) are refused",
            ));
        }
        let Some(secrets) = &self.secrets else {
            return Ok(("unauthenticated".into(), None));
        };
        let header = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        let secrets = secrets.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let verified = auth::bearer(header).and_then(|t| auth::verify(t, &secrets, now));
        match verified {
            Err(e) => Err(self.refuse(StatusCode::UNAUTHORIZED, e.code(), &e.to_string())),
            Ok(v)
                if self
                    .gateway_id
                    .as_ref()
                    .is_some_and(|id| *id != v.gateway_id) =>
            {
                Err(self.refuse(
                    StatusCode::UNAUTHORIZED,
                    "unknown_gateway",
                    "the token names another gateway than GATEWAY_RELAY_ID",
                ))
            }
            Ok(v) => Ok((v.gateway_id, Some(v.secret))),
        }
    }
}

/// Where this gateway dialled us (`http://host:port`, `https` behind a proxy that says so):
/// Hermes sends its token only there, so its media URLs must point there. A Host that is not
/// a plain host and port leaves the URLs relative (the gateway cannot fetch them; nothing else
/// breaks).
fn media_base(headers: &HeaderMap) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .filter(|h| {
            !h.is_empty()
                && h.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'))
        });
    let https = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|p| p.eq_ignore_ascii_case("https"));
    match host {
        Some(h) => format!("{}://{h}", if https { "https" } else { "http" }),
        None => String::new(),
    }
}

async fn upgrade(State(relay): State<Arc<Relay>>, request: Request) -> Response {
    let (mut parts, _body) = request.into_parts();
    let admitted = match relay.admit_upgrade(&parts.headers) {
        Ok(admitted) => admitted,
        Err(refusal) => return refusal.into_response(),
    };
    let ws = match WebSocketUpgrade::from_request_parts(&mut parts, &()).await {
        Ok(ws) => ws,
        Err(rejection) => return rejection.into_response(),
    };
    let max = relay.max_frame_bytes;
    let ws = ws.max_message_size(max).max_frame_size(max);
    match admitted {
        Admitted::Gateway(gateway, secret) => {
            let base = media_base(&parts.headers);
            ws.on_upgrade(move |socket| session::session(relay, socket, gateway, secret, base))
        }
        // Counted and logged as a refused token by `admit` already.
        Admitted::Revoked => ws.on_upgrade(session::close_revoked),
    }
}

use axum::extract::FromRequestParts;

/// `GET /relay/media/<id>`: an inbound file or an upload, to a gateway with the socket's token.
async fn serve_media(
    State(relay): State<Arc<Relay>>,
    axum::extract::Path(id): axum::extract::Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Err(refusal) = relay.admit(&headers) {
        return refusal.into_response();
    }
    let not_found = || {
        let body =
            json!({"error": "unknown_media", "message": "no media of this relay has that id"});
        (StatusCode::NOT_FOUND, axum::Json(body)).into_response()
    };
    let Some(path) = relay.media.path(&id) else {
        return not_found();
    };
    let too_large = tokio::fs::metadata(&path)
        .await
        .map(|m| !m.is_file() || m.len() > media::MAX_BYTES as u64);
    match too_large {
        Ok(false) => {}
        Ok(true) => return (StatusCode::PAYLOAD_TOO_LARGE, "over 25 MiB").into_response(),
        Err(_) => return not_found(),
    }
    let Ok(bytes) = tokio::fs::read(&path).await else {
        return not_found();
    };
    let name = path
        .file_name()
        .map(|n| media::safe_name(&n.to_string_lossy()))
        .unwrap_or_default();
    let disposition = format!("attachment; filename=\"{name}\"");
    (
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_owned()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        bytes,
    )
        .into_response()
}

/// `POST /relay/media`: a file a gateway will name in a `send_media` (raw body, its name in
/// `X-Media-Filename`, 25 MiB at most, refused from its head when it says more); answered
/// `{id, size}`. Kept an hour.
async fn upload_media(
    State(relay): State<Arc<Relay>>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Response {
    if let Err(refusal) = relay.admit(&headers) {
        return refusal.into_response();
    }
    let name = headers
        .get("x-media-filename")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let bytes = match crate::listener::body::read(body, media::MAX_BYTES).await {
        Ok(b) => b,
        Err(e) => {
            let body = json!({"error": "body", "message": e.to_string()});
            return (e.status(), axum::Json(body)).into_response();
        }
    };
    let size = bytes.len();
    let room = relay.media.clone();
    let kept = tokio::task::spawn_blocking(move || room.keep(&bytes, name.as_deref())).await;
    match kept {
        Ok(Ok(id)) => axum::Json(json!({"id": id, "size": size})).into_response(),
        _ => (
            StatusCode::INTERNAL_SERVER_ERROR,
            axum::Json(
                json!({"error": "media_not_kept", "message": "the upload could not be written"}),
            ),
        )
            .into_response(),
    }
}

async fn health(State(relay): State<Arc<Relay>>, headers: HeaderMap) -> Response {
    if let Err(refusal) = relay.admit(&headers) {
        return refusal.into_response();
    }
    axum::Json(relay.hub.status()).into_response()
}

/// `POST /relay/policy`: a gateway's relevance settings for one platform
/// (`{platform, requireAddress, freeResponseScopes, allowOtherBots}`, Hermes'
/// `relay_relevance_policy`). Kept per platform in `relay-policy.json`, where policy resolution
/// reads it as its lowest source (above the defaults, below every setting of ours):
/// `requireAddress` is `require_mention`, `freeResponseScopes` is `free_response_chats`;
/// `allowOtherBots` has no counterpart and is reported (answer, `config --explain`).
///
/// The head is judged before any of the body is read: a stranger's body costs nothing.
async fn policy(
    State(relay): State<Arc<Relay>>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Response {
    let (gateway, _) = match relay.admit(&headers) {
        Ok(admitted) => admitted,
        Err(refusal) => return refusal.into_response(),
    };
    let json_body = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !json_body {
        return relay
            .refuse(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "not_json",
                "the policy must be sent as application/json",
            )
            .into_response();
    }
    let body = match crate::listener::body::read(body, MAX_POLICY_BYTES).await {
        Ok(body) => body,
        Err(e) => {
            let reason = match e {
                BodyError::TooLarge => "too_large",
                BodyError::TooSlow => "too_slow",
                BodyError::Broken => "broken_body",
            };
            return relay
                .refuse(e.status(), reason, &e.to_string())
                .into_response();
        }
    };
    let body = String::from_utf8_lossy(&body);
    let row = match policy_row(&relay.hub, &body, &gateway) {
        Ok(row) => row,
        Err(message) => {
            let body = json!({"error": "invalid_policy", "message": message});
            return (StatusCode::BAD_REQUEST, axum::Json(body)).into_response();
        }
    };
    let platform = row.0.clone();
    let path = relay.policy_path.clone();
    let stored = tokio::task::spawn_blocking(move || {
        let mut all: serde_json::Map<String, Value> = std::fs::read_to_string(&path)
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default();
        all.insert(row.0, row.1);
        let data = serde_json::to_vec_pretty(&all).unwrap_or_default();
        crate::util::fs::write_atomic(&path, &data)
    })
    .await;
    match stored {
        Ok(Ok(())) => axum::Json(json!({
            "ok": true,
            "platform": platform,
            "applied": ["require_mention", "free_response_chats"],
            "not_applied": ["allowOtherBots"],
            "note": "applied below bridgekeeper's own settings: a value set in its config, the environment, .env or config.yaml wins (bridgekeeper config --explain)",
        }))
        .into_response(),
        _ => {
            let body = json!({"error": "store_failed", "message": "the policy could not be stored"});
            (StatusCode::INTERNAL_SERVER_ERROR, axum::Json(body)).into_response()
        }
    }
}

/// Checks a policy body field by field: `(platform, row to store)` or what is wrong.
fn policy_row(hub: &Hub, body: &str, gateway: &str) -> Result<(String, Value), String> {
    let Ok(Value::Object(p)) = serde_json::from_str::<Value>(body) else {
        return Err("the body is not a JSON object".into());
    };
    let platform = p
        .get("platform")
        .and_then(Value::as_str)
        .ok_or("\"platform\" is missing or not a string")?;
    if !hub.serves(platform) {
        return Err(format!(
            "bridgekeeper runs no connector for platform {platform:?}"
        ));
    }
    let mut row = serde_json::Map::new();
    for (key, bool_field) in [
        ("requireAddress", true),
        ("allowOtherBots", true),
        ("freeResponseScopes", false),
    ] {
        let Some(v) = p.get(key) else { continue };
        let ok = if bool_field {
            v.is_boolean()
        } else {
            v.as_array().is_some_and(|a| a.iter().all(Value::is_string))
        };
        if !ok {
            let want = if bool_field {
                "true or false"
            } else {
                "a list of strings"
            };
            return Err(format!("{key:?} must be {want}"));
        }
        row.insert(key.into(), v.clone());
    }
    row.insert("gateway".into(), json!(gateway));
    Ok((platform.to_owned(), Value::Object(row)))
}
