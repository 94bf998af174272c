//! `bridgekeeper run`: the daemon a gateway starts.

use std::path::PathBuf;

use anyhow::Context;
use tokio_util::sync::CancellationToken;

use crate::config::SupervisorConfig;
use crate::config::hermes::parse_cli_sets;

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Supervisor config file (YAML): state_dir, hermes_home, log, gateway, connectors.
    #[arg(long, short)]
    pub config: Option<PathBuf>,
    /// Override a policy setting, highest precedence, e.g. `--set WHATSAPP_MODE=bot`.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub sets: Vec<String>,
}

/// Loads a config file and resolves every connector's access policy.
pub fn load(path: &std::path::Path, sets: &[String]) -> anyhow::Result<SupervisorConfig> {
    let cli = parse_cli_sets(sets).map_err(anyhow::Error::msg)?;
    let mut config = SupervisorConfig::load(path)?;
    config.resolve_access(&cli)?;
    Ok(config)
}

pub async fn run(args: RunArgs) -> anyhow::Result<()> {
    let Some(path) = args.config else {
        anyhow::bail!(
            "no config file given: pass --config FILE (see examples/demo.yaml); \
             starting the WhatsApp connector from $HERMES_HOME alone is not available yet"
        );
    };
    let config = load(&path, &args.sets)?;
    for (platform, warning) in &config.warnings {
        eprintln!("bridgekeeper: warning: {platform}: {warning}");
    }
    let shutdown = CancellationToken::new();
    tokio::spawn(stop_on_signal(shutdown.clone()));
    crate::daemon::run(config, tokio::io::stdin(), tokio::io::stdout(), shutdown)
        .await
        .with_context(|| format!("cannot start with {}", path.display()))
}

pub async fn stop_on_signal(shutdown: CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::warn!("cannot install signal handlers; stop bridgekeeper by closing its stdin");
        return;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
        _ = shutdown.cancelled() => {}
    }
    shutdown.cancel();
}
