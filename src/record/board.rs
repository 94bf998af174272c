//! The status board: the live state of every connector (lifecycle, pid, restarts, last exit,
//! ledger, line errors), shared by the connector tasks, answered to the gateway's `status`
//! request and written to `<state_dir>/status.json` for `bridgekeeper status`.
//!
//! Connector tasks write to it; the file writer reacts to a `Notify` and writes at most every
//! `WRITE_INTERVAL`, so a message flood costs one file write per interval, not per message.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bridge_protocol::gateway::{ConnectorStateName, ExitInfo};
use bridge_protocol::message::ConnectionStatus;
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::listener::ListenerCounters;
use crate::record::ledger::{FailReason, LedgerCounts, Outcome};
use crate::util::fs::{PathError, write_atomic};

const WRITE_INTERVAL: Duration = Duration::from_millis(100);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusSnapshot {
    pub pid: u32,
    pub version: String,
    /// Unix milliseconds.
    pub started_at_ms: u64,
    pub updated_at_ms: u64,
    /// False once the daemon has stopped (the file then shows its last state).
    pub running: bool,
    pub connectors: Vec<ConnectorStatus>,
    /// The Hermes relay (with `run --relay`): connected gateways, since when, their last ack,
    /// the buffer depth (`relay::hub::Hub::status`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relay: Option<serde_json::Value>,
    /// The HTTP listeners (relay, drop-in API, connectors' receivers): connections open,
    /// refused over the cap or the per-client cap, closed for a deadline, bodies too slow
    /// (`listener`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub listeners: Vec<ListenerStatus>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ListenerStatus {
    pub name: String,
    pub address: String,
    pub max_connections: usize,
    pub open: u64,
    pub accepted: u64,
    pub refused: u64,
    /// Refused because their address had as many open as one client may.
    #[serde(default)]
    pub refused_per_client: u64,
    pub timed_out: u64,
    /// Request bodies that came more slowly than the minimum rate (answered 408).
    #[serde(default)]
    pub slow_body: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConnectorStatus {
    pub name: String,
    pub state: ConnectorStateName,
    pub pid: Option<u32>,
    /// When the current process was spawned (unix ms).
    pub started_at_ms: Option<u64>,
    pub restarts: u32,
    pub last_exit: Option<LastExit>,
    /// The network connection as the connector last reported it.
    pub connection: Option<ConnectionStatus>,
    pub ledger: LedgerCounts,
    /// Invalid stdout lines by kind (`not_json`, `too_long`, …).
    pub line_errors: BTreeMap<String, u64>,
    pub stderr_lines: u64,
    pub commands: CommandCounts,
    /// What the connector's heartbeats and the watchdog say.
    #[serde(default)]
    pub liveness: LivenessStatus,
    /// The connector's own counts from its last heartbeat (a receiver's refusals by reason).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub counts: BTreeMap<String, u64>,
}

/// The connection's liveness, as `status` and `/health` show it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LivenessStatus {
    /// When the last heartbeat came (unix ms).
    pub last_heartbeat_ms: Option<u64>,
    /// When the last server frame and the last message were, as of that heartbeat (unix ms).
    pub last_frame_ms: Option<u64>,
    pub last_message_ms: Option<u64>,
    /// Forced reconnects (the watchdog found the connection deaf) in the last hour.
    pub forced_reconnects_last_hour: u32,
    pub last_forced_reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LastExit {
    #[serde(flatten)]
    pub exit: ExitInfo,
    pub at_ms: u64,
    pub uptime_ms: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandCounts {
    pub accepted: u64,
    pub ok: u64,
    pub failed: u64,
    pub timed_out: u64,
    pub rejected: u64,
    /// Queued now and not yet written to the connector.
    #[serde(default)]
    pub waiting: u64,
    /// Written to the connector now, their result not yet back.
    #[serde(default)]
    pub in_flight: u64,
    /// Sends outbound pacing held back, and how long in all (ms).
    #[serde(default)]
    pub paced: u64,
    #[serde(default)]
    pub paced_ms: u64,
}

pub use crate::util::time::unix_ms;

#[derive(Clone)]
pub struct StatusBoard {
    inner: Arc<Inner>,
}

/// A listener the snapshot reports: what it is, and its live counts.
struct RegisteredListener {
    name: String,
    address: String,
    max_connections: usize,
    counters: Arc<ListenerCounters>,
}

struct Inner {
    snapshot: Mutex<StatusSnapshot>,
    listeners: Mutex<Vec<RegisteredListener>>,
    changed: Arc<Notify>,
    path: PathBuf,
}

impl StatusBoard {
    pub fn new(path: PathBuf, connectors: &[&str]) -> Self {
        let now = unix_ms(SystemTime::now());
        let snapshot = StatusSnapshot {
            pid: std::process::id(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            started_at_ms: now,
            updated_at_ms: now,
            running: true,
            connectors: connectors
                .iter()
                .map(|name| ConnectorStatus {
                    name: (*name).to_owned(),
                    state: ConnectorStateName::Starting,
                    pid: None,
                    started_at_ms: None,
                    restarts: 0,
                    last_exit: None,
                    connection: None,
                    ledger: LedgerCounts::default(),
                    line_errors: BTreeMap::new(),
                    stderr_lines: 0,
                    commands: CommandCounts::default(),
                    liveness: LivenessStatus::default(),
                    counts: BTreeMap::new(),
                })
                .collect(),
            relay: None,
            listeners: Vec::new(),
        };
        Self {
            inner: Arc::new(Inner {
                snapshot: Mutex::new(snapshot),
                listeners: Mutex::new(Vec::new()),
                changed: Arc::new(Notify::new()),
                path,
            }),
        }
    }

    /// Changes one connector's entry and wakes the file writer.
    pub fn update(&self, index: usize, change: impl FnOnce(&mut ConnectorStatus)) {
        {
            let mut snap = self.lock();
            change(&mut snap.connectors[index]);
        }
        self.inner.changed.notify_one();
    }

    /// Replaces the relay's part; the file is written only when it changed.
    pub fn set_relay(&self, relay: serde_json::Value) {
        {
            let mut snap = self.lock();
            if snap.relay.as_ref() == Some(&relay) {
                return;
            }
            snap.relay = Some(relay);
        }
        self.inner.changed.notify_one();
    }

    pub fn record(&self, index: usize, outcome: Outcome) {
        self.update(index, |c| c.ledger.record(outcome));
    }

    /// Moves one message of connector `name` from delivered to failed. An unknown name
    /// changes nothing (there is no ledger to correct).
    pub fn retract_delivery(&self, name: &str, reason: FailReason) {
        {
            let mut snap = self.lock();
            if let Some(c) = snap.connectors.iter_mut().find(|c| c.name == name) {
                c.ledger.retract_delivery(reason);
            }
        }
        self.inner.changed.notify_one();
    }

    /// Moves one of connector `name`'s delivered messages to awaiting an ack, or back: the
    /// relay counts a message delivered once a gateway acked it.
    pub fn relay_delivery(&self, name: &str, acked: bool) {
        {
            let mut snap = self.lock();
            if let Some(c) = snap.connectors.iter_mut().find(|c| c.name == name) {
                if acked {
                    c.ledger.acked();
                } else {
                    c.ledger.hold_for_ack();
                }
            }
        }
        self.inner.changed.notify_one();
    }

    /// Counters for a new listener, shown in every snapshot from now on.
    pub fn listener(
        &self,
        name: &str,
        address: &str,
        max_connections: usize,
    ) -> Arc<ListenerCounters> {
        let counters = Arc::new(ListenerCounters::waking(&self.inner.changed));
        self.inner
            .listeners
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(RegisteredListener {
                name: name.into(),
                address: address.into(),
                max_connections,
                counters: counters.clone(),
            });
        counters
    }

    pub fn snapshot(&self) -> StatusSnapshot {
        use std::sync::atomic::Ordering::Relaxed;
        let mut snap = self.lock().clone();
        snap.updated_at_ms = unix_ms(SystemTime::now());
        let listeners = self
            .inner
            .listeners
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        snap.listeners = listeners
            .iter()
            .map(|l| ListenerStatus {
                name: l.name.clone(),
                address: l.address.clone(),
                max_connections: l.max_connections,
                open: l.counters.open.load(Relaxed),
                accepted: l.counters.accepted.load(Relaxed),
                refused: l.counters.refused.load(Relaxed),
                refused_per_client: l.counters.refused_per_client.load(Relaxed),
                timed_out: l.counters.timed_out.load(Relaxed),
                slow_body: l.counters.slow_body.load(Relaxed),
            })
            .collect();
        snap
    }

    pub fn write_now(&self) -> Result<(), PathError> {
        let snap = self.snapshot();
        let mut json = serde_json::to_vec_pretty(&snap).map_err(|e| {
            PathError::new("cannot encode", &self.inner.path, std::io::Error::other(e))
        })?;
        json.push(b'\n');
        write_atomic(&self.inner.path, &json)
    }

    pub fn mark_stopped(&self) {
        self.lock().running = false;
    }

    /// Writes `status.json` after each burst of changes until `stop` is cancelled.
    pub async fn write_loop(self, stop: CancellationToken) {
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = self.inner.changed.notified() => {}
            }
            // An atomic write with fsync: off the async workers.
            let board = self.clone();
            match tokio::task::spawn_blocking(move || board.write_now()).await {
                Ok(Err(e)) => tracing::warn!(error = %e, "cannot write status file"),
                Err(e) => tracing::warn!(error = %e, "the status file writer failed"),
                Ok(Ok(())) => {}
            }
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tokio::time::sleep(WRITE_INTERVAL) => {}
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, StatusSnapshot> {
        self.inner
            .snapshot
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }
}

/// Reads a status file written by a daemon.
pub fn read_status_file(path: &Path) -> Result<StatusSnapshot, StatusFileError> {
    let text = std::fs::read(path).map_err(|source| StatusFileError::Read {
        path: path.to_owned(),
        source,
    })?;
    serde_json::from_slice(&text).map_err(|e| StatusFileError::Corrupt {
        path: path.to_owned(),
        detail: e.to_string(),
    })
}

#[derive(Debug, thiserror::Error)]
pub enum StatusFileError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} is not a valid status file: {detail}", path.display())]
    Corrupt { path: PathBuf, detail: String },
}
