//! `bridge.log`: one JSON object per line — `ts`, `event`, `connector`, then the event's
//! fields. Every event the daemon records is a variant of `Event`, so the set of event names is
//! closed and documented here. Decisions about inbound messages are logged and counted in the
//! ledger by one call (`EventLog::decision`), so `status` and the log cannot disagree.
//!
//! Outside debug mode identities are masked to their last 4 digits and message text is never
//! written; QR payloads and link codes are never written at all (they grant account access).

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use bridge_protocol::gateway::{ConnectorStateName, Severity};
use bridge_protocol::message::{ConnectionState, InboundMessage, ReceiptStatus};
use serde::Serialize;

use crate::config::LogConfig;
use crate::record::board::StatusBoard;
use crate::record::ledger::{FailReason, Outcome};
use crate::util::fs::{PathError, create_private_dir};
use crate::util::mask::{LogId, mask_digit_runs};

/// Characters of message text shown in debug mode.
const PREVIEW_CHARS: usize = 80;

/// What an operator alert is about. Closed list; `as_str` is the stable name on the gateway
/// link and in `bridge.log`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertCode {
    RestartLimit,
    ConnectorHung,
    ConnectionDeaf,
    LoggedOut,
    SessionConflict,
    ConnectorFatal,
    InboundTooLong,
    PairingStoreError,
    SelfChatModeIgnoredMessage,
    HttpQueueFull,
    HttpDeliveryUnknown,
    SendsUnconfirmed,
    RelayBufferFull,
    RelayBufferCorrupt,
    NeedsToken,
    HttpNotPolled,
    RelayInsecure,
}

impl AlertCode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RestartLimit => "restart_limit",
            Self::ConnectorHung => "connector_hung",
            Self::ConnectionDeaf => "connection_deaf",
            Self::LoggedOut => "logged_out",
            Self::SessionConflict => "session_conflict",
            Self::ConnectorFatal => "connector_fatal",
            Self::InboundTooLong => "inbound_too_long",
            Self::PairingStoreError => "pairing_store_error",
            Self::SelfChatModeIgnoredMessage => "self_chat_mode_ignored_message",
            Self::HttpQueueFull => "http_queue_full",
            Self::HttpDeliveryUnknown => "http_delivery_unknown",
            Self::SendsUnconfirmed => "sends_unconfirmed",
            Self::RelayBufferFull => "relay_buffer_full",
            Self::NeedsToken => "needs_token",
            Self::HttpNotPolled => "http_not_polled",
            Self::RelayBufferCorrupt => "relay_buffer_corrupt",
            Self::RelayInsecure => "relay_insecure",
        }
    }
}

#[derive(Debug, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event<'a> {
    SupervisorStarted {
        pid: u32,
        version: &'a str,
        connectors: Vec<&'a str>,
        debug: bool,
    },
    SupervisorStopping {
        reason: &'a str,
    },
    SupervisorStopped,
    ConnectorSpawned {
        pid: u32,
        program: String,
    },
    ConnectorSpawnFailed {
        program: String,
        error: String,
    },
    ConnectorReady {
        pid: u32,
        connector_kind: &'a str,
        version: &'a str,
        capabilities: &'a [String],
    },
    ProtocolMismatch {
        expected: u32,
        got: u32,
    },
    HelloTimeout {
        pid: u32,
        waited_ms: u64,
    },
    /// The watchdog found an open connection deaf (from the connector's heartbeat).
    ConnectionDeaf {
        reason: &'static str,
        /// What it does: `reconnect`, or `give_up` past the hourly cap.
        action: &'static str,
        forced_last_hour: u32,
    },
    /// The supervisor's liveness check found the connector hung.
    ConnectorHung {
        pid: u32,
        reason: &'static str,
    },
    ConnectorExited {
        pid: u32,
        #[serde(skip_serializing_if = "Option::is_none")]
        code: Option<i32>,
        #[serde(skip_serializing_if = "Option::is_none")]
        signal: Option<i32>,
        reason: &'a str,
        uptime_ms: u64,
    },
    ConnectorState {
        state: ConnectorStateName,
        restarts: u32,
    },
    RestartScheduled {
        after_ms: u64,
        restart: u32,
    },
    /// One rung of the stop ladder: `stdin_closed`, `sigterm`, `sigkill`, `exited`, `reaped_group`.
    StopStep {
        step: &'a str,
        pid: u32,
    },
    Alert {
        severity: Severity,
        code: AlertCode,
        message: &'a str,
    },
    /// A line the connector wrote to stderr (digit runs masked outside debug mode).
    ConnectorStderr {
        line: String,
        truncated: bool,
    },
    /// A connector stdout line that is not a valid protocol message.
    ConnectorLineError {
        kind: &'static str,
        line: u64,
        message: String,
    },
    GatewayLineError {
        kind: &'static str,
        line: u64,
        message: String,
    },
    Connection {
        state: ConnectionState,
        #[serde(skip_serializing_if = "Option::is_none")]
        code: Option<u16>,
        #[serde(skip_serializing_if = "Option::is_none")]
        reason: Option<&'a str>,
    },
    QrReceived,
    LinkCodeReceived,
    Account {
        #[serde(skip_serializing_if = "Option::is_none")]
        phone: Option<LogId<'a>>,
        #[serde(skip_serializing_if = "Option::is_none")]
        lid: Option<LogId<'a>>,
    },
    LidMapping {
        lid: LogId<'a>,
        phone: LogId<'a>,
    },
    /// Debug mode only: the message as the connector reported it, its text cut to a preview.
    InboundRaw {
        message: serde_json::Value,
    },
    /// The recorded end of one inbound message.
    Decision {
        message_id: &'a str,
        chat: LogId<'a>,
        sender: LogId<'a>,
        outcome: &'static str,
        reason: &'static str,
        #[serde(skip_serializing_if = "Option::is_none")]
        preview: Option<String>,
    },
    /// How far a sent message got (server_ack, delivered, read; unconfirmed when the
    /// connection dropped before the server acknowledged it).
    Receipt {
        message_id: &'a str,
        chat: LogId<'a>,
        status: ReceiptStatus,
    },
    /// A delivered message that could not be handed to the gateway after all.
    DeliveryRetracted {
        message_id: &'a str,
        reason: &'static str,
    },
    CommandWritten {
        id: &'a str,
        command: &'static str,
    },
    CommandResult {
        id: &'a str,
        command: &'static str,
        ok: bool,
        #[serde(skip_serializing_if = "Option::is_none")]
        error: Option<&'a str>,
    },
    /// A result for a command that already had its answer (timed out, or a duplicate).
    LateResult {
        id: &'a str,
    },
    GatewayWriteFailed {
        error: String,
    },
    /// A contradiction or shadowed value found while resolving the config.
    ConfigWarning {
        platform: &'a str,
        message: &'a str,
    },
    /// A command for a routed chat (a webhook's) was handed to the connector its route
    /// delivers to.
    DeliveredElsewhere {
        command: &'static str,
        connector: &'a str,
        chat: LogId<'a>,
    },
    /// The send policy stopped an outbound message.
    OutboundDenied {
        kind: &'static str,
        chat: LogId<'a>,
        /// Index of the deciding rule; absent when the default decided.
        #[serde(skip_serializing_if = "Option::is_none")]
        rule: Option<usize>,
    },
    /// A stranger was sent a pairing code (approve with the code or `request_id`).
    PairingRequested {
        platform: &'a str,
        user: LogId<'a>,
        request_id: &'a str,
    },
    /// Requests the HTTP API refused because a browser could have sent them cross-site
    /// (logged once a minute at most; `refused` counts every one since the start).
    HttpRefused {
        reason: &'static str,
        method: &'a str,
        path: &'a str,
        refused: u64,
    },
    /// Hermes' settings changed while running: the access policy now in force, what changed
    /// and where each new value comes from.
    PolicyReloaded {
        platform: &'a str,
        changes: Vec<String>,
    },
    /// The Hermes relay endpoint is serving.
    RelayListening {
        address: String,
        auth: bool,
        /// Messages still waiting for an ack from before the start.
        buffered: usize,
    },
    /// A gateway acked a delivered message: from now on it counts as `delivered`.
    RelayAcked {
        message_id: &'a str,
        gateway: &'a str,
    },
    /// A relay gateway connected, took a platform, or went away.
    RelayGateway {
        change: &'static str,
        gateway: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        platform: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        reason: Option<&'a str>,
    },
    /// A relay upgrade or policy request refused (at most once a minute; `refused` counts all).
    RelayRefused {
        reason: &'static str,
        refused: u64,
    },
    /// A frame the relay could not take (answered with an `error` frame).
    RelayFrameError {
        gateway: &'a str,
        code: &'static str,
    },
    /// A gateway's `interrupt` (acknowledged; bridgekeeper has no turn to stop).
    RelayInterrupt {
        gateway: &'a str,
    },
    /// An alert could not be queued for an operator target.
    AlertUndeliverable {
        chat: LogId<'a>,
        error: &'static str,
    },
}

impl Event<'_> {
    /// Events emitted once per message or command: written in batches.
    fn is_per_message(&self) -> bool {
        matches!(
            self,
            Self::Decision { .. }
                | Self::InboundRaw { .. }
                | Self::Receipt { .. }
                | Self::CommandWritten { .. }
                | Self::CommandResult { .. }
                | Self::ConnectorStderr { .. }
                | Self::ConnectorLineError { .. }
                | Self::RelayAcked { .. }
        )
    }
}

/// The `ts` field: RFC 3339 UTC with milliseconds, formatted once per millisecond (a flood
/// writes hundreds of lines within one).
#[derive(Default)]
struct Clock {
    ms: u64,
    text: String,
}

impl Clock {
    fn now(&mut self) -> &str {
        let now = SystemTime::now();
        let ms = crate::util::time::unix_ms(now);
        if ms != self.ms || self.text.is_empty() {
            self.ms = ms;
            self.text.clear();
            use std::fmt::Write as _;
            let _ = write!(self.text, "{}", humantime::format_rfc3339_millis(now));
        }
        &self.text
    }
}

struct LogFile {
    path: PathBuf,
    out: BufWriter<File>,
    size: u64,
    max_bytes: u64,
    keep: u32,
    /// Write failures so far (disk full, file removed…): reported on stderr, never fatal.
    write_errors: u64,
    clock: Clock,
    /// The line being built, reused.
    line: Vec<u8>,
}

impl LogFile {
    fn open(path: &Path, max_bytes: u64, keep: u32) -> Result<Self, PathError> {
        let file = open_append(path)?;
        let size = file
            .metadata()
            .map_err(|e| PathError::new("cannot inspect", path, e))?
            .len();
        Ok(Self {
            path: path.to_owned(),
            out: BufWriter::with_capacity(64 * 1024, file),
            size,
            max_bytes,
            keep,
            write_errors: 0,
            clock: Clock::default(),
            line: Vec::with_capacity(512),
        })
    }

    /// `{"ts":…,"connector":…,"event":…,<fields>}`: the event serialises as an object tagged
    /// with `event`, whose opening brace becomes the comma after the common fields.
    fn write_event(&mut self, connector: Option<&str>, event: &Event<'_>) {
        let mut line = std::mem::take(&mut self.line);
        line.clear();
        line.extend_from_slice(b"{\"ts\":\"");
        line.extend_from_slice(self.clock.now().as_bytes());
        line.push(b'"');
        if let Some(connector) = connector {
            line.extend_from_slice(b",\"connector\":");
            // A `&str` always serialises.
            let _ = serde_json::to_writer(&mut line, connector);
        }
        let fields = line.len();
        match serde_json::to_writer(&mut line, event) {
            Ok(()) if line.get(fields) == Some(&b'{') => {
                line[fields] = b',';
                line.push(b'\n');
                self.write_line(&line);
            }
            Ok(()) => tracing::error!("a bridge.log event did not serialise as an object"),
            Err(e) => tracing::error!(error = %e, "cannot serialise a bridge.log event"),
        }
        self.line = line;
    }

    fn write_line(&mut self, line: &[u8]) {
        if self.size + line.len() as u64 > self.max_bytes
            && self.size > 0
            && let Err(e) = self.rotate()
        {
            self.report(&e.to_string());
        }
        match self.out.write_all(line) {
            Ok(()) => self.size += line.len() as u64,
            Err(e) => self.report(&format!("cannot write {}: {e}", self.path.display())),
        }
    }

    /// `bridge.log` → `bridge.log.1` → … → `bridge.log.<keep>` (the oldest is dropped).
    fn rotate(&mut self) -> Result<(), PathError> {
        self.out
            .flush()
            .map_err(|e| PathError::new("cannot flush", &self.path, e))?;
        let numbered = |n: u32| PathBuf::from(format!("{}.{n}", self.path.display()));
        if self.keep == 0 {
            let _ = std::fs::remove_file(&self.path);
        } else {
            for n in (1..self.keep).rev() {
                let _ = std::fs::rename(numbered(n), numbered(n + 1));
            }
            std::fs::rename(&self.path, numbered(1))
                .map_err(|e| PathError::new("cannot rotate", &self.path, e))?;
        }
        self.out = BufWriter::with_capacity(64 * 1024, open_append(&self.path)?);
        self.size = 0;
        Ok(())
    }

    fn flush(&mut self) {
        if let Err(e) = self.out.flush() {
            let message = format!("cannot flush {}: {e}", self.path.display());
            self.report(&message);
        }
    }

    fn report(&mut self, message: &str) {
        self.write_errors += 1;
        // Power-of-two reporting: the first failures are visible, a full disk does not flood.
        if self.write_errors.is_power_of_two() {
            tracing::error!(errors = self.write_errors, "bridge.log: {message}");
        }
    }
}

/// Opens the log for appending, mode 0600. An existing file keeps the mode it was created
/// with (a drop-in install inherits Hermes' 0644 `bridge.log`), so it is tightened here.
fn open_append(path: &Path) -> Result<File, PathError> {
    use std::os::unix::fs::PermissionsExt;
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| PathError::new("cannot open log", path, e))?;
    let mode = file
        .metadata()
        .map_err(|e| PathError::new("cannot inspect", path, e))?
        .permissions()
        .mode();
    // Only a regular file of ours: /dev/null or a terminal as the log is left alone.
    let regular = file.metadata().is_ok_and(|m| m.is_file());
    if regular && mode & 0o077 != 0 {
        file.set_permissions(std::fs::Permissions::from_mode(0o600))
            .map_err(|e| PathError::new("cannot restrict permissions of", path, e))?;
    }
    Ok(file)
}

/// The daemon's event sink: `bridge.log` plus the ledger in the status board.
#[derive(Clone)]
pub struct EventLog {
    file: Arc<Mutex<LogFile>>,
    debug: bool,
    board: StatusBoard,
}

impl EventLog {
    pub fn open(cfg: &LogConfig, board: StatusBoard) -> Result<Self, PathError> {
        if let Some(dir) = cfg.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            create_private_dir(dir)?;
        }
        Ok(Self {
            file: Arc::new(Mutex::new(LogFile::open(
                &cfg.path,
                cfg.max_bytes,
                cfg.keep,
            )?)),
            debug: cfg.debug,
            board,
        })
    }

    pub fn debug(&self) -> bool {
        self.debug
    }

    pub fn board(&self) -> &StatusBoard {
        &self.board
    }

    pub fn emit(&self, connector: Option<&str>, event: &Event<'_>) {
        let mut file = self.lock();
        file.write_event(connector, event);
        // Rare events reach the file at once (an operator tailing it sees a crash when it
        // happens); per-message events wait for the periodic flush.
        if !event.is_per_message() {
            file.flush();
        }
    }

    /// Records the end of one inbound message: the ledger and `bridge.log` in one call.
    pub fn decision(&self, index: usize, connector: &str, msg: &InboundMessage, outcome: Outcome) {
        self.board.record(index, outcome);
        let preview = if self.debug {
            msg.text
                .as_deref()
                .map(|t| t.chars().take(PREVIEW_CHARS).collect())
        } else {
            None
        };
        self.emit(
            Some(connector),
            &Event::Decision {
                message_id: &msg.id,
                chat: self.id(&msg.chat),
                sender: self.id(&msg.sender),
                outcome: outcome.name(),
                reason: outcome.reason(),
                preview,
            },
        );
    }

    /// A delivered message that could not be handed over after all: moved from delivered to
    /// failed in the ledger and logged, in one call, by the connector's name.
    pub fn retract(&self, connector: &str, message_id: &str, reason: FailReason) {
        self.board.retract_delivery(connector, reason);
        self.emit(
            Some(connector),
            &Event::DeliveryRetracted {
                message_id,
                reason: reason.as_str(),
            },
        );
    }

    /// In debug mode, logs the raw inbound message with long text cut (`WHATSAPP_DEBUG`).
    pub fn inbound_raw(&self, connector: &str, msg: &InboundMessage) {
        if !self.debug {
            return;
        }
        let mut value = serde_json::to_value(msg).unwrap_or_default();
        for field in ["/text", "/quoted/text"] {
            if let Some(text) = value.pointer_mut(field)
                && let Some(s) = text.as_str()
                && s.chars().count() > PREVIEW_CHARS
            {
                *text = serde_json::Value::String(format!(
                    "{}…",
                    s.chars().take(PREVIEW_CHARS).collect::<String>()
                ));
            }
        }
        self.emit(Some(connector), &Event::InboundRaw { message: value });
    }

    /// An identity as it may appear in the log.
    pub fn id<'a>(&self, id: &'a str) -> LogId<'a> {
        if self.debug {
            LogId::whole(id)
        } else {
            LogId::masked(id)
        }
    }

    /// Free text (stderr, excerpts) as it may appear in the log.
    pub fn text(&self, text: &str) -> String {
        if self.debug {
            text.to_owned()
        } else {
            mask_digit_runs(text)
        }
    }

    pub fn flush(&self) {
        self.lock().flush();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LogFile> {
        // A panic while holding the lock leaves a usable file; keep logging.
        self.file.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Reason;
    use std::os::unix::fs::PermissionsExt;

    fn log_in(dir: &Path, max_bytes: u64, debug: bool) -> EventLog {
        let cfg = LogConfig {
            path: dir.join("logs/bridge.log"),
            max_bytes,
            keep: 2,
            debug,
        };
        EventLog::open(&cfg, StatusBoard::new(dir.join("status.json"), &["wa"])).unwrap()
    }

    fn inbound() -> InboundMessage {
        serde_json::from_value(serde_json::json!({
            "id": "M1", "chat": "15551234567@s.whatsapp.net",
            "sender": "15551234567@s.whatsapp.net", "text": "secret text", "timestamp": 1
        }))
        .unwrap()
    }

    #[test]
    fn decisions_are_masked_and_counted() {
        let dir = tempfile::tempdir().unwrap();
        let log = log_in(dir.path(), 1 << 20, false);
        log.decision(0, "wa", &inbound(), Outcome::Delivered(Reason::OpenPolicy));
        log.flush();
        let text = std::fs::read_to_string(dir.path().join("logs/bridge.log")).unwrap();
        let v: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
        assert_eq!(v["event"], "decision");
        assert_eq!(v["connector"], "wa");
        assert_eq!(v["chat"], "…4567@s.whatsapp.net");
        assert_eq!(v["outcome"], "delivered");
        assert!(v["ts"].as_str().unwrap().ends_with('Z'));
        assert!(!text.contains("secret text") && !text.contains("15551234567"));
        let ledger = log.board().snapshot().connectors[0].ledger.clone();
        assert_eq!((ledger.received, ledger.delivered), (1, 1));
        let mode = std::fs::metadata(dir.path().join("logs"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o700);
        let mode = std::fs::metadata(dir.path().join("logs/bridge.log"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn an_existing_world_readable_log_is_tightened_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("logs/bridge.log");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, "old line\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let log = log_in(dir.path(), 1 << 20, false);
        log.emit(None, &Event::QrReceived);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(
            std::fs::read_to_string(&path)
                .unwrap()
                .starts_with("old line\n")
        );
    }

    #[test]
    fn raw_events_only_in_debug_mode_with_long_text_cut() {
        let dir = tempfile::tempdir().unwrap();
        let mut msg = inbound();
        msg.text = Some("y".repeat(500));
        log_in(dir.path(), 1 << 20, false).inbound_raw("wa", &msg);
        let quiet = dir.path().join("logs/bridge.log");
        let debug_dir = tempfile::tempdir().unwrap();
        let log = log_in(debug_dir.path(), 1 << 20, true);
        log.inbound_raw("wa", &msg);
        log.flush();
        assert_eq!(std::fs::read_to_string(quiet).unwrap(), "");
        let text = std::fs::read_to_string(debug_dir.path().join("logs/bridge.log")).unwrap();
        let v: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
        assert_eq!(v["event"], "inbound_raw");
        assert_eq!(v["message"]["id"], "M1");
        assert_eq!(
            v["message"]["text"].as_str().unwrap().chars().count(),
            PREVIEW_CHARS + 1
        );
    }

    #[test]
    fn debug_mode_keeps_identities_and_a_preview() {
        let dir = tempfile::tempdir().unwrap();
        let log = log_in(dir.path(), 1 << 20, true);
        log.decision(0, "wa", &inbound(), Outcome::Delivered(Reason::OpenPolicy));
        log.flush();
        let text = std::fs::read_to_string(dir.path().join("logs/bridge.log")).unwrap();
        assert!(text.contains("15551234567@s.whatsapp.net") && text.contains("secret text"));
    }

    #[test]
    fn the_log_rotates_by_size_and_keeps_the_configured_number() {
        let dir = tempfile::tempdir().unwrap();
        let log = log_in(dir.path(), 4096, false);
        for _ in 0..200 {
            log.emit(Some("wa"), &Event::QrReceived);
        }
        log.flush();
        let base = dir.path().join("logs/bridge.log");
        for p in [
            base.clone(),
            base.with_extension("log.1"),
            base.with_extension("log.2"),
        ] {
            let len = std::fs::metadata(&p).unwrap().len();
            assert!(len > 0 && len <= 4096, "{} is {len} bytes", p.display());
        }
        assert!(!base.with_extension("log.3").exists());
        // Every rotated line is whole JSON.
        for line in std::fs::read_to_string(base.with_extension("log.1"))
            .unwrap()
            .lines()
        {
            serde_json::from_str::<serde_json::Value>(line).unwrap();
        }
    }
}
