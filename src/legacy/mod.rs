//! Drop-in mode for existing Hermes installs: the old `bridge.js` command line and loopback HTTP
//! API, served by bridgekeeper supervising node-bridge. Hermes runs
//! `node legacy-bridge.js --port P --session S --mode M` (the shim in node-bridge/), which
//! hands over to `bridgekeeper legacy` with the same arguments and environment.
//!
//! Paths follow Hermes: the session dir given (or `$HERMES_HOME/whatsapp/session` when it exists,
//! else `$HERMES_HOME/platforms/whatsapp/session`), `bridge.log` beside the session dir, the
//! pairing files and settings under `$HERMES_HOME`.

pub mod client;
pub mod http;
pub mod peer;
pub mod shape;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::json;
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

use crate::config::hermes::default_hermes_home;
use crate::config::{ConfigError, SupervisorConfig};
use crate::policy::Mode;

/// The connector's name in legacy mode (and its platform).
pub const CONNECTOR: &str = "whatsapp";

#[derive(Debug, clap::Args)]
pub struct LegacyArgs {
    /// HTTP port on 127.0.0.1 (0 picks a free one; the port is printed).
    #[arg(long, default_value_t = 3000)]
    pub port: u16,
    /// WhatsApp session directory (default: Hermes' own).
    #[arg(long)]
    pub session: Option<PathBuf>,
    /// self-chat or bot (default: WHATSAPP_MODE, else self-chat).
    #[arg(long)]
    pub mode: Option<String>,
    /// Link the account (QR in the terminal), save the credentials, exit; no HTTP server.
    #[arg(long)]
    pub pair_only: bool,
    /// With --pair-only: progress as JSON lines on stdout.
    #[arg(long)]
    pub pair_json: bool,
    /// node-bridge's entry point (default: found beside the shim or the binary).
    #[arg(long)]
    pub node_bridge: Option<PathBuf>,
    /// Hermes home (default: $HERMES_HOME, else ~/.hermes).
    #[arg(long)]
    pub hermes_home: Option<PathBuf>,
    /// Override a policy setting, e.g. `--set WHATSAPP_DM_POLICY=pairing`.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub sets: Vec<String>,
    /// Stop when stdin closes: the shim passes a pipe, so bridgekeeper never outlives it.
    #[arg(long, hide = true)]
    pub exit_with_stdin: bool,
}

/// Hermes' session directory: the legacy `whatsapp/session` wins when it exists (as in Hermes).
pub fn default_session(hermes_home: &Path) -> PathBuf {
    let legacy = hermes_home.join("whatsapp").join("session");
    if legacy.is_dir() {
        legacy
    } else {
        hermes_home
            .join("platforms")
            .join("whatsapp")
            .join("session")
    }
}

/// Where bridgekeeper keeps its state for a session directory: beside it, as the old bridge
/// kept `bridge.log` (`<session>/../bridgekeeper/`, the log in `<session>/../bridge.log`).
pub fn state_dir_for(session: &Path) -> PathBuf {
    session
        .parent()
        .unwrap_or(Path::new("/"))
        .join("bridgekeeper")
}

/// The state directory of `run` without a config (and of the drop-in mode) for a Hermes home.
pub fn hermes_state_dir(hermes_home: &Path) -> PathBuf {
    state_dir_for(&default_session(hermes_home))
}

/// node-bridge's `src/index.js`: given, from the environment, beside the shim, or beside the
/// bridgekeeper binary (a source checkout's `target/{debug,release}` included).
pub fn find_node_bridge(explicit: Option<&Path>) -> anyhow::Result<PathBuf> {
    let mut candidates: Vec<PathBuf> = Vec::new();
    candidates.extend(explicit.map(Path::to_path_buf));
    if let Some(p) = std::env::var_os("BRIDGEKEEPER_NODE_BRIDGE") {
        candidates.push(PathBuf::from(p));
    }
    if let Some(shim) = std::env::var_os("BRIDGEKEEPER_LEGACY_SCRIPT").map(PathBuf::from)
        && let Some(dir) = shim.parent()
    {
        candidates.push(dir.join("src/index.js"));
    }
    if let Some(dir) = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(Path::to_path_buf))
    {
        candidates.push(dir.join("../../node-bridge/src/index.js"));
        candidates.push(dir.join("node-bridge/src/index.js"));
        candidates.push(dir.join("../share/bridgekeeper/node-bridge/src/index.js"));
    }
    candidates
        .iter()
        .find(|c| c.is_file())
        .map(|c| c.canonicalize().unwrap_or_else(|_| c.clone()))
        .with_context(|| {
            format!(
                "cannot find node-bridge (looked at {}); pass --node-bridge PATH or set BRIDGEKEEPER_NODE_BRIDGE",
                candidates.iter().map(|c| c.display().to_string()).collect::<Vec<_>>().join(", ")
            )
        })
}

/// A supervisor config for the WhatsApp connector with Hermes' paths. `origin` names where
/// the settings came from in error messages (there is no config file).
pub fn whatsapp_config(
    hermes_home: &Path,
    session: &Path,
    node_bridge: &Path,
    origin: &str,
) -> Result<SupervisorConfig, ConfigError> {
    let base = session.parent().unwrap_or(Path::new("/"));
    let media = std::env::var_os("HERMES_IMAGE_CACHE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| base.join("media"));
    // JSON is YAML: the generated config goes through the same validation as a written one.
    let text = json!({
        "state_dir": state_dir_for(session),
        "hermes_home": hermes_home,
        "log": { "path": base.join("bridge.log") },
        "connectors": [{
            "name": CONNECTOR,
            "platform": CONNECTOR,
            "command": "node",
            "args": [node_bridge, "--media-dir", media],
            "session_dir": session,
        }],
    })
    .to_string();
    SupervisorConfig::parse(&text, Path::new(origin), base)
}

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

/// `scriptHash` for `/health`: the first 16 hex digits of sha256 of the script Hermes launched,
/// so the Hermes adapter adopts a running bridgekeeper started through the shim.
fn script_hash(node_bridge: &Path) -> String {
    let script = std::env::var_os("BRIDGEKEEPER_LEGACY_SCRIPT")
        .map(PathBuf::from)
        .or_else(|| {
            node_bridge
                .parent()?
                .parent()
                .map(|d| d.join("legacy-bridge.js"))
        });
    let bytes = script
        .and_then(|p| std::fs::read(p).ok())
        .unwrap_or_default();
    Sha256::digest(&bytes)
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect()
}

async fn stop_when_stdin_closes(shutdown: CancellationToken) {
    use tokio::io::AsyncReadExt;
    let mut stdin = tokio::io::stdin();
    let mut buf = [0u8; 256];
    while let Ok(n) = stdin.read(&mut buf).await {
        if n == 0 {
            break;
        }
    }
    shutdown.cancel();
}

pub async fn run(args: LegacyArgs) -> anyhow::Result<()> {
    let hermes_home = args.hermes_home.clone().unwrap_or_else(default_hermes_home);
    let session = args
        .session
        .clone()
        .unwrap_or_else(|| default_session(&hermes_home));
    let session = if session.is_absolute() {
        session
    } else {
        std::env::current_dir()?.join(session)
    };
    let node_bridge = find_node_bridge(args.node_bridge.as_deref())?;
    let mut config = whatsapp_config(
        &hermes_home,
        &session,
        &node_bridge,
        "the drop-in bridge (bridge.js flags)",
    )?;
    let mut cli: BTreeMap<String, String> =
        crate::config::hermes::parse_cli_sets(&args.sets).map_err(anyhow::Error::msg)?;
    if let Some(mode) = &args.mode {
        cli.insert("WHATSAPP_MODE".into(), mode.clone());
    }
    config.resolve_access(&cli)?;
    for (platform, warning) in &config.warnings {
        eprintln!("bridgekeeper: warning: {platform}: {warning}");
    }

    if args.pair_only || args.pair_json {
        let request = crate::link::LinkRequest {
            connector: CONNECTOR.into(),
            session,
            phone: None,
            png: None,
            relink: false,
            json: args.pair_json,
        };
        return crate::link::link(config, request).await;
    }

    let shutdown = CancellationToken::new();
    tokio::spawn(crate::cli::run::stop_on_signal(shutdown.clone()));
    if args.exit_with_stdin {
        tokio::spawn(stop_when_stdin_closes(shutdown.clone()));
    }
    // Loopback only: the API carries messages and sends on the account's behalf.
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", args.port))
        .await
        .with_context(|| {
            format!(
                "cannot listen on 127.0.0.1:{} (another bridge running? `bridgekeeper doctor` checks; or pass --port)",
                args.port
            )
        })?;
    let options = HttpOptions::from_env(session, script_hash(&node_bridge));
    serve(config, options, listener, shutdown).await
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
}

impl HttpOptions {
    pub fn from_env(session: PathBuf, script_hash: String) -> Self {
        Self {
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
        }
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
        client::start_in_process(config, options.inbox_capacity, shutdown.clone()).await?;
    let (client, daemon) = (started.client, started.daemon);
    let api = Arc::new(http::Api {
        client,
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
    let app = http::router(api).into_make_service_with_connect_info::<peer::PeerSocket>();
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown.clone().cancelled_owned())
        .await;
    shutdown.cancel();
    daemon.await.context("the daemon task failed")??;
    served.context("the HTTP server failed")
}
