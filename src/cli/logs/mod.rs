//! `bridgekeeper logs [-f]`: the debug view of `bridge.log` — one readable line per event, with
//! filters, `--json` for machines, following across rotation. Reads the old bridge's mixed-format
//! log as well (see `crate::cli::logs::view`).

use std::fs::File;
use std::io::{BufRead, BufReader, Seek, SeekFrom, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use anyhow::Context;

use crate::config::SupervisorConfig;
use crate::config::hermes::default_hermes_home;
pub mod view;

use view::{Entry, Filter, Kind, classify, render};

const FOLLOW_POLL: Duration = Duration::from_millis(200);

#[derive(Debug, clap::Args)]
pub struct LogsArgs {
    /// Keep reading as the log grows (and after it is rotated).
    #[arg(long, short)]
    pub follow: bool,
    /// Only these events (repeatable), e.g. `decision`, `alert`, `connector_exited`.
    #[arg(long = "event")]
    pub events: Vec<String>,
    /// Only these reasons (repeatable), e.g. `self_chat_mode_rejects_non_self`.
    #[arg(long = "reason")]
    pub reasons: Vec<String>,
    /// Only this chat (a number matches masked ids by its last 4 digits).
    #[arg(long)]
    pub chat: Option<String>,
    #[arg(long)]
    pub connector: Option<String>,
    /// Only entries since a time (RFC 3339) or a duration ago (`10m`, `2h`).
    #[arg(long)]
    pub since: Option<String>,
    /// One JSON object per entry.
    #[arg(long)]
    pub json: bool,
    /// The log file (default: the one of --config, else Hermes' `bridge.log`).
    #[arg(long)]
    pub file: Option<PathBuf>,
    #[arg(long, short)]
    pub config: Option<PathBuf>,
    #[arg(long)]
    pub hermes_home: Option<PathBuf>,
}

fn log_path(args: &LogsArgs) -> anyhow::Result<PathBuf> {
    if let Some(file) = &args.file {
        return Ok(file.clone());
    }
    if let Some(config) = &args.config {
        return Ok(SupervisorConfig::load(config)?.log.path);
    }
    use crate::config::hermes_paths::bridge_log_for;
    use crate::connectors::whatsapp::session_dir;
    let home = args.hermes_home.clone().unwrap_or_else(default_hermes_home);
    Ok(bridge_log_for(&session_dir(&home)))
}

fn parse_since(text: &str) -> anyhow::Result<SystemTime> {
    if let Ok(t) = humantime::parse_rfc3339_weak(text.trim_end_matches('Z')) {
        return Ok(t);
    }
    let ago = humantime::parse_duration(text).with_context(|| {
        format!("--since {text:?}: expected a time (2026-11-21T05:00:00Z) or a duration (10m)")
    })?;
    Ok(SystemTime::now() - ago)
}

struct Printer<W: Write> {
    out: W,
    filter: Filter,
    json: bool,
    debug: bool,
    /// Consecutive QR-art lines are one entry.
    in_qr: bool,
}

impl<W: Write> Printer<W> {
    fn line(&mut self, line: &str) -> std::io::Result<()> {
        let entry = classify(line);
        if entry.kind == Kind::Qr {
            if self.in_qr {
                return Ok(());
            }
            self.in_qr = true;
        } else {
            self.in_qr = false;
        }
        if !self.filter.matches(&entry) {
            return Ok(());
        }
        self.entry(&entry)
    }

    fn entry(&mut self, entry: &Entry) -> std::io::Result<()> {
        if self.json {
            let value = serde_json::to_string(entry).map_err(std::io::Error::other)?;
            writeln!(self.out, "{value}")
        } else {
            writeln!(self.out, "{}", render(entry, self.debug))
        }
    }
}

pub fn run(args: LogsArgs) -> anyhow::Result<()> {
    let path = log_path(&args)?;
    let filter = Filter {
        events: args.events.clone(),
        reasons: args.reasons.clone(),
        chat: args.chat.clone(),
        connector: args.connector.clone(),
        since: args.since.as_deref().map(parse_since).transpose()?,
    };
    let debug = matches!(
        std::env::var("WHATSAPP_DEBUG")
            .map(|v| v.to_lowercase())
            .as_deref(),
        Ok("1" | "true" | "yes" | "on")
    );
    let stdout = std::io::stdout();
    let mut printer = Printer {
        out: stdout.lock(),
        filter,
        json: args.json,
        debug,
        in_qr: false,
    };
    let file = File::open(&path).with_context(|| format!("cannot open {}", path.display()))?;
    follow(file, &path, &mut printer, args.follow)?;
    Ok(())
}

/// Prints what `file` holds; with `keep_going`, keeps printing what is appended and reopens the
/// path when the log is rotated (a new file, or one shorter than what was read).
fn follow<W: Write>(
    file: File,
    path: &Path,
    printer: &mut Printer<W>,
    keep_going: bool,
) -> std::io::Result<()> {
    let mut inode = file.metadata()?.ino();
    let mut reader = BufReader::new(file);
    let mut partial = String::new();
    loop {
        let mut buf = Vec::new();
        let n = reader.read_until(b'\n', &mut buf)?;
        if n > 0 {
            partial.push_str(&String::from_utf8_lossy(&buf));
            if partial.ends_with('\n') {
                printer.line(partial.trim_end_matches(['\n', '\r']))?;
                partial.clear();
            }
            continue;
        }
        if !keep_going {
            if !partial.is_empty() {
                printer.line(&partial)?;
            }
            return Ok(());
        }
        printer.out.flush()?;
        std::thread::sleep(FOLLOW_POLL);
        let position = reader.stream_position()?;
        match std::fs::metadata(path) {
            Ok(meta) if meta.ino() != inode || meta.len() < position => {
                // Rotated: finish the old file, then start on the new one from its beginning.
                let fresh = File::open(path)?;
                inode = fresh.metadata()?.ino();
                reader = BufReader::new(fresh);
                reader.seek(SeekFrom::Start(0))?;
            }
            _ => {}
        }
    }
}
