//! `bridgekeeper status`: reads the status file the daemon keeps in its state dir and tells
//! whether a daemon holds the state-dir lock right now.

use std::fmt::Write as _;
use std::time::SystemTime;

use crate::cli::StateDirArgs;
use crate::daemon::STATUS_FILE;
use crate::status::{ConnectorStatus, StatusSnapshot, read_status_file, unix_ms};

#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub from: StateDirArgs,
    /// Print the status as JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: StatusArgs) -> anyhow::Result<()> {
    let dir = args.from.resolve()?;
    let holder = crate::lock::probe(&dir)?;
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
        "{:<14} {:<13} {:>8} {:>9} {:>8}  LAST EXIT",
        "CONNECTOR", "STATE", "PID", "UPTIME", "RESTARTS"
    );
    for c in &s.connectors {
        render_connector(&mut out, c, now_ms);
    }
    out
}

fn render_connector(out: &mut String, c: &ConnectorStatus, now_ms: u64) {
    let pid = c.pid.map(|p| p.to_string()).unwrap_or_else(|| "-".into());
    let uptime = match (c.pid, c.started_at_ms) {
        (Some(_), Some(t)) => duration(now_ms.saturating_sub(t)),
        _ => "-".into(),
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
        "{:<14} {:<13} {:>8} {:>9} {:>8}  {}",
        c.name,
        c.state.as_str(),
        pid,
        uptime,
        c.restarts,
        last_exit
    );
    let l = &c.ledger;
    let _ = writeln!(
        out,
        "  messages: received {} = delivered {} + paired {} + replied {} + ignored {} + failed {}{}",
        l.received,
        l.delivered,
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
    for (label, map) in [("ignored", &l.ignored), ("failed", &l.failed)] {
        if !map.is_empty() {
            let parts: Vec<String> = map.iter().map(|(k, v)| format!("{k} {v}")).collect();
            let _ = writeln!(out, "    {label}: {}", parts.join(", "));
        }
    }
    let k = &c.commands;
    let _ = writeln!(
        out,
        "  commands: accepted {}, ok {}, failed {} (timed out {}), rejected {}",
        k.accepted, k.ok, k.failed, k.timed_out, k.rejected
    );
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
