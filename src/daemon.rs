//! The daemon as a library function: `run(config, gateway_in, gateway_out, shutdown)`. The
//! binary passes stdin/stdout; tests pass in-memory pipes.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bridge_protocol::gateway::GatewayEvent;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::SupervisorConfig;
use crate::gateway;
use crate::pairing::PairingStore;
use crate::policy::send::OutboundGate;
use crate::record::board::StatusBoard;
use crate::record::log::{Event, EventLog};
use crate::supervisor::connector::inbound::InboundGate;
use crate::supervisor::connector::{ConnectorTask, TaskParts};
use crate::supervisor::{AlertRouter, ConnectorHandle, Peers};
use crate::util::fs::{PathError, ensure_private_dir};
use crate::util::lock::{LockError, StateLock};

const LOG_FLUSH_INTERVAL: Duration = Duration::from_millis(200);
pub const STATUS_FILE: &str = "status.json";

/// Errors that stop the daemon before it serves anything.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    StateDir(PathError),
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error("connector {connector}: {source}")]
    SessionDir {
        connector: String,
        #[source]
        source: PathError,
    },
    #[error("connector {connector}: {source}")]
    SessionLock {
        connector: String,
        #[source]
        source: LockError,
    },
    #[error(transparent)]
    Log(PathError),
    #[error(transparent)]
    Metrics(#[from] crate::service::metrics::MetricsError),
}

pub async fn run<R, W>(
    config: SupervisorConfig,
    gateway_in: R,
    gateway_out: W,
    shutdown: CancellationToken,
) -> Result<(), StartError>
where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    run_with(config, gateway_in, gateway_out, shutdown, None).await
}

/// `run`, also handing the event log (and through it the ledger) to an in-process gateway —
/// the legacy HTTP adapter — once the daemon has started.
pub async fn run_with<R, W>(
    config: SupervisorConfig,
    gateway_in: R,
    gateway_out: W,
    shutdown: CancellationToken,
    started: Option<tokio::sync::oneshot::Sender<EventLog>>,
) -> Result<(), StartError>
where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    ensure_private_dir(&config.state_dir).map_err(StartError::StateDir)?;
    let _lock = StateLock::acquire(&config.state_dir)?;
    let _session_locks = lock_sessions(&config)?;
    let names: Vec<String> = config.connectors.iter().map(|c| c.name.clone()).collect();
    let name_refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let board = StatusBoard::new(config.state_dir.join(STATUS_FILE), &name_refs);
    let log = EventLog::open(&config.log, board.clone()).map_err(StartError::Log)?;
    log.emit(
        None,
        &Event::SupervisorStarted {
            pid: std::process::id(),
            version: env!("CARGO_PKG_VERSION"),
            connectors: name_refs.clone(),
            debug: log.debug(),
        },
    );

    for (platform, message) in &config.warnings {
        log.emit(None, &Event::ConfigWarning { platform, message });
    }
    // `status` has something to show from the first moment, even if we are killed at once.
    let first = board.clone();
    if let Ok(Err(e)) = tokio::task::spawn_blocking(move || first.write_now()).await {
        tracing::warn!(error = %e, "cannot write status file");
    }
    let metrics_stop = CancellationToken::new();
    let metrics = crate::service::metrics::start(
        config.metrics,
        &config.hermes_home,
        &board,
        metrics_stop.clone(),
    )
    .await?;
    if let Some(started) = started {
        let _ = started.send(log.clone());
    }

    let (gateway_tx, gateway_rx) = mpsc::channel(config.gateway.buffer);
    let ready = GatewayEvent::Ready {
        protocol: bridge_protocol::PROTOCOL_VERSION,
        version: env!("CARGO_PKG_VERSION").to_owned(),
        connectors: names.clone(),
    };
    let _ = gateway_tx.send(ready).await;
    let (link_ready_tx, link_ready) = tokio::sync::oneshot::channel();
    let writer = tokio::spawn(gateway::link::write_events(
        gateway_out,
        gateway_rx,
        config.gateway.max_line_bytes,
        log.clone(),
        shutdown.clone(),
        Some(link_ready_tx),
    ));

    // Handles first: the alert router needs every connector's handle before any task runs.
    let mut handles = HashMap::new();
    let mut receivers = Vec::new();
    for (index, cfg) in config.connectors.iter().enumerate() {
        let (control_tx, control_rx) = mpsc::channel(cfg.queue_capacity);
        handles.insert(
            cfg.name.clone(),
            ConnectorHandle::new(&cfg.name, index, control_tx),
        );
        receivers.push(control_rx);
    }
    let alerts = Arc::new(AlertRouter::new(
        config
            .operator_targets
            .iter()
            .filter_map(|t| Some((handles.get(&t.connector)?.clone(), t.chat.clone())))
            .collect(),
    ));
    let peers =
        Arc::new(Peers::new(config.connectors.iter().filter_map(|c| {
            Some((c.platform.clone(), handles.get(&c.name)?.clone()))
        })));
    let outbound_gate = Arc::new(OutboundGate::new(config.send_policy.clone()));
    let pairing = PairingStore::for_hermes_home(&config.hermes_home);

    let connectors = TaskTracker::new();
    for ((index, cfg), control) in config.connectors.iter().enumerate().zip(receivers) {
        let mut inbound_gate = InboundGate::new(
            &cfg.platform,
            cfg.access.clone(),
            pairing.clone(),
            outbound_gate.clone(),
            &config.state_dir.join(format!("{}.seen", cfg.name)),
            config.gateway.group_context,
        );
        if let Some(source) = &cfg.policy_source {
            inbound_gate.watch_policy(source.clone());
        }
        let task = ConnectorTask::new(TaskParts {
            index,
            cfg: Arc::new(cfg.clone()),
            state_dir: config.state_dir.clone(),
            log: log.clone(),
            inbound_gate,
            outbound_gate: outbound_gate.clone(),
            alerts: alerts.clone(),
            peers: peers.clone(),
            gateway: gateway_tx.clone(),
            control,
            shutdown: shutdown.child_token(),
        });
        connectors.spawn(task.run());
    }
    connectors.close();
    let notifier = tokio::spawn(crate::service::notify::tell_systemd(
        board.clone(),
        handles.values().cloned().collect(),
        link_ready,
        shutdown.clone(),
    ));

    let housekeeping = CancellationToken::new();
    let status_writer = tokio::spawn(board.clone().write_loop(housekeeping.clone()));
    let flusher = tokio::spawn(flush_log(log.clone(), housekeeping.clone()));
    let reader = gateway::link::Reader {
        handles,
        pairing,
        events: gateway_tx.clone(),
        log: log.clone(),
        max_line_bytes: config.gateway.max_line_bytes,
    };
    let reader = tokio::spawn(reader.run(gateway_in, shutdown.clone()));
    drop(gateway_tx);

    shutdown.cancelled().await;
    log.emit(
        None,
        &Event::SupervisorStopping {
            reason: "shutdown requested",
        },
    );
    connectors.wait().await;
    // The reader may be parked on a blocking stdin read; it holds the last event sender.
    reader.abort();
    let _ = reader.await;
    let _ = writer.await;

    housekeeping.cancel();
    metrics_stop.cancel();
    if let Some(metrics) = metrics {
        let _ = metrics.await;
    }
    let _ = notifier.await;
    let _ = status_writer.await;
    let _ = flusher.await;
    board.mark_stopped();
    if let Err(e) = board.write_now() {
        tracing::warn!(error = %e, "cannot write final status");
    }
    log.emit(None, &Event::SupervisorStopped);
    log.flush();
    Ok(())
}

/// Every connector's session directory: private, and ours alone while we run.
fn lock_sessions(config: &SupervisorConfig) -> Result<Vec<StateLock>, StartError> {
    let mut locks = Vec::new();
    for c in &config.connectors {
        let Some(dir) = &c.session_dir else { continue };
        ensure_private_dir(dir).map_err(|source| StartError::SessionDir {
            connector: c.name.clone(),
            source,
        })?;
        locks.push(
            StateLock::acquire(dir).map_err(|source| StartError::SessionLock {
                connector: c.name.clone(),
                source,
            })?,
        );
    }
    Ok(locks)
}

async fn flush_log(log: EventLog, stop: CancellationToken) {
    let mut tick = tokio::time::interval(LOG_FLUSH_INTERVAL);
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            // A buffered write to a local file, like every append: on the worker (ARCHITECTURE.md).
            _ = tick.tick() => log.flush(),
        }
    }
}

/// Cancels `shutdown` on SIGTERM or SIGINT.
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

/// A daemon running in this process, reached through a `GatewayClient`.
pub struct InProcess {
    pub client: std::sync::Arc<crate::gateway::in_process::GatewayClient>,
    /// Every event since the start (subscribed before the link is first read).
    pub events: tokio::sync::broadcast::Receiver<bridge_protocol::gateway::GatewayEvent>,
    pub daemon: tokio::task::JoinHandle<Result<(), StartError>>,
}

/// Starts the daemon for `config` (its first connector is the one the client addresses) and
/// the client in front of it.
pub async fn start_in_process(
    config: crate::config::SupervisorConfig,
    inbox_capacity: usize,
    shutdown: tokio_util::sync::CancellationToken,
) -> anyhow::Result<InProcess> {
    use anyhow::Context;
    let connector = config.connectors[0].name.clone();
    let (link_in, daemon_in) = tokio::io::duplex(256 * 1024);
    let (daemon_out, link_out) = tokio::io::duplex(256 * 1024);
    let (started_tx, started_rx) = tokio::sync::oneshot::channel();
    let daemon = tokio::spawn(run_with(
        config,
        daemon_in,
        daemon_out,
        shutdown,
        Some(started_tx),
    ));
    let Ok(log) = started_rx.await else {
        return match daemon.await {
            Ok(Err(e)) => Err(e).context("cannot start"),
            _ => Err(anyhow::anyhow!("the daemon stopped during startup")),
        };
    };
    let client = std::sync::Arc::new(crate::gateway::in_process::GatewayClient::new(
        &connector,
        link_in,
        inbox_capacity,
        log,
    ));
    let events = client.subscribe();
    tokio::spawn({
        let client = client.clone();
        async move { client.pump(link_out).await }
    });
    Ok(InProcess {
        client,
        events,
        daemon,
    })
}
