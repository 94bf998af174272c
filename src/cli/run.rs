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

/// Without a config file: the WhatsApp connector (node-bridge) with Hermes' session, settings
/// and pairing files under `$HERMES_HOME`.
fn hermes_default(sets: &[String]) -> anyhow::Result<(SupervisorConfig, PathBuf)> {
    let home = crate::config::hermes::default_hermes_home();
    let session = crate::config::hermes_paths::default_session(&home);
    let node_bridge = crate::config::builtin::find_node_bridge(None)?;
    let mut config = crate::config::builtin::whatsapp_config(
        &home,
        &session,
        &node_bridge,
        "the default WhatsApp connector (run without --config)",
    )?;
    config.resolve_access(&parse_cli_sets(sets).map_err(anyhow::Error::msg)?)?;
    eprintln!(
        "bridgekeeper: no --config: running the WhatsApp connector for {} (session {})",
        home.display(),
        session.display()
    );
    Ok((config, home))
}

pub async fn run(args: RunArgs) -> anyhow::Result<()> {
    let (config, path) = match &args.config {
        Some(path) => (load(path, &args.sets)?, path.clone()),
        None => hermes_default(&args.sets)?,
    };
    for (platform, warning) in &config.warnings {
        eprintln!("bridgekeeper: warning: {platform}: {warning}");
    }
    let shutdown = CancellationToken::new();
    tokio::spawn(crate::daemon::stop_on_signal(shutdown.clone()));
    crate::daemon::run(config, tokio::io::stdin(), gateway_output(), shutdown)
        .await
        .with_context(|| format!("cannot start with {}", path.display()))
}

/// The gateway link's output. A gateway runs us with stdout on a pipe: that is written
/// without blocking, from the runtime itself. tokio's `Stdout` hands every write to a blocking
/// thread and waits for it — two thread hops per batch, a tenth of the inbound path under load.
/// Anything else (a file, a terminal, a socket) keeps `Stdout`.
fn gateway_output() -> Box<dyn tokio::io::AsyncWrite + Unpin + Send> {
    use std::os::fd::AsFd;
    let pipe = std::io::stdout()
        .as_fd()
        .try_clone_to_owned()
        // Checks that it is a FIFO and makes it non-blocking (the pipe's write end is ours).
        .and_then(tokio::net::unix::pipe::Sender::from_owned_fd);
    match pipe {
        Ok(pipe) => Box::new(pipe),
        Err(_) => Box::new(tokio::io::stdout()),
    }
}
