//! `bridgekeeper legacy`: the old bridge's command line (`bridge.js --port P --session S
//! --mode M [--pair-only] [--pair-json]`), serving the HTTP API of `crate::legacy`. Hermes runs
//! it through the shim `node-bridge/legacy-bridge.js`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

use crate::config::builtin::{WHATSAPP, find_node_bridge, whatsapp_config};
use crate::config::hermes_paths::default_hermes_home;
use crate::connectors::whatsapp::session_dir;
use crate::legacy::{HttpOptions, serve};

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
        .unwrap_or_else(|| session_dir(&hermes_home));
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
        let request = crate::cli::whatsapp::link::LinkRequest {
            connector: WHATSAPP.into(),
            session,
            phone: None,
            png: None,
            relink: false,
            json: args.pair_json,
        };
        return crate::cli::whatsapp::link::link(config, request).await;
    }

    let shutdown = CancellationToken::new();
    tokio::spawn(crate::daemon::stop_on_signal(shutdown.clone()));
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
    let options = HttpOptions::from_env(session, script_hash(&node_bridge))?;
    serve(config, options, listener, shutdown).await
}
