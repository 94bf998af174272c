//! `bridgekeeper status`: reads the status file the daemon keeps in its state dir and tells
//! whether a daemon holds the state-dir lock right now.

use std::fmt::Write as _;
use std::time::SystemTime;

use crate::cli::StateDirArgs;
use crate::daemon::STATUS_FILE;
use crate::record::board::{ConnectorStatus, StatusSnapshot, read_status_file, unix_ms};

#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub from: StateDirArgs,
    /// Print the status as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Exit status when no daemon runs (the last known status is still shown), as in LSB's
/// `status` convention; 0 means running, 1 an error (no status file, unreadable).
pub const NOT_RUNNING: u8 = 3;

pub fn run(args: StatusArgs) -> anyhow::Result<()> {
    let dir = args.from.resolve()?;
    let holder = crate::util::lock::probe(&dir)?;
    let path = dir.join(STATUS_FILE);
    if !path.exists() {
        anyhow::bail!(
            "no status in {}: bridgekeeper has not run with this state dir",
            dir.display()
        );
    }
    let mut snapshot = read_status_file(&path)?;
    snapshot.running = holder.is_some();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&snapshot)?);
    } else {
        print!("{}", render(&snapshot, unix_ms(SystemTime::now())));
    }
    if !snapshot.running {
        return Err(crate::cli::ExitStatus(NOT_RUNNING).into());
    }
    Ok(())
}

pub fn render(s: &StatusSnapshot, now_ms: u64) -> String {
    let mut out = String::new();
    if s.running {
        let _ = writeln!(
            out,
            "bridgekeeper {} running (pid {}), up {}",
            s.version,
            s.pid,
            duration(now_ms.saturating_sub(s.started_at_ms))
        );
    } else {
        let _ = writeln!(
            out,
            "bridgekeeper is not running; last status from {} ago (pid {})",
            duration(now_ms.saturating_sub(s.updated_at_ms)),
            s.pid
        );
    }
    let _ = writeln!(
        out,
        "{:<14} {:<17} {:>8} {:>9} {:>8}  LAST EXIT",
        "CONNECTOR", "STATE", "PID", "UPTIME", "RESTARTS"
    );
    for c in &s.connectors {
        render_connector(&mut out, c, now_ms, s.running);
    }
    for l in &s.listeners {
        let _ = writeln!(
            out,
            "listener {} on {}: {} open of {} allowed, {} accepted, {} refused over the cap, {} over the per-client cap, {} closed for a deadline, {} bodies too slow",
            l.name,
            l.address,
            l.open,
            l.max_connections,
            l.accepted,
            l.refused,
            l.refused_per_client,
            l.timed_out,
            l.slow_body
        );
    }
    if let Some(relay) = &s.relay {
        render_relay(&mut out, relay);
    }
    out
}

/// The relay's gateways and buffer, from `Hub::status`.
fn render_relay(out: &mut String, relay: &serde_json::Value) {
    let n = |k: &str| {
        relay
            .get(k)
            .and_then(serde_json::Value::as_u64)
            .unwrap_or(0)
    };
    let _ = writeln!(
        out,
        "relay: {} of {} buffered, {} acked, {} resent, {} failed buffer_full",
        n("buffered"),
        n("bufferCapacity"),
        n("acked"),
        n("resent"),
        n("failedBufferFull")
    );
    let gateways = relay.get("gateways").and_then(serde_json::Value::as_array);
    if gateways.is_none_or(|g| g.is_empty()) {
        let _ = writeln!(out, "  no gateway connected (messages wait in the buffer)");
    }
    for g in gateways.into_iter().flatten() {
        let s = |k: &str| g.get(k).and_then(serde_json::Value::as_str).unwrap_or("-");
        let platforms: Vec<&str> = g
            .get("platforms")
            .and_then(serde_json::Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(serde_json::Value::as_str)
            .collect();
        let _ = writeln!(
            out,
            "  gateway {} [{}] connected since {}, last ack {}{}",
            s("gateway"),
            platforms.join(","),
            s("since"),
            s("lastAck"),
            if g.get("idle") == Some(&serde_json::Value::Bool(true)) {
                " (idle)"
            } else {
                ""
            }
        );
    }
}

/// `live`: a daemon holds the lock. Otherwise the states are the last ones it wrote, and no
/// process of it is running any more: shown as stale, with no pid or uptime.
fn render_connector(out: &mut String, c: &ConnectorStatus, now_ms: u64, live: bool) {
    let pid = match c.pid {
        Some(p) if live => p.to_string(),
        _ => "-".into(),
    };
    let uptime = match (c.pid, c.started_at_ms) {
        (Some(_), Some(t)) if live => duration(now_ms.saturating_sub(t)),
        _ => "-".into(),
    };
    let state = if live {
        c.state.as_str().to_owned()
    } else {
        format!("{} (stale)", c.state.as_str())
    };
    let last_exit = match &c.last_exit {
        None => "-".to_owned(),
        Some(e) => {
            let how = match (e.exit.code, e.exit.signal) {
                (Some(code), _) => format!(" (code {code})"),
                (None, Some(sig)) => format!(" (signal {sig})"),
                _ => String::new(),
            };
            format!(
                "{}{how}, {} ago",
                e.exit.reason,
                duration(now_ms.saturating_sub(e.at_ms))
            )
        }
    };
    let _ = writeln!(
        out,
        "{:<14} {:<17} {:>8} {:>9} {:>8}  {}",
        c.name, state, pid, uptime, c.restarts, last_exit
    );
    let l = &c.ledger;
    let _ = writeln!(
        out,
        "  messages: received {} = delivered {}{} + paired {} + replied {} + ignored {} + failed {}{}",
        l.received,
        l.delivered,
        if l.awaiting_ack > 0 {
            format!(" + awaiting a relay ack {}", l.awaiting_ack)
        } else {
            String::new()
        },
        l.paired,
        l.replied,
        l.ignored_total(),
        l.failed_total(),
        if l.unaccounted() == 0 {
            String::new()
        } else {
            format!("  (UNACCOUNTED {})", l.unaccounted())
        }
    );
    // The account's own messages come back as inbound events too: shown apart, so they are
    // not taken for traffic from people.
    let own = |reason: &str| l.ignored.get(reason).copied().unwrap_or(0);
    let (echoes, owner) = (own("own_echo"), own("from_owner"));
    if echoes + owner > 0 {
        let _ = writeln!(
            out,
            "  own messages: {echoes} echo(es) of the bot's sends, {owner} typed on the linked phone (received, ignored)"
        );
    }
    for (label, map) in [("ignored", &l.ignored), ("failed", &l.failed)] {
        if !map.is_empty() {
            let parts: Vec<String> = map.iter().map(|(k, v)| format!("{k} {v}")).collect();
            let _ = writeln!(out, "    {label}: {}", parts.join(", "));
        }
    }
    let v = &c.liveness;
    if live && (v.last_heartbeat_ms.is_some() || v.forced_reconnects_last_hour > 0) {
        let ago = |t: Option<u64>| match t {
            Some(t) => format!("{} ago", duration(now_ms.saturating_sub(t))),
            None => "never".into(),
        };
        let _ = writeln!(
            out,
            "  liveness: heartbeat {}, server frame {}, message {}; forced reconnects in the last hour {}{}",
            ago(v.last_heartbeat_ms),
            ago(v.last_frame_ms),
            ago(v.last_message_ms),
            v.forced_reconnects_last_hour,
            v.last_forced_reason
                .as_deref()
                .map(|r| format!(" (last: {r})"))
                .unwrap_or_default()
        );
    }
    let k = &c.commands;
    let _ = writeln!(
        out,
        "  commands: accepted {}, ok {}, failed {} (timed out {}), rejected {}",
        k.accepted, k.ok, k.failed, k.timed_out, k.rejected
    );
    if !c.counts.is_empty() {
        let parts: Vec<String> = c.counts.iter().map(|(k, v)| format!("{k} {v}")).collect();
        let _ = writeln!(out, "  connector counts: {}", parts.join(", "));
    }
    if !c.line_errors.is_empty() || c.stderr_lines > 0 {
        let parts: Vec<String> = c
            .line_errors
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        let _ = writeln!(
            out,
            "  bad stdout lines: {}; stderr lines: {}",
            if parts.is_empty() {
                "none".into()
            } else {
                parts.join(", ")
            },
            c.stderr_lines
        );
    }
}

fn duration(ms: u64) -> String {
    let s = ms / 1000;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bridge_protocol::gateway::ConnectorStateName;

    fn snapshot(running: bool) -> StatusSnapshot {
        let mut ledger = crate::record::ledger::LedgerCounts::default();
        ledger.record(crate::record::ledger::Outcome::Delivered(
            crate::policy::Reason::Allowlisted,
        ));
        for _ in 0..3 {
            ledger.record(crate::record::ledger::Outcome::Ignored(
                crate::policy::Reason::OwnEcho,
            ));
        }
        StatusSnapshot {
            relay: None,
            listeners: vec![crate::record::board::ListenerStatus {
                name: "relay".into(),
                address: "127.0.0.1:8790".into(),
                max_connections: 128,
                open: 2,
                accepted: 40,
                refused: 3,
                refused_per_client: 5,
                timed_out: 1,
                slow_body: 2,
            }],
            pid: 10,
            version: "0.1.0".into(),
            started_at_ms: 0,
            updated_at_ms: 1_000,
            running,
            connectors: vec![ConnectorStatus {
                name: "whatsapp".into(),
                state: ConnectorStateName::Running,
                pid: Some(4242),
                started_at_ms: Some(0),
                restarts: 0,
                last_exit: None,
                connection: None,
                ledger,
                line_errors: Default::default(),
                stderr_lines: 0,
                commands: Default::default(),
                counts: Default::default(),
                liveness: Default::default(),
            }],
        }
    }

    #[test]
    fn liveness_has_its_own_line() {
        let mut snap = snapshot(true);
        snap.connectors[0].liveness = crate::record::board::LivenessStatus {
            last_heartbeat_ms: Some(4_000),
            last_frame_ms: Some(3_000),
            last_message_ms: None,
            forced_reconnects_last_hour: 1,
            last_forced_reason: Some("transport_inactive".into()),
        };
        let text = render(&snap, 5_000);
        assert!(
            text.contains("liveness: heartbeat 1s ago, server frame 2s ago, message never; forced reconnects in the last hour 1 (last: transport_inactive)"),
            "{text}"
        );
    }

    #[test]
    fn own_echoes_have_their_own_line() {
        let text = render(&snapshot(true), 5_000);
        assert!(
            text.contains(
                "own messages: 3 echo(es) of the bot's sends, 0 typed on the linked phone"
            ),
            "{text}"
        );
        assert!(text.contains("4242"));
        assert!(
            text.contains("listener relay on 127.0.0.1:8790: 2 open of 128 allowed, 40 accepted, 3 refused over the cap, 5 over the per-client cap, 1 closed for a deadline, 2 bodies too slow"),
            "{text}"
        );
    }

    #[test]
    fn a_dead_daemons_connectors_are_stale_without_pids() {
        let text = render(&snapshot(false), 5_000);
        let row = text.lines().find(|l| l.starts_with("whatsapp")).unwrap();
        assert!(row.contains("running (stale)"), "{row}");
        assert!(!text.contains("4242"), "{text}");
    }
}
