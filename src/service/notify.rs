//! systemd's service notifications (`Type=notify`, `sd_notify(3)`): `READY=1` once the gateway
//! link's `ready` line is written and every connector has been started, a `STATUS=` line of connector
//! states whenever it changes, `STOPPING=1` at shutdown, and — when systemd asks for a
//! watchdog (`WATCHDOG_USEC`) — `WATCHDOG=1` at half that period, sent only when every
//! connector task's loop has answered a pulse within it: a hung supervisor stops pinging and
//! systemd restarts it. Without `NOTIFY_SOCKET` the crate sends nothing.

use std::time::Duration;

use bridge_protocol::gateway::ConnectorStateName;
use sd_notify::NotifyState;
use tokio_util::sync::CancellationToken;

use crate::record::board::{StatusBoard, StatusSnapshot};
use crate::supervisor::ConnectorHandle;

/// How often the connector states are looked at for a new `STATUS=` line.
const STATUS_EVERY: Duration = Duration::from_millis(250);

/// One short line of connector states: `whatsapp running, telegram needs_token`.
pub fn status_line(snapshot: &StatusSnapshot) -> String {
    let states: Vec<String> = snapshot
        .connectors
        .iter()
        .map(|c| format!("{} {}", c.name, c.state.as_str()))
        .collect();
    if states.is_empty() {
        "no connectors".to_owned()
    } else {
        states.join(", ")
    }
}

/// Whether every connector has been started once (spawned, or already past its first try).
pub fn all_started(snapshot: &StatusSnapshot) -> bool {
    snapshot
        .connectors
        .iter()
        .all(|c| c.pid.is_some() || c.state != ConnectorStateName::Starting)
}

/// Tells systemd the daemon's life: ready once `link_ready` fired (the gateway link's `ready`
/// line is written) and every connector has started, its states as they change, the
/// watchdog's pings while every connector loop turns, and stopping when `stop` fires. Returns
/// once `STOPPING=1` is sent.
pub async fn tell_systemd(
    board: StatusBoard,
    loops: Vec<ConnectorHandle>,
    mut link_ready: tokio::sync::oneshot::Receiver<()>,
    stop: CancellationToken,
) {
    // Not under a service manager: nothing to tell, so no snapshots four times a second.
    if std::env::var_os("NOTIFY_SOCKET").is_none() {
        return;
    }
    let send = |states: &[NotifyState]| {
        // A datagram on a local socket: it does not block. A service manager that went away
        // is nothing to report on.
        let _ = sd_notify::notify(states);
    };
    let mut said_ready = false;
    let mut link_up = false;
    let mut said_status = String::new();
    let watchdog = sd_notify::watchdog_enabled().map(|limit| limit / 2);
    let mut status_tick = tokio::time::interval(STATUS_EVERY);
    let mut ping_tick = tokio::time::interval(watchdog.unwrap_or(Duration::from_secs(3600)));
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = status_tick.tick() => {
                link_up = link_up || link_ready.try_recv().is_ok();
                let snapshot = board.snapshot();
                let line = status_line(&snapshot);
                if !said_ready && link_up && all_started(&snapshot) {
                    said_ready = true;
                    said_status.clone_from(&line);
                    send(&[NotifyState::Ready, NotifyState::Status(&line)]);
                } else if said_ready && line != said_status {
                    said_status.clone_from(&line);
                    send(&[NotifyState::Status(&line)]);
                }
            }
            _ = ping_tick.tick(), if watchdog.is_some() => {
                let within = watchdog.unwrap_or_default();
                if loops_turn(&loops, within).await {
                    send(&[NotifyState::Watchdog]);
                }
            }
        }
    }
    send(&[NotifyState::Stopping, NotifyState::Status("stopping")]);
}

/// Whether every connector task's loop answers a pulse within `within`.
pub async fn loops_turn(loops: &[ConnectorHandle], within: Duration) -> bool {
    let pulses = loops.iter().map(|h| h.pulse(within));
    futures_util::future::join_all(pulses)
        .await
        .into_iter()
        .all(|alive| alive)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::supervisor::handle::Control;

    #[tokio::test]
    async fn a_loop_that_does_not_turn_stops_the_watchdogs_ping() {
        let (tx, mut turning) = tokio::sync::mpsc::channel(4);
        let alive = ConnectorHandle::new("alive", 0, tx);
        tokio::spawn(async move {
            while let Some(control) = turning.recv().await {
                if let Control::Pulse(answer) = control {
                    let _ = answer.send(());
                }
            }
        });
        let within = Duration::from_millis(200);
        assert!(loops_turn(std::slice::from_ref(&alive), within).await);

        // A task whose loop is stuck: its channel is open, nothing reads it.
        let (tx, _stuck) = tokio::sync::mpsc::channel(4);
        let frozen = ConnectorHandle::new("frozen", 1, tx);
        assert!(!loops_turn(&[alive, frozen], within).await);
    }
}
