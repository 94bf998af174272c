//! Drop-in mode for existing Hermes installs: the old `bridge.js` loopback HTTP API, served by
//! bridgekeeper supervising node-bridge (the command line is `cli::legacy`). Hermes runs
//! `node legacy-bridge.js --port P --session S --mode M` (the shim in node-bridge/), which
//! hands over to `bridgekeeper legacy` with the same arguments and environment.
//!
//! Paths follow Hermes: the session dir given (or `$HERMES_HOME/whatsapp/session` when it exists,
//! else `$HERMES_HOME/platforms/whatsapp/session`), `bridge.log` beside the session dir, the
//! pairing files and settings under `$HERMES_HOME`.

pub mod http;
pub mod peer;
pub mod shape;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio_util::sync::CancellationToken;

use crate::config::SupervisorConfig;
use crate::policy::Mode;

fn env_or<T: std::str::FromStr>(key: &str, default: T) -> T {
    std::env::var(key)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

fn env_flag(key: &str, default: bool) -> bool {
    match std::env::var(key).map(|v| v.trim().to_lowercase()) {
        Ok(v) if ["1", "true", "yes", "on"].contains(&v.as_str()) => true,
        Ok(v) if ["0", "false", "no", "off"].contains(&v.as_str()) => false,
        _ => default,
    }
}

/// Parts one `/send` may become. The Hermes adapter gives a `/send` 30 s; with the old
/// bridge's 300 ms between parts about 100 parts fit before it gives up on a half-sent
/// message. 32 (≈130,000 characters) stays well inside that.
pub const DEFAULT_MAX_PARTS: usize = 32;

/// The HTTP API's settings, from the old bridge's environment variables.
pub struct HttpOptions {
    pub session: PathBuf,
    pub script_hash: String,
    pub send_read_receipts: bool,
    pub reply_prefix: String,
    pub max_message_length: usize,
    pub max_parts: usize,
    pub chunk_delay: Duration,
    pub send_timeout: Duration,
    pub token: Option<String>,
    pub inbox_capacity: usize,
    /// The listener's limits (`listener::Limits`), the request timeout raised to cover the
    /// longest send (every part, its delays and the send timeout).
    pub limits: crate::listener::Limits,
}

impl HttpOptions {
    pub fn from_env(
        session: PathBuf,
        script_hash: String,
    ) -> Result<Self, crate::listener::LimitsError> {
        let mut options = Self {
            session,
            script_hash,
            send_read_receipts: env_flag("WHATSAPP_SEND_READ_RECEIPTS", false),
            reply_prefix: shape::reply_prefix(
                std::env::var("WHATSAPP_REPLY_PREFIX").ok().as_deref(),
            ),
            max_message_length: env_or("WHATSAPP_MAX_MESSAGE_LENGTH", 4096),
            max_parts: env_or("BRIDGEKEEPER_HTTP_MAX_PARTS", DEFAULT_MAX_PARTS).max(1),
            chunk_delay: Duration::from_millis(env_or("WHATSAPP_CHUNK_DELAY_MS", 300)),
            send_timeout: Duration::from_millis(env_or("WHATSAPP_SEND_TIMEOUT_MS", 60_000)),
            token: std::env::var("BRIDGEKEEPER_HTTP_TOKEN")
                .ok()
                .filter(|t| !t.is_empty()),
            inbox_capacity: env_or("BRIDGEKEEPER_HTTP_QUEUE", 1000),
            limits: crate::listener::Limits::from_env()?,
        };
        let longest_send = options.send_timeout
            + options.chunk_delay * options.max_parts as u32
            + Duration::from_secs(10);
        options.limits.request_timeout = options.limits.request_timeout.max(longest_send);
        Ok(options)
    }
}

/// Runs the daemon (one connector) behind the HTTP API on `listener` until `shutdown`.
pub async fn serve(
    config: SupervisorConfig,
    options: HttpOptions,
    listener: tokio::net::TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let self_chat = config.connectors[0].access.mode == Mode::SelfChat;
    let started =
        crate::daemon::start_in_process(config, options.inbox_capacity, shutdown.clone()).await?;
    let (client, daemon) = (started.client, started.daemon);
    let api = Arc::new(http::Api {
        client: client.clone(),
        session: options.session,
        script_hash: options.script_hash,
        send_read_receipts: options.send_read_receipts,
        self_chat,
        reply_prefix: options.reply_prefix,
        max_message_length: options.max_message_length,
        max_parts: options.max_parts,
        chunk_delay: options.chunk_delay,
        send_timeout: options.send_timeout,
        token: options.token,
        started: Instant::now(),
        refused: Default::default(),
        refusal_logged: Default::default(),
        stale_polls: Default::default(),
    });
    let port = listener.local_addr()?.port();
    eprintln!("bridgekeeper: WhatsApp bridge listening on http://127.0.0.1:{port}");
    let counters = client.log().board().listener(
        "drop-in",
        &listener.local_addr()?.to_string(),
        options.limits.max_connections,
    );
    crate::listener::Listener {
        router: http::router(api),
        limits: options.limits,
        counters,
        health_paths: &["/health"],
        connect_info: peer::PeerSocket::of,
    }
    .serve(listener, shutdown.clone())
    .await;
    shutdown.cancel();
    daemon.await.context("the daemon task failed")??;
    client.not_polled_at_shutdown();
    Ok(())
}
