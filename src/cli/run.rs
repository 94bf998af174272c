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
    /// Serve the Hermes relay endpoint on ADDR (e.g. 127.0.0.1:8790): an unmodified Hermes
    /// gateway with GATEWAY_RELAY_URL dials it. Runs until SIGTERM/SIGINT.
    #[arg(long, value_name = "ADDR")]
    pub relay: Option<std::net::SocketAddr>,
    /// Without --config: run only these of the platforms Hermes' settings turn on (a gateway
    /// that enables fewer than bridgekeeper could run says which), e.g. `telegram,webhook`.
    #[arg(
        long,
        value_delimiter = ',',
        value_name = "NAMES",
        conflicts_with = "config"
    )]
    pub platforms: Vec<String>,
}

/// Loads a config file and resolves every connector's access policy.
pub fn load(path: &std::path::Path, sets: &[String]) -> anyhow::Result<SupervisorConfig> {
    let cli = parse_cli_sets(sets).map_err(anyhow::Error::msg)?;
    let mut config = SupervisorConfig::load(path)?;
    config.resolve_access(&cli)?;
    Ok(config)
}

/// Without a config file: the platforms Hermes' settings under `$HERMES_HOME` turn on (each
/// said at start, with the setting that did), with Hermes' session, settings and pairing files.
fn hermes_default(sets: &[String], only: &[String]) -> anyhow::Result<(SupervisorConfig, PathBuf)> {
    use crate::config::builtin::{WHATSAPP, enabling_settings, hermes_config, hermes_platforms};
    let home = crate::config::hermes::default_hermes_home();
    let session = crate::connectors::whatsapp::session_dir(&home);
    let mut platforms = hermes_platforms(&home, &session);
    if !only.is_empty() {
        for name in only {
            if !platforms.iter().any(|p| p.platform == name) {
                eprintln!(
                    "bridgekeeper: --platforms names {name}, which Hermes' settings in {} do not turn on: not run",
                    home.display()
                );
            }
        }
        let (kept, left_out): (Vec<_>, Vec<_>) = platforms
            .into_iter()
            .partition(|p| only.iter().any(|o| o == p.platform));
        platforms = kept;
        for p in left_out {
            eprintln!(
                "bridgekeeper: not running {} ({}): --platforms leaves it out",
                p.platform, p.because
            );
        }
    }
    if platforms.is_empty() {
        anyhow::bail!(
            "nothing to run: no platform is configured for {} (set {} in the environment or {}), or pass --config FILE",
            home.display(),
            enabling_settings(),
            home.join(".env").display()
        );
    }
    // Node and node-bridge are needed only for WhatsApp.
    let node_bridge = if platforms.iter().any(|p| p.platform == WHATSAPP) {
        Some(crate::config::builtin::find_node_bridge(None)?)
    } else {
        None
    };
    let mut config = hermes_config(
        &home,
        &session,
        node_bridge.as_deref(),
        "the default connectors (run without --config)",
        &platforms,
    )?;
    config.resolve_access(&parse_cli_sets(sets).map_err(anyhow::Error::msg)?)?;
    for p in &platforms {
        eprintln!(
            "bridgekeeper: no --config: running {} ({}) for {}",
            p.platform,
            p.because,
            home.display()
        );
    }
    Ok((config, home))
}

pub async fn run(args: RunArgs) -> anyhow::Result<()> {
    let (config, path) = match &args.config {
        Some(path) => (load(path, &args.sets)?, path.clone()),
        None => hermes_default(&args.sets, &args.platforms)?,
    };
    for (platform, warning) in &config.warnings {
        eprintln!("bridgekeeper: warning: {platform}: {warning}");
    }
    let shutdown = CancellationToken::new();
    tokio::spawn(crate::daemon::stop_on_signal(shutdown.clone()));
    let relay = match (args.relay, &config.relay) {
        (Some(addr), Some(c)) => Some(crate::config::RelayConfig {
            listen: addr,
            ..c.clone()
        }),
        (Some(addr), None) => Some(crate::config::RelayConfig::new(addr)),
        (None, c) => c.clone(),
    };
    if let Some(relay) = relay {
        return run_with_relay(config, relay, shutdown)
            .await
            .with_context(|| format!("cannot start with {}", path.display()));
    }
    let output = piped_stdout().unwrap_or_else(|| Box::new(tokio::io::stdout()));
    crate::daemon::run(config, tokio::io::stdin(), output, shutdown)
        .await
        .with_context(|| format!("cannot start with {}", path.display()))
}

/// The daemon behind the Hermes relay endpoint. A gateway piped to stdin/stdout still works
/// (delivered messages go to the relay; results and states to the pipe); end of stdin does not
/// stop the daemon, a signal does.
async fn run_with_relay(
    config: SupervisorConfig,
    relay: crate::config::RelayConfig,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    use std::sync::Arc;
    relay.check().map_err(anyhow::Error::msg)?;
    let limits = crate::listener::Limits::from_env()?;
    let sources = (!relay.insecure_no_auth).then(|| {
        crate::relay::SecretSources::from_env(&config.hermes_home, relay.secret_file.clone())
    });
    if let Some(s) = &sources
        && s.load()?.is_empty()
    {
        return Err(crate::relay::SecretError::None.into());
    }
    let listener = tokio::net::TcpListener::bind(relay.listen)
        .await
        .with_context(|| format!("cannot listen on {}", relay.listen))?;
    let address = listener.local_addr()?;
    if !address.ip().is_loopback() {
        eprintln!(
            "bridgekeeper: warning: the relay listens on {address}, reachable from other machines: put TLS in front of it (a reverse proxy); tokens and messages cross in clear text"
        );
    }
    let connectors: Vec<(String, String)> = config
        .connectors
        .iter()
        .map(|c| (c.name.clone(), c.platform.clone()))
        .collect();
    let (state_dir, max_line) = (config.state_dir.clone(), config.gateway.max_line_bytes);
    let (link_in, daemon_in) = tokio::io::duplex(256 * 1024);
    let (daemon_out, link_out) = tokio::io::duplex(256 * 1024);
    let (started_tx, started_rx) = tokio::sync::oneshot::channel();
    let daemon = tokio::spawn(crate::daemon::run_with(
        config,
        daemon_in,
        daemon_out,
        shutdown.clone(),
        Some(started_tx),
    ));
    let Ok(log) = started_rx.await else {
        return match daemon.await {
            Ok(Err(e)) => Err(e.into()),
            _ => Err(anyhow::anyhow!("the daemon stopped during startup")),
        };
    };
    let requests = Arc::new(crate::gateway::in_process::Requests::new(
        "bk-relay-",
        link_in,
    ));
    let parts = crate::relay::RelayParts {
        config: relay,
        limits,
        sources,
        state_dir,
        connectors,
        log,
        requests: requests.clone(),
    };
    let running = match crate::relay::Running::start(parts, shutdown.clone()) {
        Ok(r) => Arc::new(r),
        Err(e) => {
            shutdown.cancel();
            let _ = daemon.await;
            return Err(e);
        }
    };
    eprintln!("bridgekeeper: relay listening on http://{address}/relay");
    tokio::spawn({
        let running = running.clone();
        async move { running.pump(link_out, piped_stdout()).await }
    });
    tokio::spawn(crate::relay::forward_stdin(
        tokio::io::stdin(),
        requests,
        max_line,
    ));
    let served = running.serve(listener).await;
    shutdown.cancel();
    daemon.await.context("the daemon task failed")??;
    served.context("the relay endpoint failed")
}

/// The gateway link's output. A gateway runs us with stdout on a pipe: that is written
/// without blocking, from the runtime itself. tokio's `Stdout` hands every write to a blocking
/// thread and waits for it — two thread hops per batch, a tenth of the inbound path under load.
/// Anything else (a file, a terminal, a socket) is `None` here: the caller keeps `Stdout`.
fn piped_stdout() -> Option<Box<dyn tokio::io::AsyncWrite + Unpin + Send>> {
    use std::os::fd::AsFd;
    let pipe = std::io::stdout()
        .as_fd()
        .try_clone_to_owned()
        // Checks that it is a FIFO and makes it non-blocking (the pipe's write end is ours).
        .and_then(tokio::net::unix::pipe::Sender::from_owned_fd);
    match pipe {
        Ok(pipe) => Some(Box::new(pipe)),
        Err(_) => None,
    }
}
